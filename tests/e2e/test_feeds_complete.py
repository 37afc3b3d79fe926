"""A show's three public feeds through the API: what goes where, integrity, guids, moves, paging, pings."""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import feedparser
import podcastparser
import pytest
from fastapi.testclient import TestClient
from lxml import etree

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.db.models import Asset, Episode
from media_pub.domain.rules import PODCAST_GUID_NAMESPACE
from media_pub.feeds.check import check_feed
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import wait_job
from tests.unit.media.test_media_video import _write

P = "{https://podcastindex.org/namespace/1.0}"
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"
ATOM = "{http://www.w3.org/2005/Atom}"


def _errors(body: bytes, url: str) -> list[str]:
    """The checker's errors, but for the two that only the test set-up causes: the test server's
    http:// base URL (production runs on https) and a show without artwork."""
    return [
        str(p)
        for p in check_feed(body, url)
        if p.severity == "error" and "https" not in p.message and "itunes:image" not in p.message
    ]


def _guid_of(url: str) -> str:
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, url.split("://", 1)[1].rstrip("/")))


def _items(body: bytes) -> list[str]:
    """The guids of the feed's items (not of its liveItems), in feed order."""
    return [i.findtext("guid") or "" for i in etree.fromstring(body).find("channel").findall("item")]


def _upload(client: TestClient, host: dict[str, str], data: bytes, title: str, **fields: object) -> dict:
    ep = client.post("/api/v1/shows/test-show/episodes", json={"title": title}, headers=host).json()
    if fields:
        assert client.patch(f"/api/v1/episodes/{ep['id']}", json=fields, headers=host).status_code == 200
    job = client.put(f"/api/v1/episodes/{ep['id']}/media", content=data, headers=host)
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    published = client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    assert published.status_code == 200, published.text
    return published.json()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("feeds")
    speech = write_speech_like(tmp / "speech.wav", 4.0, lufs=-22.0, seed=5)
    video = _write(tmp / "vlog.mp4", audio=speech, seconds=4.0)
    return {"audio": speech.read_bytes(), "video": video.read_bytes()}


def test_audio_and_video_feeds_hold_their_episodes_with_integrity(
    client: TestClient, host: dict[str, str], media: dict[str, bytes]
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    audio = _upload(client, host, media["audio"], "Talk")
    vlog = _upload(client, host, media["video"], "Vlog")
    base = "http://testserver"
    feeds = {kind: client.get(path) for kind, path in (
        ("audio", "/feeds/test-show.xml"), ("video", "/feeds/test-show/video.xml"),
        ("live", "/feeds/test-show/live.xml"),
    )}  # fmt: skip
    for kind, response in feeds.items():
        assert response.status_code == 200, (kind, response.text)
    audio_feed, video_feed = feeds["audio"].content, feeds["video"].content
    assert _items(audio_feed) == [audio["guid"]]  # a video episode stays out of the audio feed by default
    assert _items(video_feed) == [vlog["guid"]]
    assert _items(feeds["live"].content) == []

    urls = {"audio": f"{base}/feeds/test-show.xml", "video": f"{base}/feeds/test-show/video.xml",
            "live": f"{base}/feeds/test-show/live.xml"}  # fmt: skip
    guids = set()
    for kind, response in feeds.items():
        assert _errors(response.content, urls[kind]) == [], kind
        root = etree.fromstring(response.content)
        guid = root.find(f"channel/{P}guid").text
        assert guid == _guid_of(urls[kind])
        guids.add(guid)
    assert len(guids) == 3
    assert etree.fromstring(video_feed).find(f"channel/{P}medium").text == "video"
    assert etree.fromstring(audio_feed).find(f"channel/{P}medium").text == "podcast"

    # Real clients see the same episodes.
    for body, expected in ((audio_feed, audio["guid"]), (video_feed, vlog["guid"])):
        parsed = podcastparser.parse("https://example.org/feed.xml", io.BytesIO(body))
        assert [e["guid"] for e in parsed["episodes"]] == [expected]
        fp = feedparser.parse(body)
        assert not fp.bozo, fp.bozo_exception
        assert [e.id for e in fp.entries] == [expected]

    # Every rendition is an alternateEnclosure whose SRI is the served bytes' sha256.
    item = etree.fromstring(audio_feed).find("channel/item")
    alternates = item.findall(f"{P}alternateEnclosure")
    assert {a.get("type") for a in alternates} == {"audio/mpeg", "audio/x-m4a"}
    assert [a.get("default") for a in alternates].count("true") == 1
    for alt in alternates:
        uri = alt.find(f"{P}source").get("uri")
        body = client.get(uri, follow_redirects=True).content
        assert int(alt.get("length")) == len(body)
        sri = "sha256-" + base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert alt.find(f"{P}integrity").get("value") == sri
    video_item = etree.fromstring(video_feed).find("channel/item")
    assert video_item.find("enclosure").get("type") == "video/mp4"
    assert {a.get("type") for a in video_item.findall(f"{P}alternateEnclosure")} >= {
        "video/mp4",
        "audio/mpeg",
    }

    # The host asks for the vlog's MP3 in the audio feed too.
    assert (
        client.patch(f"/api/v1/episodes/{vlog['id']}", json={"audio_feed": True}, headers=host).status_code
        == 200
    )
    both = client.get("/feeds/test-show.xml").content
    assert set(_items(both)) == {audio["guid"], vlog["guid"]}
    mp3 = next(i for i in etree.fromstring(both).iter("item") if i.findtext("guid") == vlog["guid"])
    assert mp3.find("enclosure").get("type") == "audio/mpeg"
    assert _errors(both, urls["audio"]) == []


def test_moving_a_show_answers_301_and_keeps_guids(
    client: TestClient, host: dict[str, str], media: dict[str, bytes]
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = _upload(client, host, media["audio"], "Before the move")
    before = etree.fromstring(client.get("/feeds/test-show.xml").content)
    guid = before.find(f"channel/{P}guid").text
    moved = client.post("/api/v1/shows/test-show/move", json={"slug": "new-name"}, headers=host)
    assert moved.status_code == 200, moved.text
    for old, new in (("/feeds/test-show.xml", "/feeds/new-name.xml"),
                     ("/feeds/test-show/video.xml", "/feeds/new-name/video.xml")):  # fmt: skip
        response = client.get(old, follow_redirects=False)
        assert response.status_code == 301
        assert response.headers["location"] == f"http://testserver{new}"
    after = client.get("/feeds/new-name.xml").content
    root = etree.fromstring(after)
    assert root.find(f"channel/{P}guid").text == guid, "podcast:guid survives the move"
    assert root.find(f"channel/{ITUNES}new-feed-url").text == "http://testserver/feeds/new-name.xml"
    assert _items(after) == [episode["guid"]]
    assert (
        client.post("/api/v1/shows/new-name/move", json={"slug": "new-name"}, headers=host).status_code == 200
    )
    # Taking back the old slug for another show is refused: its URLs belong to the moved feed.
    clash = client.post("/api/v1/shows", json={**SHOW, "slug": "test-show"}, headers=host)
    assert clash.status_code == 409

    # A supporter's private feed URL, handed out before the move, still works.
    supporter = client.post("/api/v1/shows/new-name/supporters", json={"name": "Sam"}, headers=host).json()
    old_private = supporter["feed_url"].replace("/feeds/new-name/", "/feeds/test-show/")
    assert client.get(old_private.removeprefix("http://testserver")).status_code == 200

    # Back to the old slug: allowed (it is the show's own), and the other one becomes the alias.
    back = client.post("/api/v1/shows/new-name/move", json={"slug": "test-show"}, headers=host)
    assert back.status_code == 200, back.text
    assert (
        client.get("/feeds/new-name.xml", follow_redirects=False)
        .headers["location"]
        .endswith("/feeds/test-show.xml")
    )
    assert (
        client.post("/api/v1/shows/test-show/move", json={"slug": "new-name"}, headers=host).status_code
        == 200
    )

    # Leaving for another host: 301 to there.
    away = client.patch("/api/v1/shows/new-name", json={"moved_to": "https://elsewhere.example/feed.xml"},
                        headers=host)  # fmt: skip
    assert away.status_code == 200, away.text
    gone = client.get("/feeds/new-name.xml", follow_redirects=False)
    assert (gone.status_code, gone.headers["location"]) == (301, "https://elsewhere.example/feed.xml")
    bad = client.patch("/api/v1/shows/new-name", json={"moved_to": "ftp://x"}, headers=host)
    assert bad.status_code == 422
    # Only the audio feed went away: the video feed stays, and does not send apps to the audio feed's host.
    video = client.get("/feeds/new-name/video.xml")
    assert video.status_code == 200
    new_url = etree.fromstring(video.content).find(f"channel/{ITUNES}new-feed-url")
    assert new_url is not None
    assert new_url.text == "http://testserver/feeds/new-name/video.xml"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("update_frequency", {"text": "Weekly", "rrule": "FREQ=WEEKLY;COUNT=4", "dtstart": "2026-01-01"}),
        ("update_frequency", {"text": "Weekly", "dtstart": "soon"}),
        ("update_frequency", {"text": "", "rrule": "FREQ=WEEKLY"}),
        ("location", {"text": "Berlin", "rel": "home"}),
        ("location", {"text": "Berlin", "geo": 12}),
        ("license", {"slug": "cc by", "url": "http://example.org"}),
        ("txt", [{"text": 5}]),
        ("medium", "radio"),
    ],
)
def test_show_feed_values_are_checked_before_they_reach_a_feed(
    client: TestClient, host: dict[str, str], field: str, value: object
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    refused = client.patch("/api/v1/shows/test-show", json={field: value}, headers=host)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/feeds/test-show.xml").status_code == 200


def test_show_feed_values_are_written(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    values = {
        "medium": "music",
        "location": {"text": "Berlin", "geo": "geo:52.52,13.405", "rel": "creator", "country": "DE"},
        "license": {"slug": "cc-by-4.0"},
        "txt": [{"text": "S6lpp-7ZCn8-dZfGc-OoyaG", "purpose": "applepodcastsverify"}],
        "update_frequency": {
            "text": "Weekly",
            "rrule": "FREQ=WEEKLY;COUNT=10",
            "dtstart": "2026-01-05T09:00:00Z",
        },
    }
    assert client.patch("/api/v1/shows/test-show", json=values, headers=host).status_code == 200
    channel = etree.fromstring(client.get("/feeds/test-show.xml").content).find("channel")
    assert channel.find(f"{P}medium").text == "music"
    assert channel.find(f"{P}location").get("geo") == "geo:52.52,13.405"
    assert channel.find(f"{P}license").text == "cc-by-4.0"
    assert channel.find(f"{P}txt").get("purpose") == "applepodcastsverify"
    frequency = channel.find(f"{P}updateFrequency")
    assert (frequency.text, frequency.get("rrule")) == ("Weekly", "FREQ=WEEKLY;COUNT=10")
    assert frequency.get("dtstart", "").startswith("2026-01-05T09:00:00")


def test_validators_move_only_when_the_feed_does(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    first = client.get("/feeds/test-show.xml")
    video_first = client.get("/feeds/test-show/video.xml")
    # A processing setting is in no feed: neither feed changes (bytes, ETag, Last-Modified).
    assert (
        client.patch("/api/v1/shows/test-show", json={"video_height": 480}, headers=host).status_code == 200
    )
    again = client.get("/feeds/test-show.xml")
    assert (again.content, again.headers["etag"], again.headers["last-modified"]) == (
        first.content, first.headers["etag"], first.headers["last-modified"],
    )  # fmt: skip
    assert client.get("/feeds/test-show/video.xml").headers["etag"] == video_first.headers["etag"]
    # The title is: both change.
    assert client.patch("/api/v1/shows/test-show", json={"title": "Renamed"}, headers=host).status_code == 200
    assert client.get("/feeds/test-show.xml").headers["etag"] != first.headers["etag"]
    assert client.get("/feeds/test-show/video.xml").headers["etag"] != video_first.headers["etag"]


def test_bonus_episode_extras_need_the_token(
    container: Container, client: TestClient, host: dict[str, str], media: dict[str, bytes]
) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    chapters = [{"start": 0, "title": "Start"}, {"start": 2, "title": "Bonus part"}]
    bonus = _upload(client, host, media["audio"], "Bonus", supporter_only=True)
    assert (
        client.patch(f"/api/v1/episodes/{bonus['id']}", json={"chapters": chapters}, headers=host).status_code
        == 200
    )
    assert client.get(f"/chapters/{bonus['id']}.json").status_code == 404
    assert client.get(f"/waveforms/{bonus['id']}.json").status_code == 404
    supporter = client.post("/api/v1/shows/test-show/supporters", json={"name": "Sam"}, headers=host).json()
    private = client.get(supporter["feed_url"].removeprefix("http://testserver")).content
    channel = etree.fromstring(private).find("channel")
    assert channel.find(f"{P}guid") is None, "a private feed is no public feed's copy"
    item = channel.find("item")
    assert item.findtext("guid") == bonus["guid"]
    url = item.find(f"{P}chapters").get("url")
    assert "/private/" in url
    served = client.get(url.removeprefix("http://testserver"))
    assert served.status_code == 200
    assert [c["title"] for c in served.json()["chapters"]] == ["Start", "Bonus part"]
    client.delete(f"/api/v1/supporters/{supporter['id']}", headers=host)
    assert client.get(url.removeprefix("http://testserver")).status_code == 410


def test_paged_feed_follows_rfc5005(container: Container, client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    now = datetime.now(UTC).replace(microsecond=0)
    with container.uow() as uow:
        from media_pub.db import repositories as repo

        show = repo.show_by_slug(uow.session, "test-show")
        for n in range(25):
            ep = Episode(show_id=show.id, guid=f"ep-{n:02d}", title=f"Episode {n}", status="published",
                         published_at=now - timedelta(days=25 - n))  # fmt: skip
            uow.session.add(ep)
            uow.session.flush()
            asset = Asset(episode_id=ep.id, role="rendition", storage_key=f"t/{n}.mp3",
                          mime_type="audio/mpeg", byte_size=1000 + n, sha256="ab" * 32,
                          duration=60.0)  # fmt: skip
            uow.session.add(asset)
            uow.session.flush()
            ep.media_asset_id = asset.id
        uow.commit()
    whole = client.get("/feeds/test-show.xml").content
    assert len(_items(whole)) == 25, "complete by default"
    assert (
        client.patch("/api/v1/shows/test-show", json={"feed_page_size": 10}, headers=host).status_code == 200
    )
    pages = [client.get("/feeds/test-show.xml" + (f"?page={n}" if n > 1 else "")) for n in (1, 2, 3)]
    got = [_items(p.content) for p in pages]
    assert [len(g) for g in got] == [10, 10, 5]
    assert got[0][0] == "ep-24"
    assert got[2][-1] == "ep-00"
    flat = [guid for page in got for guid in page]
    assert flat == sorted(flat, reverse=True)
    links = {ln.get("rel"): ln.get("href") for ln in etree.fromstring(pages[1].content).iter(f"{ATOM}link")}
    assert links["first"] == "http://testserver/feeds/test-show.xml"
    assert links["next"] == "http://testserver/feeds/test-show.xml?page=3"
    assert links["previous"] == "http://testserver/feeds/test-show.xml"
    assert links["last"] == "http://testserver/feeds/test-show.xml?page=3"
    assert client.get("/feeds/test-show.xml?page=4").status_code == 404
    assert client.get("/feeds/test-show.xml?page=0").status_code == 422


class _Hub(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).seen.append(parse_qs(self.rfile.read(length).decode()))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub() -> Iterator[str]:
    _Hub.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hub"
    server.shutdown()


def test_feed_changes_ping_websub_hubs(tmp_path: Path, hub: str, media: dict[str, bytes]) -> None:
    settings = make_settings(tmp_path, websub_hubs=[hub])
    c = bootstrap(settings)
    try:
        with TestClient(create_app(c, scheduler=False)) as client:
            host = new_user(c)
            assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
            feed = client.get("/feeds/test-show.xml").content
            hubs = [
                ln.get("href") for ln in etree.fromstring(feed).iter(f"{ATOM}link") if ln.get("rel") == "hub"
            ]
            assert hubs == [hub]
            _upload(client, host, media["audio"], "Pinged")
            assert c.notifier.flush(10)
    finally:
        c.close()
    published = [s["hub.url"][0] for s in _Hub.seen if s.get("hub.mode") == ["publish"]]
    assert "http://127.0.0.1:8000/feeds/test-show.xml" in published or any(
        u.endswith("/feeds/test-show.xml") for u in published
    ), _Hub.seen


def test_every_feed_of_the_demo_show_passes_our_checker_and_real_parsers(tmp_path: Path) -> None:
    from media_pub.api.main import load_demo

    settings = make_settings(tmp_path, base_url="https://pod.example")  # as served in production
    c = bootstrap(settings)
    try:
        load_demo(c, Path(__file__).resolve().parents[2] / "episodes")
        with TestClient(create_app(c, scheduler=False)) as client:
            seen = {}
            paths = {"audio": "/feeds/commons-hour.xml", "video": "/feeds/commons-hour/video.xml",
                     "live": "/feeds/commons-hour/live.xml"}  # fmt: skip
            for kind, path in paths.items():
                body = client.get(path).content
                problems = check_feed(body, f"https://pod.example{path}")
                assert [str(p) for p in problems if p.severity == "error"] == [], kind
                guids = _items(body)
                parsed = podcastparser.parse(f"https://pod.example{path}", io.BytesIO(body))
                assert [e["guid"] for e in parsed["episodes"]] == guids, kind
                fp = feedparser.parse(body)
                assert not fp.bozo, (kind, fp.bozo_exception)
                assert [e.id for e in fp.entries] == guids, kind
                seen[kind] = etree.fromstring(body)
    finally:
        c.close()
    audio = seen["audio"].find("channel")
    assert len(audio.findall("item")) == 4
    assert audio.find(f"{P}location").text == "Leeds, UK"
    assert audio.find(f"{P}license").text == "cc-by-sa-4.0"
    assert audio.find(f"{P}trailer") is not None, "the trailer episode is the show's podcast:trailer"
    tenant = next(i for i in audio.iter("item") if i.findtext("guid").endswith("0003"))
    assert [p.text for p in tenant.findall(f"{P}person")] == ["Ana Ruiz", "Dee Okafor"]
    assert float(tenant.find(f"{P}soundbite").get("startTime")) == 16.0
    live = seen["live"].find(f"channel/{P}liveItem")
    assert live.get("status") == "pending"
    assert live.findtext("guid") == "3f1c5f0e-7d1a-4c52-9a0c-0b6f7f1d0100"
    assert live.find(f"{P}contentLink").get("href") == "https://commons-hour.example/live"
