"""`media-pub process` on several files: folders, -j, one bar per file, summary table, presets, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mutagen.id3 import ID3
from mutagen.mp3 import MP3
from typer.testing import CliRunner

from media_pub.cli import app
from media_pub.config import get_settings
from media_pub.media.loudness import measure_loudness
from media_pub.media.synth import write_speech_like

runner = CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MEDIA_PUB_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _junk(path: Path) -> Path:
    path.write_text("not audio at all\n" * 10)
    return path


def _table_row(stdout: str, name: str) -> list[str]:
    """The cells of the summary table's row for `name`."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name} in:\n{stdout}")


def test_folder_in_parallel(tmp_path: Path) -> None:
    folder = tmp_path / "takes"
    folder.mkdir()
    sources = [
        write_speech_like(folder / "one.wav", 3.0, lufs=-28, lead_silence=1.0, seed=1),
        write_speech_like(folder / "two.flac", 2.5, lufs=-22, seed=2),
        write_speech_like(folder / "three.ogg", 2.0, lufs=-30, tail_silence=1.0, seed=3),
    ]
    (folder / "notes.txt").write_text("not media, skipped by extension\n")
    before = {p: p.read_bytes() for p in sources}
    out = tmp_path / "out"

    result = runner.invoke(app, ["process", str(folder), "-o", str(out), "-j", "2"])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["one.mp3", "three.mp3", "two.mp3"]
    for src in sources:
        assert src.read_bytes() == before[src]
        row = _table_row(result.stdout, src.name)
        assert row[1] == "ok"
        in_lufs, out_lufs, out_tp, dur_in, dur_out, took, lra_in, lra_out = map(float, row[2:10])
        assert lra_in >= 0
        assert lra_out >= 0
        assert in_lufs < -20
        assert out_lufs == pytest.approx(-16, abs=1.0)
        assert out_tp <= -1.0
        assert dur_out <= dur_in + 0.1
        assert took > 0
        dst = out / f"{src.stem}.mp3"
        assert measure_loudness(dst).integrated == pytest.approx(-16, abs=1.0)
        assert str(ID3(dst)["TIT2"]) == src.stem
        assert f"{src.name}" in result.stderr  # its progress bar
    assert "notes" not in result.stdout
    assert "error" not in result.stderr
    # Leading/trailing silence was trimmed.
    one = _table_row(result.stdout, "one.wav")
    assert float(one[5]) == pytest.approx(4.0, abs=0.05)
    assert float(one[6]) < 3.5


def test_one_bad_file_does_not_stop_the_batch(tmp_path: Path) -> None:
    good = write_speech_like(tmp_path / "good.wav", 2.0, lufs=-24)
    junk = _junk(tmp_path / "junk.mp3")
    out = tmp_path / "out"

    result = runner.invoke(app, ["process", str(junk), str(good), "-o", str(out), "-j", "2"])

    assert result.exit_code == 1
    assert (out / "good.mp3").exists()
    assert not (out / "junk.mp3").exists()
    assert not list(out.glob("*.part"))
    assert _table_row(result.stdout, "good.wav")[1] == "ok"
    assert _table_row(result.stdout, "junk.mp3")[1] == "failed"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {junk}: ")
    assert "not audio or video" in errors[0]


def test_preset_and_flags_over_it(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "talk.wav", 2.5, lufs=-26)
    preset = tmp_path / "quiet.toml"
    preset.write_text(
        "target_lufs = -19\nbitrate_kbps = 96\ntrim_silence = false\nlevel = false\nmax_silence = 1.5\n"
    )

    from_preset = runner.invoke(
        app, ["process", str(src), "-o", str(tmp_path / "a"), "--preset", str(preset)]
    )
    assert from_preset.exit_code == 0, from_preset.output
    first = tmp_path / "a" / "talk.mp3"
    assert measure_loudness(first).integrated == pytest.approx(-19, abs=1.0)
    assert MP3(first).info.bitrate == 96_000

    overridden = runner.invoke(
        app, ["process", str(src), str(tmp_path / "b.mp3"), "--preset", str(preset), "--target", "-23"]
    )
    assert overridden.exit_code == 0, overridden.output
    second = tmp_path / "b.mp3"
    assert measure_loudness(second).integrated == pytest.approx(-23, abs=1.0)
    assert MP3(second).info.bitrate == 96_000  # what the flags do not say still comes from the preset


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("target = -19\n", "unknown key(s) target"),
        ('target_lufs = "loud"\n', "target_lufs must be a number"),
        ("bitrate_kbps = 100\n", "bitrate_kbps must be one of"),
        ("channels = 3\n", "channels must be 1 or 2"),
        ('level = "yes"\n', "level must be true or false"),
        ("max_silence = 0.1\n", "max_silence must be between 0.2 and 60"),
        ("target_lufs = \n", "not valid TOML"),
        (None, "does not exist"),
    ],
)
def test_bad_preset_is_one_line(tmp_path: Path, text: str | None, expected: str) -> None:
    src = write_speech_like(tmp_path / "x.wav", 1.0)
    preset = tmp_path / "p.toml"
    if text is not None:
        preset.write_text(text)
    result = runner.invoke(app, ["process", str(src), "-o", str(tmp_path / "out"), "--preset", str(preset)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Invalid input: ")
    assert expected in lines[0]
    assert not (tmp_path / "out").exists()


def test_bad_flag_value_is_one_line(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "x.wav", 1.0)
    result = runner.invoke(app, ["process", str(src), "-o", str(tmp_path / "out"), "--bitrate", "100"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: Invalid input: --bitrate_kbps must be one of 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, "
        "192, 224, 256, 320"
    ]


def test_output_collisions_are_refused(tmp_path: Path) -> None:
    first = write_speech_like(tmp_path / "a" / "take.wav", 1.0)
    second = write_speech_like(tmp_path / "b" / "take.flac", 1.0)
    out = tmp_path / "out"
    result = runner.invoke(app, ["process", str(first), str(second), "-o", str(out)])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "would both be written to" in lines[0]
    assert not out.exists()

    # An output may not replace an input: OUTDIR/<stem>.mp3 is the input itself.
    mp3 = _junk(tmp_path / "b" / "song.mp3")
    before = mp3.read_bytes()
    result = runner.invoke(app, ["process", str(mp3), "-o", str(mp3.parent)])
    assert result.exit_code == 1
    assert "would overwrite the input" in result.stderr
    assert mp3.read_bytes() == before


def test_forms_that_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    src = write_speech_like(tmp_path / "x.wav", 1.0)

    no_media = runner.invoke(app, ["process", str(folder), "-o", str(tmp_path / "out")])
    assert no_media.exit_code == 1
    assert "holds no audio or video files" in no_media.stderr

    folder_without_o = runner.invoke(app, ["process", str(folder), str(tmp_path / "o.mp3")])
    assert folder_without_o.exit_code == 1
    assert "use -o" in folder_without_o.stderr

    three_without_o = runner.invoke(app, ["process", str(src), str(src), str(tmp_path / "o.mp3")])
    assert three_without_o.exit_code == 2

    title_in_batch = runner.invoke(app, ["process", str(src), "-o", str(tmp_path / "out"), "--title", "T"])
    assert title_in_batch.exit_code == 1
    assert "--title" in title_in_batch.stderr

    missing = runner.invoke(app, ["process", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "out")])
    assert missing.exit_code == 1
    assert "does not exist" in missing.stderr
    assert not (tmp_path / "out").exists()
