"""Renditions per show: MP3 + AAC + Opus, each tagged and on target; rebuilding them after a target change."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from media_pub.media.loudness import measure_loudness
from media_pub.media.tags import read_chapters
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job


def _get(client: TestClient, url: str) -> bytes:
    response = client.get(url, follow_redirects=True)
    assert response.status_code == 200, (url, response.status_code)
    return response.content


def _measure(content: bytes, suffix: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(content)
        loudness = measure_loudness(path)
    return loudness.integrated, loudness.true_peak


def test_every_rendition_then_rebuild_after_target_change(
    client: TestClient, host: dict[str, str], speech_wav: Path
) -> None:
    show = {**SHOW, "renditions": ["opus", "aac"], "max_silence": 2.0}
    created = client.post("/api/v1/shows", json=show, headers=host)
    assert created.status_code == 201, created.text
    assert created.json()["renditions"] == ["mp3", "aac", "opus"], "MP3 is always made, first"
    assert created.json()["level"] is True
    episode = client.post(
        "/api/v1/shows/test-show/episodes",
        json={
            "title": "Renditions",
            "chapters": [{"start": 0, "title": "A"}, {"start": 5, "title": "B"}],
        },
        headers=host,
    ).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=speech_wav.read_bytes(), headers=host)
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=host)
    first = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    by_codec = {r["codec"]: r for r in first["renditions"]}
    assert set(by_codec) == {"mp3", "aac", "opus"}
    for codec, suffix in (("mp3", ".mp3"), ("aac", ".m4a"), ("opus", ".opus")):
        rendition = by_codec[codec]
        content = _get(client, rendition["url"])
        assert hashlib.sha256(content).hexdigest() == rendition["sha256"]
        assert len(content) == rendition["byte_size"]
        integrated, peak = _measure(content, suffix)
        assert integrated == pytest.approx(-16.0, abs=0.5), codec
        assert peak <= -1.0, codec
        assert rendition["loudness_out"]["integrated"] == pytest.approx(integrated, abs=0.01)
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "x.mp3"
        mp3.write_bytes(_get(client, by_codec["mp3"]["url"]))
        assert [c.title for c in read_chapters(mp3)] == ["A", "B"]
    old_url, old_sha = by_codec["mp3"]["url"], by_codec["mp3"]["sha256"]

    # The host lowers the target: rebuild. The new renditions are at -19; the published URL keeps its bytes.
    patched = client.patch("/api/v1/shows/test-show", json={"loudness_target": -19.0}, headers=host)
    assert patched.status_code == 200, patched.text
    rebuilt = client.post(f"/api/v1/episodes/{episode['id']}/reprocess", headers=host)
    assert rebuilt.status_code == 202, rebuilt.text
    assert wait_job(client, rebuilt.json(), host)["status"] == "succeeded"
    second = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert second["status"] == "published"
    assert second["media"]["url"] != old_url
    assert second["media"]["loudness_out"]["integrated"] == pytest.approx(-19.0, abs=0.5)
    assert hashlib.sha256(_get(client, old_url)).hexdigest() == old_sha
    assert [c["title"] for c in second["chapters"]] == ["A", "B"]
    assert second["original"]["id"] == first["original"]["id"]


def test_reprocess_without_media_is_a_conflict(client: TestClient, host: dict[str, str]) -> None:
    client.post("/api/v1/shows", json=SHOW, headers=host)
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Empty"}, headers=host).json()
    response = client.post(f"/api/v1/episodes/{episode['id']}/reprocess", headers=host)
    assert response.status_code == 409
    assert response.json()["code"] == "episode-no-media"
    assert (
        client.patch("/api/v1/shows/test-show", json={"renditions": ["flac"]}, headers=host).status_code
        == 422
    )


def test_show_intro_and_outro(client: TestClient, host: dict[str, str], tmp_path: Path) -> None:
    from media_pub.media.synth import write_speech_like

    client.post("/api/v1/shows", json=SHOW, headers=host)
    intro = write_speech_like(tmp_path / "intro.wav", 3.0, lufs=-35.0, seed=21).read_bytes()
    episode_audio = write_speech_like(tmp_path / "ep.wav", 8.0, lufs=-20.0, seed=22).read_bytes()
    refused = client.put("/api/v1/shows/test-show/intro", content=b"not audio at all", headers=host)
    assert refused.status_code == 415, refused.text
    assert client.put("/api/v1/shows/test-show/jingle", content=intro, headers=host).status_code == 422
    stored = client.put("/api/v1/shows/test-show/intro", content=intro, headers=host)
    assert stored.status_code == 200, stored.text
    assert stored.json()["intro_key"]
    episode = client.post(
        "/api/v1/shows/test-show/episodes", json={"title": "With intro"}, headers=host
    ).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=episode_audio, headers=host)
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    media = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["media"]
    assert media["duration"] == pytest.approx(8.0 + 3.0 - 1.0, abs=0.15), "3 s intro, 1 s crossfade"
    assert media["loudness_out"]["integrated"] == pytest.approx(-16.0, abs=0.5)
    removed = client.delete("/api/v1/shows/test-show/intro", headers=host)
    assert removed.status_code == 200
    assert removed.json()["intro_key"] is None
    again = client.post(f"/api/v1/episodes/{episode['id']}/reprocess", headers=host)
    assert wait_job(client, again.json(), host)["status"] == "succeeded"
    media = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["media"]
    assert media["duration"] == pytest.approx(8.0, abs=0.15)
