"""The whole path through the HTTP API, on every backend: create, upload, process, publish, fetch."""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path

import feedparser
import httpx
import podcastparser
import pytest
from fastapi.testclient import TestClient

from media_pub.bootstrap import Container
from media_pub.media.loudness import measure_loudness
from media_pub.media.probe import probe_file
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import wait_job

pytestmark = pytest.mark.slow


def _fetch_enclosure(client: TestClient, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET an enclosure the way an app does: follow a redirect to the object store if there is one."""
    path = url.removeprefix("http://testserver")
    response = client.get(path, headers=headers or {}, follow_redirects=False)
    if response.status_code == 302:
        response = httpx.get(response.headers["location"], headers=headers or {})
    return response


def test_upload_process_publish_and_fetch(
    backend: Container, backend_client: TestClient, speech_wav: Path
) -> None:
    client = backend_client
    headers = new_user(backend, "host")
    original = speech_wav.read_bytes()

    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    created = client.post(
        "/api/v1/shows/test-show/episodes", json={"title": "Pilot", "notes": "<p>Hello</p>"}, headers=headers
    )
    assert created.status_code == 201, created.text
    episode = created.json()
    assert episode["status"] == "draft"
    assert episode["guid"]

    upload = client.put(
        f"/api/v1/episodes/{episode['id']}/media",
        content=original,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 202, upload.text
    job = wait_job(client, upload.json(), headers)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0

    ready = client.get(f"/api/v1/episodes/{episode['id']}", headers=headers).json()
    assert ready["status"] == "ready"
    assert ready["original"]["sha256"] == hashlib.sha256(original).hexdigest()
    assert ready["media"]["loudness_out"]["integrated"] == pytest.approx(-16.0, abs=1.0)
    assert ready["media"]["loudness_in"]["integrated"] == pytest.approx(-30.0, abs=1.5)

    published = client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=headers)
    assert published.status_code == 200, published.text
    assert published.json()["status"] == "published"

    feed = client.get("/feeds/test-show.xml")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/rss+xml")
    parsed = podcastparser.parse("http://testserver/feeds/test-show.xml", io.BytesIO(feed.content))
    assert [e["guid"] for e in parsed["episodes"]] == [episode["guid"]]
    enclosure = parsed["episodes"][0]["enclosures"][0]
    fp = feedparser.parse(feed.content)
    assert not fp.bozo, fp.bozo_exception
    assert fp.entries[0].id == episode["guid"]
    assert fp.entries[0].enclosures[0]["href"] == enclosure["url"]
    assert enclosure["mime_type"] == "audio/mpeg"

    head = _fetch_enclosure(client, enclosure["url"], {"Range": "bytes=0-1"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-1/{enclosure['file_size']}"
    assert len(head.content) == 2

    whole = _fetch_enclosure(client, enclosure["url"])
    assert whole.status_code == 200
    assert len(whole.content) == enclosure["file_size"]
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "episode.mp3"
        mp3.write_bytes(whole.content)
        loudness = measure_loudness(mp3)
        probe = probe_file(mp3)
    assert loudness.integrated == pytest.approx(-16.0, abs=1.0)
    assert loudness.true_peak <= -1.0
    assert probe.duration == pytest.approx(15.0, abs=2.0), "the 40 s of silence should be gone"
    assert probe.tags.get("title") == "Pilot"

    # The second rendition (AAC in M4A, on by default) is on target too, tagged, with its size and sha256.
    kinds = {r["codec"]: r for r in ready["renditions"]}
    assert set(kinds) == {"mp3", "aac"}
    aac = kinds["aac"]
    assert aac["mime_type"] == "audio/x-m4a"
    fetched = _fetch_enclosure(client, aac["url"])
    assert fetched.status_code == 200
    assert len(fetched.content) == aac["byte_size"]
    assert hashlib.sha256(fetched.content).hexdigest() == aac["sha256"]
    with tempfile.TemporaryDirectory() as tmp:
        m4a = Path(tmp) / "episode.m4a"
        m4a.write_bytes(fetched.content)
        aac_loudness = measure_loudness(m4a)
        aac_probe = probe_file(m4a)
    assert aac_loudness.integrated == pytest.approx(-16.0, abs=0.5)
    assert aac_loudness.true_peak <= -1.0
    assert aac["loudness_out"]["integrated"] == aac_loudness.integrated
    assert aac_probe.tags.get("title") == "Pilot"
    assert aac_probe.duration == pytest.approx(probe.duration, abs=0.1)

    # The original is kept byte for byte in storage.
    with backend.uow() as uow:
        from media_pub.db import repositories as repo

        asset = repo.asset_by_id(uow.session, ready["original"]["id"])
        assert (
            hashlib.sha256(backend.storage.read_bytes(asset.storage_key)).digest()
            == hashlib.sha256(original).digest()
        )


def test_demo_show_loads_and_publishes(container: Container, client: TestClient) -> None:
    from media_pub.api.main import load_demo

    load_demo(container, Path(__file__).resolve().parents[2] / "episodes")
    feed = client.get("/feeds/commons-hour.xml")
    assert feed.status_code == 200
    parsed = podcastparser.parse("http://testserver/feeds/commons-hour.xml", io.BytesIO(feed.content))
    assert len(parsed["episodes"]) == 4
    assert parsed["episodes"][0]["title"] == "Bonus: outtakes from the forum"
    chapters = client.get(f"/chapters/{_episode_id(container, '3f1c5f0e-7d1a-4c52-9a0c-0b6f7f1d0003')}.json")
    assert chapters.status_code == 200
    assert [c["title"] for c in chapters.json()["chapters"]] == ["Opening", "Organising a building", "Q&A"]
    # Loading again keeps the data and adds nothing.
    load_demo(container, Path(__file__).resolve().parents[2] / "episodes")
    again = podcastparser.parse("x", io.BytesIO(client.get("/feeds/commons-hour.xml").content))
    assert len(again["episodes"]) == 4


def _episode_id(container: Container, guid: str) -> str:
    from media_pub.db import repositories as repo

    with container.uow() as uow:
        episode = repo.episode_by_guid(uow.session, guid)
        assert episode is not None
        return episode.id


def test_other_users_cannot_touch_a_show(container: Container, client: TestClient) -> None:
    owner = new_user(container, "owner")
    stranger = new_user(container, "stranger")
    assert client.post("/api/v1/shows", json=SHOW, headers=owner).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "x"}, headers=owner).json()
    for method, url, kwargs in (
        ("GET", "/api/v1/shows/test-show", {}),
        ("PATCH", "/api/v1/shows/test-show", {"json": {"title": "mine"}}),
        ("GET", f"/api/v1/episodes/{episode['id']}", {}),
        ("PUT", f"/api/v1/episodes/{episode['id']}/media", {"content": b"ID3" + b"\0" * 100}),
        ("POST", f"/api/v1/episodes/{episode['id']}/publish", {"json": {}}),
    ):
        response = client.request(method, url, headers=stranger, **kwargs)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
