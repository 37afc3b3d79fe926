"""Uploads: multipart form, metadata read from the file, and the CLI against a real server over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from media_pub.bootstrap import Container
from media_pub.cli import app as cli_app
from media_pub.domain.values import Chapter
from media_pub.media.synth import write_speech_like
from media_pub.media.tags import TagInfo, write_id3
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import wait_job


@pytest.fixture
def tagged_mp3(tmp_path: Path) -> Path:
    """An MP3 with 5 s of leading silence, an ID3 title and chapters in its own timeline."""
    path = write_speech_like(tmp_path / "tagged.mp3", 12.0, lufs=-22, lead_silence=5.0, seed=3)
    chapters = [Chapter(0.0, "Cold open"), Chapter(8.0, "Interview"), Chapter(14.0, "Outro")]
    write_id3(path, TagInfo(title="From the tag", comment="Notes from the tag", chapters=chapters), 17.0)
    return path


def test_multipart_upload_reads_tags_and_shifts_chapters(
    client: TestClient, host: dict[str, str], tagged_mp3: Path
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()
    assert episode["title"] == ""
    with tagged_mp3.open("rb") as fh:
        response = client.post(
            f"/api/v1/episodes/{episode['id']}/media",
            files={"file": ("../../etc/passwd.m4a", fh, "text/plain")},
            headers=host,
        )
    assert response.status_code == 202, response.text
    assert wait_job(client, response.json(), host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert ready["title"] == "From the tag"
    assert "Notes from the tag" in ready["notes"]
    # The original's type comes from its content, not from the client's name or Content-Type.
    assert ready["original"]["mime_type"] == "audio/mpeg"
    # About 4.75 s of leading silence was cut, so every chapter moved back by that much.
    starts = [c["start"] for c in ready["chapters"]]
    assert [c["title"] for c in ready["chapters"]] == ["Cold open", "Interview", "Outro"]
    assert starts[0] == 0.0
    assert starts[1] == pytest.approx(8.0 - 4.75, abs=0.3)
    offset = ready["media"]["processing"]["offset"]
    assert starts[2] == pytest.approx(14.0 - offset, abs=0.01)


def test_cli_episode_upload_against_a_server(
    container: Container, live_server: str, tagged_mp3: Path, client: TestClient
) -> None:
    headers = new_user(container, "cli-host")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    token = headers["Authorization"].split()[1]
    runner = CliRunner()
    result = runner.invoke(cli_app, [
        "episode", "upload", "test-show", str(tagged_mp3), "--title", "Via CLI", "--publish",
        "--server", live_server, "--token", token,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "published" in result.stdout
    assert "Via CLI" in client.get("/feeds/test-show.xml").text
    wrong = runner.invoke(cli_app, ["episode", "upload", "nope", str(tagged_mp3), "--server", live_server,
                                    "--token", token])  # fmt: skip
    assert wrong.exit_code == 1
    assert wrong.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "show-not-found" in wrong.stderr


def test_explicit_in_and_out_points(client: TestClient, host: dict[str, str], tmp_path: Path) -> None:
    """In/out points given with the upload cut the rendition (HH:MM:SS.mmm or seconds)."""
    clip = write_speech_like(tmp_path / "clip.wav", 10.0, lufs=-20, seed=5)
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Cut"}, headers=host).json()
    response = client.put(
        f"/api/v1/episodes/{episode['id']}/media?start=00:00:02.000&end=7",
        content=clip.read_bytes(),
        headers=host,
    )
    assert response.status_code == 202, response.text
    assert wait_job(client, response.json(), host)["status"] == "succeeded"
    media = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["media"]
    assert media["duration"] == pytest.approx(5.0, abs=0.35)
    assert media["processing"]["trim_start"] == 2.0
    assert media["processing"]["trim_end"] == 7.0


def test_mono_episode_lands_on_the_mono_target(
    client: TestClient, host: dict[str, str], tmp_path: Path
) -> None:
    clip = write_speech_like(tmp_path / "mono.wav", 6.0, lufs=-28, channels=1, seed=2)
    assert (
        client.post("/api/v1/shows", json={**SHOW, "loudness_target_mono": -19}, headers=host).status_code
        == 201
    )
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Mono"}, headers=host).json()
    job = client.put(
        f"/api/v1/episodes/{episode['id']}/media", content=clip.read_bytes(), headers=host
    ).json()
    assert wait_job(client, job, host)["status"] == "succeeded"
    media = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["media"]
    assert media["channels"] == 1
    assert media["bitrate"] == 64000
    assert media["loudness_out"]["integrated"] == pytest.approx(-19, abs=0.5)
