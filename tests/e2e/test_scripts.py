"""The producer recipes in scripts/, run as a producer runs them: as subprocesses, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.media.loudness import measure_loudness
from media_pub.media.probe import probe_file
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import wait_job

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_PUB_")}
    return subprocess.run(
        args,
        cwd=cwd,
        env={**clean, "MEDIA_PUB_DATA_DIR": str(cwd / "data"), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _episode_with_media(client: TestClient, headers: dict[str, str], title: str, wav: Path) -> dict:
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": title}, headers=headers).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=wav.read_bytes(), headers=headers)
    assert wait_job(client, job.json(), headers)["status"] == "succeeded"
    return client.get(f"/api/v1/episodes/{episode['id']}", headers=headers).json()


@pytest.fixture
def producer(
    container: Container, client: TestClient, live_server: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Auth headers of a show owner, and the environment that points the script at the live server."""
    headers = new_user(container, "producer")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    token = headers["Authorization"].split()[1]
    return headers, {"MEDIA_PUB_BASE_URL": live_server, "MEDIA_PUB_TOKEN": token}


REBUILD = str(SCRIPTS / "rebuild_renditions.py")


def test_rebuild_renditions_moves_a_show_to_a_new_target(
    producer: tuple[dict[str, str], dict[str, str]], client: TestClient, tmp_path: Path
) -> None:
    headers, env = producer
    wav = write_speech_like(tmp_path / "pilot.wav", 5.0, lufs=-26, seed=4)
    pilot = _episode_with_media(client, headers, "Pilot", wav)
    before = pilot["media"]
    second = _episode_with_media(
        client, headers, "Second", write_speech_like(tmp_path / "2.wav", 3.0, seed=6)
    )
    client.post("/api/v1/shows/test-show/episodes", json={"title": "Still a draft"}, headers=headers)
    assert before["loudness_out"]["integrated"] == pytest.approx(-16, abs=0.5)

    dry = _run([sys.executable, REBUILD, "test-show", "--target", "-19", "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    assert "would reprocess" in dry.stdout
    assert "would change loudness_target: -16.0 -> -19.0" in dry.stderr
    assert client.get("/api/v1/shows/test-show", headers=headers).json()["loudness_target"] == -16

    done = _run([sys.executable, REBUILD, "test-show", "--target", "-19", "-j", "2"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert "reprocessed 2 episode(s)" in done.stdout
    assert "Pilot" in done.stdout
    assert "Second" in done.stdout
    assert done.stdout.count("succeeded") == 2
    assert "-> -19." in done.stdout or "-> -18." in done.stdout
    assert "skipped (no media): Still a draft" in done.stderr
    token = env["MEDIA_PUB_TOKEN"]
    assert token not in done.stdout + done.stderr + dry.stdout + dry.stderr
    after = client.get(f"/api/v1/episodes/{pilot['id']}", headers=headers).json()["media"]
    assert after["loudness_out"]["integrated"] == pytest.approx(-19, abs=0.5)
    assert after["id"] != before["id"]  # a new object: the old URL keeps its bytes
    second_after = client.get(f"/api/v1/episodes/{second['id']}", headers=headers).json()["media"]
    assert second_after["loudness_out"]["integrated"] == pytest.approx(-19, abs=0.5)
    assert client.get("/api/v1/shows/test-show", headers=headers).json()["loudness_target"] == -19


def test_rebuild_renditions_names_what_failed(
    producer: tuple[dict[str, str], dict[str, str]],
    client: TestClient,
    container: Container,
    tmp_path: Path,
) -> None:
    headers, env = producer
    missing = _run([sys.executable, REBUILD, "no-such-show", "--target", "-19"], tmp_path, **env)
    assert missing.returncode == 1
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1, missing.stderr
    assert lines[0].startswith("error: ")
    assert "show-not-found" in lines[0]
    assert env["MEDIA_PUB_TOKEN"] not in missing.stderr

    wav = write_speech_like(tmp_path / "lost.wav", 3.0, lufs=-26, seed=5)
    lost = _episode_with_media(client, headers, "Lost original", wav)
    with container.uow() as uow:  # the original vanished from storage: its job must fail
        container.storage.delete(repo.asset_by_id(uow.session, lost["original"]["id"]).storage_key)
    failed = _run([sys.executable, REBUILD, "test-show", "--renditions", "mp3,opus"], tmp_path, **env)
    assert failed.returncode == 1
    assert "failed" in failed.stdout
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, failed.stderr
    assert errors[0].startswith(f"error: Lost original ({lost['id']}): job failed: ")
    assert client.get("/api/v1/shows/test-show", headers=headers).json()["renditions"] == ["mp3", "opus"]


@pytest.fixture(scope="module")
def episode_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_speech_like(tmp_path_factory.mktemp("sb") / "episode.wav", 20.0, lufs=-28, seed=9)


def test_soundbite_cuts_an_exact_normalized_clip(episode_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "bite.mp3"
    result = _run(
        ["bash", str(SCRIPTS / "soundbite.sh"), str(episode_wav), "00:00:05", "4", str(out)], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "podcast:soundbite startTime=5.000 duration=4.000" in result.stdout
    assert probe_file(out).duration == pytest.approx(4.0, abs=0.15)
    assert measure_loudness(out).integrated == pytest.approx(-16, abs=0.5)


def test_soundbite_refuses_a_bad_start(episode_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "bite.mp3"
    result = _run(["bash", str(SCRIPTS / "soundbite.sh"), str(episode_wav), "5 min", "4", str(out)], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: '5 min' is not a timestamp; use seconds or [hh:]mm:ss[.fff]"
    ]
    assert not out.exists()
