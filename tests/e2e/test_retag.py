"""Chapters written back into the renditions: edited chapters become new, retagged objects; file chapters."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import feedparser
import pytest
from fastapi.testclient import TestClient
from mutagen.id3 import ID3
from mutagen.mp4 import MP4

from media_pub.bootstrap import Container
from media_pub.domain.values import Chapter
from media_pub.media.synth import write_speech_like
from media_pub.media.tags import TagInfo, write_id3, write_mp4_tags
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job

pytestmark = pytest.mark.slow


def _get(client: TestClient, url: str) -> bytes:
    response = client.get(url.removeprefix("http://testserver"), follow_redirects=True)
    assert response.status_code == 200, (url, response.status_code)
    return response.content


def _chap_frames(content: bytes) -> list[tuple[str, int]]:
    """(title, start in ms) of the MP3's ID3 CHAP frames, in time order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.mp3"
        path.write_bytes(content)
        frames = ID3(path).getall("CHAP")
    return sorted(((str(f.sub_frames["TIT2"]), f.start_time) for f in frames), key=lambda c: c[1])


def _m4a_chapters(content: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.m4a"
        path.write_bytes(content)
        found = MP4(path).chapters
        return [c.title for c in found] if found else []


def _key(url: str) -> str:
    return url.split("/media/", 1)[1]


def _published(client: TestClient, host: dict[str, str], audio: bytes, **fields: object) -> dict:
    ep = client.post(
        "/api/v1/shows/test-show/episodes", json={"title": "Retag", **fields}, headers=host
    ).json()
    job = client.put(f"/api/v1/episodes/{ep['id']}/media", content=audio, headers=host)
    assert job.status_code == 202, job.text
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    published = client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    assert published.status_code == 200, published.text
    return published.json()


def test_edited_chapters_are_written_into_new_renditions(
    client: TestClient, container: Container, host: dict[str, str], tmp_path: Path
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    audio = write_speech_like(tmp_path / "ep.wav", 6.0, lufs=-20, seed=8).read_bytes()
    chapters = [{"start": 0, "title": "A"}, {"start": 2, "title": "B"}]
    first = _published(client, host, audio, chapters=chapters)
    by_codec = {r["codec"]: r for r in first["renditions"]}
    old_mp3, old_aac = by_codec["mp3"], by_codec["aac"]
    assert _chap_frames(_get(client, old_mp3["url"])) == [("A", 0), ("B", 2000)]

    # The same chapters again: nothing to rewrite.
    same = client.patch(f"/api/v1/episodes/{first['id']}", json={"chapters": chapters}, headers=host)
    assert same.json()["jobs"] == []

    new = [
        {"start": 0, "title": "Intro"},
        {"start": "00:00:01.500", "title": "Middle"},
        {"start": 4, "title": "End"},
    ]
    patched = client.patch(f"/api/v1/episodes/{first['id']}", json={"chapters": new}, headers=host)
    assert patched.status_code == 200, patched.text
    [job] = patched.json()["jobs"]
    assert job["kind"] == "media.retag"
    assert wait_job(client, job, host)["status"] == "succeeded"

    after = client.get(f"/api/v1/episodes/{first['id']}", headers=host).json()
    mp3 = {r["codec"]: r for r in after["renditions"]}["mp3"]
    aac = {r["codec"]: r for r in after["renditions"]}["aac"]
    assert after["media"]["id"] == mp3["id"] != old_mp3["id"]
    assert _key(mp3["url"]) != _key(old_mp3["url"])
    assert _key(aac["url"]) != _key(old_aac["url"])
    content = _get(client, mp3["url"])
    assert _chap_frames(content) == [("Intro", 0), ("Middle", 1500), ("End", 4000)]
    assert hashlib.sha256(content).hexdigest() == mp3["sha256"]
    assert len(content) == mp3["byte_size"]
    assert _m4a_chapters(_get(client, aac["url"])) == ["Intro", "Middle", "End"]
    # The audio is the same: the measurements and the waveform carry over.
    assert mp3["duration"] == old_mp3["duration"]
    assert mp3["loudness_out"] == old_mp3["loudness_out"]
    assert after["media"]["processing"]["waveform_key"] == first["media"]["processing"]["waveform_key"]

    # Published bytes never change: the old objects are untouched and their URLs still serve them.
    for old in (old_mp3, old_aac):
        stored = container.storage.read_bytes(_key(old["url"]))
        assert hashlib.sha256(stored).hexdigest() == old["sha256"]
        assert hashlib.sha256(_get(client, old["url"])).hexdigest() == old["sha256"]

    feed = feedparser.parse(client.get("/feeds/test-show.xml").content)
    [enclosure] = feed.entries[0].enclosures
    assert _key(enclosure["href"]) == _key(mp3["url"])
    assert int(enclosure["length"]) == mp3["byte_size"]
    chapters_json = client.get(f"/chapters/{first['id']}.json").json()
    assert [c["title"] for c in chapters_json["chapters"]] == ["Intro", "Middle", "End"]


def test_chapters_of_uploaded_files_are_served_as_chapters_json(
    client: TestClient, host: dict[str, str], tmp_path: Path
) -> None:
    """ID3 CHAP/CTOC (MP3) and MP4 chapters come in with the upload, moved by the trimmed silence."""
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    marks = [Chapter(0.0, "Cold open"), Chapter(4.0, "Talk"), Chapter(7.0, "Outro")]
    mp3 = write_speech_like(tmp_path / "in.mp3", 6.0, lufs=-22, lead_silence=3.0, seed=3)
    write_id3(mp3, TagInfo(title="Tagged MP3", chapters=marks), 9.0)
    m4a = write_speech_like(tmp_path / "in.m4a", 6.0, lufs=-22, lead_silence=3.0, seed=3)
    write_mp4_tags(m4a, TagInfo(title="Tagged M4A", chapters=marks), 9.0)
    for path in (mp3, m4a):
        ep = client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()
        job = client.put(f"/api/v1/episodes/{ep['id']}/media", content=path.read_bytes(), headers=host)
        assert wait_job(client, job.json(), host)["status"] == "succeeded"
        assert client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host).status_code == 200
        episode = client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()
        offset = episode["media"]["processing"]["offset"]
        assert offset > 2.0, path.name

        response = client.get(f"/chapters/{ep['id']}.json")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json+chapters"
        assert response.headers["access-control-allow-origin"] == "*"
        doc = response.json()
        assert doc["version"] == "1.2.0"
        assert doc["title"] == episode["title"]
        assert [c["title"] for c in doc["chapters"]] == ["Cold open", "Talk", "Outro"]
        starts = [c["startTime"] for c in doc["chapters"]]
        assert starts[0] == 0
        assert starts[1] == pytest.approx(4.0 - offset, abs=0.002), path.name
        assert starts[2] == pytest.approx(7.0 - offset, abs=0.002), path.name
        assert starts == sorted(starts)
        # The renditions carry the same chapters, in their own timeline.
        rendition = {r["codec"]: r for r in episode["renditions"]}["mp3"]
        assert [t for t, _ in _chap_frames(_get(client, rendition["url"]))] == ["Cold open", "Talk", "Outro"]
