"""The CLI: one line and a non-zero exit on errors; the producer pipeline on local files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from media_pub.cli import app
from media_pub.config import get_settings
from media_pub.media.loudness import measure_loudness
from media_pub.media.synth import write_speech_like

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MEDIA_PUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIA_PUB_JOB_THREADS", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_user_create_prints_a_token_once(tmp_path: Path) -> None:
    result = runner.invoke(app, ["user", "create", "ana", "--admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("mp_")
    assert len(token) > 40
    again = runner.invoke(app, ["user", "create", "ana"])
    assert again.exit_code == 1
    assert again.stderr.strip().splitlines() == ["error: Conflict: a user named 'ana' exists already"]


def test_show_create_and_list() -> None:
    assert runner.invoke(app, ["show", "create", "my-show", "--title", "My Show"]).exit_code == 0
    listed = runner.invoke(app, ["show", "list"])
    assert "my-show\tMy Show\thttp://127.0.0.1:8000/feeds/my-show.xml" in listed.stdout
    bad = runner.invoke(app, ["show", "create", "Bad!", "--title", "x"])
    assert bad.exit_code == 1
    assert bad.stderr.count("\n") == 1
    assert "slug" in bad.stderr


def test_process_local_file(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "in.wav", 8.0, lufs=-28, lead_silence=3, tail_silence=3)
    before = src.read_bytes()
    out = tmp_path / "out.mp3"
    result = runner.invoke(app, ["process", str(src), str(out), "--title", "Take 1"])
    assert result.exit_code == 0, result.output
    assert "integrated" in result.stdout
    assert src.read_bytes() == before
    loudness = measure_loudness(out)
    assert loudness.integrated == pytest.approx(-16, abs=1.0)
    assert loudness.true_peak <= -1.0


def test_process_refuses_bad_input(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_text("not audio at all\n" * 10)
    result = runner.invoke(app, ["process", str(junk), str(tmp_path / "o.mp3")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert not (tmp_path / "o.mp3").exists()


def test_publish_folder_of_manifests(tmp_path: Path) -> None:
    folder = tmp_path / "show"
    folder.mkdir()
    (folder / "show.toml").write_text('slug = "mini"\ntitle = "Mini"\ncategory = "News"\n')
    (folder / "001.toml").write_text(
        'title = "One"\npublished = "2026-01-01T00:00:00Z"\naudio = { synth = { seconds = 3 } }\n'
        'chapters = [{ start = "0", title = "Start" }]\n'
    )
    result = runner.invoke(app, ["publish", str(folder)])
    assert result.exit_code == 0, result.output
    assert "ok: One" in result.stderr
    assert "feeds/mini.xml" in result.stdout
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "show.toml").write_text("slug = \n")
    failed = runner.invoke(app, ["publish", str(broken)])
    assert failed.exit_code == 1
    assert failed.stderr.startswith("error: ")
