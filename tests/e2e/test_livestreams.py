"""Livestreams through the API: announce, go live, end, upload the recording; the live and audio feeds at
each step, checked by our feed checker, feedparser and lxml; every error as problem+json."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx
import pytest
from fastapi.testclient import TestClient
from lxml import etree

from media_pub.bootstrap import Container
from media_pub.config import Settings
from media_pub.feeds.check import check_feed
from media_pub.media.artwork import placeholder_artwork
from media_pub.services.livestreams import livestreams_due
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import wait_job
from tests.unit.media.helpers import make_video

P = "{https://podcastindex.org/namespace/1.0}"
PROBLEM = "application/problem+json"
LIVE_FEED, AUDIO_FEED = "/feeds/test-show/live.xml", "/feeds/test-show.xml"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """An https base URL: podcast:* URLs (chapters, alternate enclosures) must be https."""
    return make_settings(tmp_path, base_url="https://testserver")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 4 s video (64x48, 440 Hz tone) standing for a stream's recording."""
    return make_video(tmp_path_factory.mktemp("live") / "recording.mp4", 4.0).read_bytes()


def _new_show(client: TestClient, host: dict[str, str]) -> None:
    """The test show, with artwork (Apple requires itunes:image, so the feed checker does too)."""
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    artwork = client.put("/api/v1/shows/test-show/artwork", content=placeholder_artwork("live"), headers=host)
    assert artwork.status_code == 200, artwork.text


def _soon(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).replace(microsecond=0).isoformat()


def _announce(client: TestClient, host: dict[str, str], **body: object) -> dict:
    fields = {
        "title": "Live Q&A",
        "start_at": _soon(hours=1),
        "content_link": "https://example.org/watch",
        "stream_url": "https://stream.example.org/live.mp3",
    }
    response = client.post("/api/v1/shows/test-show/livestreams", json={**fields, **body}, headers=host)
    assert response.status_code == 201, response.text
    return response.json()


def _feed(client: TestClient, path: str, *, errors_expected: tuple[str, ...] = ()) -> etree._Element:
    """The feed at `path`, with no error from our checker (but those expected) and none from feedparser."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    errors = [
        str(p) for p in check_feed(response.content, f"{client.base_url}{path}") if p.severity == "error"
    ]
    assert len(errors) == len(errors_expected), errors
    for expected in errors_expected:
        assert any(expected in error for error in errors), (expected, errors)
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.bozo_exception
    return etree.fromstring(response.content)


def _live_items(root: etree._Element) -> dict[str, etree._Element]:
    return {li.findtext("guid"): li for li in root.iter(f"{P}liveItem")}


def _items(root: etree._Element) -> dict[str, etree._Element]:
    return {item.findtext("guid"): item for item in root.findall("channel/item")}


def _problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict = response.json()
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def _post(client: TestClient, host: dict[str, str], stream: dict, action: str) -> dict:
    response = client.post(f"/api/v1/livestreams/{stream['id']}/{action}", headers=host)
    assert response.status_code == 200, response.text
    return response.json()


def test_livestream_from_announcement_to_replay(
    client: TestClient, host: dict[str, str], recording: bytes
) -> None:
    _new_show(client, host)
    stream = _announce(
        client, host,
        notes="<p>Ask <b>anything</b></p><script>alert(1)</script>",
        end_at=_soon(hours=2),
        stream_url="https://stream.example.org/live/index.m3u8",
        audio_feed=True,
        persons=[{"name": "Tess Ter", "role": "host"}],
        chapters=[{"start": 0, "title": "Pre-show"}, {"start": 1, "title": "Welcome"},
                  {"start": "00:00:03", "title": "Questions"}],
    )  # fmt: skip
    assert stream["status"] == "pending"
    assert stream["stream_type"] == "application/x-mpegURL"  # told from the extension
    assert "<script>" not in stream["notes"]
    assert "<b>anything</b>" in stream["notes"]
    guid = stream["guid"]

    # Announced: a pending liveItem with its contentLink and fallback enclosure, nothing in the audio feed.
    live = _live_items(_feed(client, LIVE_FEED))[guid]
    assert live.get("status") == "pending"
    assert datetime.fromisoformat(live.get("start")) == datetime.fromisoformat(stream["start_at"])
    assert datetime.fromisoformat(live.get("end")) == datetime.fromisoformat(stream["end_at"])
    assert live.find(f"{P}contentLink").get("href") == "https://example.org/watch"
    assert live.find("enclosure").get("url") == "https://stream.example.org/live/index.m3u8"
    assert live.find("enclosure").get("type") == "application/x-mpegURL"
    assert live.find(f"{P}person").text == "Tess Ter"
    assert _items(_feed(client, AUDIO_FEED)) == {}

    # Live; a repeat answers the same stream.
    on_air = _post(client, host, stream, "live")
    assert on_air["status"] == "live"
    assert on_air["went_live_at"] is not None
    assert _post(client, host, stream, "live") == on_air
    assert _live_items(_feed(client, LIVE_FEED))[guid].get("status") == "live"

    # Ended; a repeat answers the same stream; it cannot go live again.
    ended = _post(client, host, stream, "end")
    assert ended["status"] == "ended"
    assert ended["ended_at"] is not None
    assert _post(client, host, stream, "end") == ended
    _problem(client.post(f"/api/v1/livestreams/{stream['id']}/live", headers=host), 409,
             "livestream-status-conflict")  # fmt: skip
    assert _live_items(_feed(client, LIVE_FEED))[guid].get("status") == "ended"

    # The recording, with a second of pre-show cut: an episode with the livestream's guid, published.
    response = client.post(
        f"/api/v1/livestreams/{stream['id']}/recording",
        files={"file": ("recording.mp4", recording, "video/mp4")},
        data={"start": "1", "frame_accurate": "true"},
        headers=host,
    )
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json(), host)
    assert job["status"] == "succeeded", job
    stream = client.get(f"/api/v1/livestreams/{stream['id']}", headers=host).json()
    assert stream["episode_id"] == job["episode_id"]
    episode = client.get(f"/api/v1/episodes/{job['episode_id']}", headers=host).json()
    assert (episode["guid"], episode["title"], episode["status"]) == (guid, "Live Q&A", "published")
    assert episode["notes"] == stream["notes"]
    assert episode["audio_feed"] is True
    assert episode["media"]["mime_type"] == "video/mp4"
    assert episode["media"]["duration"] == pytest.approx(3.0, abs=0.2)
    # The livestream's chapters were in the recording's timeline: they moved with the cut.
    offset = episode["media"]["processing"]["offset"]
    assert offset == pytest.approx(1.0, abs=0.05)
    assert [c["title"] for c in episode["chapters"]] == ["Welcome", "Questions"]
    assert [c["start"] for c in episode["chapters"]] == [0.0, pytest.approx(3.0 - offset, abs=0.01)]

    # The live feed shows the replay as an item (video) with the same guid, in place of the liveItem.
    live_feed = _feed(client, LIVE_FEED)
    assert guid not in _live_items(live_feed)
    item = _items(live_feed)[guid]
    assert item.find("enclosure").get("type") == "video/mp4"
    assert item.findtext("title") == "Live Q&A"
    # audio_feed: its MP3 rendition is in the audio feed too, under the same guid.
    audio_item = _items(_feed(client, AUDIO_FEED))[guid]
    assert audio_item.find("enclosure").get("type") == "audio/mpeg"
    assert guid not in _items(_feed(client, "/feeds/test-show/video.xml"))

    # Uploading again processes the same episode (raw body this time); the feeds keep one item.
    again = client.put(
        f"/api/v1/livestreams/{stream['id']}/recording?start=0.5", content=recording, headers=host
    )
    assert again.status_code == 202, again.text
    job2 = wait_job(client, again.json(), host)
    assert job2["status"] == "succeeded", job2
    assert job2["episode_id"] == job["episode_id"]
    episode = client.get(f"/api/v1/episodes/{job['episode_id']}", headers=host).json()
    assert episode["guid"] == guid
    assert episode["status"] == "published"
    assert episode["media"]["duration"] == pytest.approx(3.5, abs=0.6)  # keyframe-snapped cut
    assert list(_items(_feed(client, LIVE_FEED))) == [guid]
    assert list(_items(_feed(client, AUDIO_FEED))) == [guid]

    # With a recording attached the livestream stays.
    _problem(
        client.delete(f"/api/v1/livestreams/{stream['id']}", headers=host), 409, "livestream-has-recording"
    )


def test_replay_joins_the_audio_feed_only_when_asked(
    client: TestClient, host: dict[str, str], recording: bytes
) -> None:
    _new_show(client, host)
    stream = _announce(client, host, guid="urn:example:stream-7", title="Studio session")
    assert stream["guid"] == "urn:example:stream-7"
    assert stream["audio_feed"] is False
    _post(client, host, stream, "live")
    _post(client, host, stream, "end")
    response = client.post(
        f"/api/v1/livestreams/{stream['id']}/recording",
        files={"file": ("r.mp4", recording, "video/mp4")},
        headers=host,
    )
    assert response.status_code == 202, response.text
    assert wait_job(client, response.json(), host)["status"] == "succeeded"
    assert "urn:example:stream-7" in _items(_feed(client, LIVE_FEED))
    assert _items(_feed(client, AUDIO_FEED)) == {}
    # Turning audio_feed on later moves the recording in (no new processing).
    patched = client.patch(f"/api/v1/livestreams/{stream['id']}", json={"audio_feed": True}, headers=host)
    assert patched.status_code == 200, patched.text
    assert list(_items(_feed(client, AUDIO_FEED))) == ["urn:example:stream-7"]


def test_livestream_errors_are_problems(backend_client: TestClient, backend: Container) -> None:
    client, host = backend_client, new_user(backend, "host")
    _new_show(client, host)
    stream = _announce(client, host, guid="urn:example:taken")
    sid = stream["id"]

    # 401 without a token, on every livestream route.
    for method, url in (
        ("POST", "/api/v1/shows/test-show/livestreams"), ("GET", "/api/v1/shows/test-show/livestreams"),
        ("GET", f"/api/v1/livestreams/{sid}"), ("PATCH", f"/api/v1/livestreams/{sid}"),
        ("DELETE", f"/api/v1/livestreams/{sid}"), ("POST", f"/api/v1/livestreams/{sid}/live"),
        ("POST", f"/api/v1/livestreams/{sid}/end"), ("POST", f"/api/v1/livestreams/{sid}/recording"),
        ("PUT", f"/api/v1/livestreams/{sid}/recording"),
    ):  # fmt: skip
        _problem(client.request(method, url, json={}), 401, "token-missing")

    # 404: unknown livestream (every route), and another user's livestream looks the same as none.
    for method, action in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/live"), ("POST", "/end")):
        _problem(client.request(method, f"/api/v1/livestreams/nope{action}", json={}, headers=host), 404,
                 "livestream-not-found")  # fmt: skip
    _problem(client.put("/api/v1/livestreams/nope/recording", content=b"x", headers=host), 404)
    stranger = new_user(backend, "stranger")
    _problem(client.get(f"/api/v1/livestreams/{sid}", headers=stranger), 404)
    base = {"title": "T", "start_at": _soon(hours=1), "content_link": "https://example.org/w"}
    url = "/api/v1/shows/test-show/livestreams"
    _problem(client.post(url, json=base, headers=stranger), 404, "show-not-found")
    _problem(client.post(f"/api/v1/livestreams/{sid}/live", headers=stranger), 404)

    # 422: content_link must be https, times need a zone, the end comes after the start, ...
    for body, code in (
        ({"content_link": "http://example.org/w"}, "invalid-content-link"),
        ({"content_link": "javascript:alert(1)"}, "invalid-content-link"),
        ({"content_link": None}, "validation-error"),
        ({"start_at": "2026-12-01T09:00:00"}, "validation-error"),
        ({"end_at": _soon(minutes=30)}, "invalid-end-at"),
        ({"stream_url": "http://stream.example.org/a.mp3"}, "invalid-stream-url"),
        ({"stream_url": "https://stream.example.org/live"}, "invalid-stream-type"),
        ({"stream_type": "video/mp4"}, "invalid-stream-type"),
        ({"persons": [{"name": "A", "href": "http://example.org"}]}, "invalid-persons"),
        ({"chapters": [{"start": 1}, {"start": 1}]}, "invalid-chapters"),
        ({"guid": "has spaces in it"}, "invalid-guid"),
        ({"colour": "red"}, "validation-error"),
        ({"title": ""}, "validation-error"),
    ):
        _problem(client.post(url, json={**base, **body}, headers=host), 422, code)
    _problem(client.patch(f"/api/v1/livestreams/{sid}", json={"content_link": "ftp://x"}, headers=host), 422,
             "invalid-content-link")  # fmt: skip
    # ... and a guid is never used twice.
    _problem(client.post(url, json={**base, "guid": "urn:example:taken"}, headers=host), 409, "guid-taken")

    # 409: a recording before the end, going live once ended.
    video = {"file": ("r.mp4", b"not even media", "video/mp4")}
    _problem(client.post(f"/api/v1/livestreams/{sid}/recording", files=video, headers=host), 409,
             "livestream-not-ended")  # fmt: skip
    assert _post(client, host, stream, "end")["status"] == "ended"  # pending -> ended: called off
    _problem(client.post(f"/api/v1/livestreams/{sid}/live", headers=host), 409, "livestream-status-conflict")
    # Bad media after the end: refused, and no recording episode is left behind.
    _problem(client.post(f"/api/v1/livestreams/{sid}/recording", files=video, headers=host), 415)
    assert client.get(f"/api/v1/livestreams/{sid}", headers=host).json()["episode_id"] is None
    assert client.get("/api/v1/shows/test-show/episodes", headers=host).json() == []

    # Without a recording a livestream can be withdrawn.
    assert client.delete(f"/api/v1/livestreams/{sid}", headers=host).status_code == 204
    _problem(client.get(f"/api/v1/livestreams/{sid}", headers=host), 404, "livestream-not-found")


def test_edit_list_and_scheduled_announcements(backend_client: TestClient, backend: Container) -> None:
    client, host = backend_client, new_user(backend, "host")
    _new_show(client, host)
    first = _announce(
        client, host, title="First", start_at=_soon(hours=1), stream_url="https://s.example.org/a.mp3"
    )
    assert first["stream_type"] == "audio/mpeg"
    later = _announce(client, host, title="Later", start_at=_soon(days=2))
    listed = client.get("/api/v1/shows/test-show/livestreams", headers=host).json()
    assert [s["title"] for s in listed] == ["Later", "First"]

    # PATCH edits metadata; clearing the stream URL clears its type.
    patched = client.patch(
        f"/api/v1/livestreams/{first['id']}",
        json={"title": "First, renamed", "stream_url": None, "end_at": _soon(hours=3)},
        headers=host,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["stream_url"], body["stream_type"]) == ("First, renamed", None, None)
    assert (body["guid"], body["status"]) == (first["guid"], "pending")
    assert [w.split(":")[0] for w in body["warnings"]] == ["no stream_url"]
    # Without a fallback stream the liveItem has no enclosure: the feed checker warns (some apps skip it).
    root = _feed(client, LIVE_FEED)
    problems = [str(p) for p in check_feed(client.get(LIVE_FEED).content, f"{client.base_url}{LIVE_FEED}")]
    assert any("no <enclosure> (fallback stream)" in p and p.startswith("warning") for p in problems)
    live = _live_items(root)
    assert live[first["guid"]].findtext("title") == "First, renamed"
    assert live[first["guid"]].find("enclosure") is None
    assert set(live) == {first["guid"], later["guid"]}
    # A stream URL whose type cannot be guessed takes an explicit one.
    patched = client.patch(
        f"/api/v1/livestreams/{first['id']}",
        json={"stream_url": "https://s.example.org/live", "stream_type": "video/mp4"},
        headers=host,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["stream_type"], patched.json()["warnings"]) == ("video/mp4", [])
    enclosure = _live_items(_feed(client, LIVE_FEED))[first["guid"]].find("enclosure")
    assert (enclosure.get("url"), enclosure.get("type")) == ("https://s.example.org/live", "video/mp4")

    # Scheduled: out of the feed until publish_at, then in it (the feed request bumps the show's feed).
    show_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    scheduled = _announce(client, host, title="Scheduled", publish_at=show_at.isoformat())
    early = _announce(client, host, title="Early bird", publish_at=_soon(days=1))
    assert set(_live_items(_feed(client, LIVE_FEED))) == {first["guid"], later["guid"]}
    with backend.uow() as uow:
        assert livestreams_due(uow) == 0
    # Going live shows a stream at once, whatever its publish_at.
    assert _post(client, host, early, "live")["publish_at"] is not None
    assert early["guid"] in _live_items(_feed(client, LIVE_FEED))

    etag = client.get(LIVE_FEED).headers["etag"]
    time.sleep(max(0.0, (show_at - datetime.now(UTC)).total_seconds()) + 0.3)
    response = client.get(LIVE_FEED)
    assert response.headers["etag"] != etag
    live = _live_items(_feed(client, LIVE_FEED))
    assert live[scheduled["guid"]].get("status") == "pending"
    with backend.uow() as uow:  # counted once
        assert livestreams_due(uow) == 0
        assert livestreams_due(uow, now=datetime.now(UTC) + timedelta(days=2)) == 0
