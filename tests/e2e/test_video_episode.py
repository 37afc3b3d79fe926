"""A video episode through the API: copied H.264 + AAC on target, an audio-only MP3, a poster frame."""

from __future__ import annotations

import tempfile
from pathlib import Path

import av
import feedparser
import pytest
from fastapi.testclient import TestClient

from media_pub.media.loudness import measure_loudness
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job
from tests.unit.media.test_media_video import _write


def _download(client: TestClient, url: str, suffix: str, tmp: Path) -> Path:
    response = client.get(url, follow_redirects=True)
    assert response.status_code == 200, url
    path = tmp / f"file{suffix}"
    path.write_bytes(response.content)
    return path


def test_video_episode_gets_video_audio_and_poster(
    client: TestClient, host: dict[str, str], tmp_path: Path
) -> None:
    speech = write_speech_like(tmp_path / "speech.wav", 4.0, lufs=-28.0, lead_silence=2.0, seed=31)
    video = _write(tmp_path / "vlog.mp4", audio=speech, seconds=6.0)
    client.post("/api/v1/shows", json=SHOW, headers=host)
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Vlog"}, headers=host).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=video.read_bytes(), headers=host)
    assert job.status_code == 202, job.text
    done = wait_job(client, job.json(), host)
    assert done["status"] == "succeeded", done
    draft = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert client.get(draft["poster"]["url"]).status_code == 404, "nothing is public before publishing"
    published = client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=host)
    assert published.status_code == 200, published.text
    ready = published.json()
    media = ready["media"]
    assert (media["mime_type"], media["kind"], media["codec"]) == ("video/mp4", "video", "h264")
    assert media["processing"]["video"]["copied"] is True
    # 2 s of silence, trimmed to 1.8 s (0.2 s kept), snapped back to the keyframe at 1 s (one per second).
    assert media["processing"]["offset"] == pytest.approx(1.0, abs=0.01)
    kinds = {r["codec"]: r for r in ready["renditions"]}
    assert set(kinds) == {"h264", "mp3"}
    assert ready["poster"]["mime_type"] == "image/jpeg"
    with tempfile.TemporaryDirectory() as tmp:
        mp4 = _download(client, media["url"], ".mp4", Path(tmp))
        mp3 = _download(client, kinds["mp3"]["url"], ".mp3", Path(tmp))
        poster = _download(client, ready["poster"]["url"], ".jpg", Path(tmp))
        for path in (mp4, mp3):
            loudness = measure_loudness(path)
            assert loudness.integrated == pytest.approx(-16.0, abs=0.5), path
            assert loudness.true_peak <= -1.0, path
        with av.open(str(mp4)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert container.metadata.get("title") == "Vlog"
            seconds = float(container.duration or 0) / av.time_base
        assert seconds == pytest.approx(5.0, abs=0.3)
        assert poster.read_bytes()[:3] == b"\xff\xd8\xff"
    assert media["loudness_out"]["integrated"] == pytest.approx(-16.0, abs=0.5)
    # A video episode goes in the show's video feed (and in the audio feed only when the host asks).
    assert feedparser.parse(client.get("/feeds/test-show.xml").content).entries == []
    feed = feedparser.parse(client.get("/feeds/test-show/video.xml").content)
    assert not feed.bozo
    assert feed.entries[0].enclosures[0]["type"] == "video/mp4"
    assert int(feed.entries[0].enclosures[0]["length"]) == media["byte_size"]


def test_frame_accurate_cut_and_chosen_poster(
    client: TestClient, host: dict[str, str], tmp_path: Path
) -> None:
    speech = write_speech_like(tmp_path / "speech.wav", 6.0, lufs=-24.0, seed=32)
    video = _write(tmp_path / "vlog.mp4", audio=speech, seconds=6.0)
    client.post("/api/v1/shows", json=SHOW, headers=host)
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Cut"}, headers=host).json()
    url = f"/api/v1/episodes/{episode['id']}/media"
    bad = client.put(f"{url}?poster_at=soon", content=video.read_bytes(), headers=host)
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid-timestamp"
    job = client.put(
        f"{url}?start=1.52&end=4.52&frame_accurate=true&poster_at=00:00:01.000",
        content=video.read_bytes(),
        headers=host,
    )
    assert job.status_code == 202, job.text
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    media = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["media"]
    assert media["processing"]["video"]["copied"] is False, "frame-exact cuts need a re-encode"
    assert media["processing"]["offset"] == pytest.approx(1.52, abs=0.03)
    assert media["duration"] == pytest.approx(3.0, abs=0.1)
    assert media["processing"]["poster_at"] == 1.0
    assert media["processing"]["frame_accurate"] is True
