"""Moving a show in: `POST /api/v1/shows/import` and `media-pub import`, from our own feed and a foreign one,
with and without copying media, and against hostile feeds and addresses."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import feedparser
import podcastparser
import pytest
import uvicorn
from fastapi.testclient import TestClient
from lxml import etree
from typer.testing import CliRunner

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.cli import app as cli_app
from media_pub.config import get_settings
from media_pub.db import repositories as repo
from media_pub.feeds.sanitize import sanitize_notes
from media_pub.media.artwork import placeholder_artwork
from media_pub.media.synth import write_speech_like
from media_pub.net import fetch as fetch_mod
from media_pub.services import imports as svc
from media_pub.services.manifests import publish_folder
from tests.conftest import make_settings, new_user
from tests.e2e.conftest import _free_port, wait_job

runner = CliRunner()
PUBLIC_IP = "93.184.216.34"  # "old-host.example": never dialled for real, sent to the loopback server
OLD_HOST = "old-host.example"
FEED_GUID = "c9a8b7d6-1234-5678-9abc-def012345678"
EP1_GUID = "libsyn-0001/Episode_ONE"  # kept byte for byte, case and slash included
NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
}
BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
    "<rss><channel><title>&d;</title></channel></rss>"
)


# --- an old host on loopback -------------------------------------------------------------------------


class OldHost(ThreadingHTTPServer):
    """Serves files by path and records every request; /huge and /endless send more than any limit."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, tuple[str, bytes]] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[str] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the fetcher hangs up on oversized bodies on purpose


class _Handler(BaseHTTPRequestHandler):
    server: OldHost

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _flood(self) -> None:
        try:
            for _ in range(30 * 16):  # 30 MiB at most, in 64 KiB pieces
                self.wfile.write(b"x" * 65536)
        except OSError:
            pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[self.path])
            self.end_headers()
        elif self.path in ("/huge", "/endless"):
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            if self.path == "/huge":
                self.send_header("Content-Length", str(30 << 20))
            self.end_headers()
            self._flood()
        elif self.path in self.server.files:
            kind, body = self.server.files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def old_host() -> Iterator[OldHost]:
    server = OldHost()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def dials(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """old-host.example resolves to a public address (dialled on loopback), metadata.example to
    169.254.169.254; returns the addresses actually dialled."""
    real_resolve, real_dial = fetch_mod.resolve, fetch_mod._dial
    names = {OLD_HOST: PUBLIC_IP, "metadata.example": "169.254.169.254"}
    dialled: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        return [names[host]] if host in names else real_resolve(host, port)

    def dial(address: str, port: int, timeout: float, options: Any) -> Any:
        dialled.append(address)
        return real_dial("127.0.0.1" if address == PUBLIC_IP else address, port, timeout, options)

    monkeypatch.setattr(fetch_mod, "resolve", resolve)
    monkeypatch.setattr(fetch_mod, "_dial", dial)
    return dialled


@pytest.fixture(scope="module")
def tiny_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("old-media") / "ep1.mp3"
    return write_speech_like(path, 3.0, lufs=-20.0, seed=3).read_bytes()


def old_feed(base: str, mp3_size: int = 1000) -> str:
    """A feed as a Libsyn- or Anchor-era host writes it: legacy category, CDATA notes, both namespaces."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
  <title>Old Host Show</title>
  <link>https://old.example/show</link>
  <atom:link href="{base}/feed.xml" rel="self" type="application/rss+xml"/>
  <description><![CDATA[<p>A show that is <b>moving</b>.</p>]]></description>
  <language>en-US</language>
  <copyright>2021 Ana</copyright>
  <itunes:author>Ana Author</itunes:author>
  <itunes:owner>
    <itunes:name>Ana Owner</itunes:name><itunes:email>ana@example.org</itunes:email>
  </itunes:owner>
  <itunes:image href="{base}/cover.jpg"/>
  <itunes:category text="Games &amp; Hobbies"><itunes:category text="Video Games"/></itunes:category>
  <itunes:explicit>clean</itunes:explicit>
  <itunes:type>episodic</itunes:type>
  <podcast:guid>{FEED_GUID}</podcast:guid>
  <podcast:locked owner="ana@example.org">no</podcast:locked>
  <podcast:funding url="https://old.example/donate">Support us</podcast:funding>
  <podcast:person role="host" href="https://ana.example/">Ana</podcast:person>
  <item>
    <title>Episode One</title>
    <guid isPermaLink="false">  {EP1_GUID}  </guid>
    <pubDate>Tue, 02 Mar 2021 10:30:00 +0100</pubDate>
    <enclosure url="{base}/media/ep1.mp3" length="{mp3_size}" type="audio/mpeg"/>
    <description>Short</description>
    <content:encoded><![CDATA[<p>Notes with a <a href="https://x.example/">link</a>.</p><script>x()</script>]]></content:encoded>
    <itunes:season>2</itunes:season><itunes:episode>5</itunes:episode>
    <itunes:episodeType>full</itunes:episodeType><itunes:explicit>yes</itunes:explicit>
    <podcast:chapters url="{base}/ep1.chapters.json" type="application/json+chapters"/>
    <podcast:transcript url="{base}/ep1.vtt" type="text/vtt" language="en"/>
    <podcast:soundbite startTime="0.5" duration="1.5">Best bit</podcast:soundbite>
    <podcast:person role="guest">Bo Guest</podcast:person>
    <podcast:funding url="http://insecure.example/tip">Old tip jar</podcast:funding>
  </item>
  <item>
    <title>Trailer</title>
    <guid>urn:uuid:0e6f7a3c-0000-4000-8000-000000000001</guid>
    <pubDate>Mon, 01 Feb 2021 08:00:00 GMT</pubDate>
    <itunes:episodeType>trailer</itunes:episodeType>
  </item>
</channel>
</rss>
"""


CHAPTERS = {
    "version": "1.2.0",
    "chapters": [
        {"startTime": 0, "title": "Intro"},
        {"startTime": 1.5, "title": "Main", "url": "https://x.example/main"},
        {"startTime": 2, "title": "hidden image", "toc": False},
    ],
}


def serve_old_show(server: OldHost, base: str, mp3: bytes) -> None:
    server.files.update(
        {
            "/feed.xml": ("application/rss+xml", old_feed(base, len(mp3)).encode()),
            "/media/ep1.mp3": ("audio/mpeg", mp3),
            "/cover.jpg": ("image/jpeg", placeholder_artwork("Old Host Show")),
            "/ep1.chapters.json": ("application/json+chapters", json.dumps(CHAPTERS).encode()),
            "/ep1.vtt": ("text/vtt", b"WEBVTT\n\n00:00.000 --> 00:01.000\n<v Ana>Hello from the old host\n"),
        }
    )


# --- the API ---------------------------------------------------------------------------------------------


def test_import_feed_text_creates_drafts_keeping_guids_and_dates(
    client: TestClient, container: Container, old_host: OldHost
) -> None:
    host = new_user(container, "mover")
    body = {"feed": old_feed("https://old.example"), "slug": "moved"}
    response = client.post("/api/v1/shows/import", json=body, headers=host)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/shows/moved"
    result = response.json()
    show = result["show"]
    assert show["title"] == "Old Host Show"
    assert show["description"] == "<p>A show that is <b>moving</b>.</p>"
    assert (show["author"], show["owner_name"], show["owner_email"]) == (
        "Ana Author",
        "Ana Owner",
        "ana@example.org",
    )
    assert (show["language"], show["copyright"], show["website"]) == (
        "en-us",
        "2021 Ana",
        "https://old.example/show",
    )
    assert (show["category"], show["subcategory"]) == ("Leisure", "Video Games")  # Apple's 2019 rename
    assert show["explicit"] is False
    assert show["locked"] is False
    assert show["funding"] == [{"url": "https://old.example/donate", "text": "Support us"}]
    assert show["persons"] == [
        {"name": "Ana", "role": "host", "group": "cast", "href": "https://ana.example/"}
    ]
    assert show["trim_silence"] is False
    assert show["artwork_key"] is None
    assert result["feed_url"] == "http://testserver/feeds/moved.xml"
    assert result["feed_guid"] == FEED_GUID
    assert result["episodes_imported"] == 2
    one, trailer = result["episodes"]
    assert one["guid"] == EP1_GUID
    assert one["media"] == "not-copied"
    assert one["chapters"] == "not-copied"
    assert one["transcripts"] == [
        {"url": "https://old.example/ep1.vtt", "type": "text/vtt", "language": "en", "rel": None}
    ]
    assert trailer["media"] == "none"
    warnings = "\n".join(result["warnings"])
    assert "Games & Hobbies/Video Games" in warnings
    assert "http://insecure.example/tip" in warnings or "must be an https URL" in warnings
    assert "transcript" in warnings
    steps = "\n".join(result["next_steps"])
    assert "<itunes:new-feed-url>http://testserver/feeds/moved.xml</itunes:new-feed-url>" in steps
    assert "301" in steps

    episodes = client.get("/api/v1/shows/moved/episodes", headers=host).json()
    by_guid = {e["guid"]: e for e in episodes}
    assert set(by_guid) == {EP1_GUID, "urn:uuid:0e6f7a3c-0000-4000-8000-000000000001"}
    first = by_guid[EP1_GUID]
    assert first["status"] == "draft"
    assert first["publish_when_ready"] is True
    assert first["publish_at"] == "2021-03-02T09:30:00Z"  # published on the old date once it has media
    assert (first["season"], first["number"], first["episode_type"], first["explicit"]) == (
        2,
        5,
        "full",
        True,
    )
    assert first["notes"] == sanitize_notes('<p>Notes with a <a href="https://x.example/">link</a>.</p>')
    assert by_guid["urn:uuid:0e6f7a3c-0000-4000-8000-000000000001"]["episode_type"] == "trailer"
    with container.uow() as uow:
        stored = repo.show_by_slug(uow.session, "moved")
        assert stored.feed_guids["audio"] == FEED_GUID
        episode = repo.episode_by_guid(uow.session, EP1_GUID)
        assert episode is not None
        assert episode.persons == [{"name": "Bo Guest", "role": "guest", "group": "cast"}]
        assert episode.funding == []  # http only: the namespace wants https
        assert episode.soundbites == [{"start": 0.5, "duration": 1.5, "title": "Best bit"}]
        user = repo.user_by_name(uow.session, "mover")
        assert user is not None
        member = repo.membership(uow.session, stored.id, user.id)
        assert member is not None
        assert member.role == "owner"
    # Nothing was fetched: no URL import, no copy-media.
    assert old_host.requests == []
    # The show is the importer's: another user is told it does not exist.
    other = new_user(container, "stranger")
    assert client.get("/api/v1/shows/moved", headers=other).status_code == 404


def test_import_conflicts_name_the_slug_and_the_guid(client: TestClient, container: Container) -> None:
    host = new_user(container, "mover")
    feed = old_feed("https://old.example")
    assert (
        client.post("/api/v1/shows/import", json={"feed": feed, "slug": "one"}, headers=host).status_code
        == 201
    )
    again = client.post("/api/v1/shows/import", json={"feed": feed, "slug": "one"}, headers=host)
    assert again.status_code == 409
    assert again.json()["code"] == "show-exists"
    other_slug = client.post("/api/v1/shows/import", json={"feed": feed, "slug": "two"}, headers=host)
    assert other_slug.status_code == 409
    assert other_slug.headers["content-type"] == "application/problem+json"
    assert other_slug.json()["code"] == "episode-exists"
    assert EP1_GUID in other_slug.json()["detail"]
    assert client.get("/api/v1/shows/two", headers=host).status_code == 404


def test_locked_feeds_need_ignore_lock(client: TestClient, container: Container) -> None:
    host = new_user(container, "mover")
    locked = old_feed("https://old.example").replace(">no</podcast:locked>", ">yes</podcast:locked>")
    refused = client.post("/api/v1/shows/import", json={"feed": locked}, headers=host)
    assert refused.status_code == 409
    assert refused.json()["code"] == "import-feed-locked"
    body = {"feed": locked, "ignore_lock": True}
    accepted = client.post("/api/v1/shows/import", json=body, headers=host)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["show"]["slug"] == "old-host-show"  # from the title
    assert accepted.json()["show"]["locked"] is True


@pytest.mark.slow
def test_copy_media_through_the_api_publishes_on_the_old_date(
    client: TestClient, container: Container, old_host: OldHost, dials: list[str], tiny_mp3: bytes
) -> None:
    base = f"http://{OLD_HOST}:{old_host.port}"
    serve_old_show(old_host, base, tiny_mp3)
    host = new_user(container, "mover")
    body = {"url": f"{base}/feed.xml", "slug": "moved", "copy_media": True}
    response = client.post("/api/v1/shows/import", json=body, headers=host)
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["show"]["artwork_key"] is not None  # fetched and stored like an upload
    assert result["episodes"][0]["chapters"] == "copied"
    assert container.queue.wait_idle(180)  # type: ignore[attr-defined]
    assert set(dials) == {PUBLIC_IP}
    assert sorted(old_host.requests) == [
        "/cover.jpg", "/ep1.chapters.json", "/ep1.vtt", "/feed.xml", "/media/ep1.mp3",
    ]  # fmt: skip

    episodes = {e["guid"]: e for e in client.get("/api/v1/shows/moved/episodes", headers=host).json()}
    first = episodes[EP1_GUID]
    assert first["status"] == "published", first
    assert first["published_at"] == "2021-03-02T09:30:00Z"
    assert first["original"]["byte_size"] == len(tiny_mp3)
    assert [c["title"] for c in first["chapters"]] == ["Intro", "Main"]
    assert first["chapters"][1]["start"] == pytest.approx(1.5, abs=0.1)
    assert episodes["urn:uuid:0e6f7a3c-0000-4000-8000-000000000001"]["status"] == "draft"
    # The transcript the old feed linked is ours now, served as WebVTT.
    listed = client.get(f"/api/v1/episodes/{first['id']}/transcripts", headers=host).json()
    assert [t["language"] for t in listed] == ["en"]
    vtt = client.get(f"/transcripts/{first['id']}/en.vtt")
    assert vtt.status_code == 200
    assert "Hello from the old host" in vtt.text

    feed = client.get("/feeds/moved.xml")
    assert feed.status_code == 200
    parsed = feedparser.parse(feed.content)
    assert not parsed.bozo, parsed.bozo_exception
    assert [e.id for e in parsed.entries] == [EP1_GUID]
    assert parsed.entries[0].published_parsed[:6] == (2021, 3, 2, 9, 30, 0)


def test_a_failed_media_copy_leaves_a_draft_saying_why(
    client: TestClient, container: Container, old_host: OldHost, dials: list[str]
) -> None:
    base = f"http://{OLD_HOST}:{old_host.port}"
    serve_old_show(old_host, base, b"")
    del old_host.files["/media/ep1.mp3"]
    old_host.files["/cover.jpg"] = ("image/jpeg", b"\xff\xd8\xffnot really a jpeg")
    host = new_user(container, "mover")
    body = {"url": f"{base}/feed.xml", "copy_media": True}
    result = client.post("/api/v1/shows/import", json=body, headers=host).json()
    assert result["show"]["artwork_key"] is None
    assert any("artwork was not stored" in w for w in result["warnings"])
    episode = client.get(f"/api/v1/episodes/{result['episodes'][0]['id']}", headers=host).json()
    assert episode["status"] == "draft"
    assert episode["last_error"] == f"media copy failed: fetching from {OLD_HOST} failed: HTTP status 404"
    assert episode["publish_when_ready"] is True  # an upload later still publishes it on the old date


@pytest.mark.slow
def test_uploading_media_to_an_imported_draft_publishes_it_on_the_old_date(
    client: TestClient, container: Container, tiny_mp3: bytes
) -> None:
    host = new_user(container, "mover")
    body = {"feed": old_feed("https://old.example"), "slug": "moved"}
    created = client.post("/api/v1/shows/import", json=body, headers=host).json()
    episode_id = created["episodes"][0]["id"]
    upload = client.put(
        f"/api/v1/episodes/{episode_id}/media",
        content=tiny_mp3,
        headers={**host, "Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 202, upload.text
    assert wait_job(client, upload.json(), host)["status"] == "succeeded"
    episode = client.get(f"/api/v1/episodes/{episode_id}", headers=host).json()
    assert (episode["status"], episode["published_at"]) == ("published", "2021-03-02T09:30:00Z")
    assert [e.id for e in feedparser.parse(client.get("/feeds/moved.xml").content).entries] == [EP1_GUID]


@pytest.mark.parametrize(
    ("category", "sub", "expected", "warned"),
    [
        ("Technology", None, ("Technology", None), False),
        ("society and culture", "personal journals", ("Society & Culture", "Personal Journals"), False),
        ("Health", "Self-Help", ("Education", "Self-Improvement"), True),
        ("News & Politics", None, ("News", "Politics"), True),
        ("Arts", "Underwater Basket Weaving", ("Arts", None), True),
        ("Podcasts", None, ("Society & Culture", None), True),
        (None, None, ("Society & Culture", None), True),
    ],
)
def test_categories_map_to_apples_current_list(
    category: str | None, sub: str | None, expected: tuple[str, str | None], warned: bool
) -> None:
    warnings: list[str] = []
    assert svc.map_category(category, sub, warnings) == expected
    assert bool(warnings) is warned


# --- hostile input ------------------------------------------------------------------------------------


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def test_billion_laughs_and_xxe_are_refused(client: TestClient, container: Container, tmp_path: Path) -> None:
    host = new_user(container, "mover")
    laughs = client.post("/api/v1/shows/import", json={"feed": BILLION_LAUGHS}, headers=host)
    _problem(laughs, 422, "import-unsafe-xml")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>'
        "<rss><channel><title>&xxe;</title><item><title>&xxe;</title><guid>g-xxe</guid></item></channel></rss>"
    )
    response = client.post("/api/v1/shows/import", json={"feed": xxe, "slug": "xxe"}, headers=host)
    _problem(response, 422, "import-unsafe-xml")
    assert "TOP-SECRET" not in response.text
    assert client.get("/api/v1/shows", headers=host).json() == []


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://127.0.0.1:{port}/feed.xml", "fetch-refused-address"),
        ("http://localhost:{port}/feed.xml", "fetch-refused-address"),
        ("http://metadata.example:{port}/latest/meta-data/", "fetch-refused-address"),  # 169.254.169.254
        ("http://169.254.169.254/latest/meta-data/", "fetch-refused-address"),
        ("http://[::ffff:127.0.0.1]:{port}/feed.xml", "fetch-refused-address"),
        ("file:///etc/passwd", "fetch-refused-scheme"),
    ],
)
def test_private_addresses_are_never_fetched(
    client: TestClient, container: Container, old_host: OldHost, dials: list[str], url: str, code: str
) -> None:
    serve_old_show(old_host, f"http://127.0.0.1:{old_host.port}", b"mp3")
    host = new_user(container, "mover")
    response = client.post("/api/v1/shows/import", json={"url": url.format(port=old_host.port)}, headers=host)
    body = _problem(response, 422, code)
    assert "passwd" not in body["detail"]
    assert old_host.requests == []
    assert dials == []


def test_a_redirect_to_loopback_is_refused_at_the_hop(
    client: TestClient, container: Container, old_host: OldHost, dials: list[str]
) -> None:
    serve_old_show(old_host, "https://old.example", b"mp3")
    old_host.redirects["/moved"] = f"http://127.0.0.1:{old_host.port}/feed.xml"
    host = new_user(container, "mover")
    url = f"http://{OLD_HOST}:{old_host.port}/moved"
    _problem(
        client.post("/api/v1/shows/import", json={"url": url}, headers=host), 422, "fetch-refused-address"
    )
    assert old_host.requests == ["/moved"]  # the public hop only
    assert dials == [PUBLIC_IP]


@pytest.mark.parametrize("path", ["/huge", "/endless"])
def test_huge_feeds_are_refused_by_size(
    client: TestClient, container: Container, old_host: OldHost, dials: list[str], path: str
) -> None:
    host = new_user(container, "mover")
    url = f"http://{OLD_HOST}:{old_host.port}{path}"
    body = _problem(
        client.post("/api/v1/shows/import", json={"url": url}, headers=host), 413, "fetch-too-large"
    )
    assert OLD_HOST in body["detail"]
    assert client.get("/api/v1/shows", headers=host).json() == []


def test_huge_feed_text_and_bad_requests(client: TestClient, container: Container) -> None:
    host = new_user(container, "mover")
    big = "<rss>" + " " * svc.MAX_FEED_BYTES + "</rss>"
    _problem(
        client.post("/api/v1/shows/import", json={"feed": big}, headers=host), 413, "import-feed-too-large"
    )
    both = {"feed": "<rss/>", "url": "https://old.example/feed.xml"}
    _problem(client.post("/api/v1/shows/import", json=both, headers=host), 422, "validation-error")
    _problem(client.post("/api/v1/shows/import", content=b"{", headers=host), 422, "validation-error")
    html = {"feed": "<!DOCTYPE html><html><body>my podcast</body></html>"}
    _problem(client.post("/api/v1/shows/import", json=html, headers=host), 422, "import-not-a-feed")
    _problem(client.post("/api/v1/shows/import", json={"feed": "<rss/>"}), 401, "token-missing")


# --- the CLI ----------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MEDIA_PUB_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("MEDIA_PUB_BASE_URL", "https://pod.example")
    monkeypatch.setenv("MEDIA_PUB_JOB_THREADS", "1")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _one_error_line(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return str(lines[0])


def test_cli_imports_a_file_and_prints_next_steps(cli_env: Path) -> None:
    path = cli_env / "old.xml"
    path.write_text(old_feed("https://old.example"))
    assert runner.invoke(cli_app, ["user", "create", "ana"]).exit_code == 0
    result = runner.invoke(cli_app, ["import", str(path), "--slug", "moved", "--owner", "ana"])
    assert result.exit_code == 0, result.output
    assert "imported show moved: 2 episode(s)" in result.stderr
    assert "warning: " in result.stderr
    out = result.stdout
    assert "feed: https://pod.example/feeds/moved.xml" in out
    assert "<itunes:new-feed-url>https://pod.example/feeds/moved.xml</itunes:new-feed-url>" in out
    assert "301 Moved Permanently to https://pod.example/feeds/moved.xml" in out
    assert "1 episode(s) have no media here yet" in out
    c = bootstrap(get_settings())
    try:
        with c.uow() as uow:
            show = repo.show_by_slug(uow.session, "moved")
            ana = repo.user_by_name(uow.session, "ana")
            assert ana is not None
            member = repo.membership(uow.session, show.id, ana.id)
            assert member is not None
            assert member.role == "owner"
    finally:
        c.close()
    again = runner.invoke(cli_app, ["import", str(path), "--slug", "moved"])
    assert _one_error_line(again) == "error: Conflict: a show with slug 'moved' exists already"


def test_cli_refuses_hostile_feeds_in_one_line(cli_env: Path, old_host: OldHost) -> None:
    laughs = cli_env / "laughs.xml"
    laughs.write_text(BILLION_LAUGHS)
    assert "DTD" in _one_error_line(runner.invoke(cli_app, ["import", str(laughs)]))
    secret = cli_env / "secret.txt"
    secret.write_text("TOP-SECRET-42")
    xxe = cli_env / "xxe.xml"
    xxe.write_text(
        f'<!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]><rss><channel><title>&x;</title></channel></rss>'
    )
    result = runner.invoke(cli_app, ["import", str(xxe)])
    _one_error_line(result)
    assert "TOP-SECRET" not in result.output
    huge = cli_env / "huge.xml"
    with huge.open("wb") as fh:
        fh.truncate(svc.MAX_FEED_BYTES + 1)
    assert _one_error_line(runner.invoke(cli_app, ["import", str(huge)])).startswith(
        "error: Payload too large"
    )
    assert "cannot read" in _one_error_line(runner.invoke(cli_app, ["import", str(cli_env / "missing.xml")]))
    serve_old_show(old_host, "https://old.example", b"mp3")
    url = f"http://127.0.0.1:{old_host.port}/feed.xml"
    line = _one_error_line(runner.invoke(cli_app, ["import", url]))
    assert "refused to fetch from 127.0.0.1" in line
    assert old_host.requests == []
    big = _one_error_line(
        runner.invoke(cli_app, ["import", f"http://127.0.0.1:{old_host.port}/huge", "--allow-private"])
    )
    assert big.startswith("error: Payload too large")


@pytest.mark.slow
def test_cli_copy_media_from_a_local_host(cli_env: Path, old_host: OldHost, tiny_mp3: bytes) -> None:
    base = f"http://127.0.0.1:{old_host.port}"
    serve_old_show(old_host, base, tiny_mp3)
    result = runner.invoke(
        cli_app, ["import", f"{base}/feed.xml", "--slug", "moved", "--copy-media", "--allow-private"]
    )
    assert result.exit_code == 0, result.output
    assert "published: Episode One" in result.stderr
    assert "no media here yet" not in result.stdout  # the trailer had no media at the old host either
    assert "new-feed-url" in result.stdout
    c = bootstrap(get_settings())
    try:
        with c.uow() as uow:
            episode = repo.episode_by_guid(uow.session, EP1_GUID)
            assert episode is not None
            assert episode.status == "published"
            assert episode.published_at == datetime(2021, 3, 2, 9, 30, tzinfo=UTC)
            assert episode.media_asset_id is not None
            show = repo.show_by_slug(uow.session, "moved")
            assert show.artwork_key is not None
            assert show.feed_guids["audio"] == FEED_GUID
        with TestClient(create_app(c, scheduler=False)) as client:
            ours = client.get("/feeds/moved.xml").content
    finally:
        c.close()
    theirs = old_host.files["/feed.xml"][1]
    old_items = _items(theirs)
    new_items = _items(ours)
    assert list(new_items) == [EP1_GUID]
    assert new_items[EP1_GUID][:-1] == old_items[EP1_GUID][:-1]  # title, date, season, number, type...
    assert new_items[EP1_GUID][-1] == sanitize_notes(str(old_items[EP1_GUID][-1]))  # the notes, less <script>
    assert _xpath(ours, "/rss/channel/podcast:guid/text()") == [FEED_GUID]


# --- round trip: our own feed, moved to another instance ------------------------------------------------


def _items(feed: bytes) -> dict[str, tuple[Any, ...]]:
    """Per guid, what apps read of an item (feedparser sees the same items and guids as podcastparser)."""
    pp = podcastparser.parse("https://feed.example/feed.xml", io.BytesIO(feed))
    fp = feedparser.parse(feed)
    assert not fp.bozo, fp.bozo_exception
    assert [e.id for e in fp.entries] == [e["guid"] for e in pp["episodes"]]
    return {
        e["guid"]: (
            e["title"],
            e["published"],
            e.get("season"),
            e.get("number"),
            e.get("type"),
            e.get("explicit"),
            e["enclosures"][0]["mime_type"] if e["enclosures"] else None,
            e.get("description_html") or e.get("description"),
        )
        for e in pp["episodes"]
    }


def _xpath(feed: bytes, path: str) -> list[Any]:
    return list(etree.fromstring(feed).xpath(path, namespaces=NS))


CHANNEL_TAGS = (
    "itunes:owner/itunes:name",
    "itunes:owner/itunes:email",
    "itunes:category",
    "itunes:category/itunes:category",
    "itunes:type",
    "itunes:explicit",
    "itunes:author",
    "podcast:guid",
    "podcast:locked",
    "podcast:funding",
    "podcast:person",
    "podcast:medium",
)


def _podcast_values(feed: bytes) -> dict[str, Any]:
    """The channel and item values feedparser does not read (itunes owner and category, podcast:*)."""
    root = etree.fromstring(feed)
    channel = root.find("channel")
    assert channel is not None

    def tags(el: Any, name: str) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        return [
            ((c.text or "").strip(), tuple(sorted(c.attrib.items()))) for c in el.findall(name, namespaces=NS)
        ]

    items = {
        item.findtext("guid"): [
            tags(item, n) for n in ("podcast:person", "podcast:funding", "podcast:soundbite")
        ]
        for item in channel.findall("item")
    }
    return {
        "channel": [tags(channel, name) for name in CHANNEL_TAGS],
        "items": items,
    }


SOURCE_SHOW = """slug = "source"
title = "Source Show"
description = "Where it <b>all</b> began"
author = "Ana Author"
owner_name = "Ana Owner"
owner_email = "ana@example.org"
language = "en-gb"
category = "Society & Culture"
subcategory = "Documentary"
explicit = true
show_type = "serial"
website = "https://source.example/"
copyright = "CC BY 4.0 Ana"
funding = [{ url = "https://source.example/give", text = "Give" }]
persons = [{ name = "Ana", role = "host", group = "cast", href = "https://ana.example/" }]
"""
SOURCE_EPISODES = {
    "001.toml": """title = "Pilot"
guid = "https://source.example/episodes/1?id=AbC"
notes = "<p>First <a href='https://source.example/'>one</a></p>"
season = 1
number = 1
explicit = false
published = "2024-01-05T10:00:00Z"
chapters = [{ start = "0", title = "Hello" }, { start = "1", title = "Topic" }]
persons = [{ name = "Guest Bo", role = "guest" }]
funding = [{ url = "https://source.example/ep1", text = "Back episode 1" }]
soundbites = [{ start = 0.5, duration = 1.0, title = "Bite" }]
audio = { synth = { seconds = 2, lead_silence = 0.5, tail_silence = 0.5 } }
""",
    "002.toml": """title = "Second & last"
season = 1
number = 2
episode_type = "bonus"
explicit = true
published = "2024-02-09T18:30:00Z"
audio = { synth = { seconds = 2, lead_silence = 0.5, tail_silence = 0.5, seed = 5 } }
""",
}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Container, str]]:
    """A show of ours with two published episodes, served on a loopback port (its feed links work)."""
    tmp = tmp_path_factory.mktemp("source")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    c = bootstrap(make_settings(tmp, base_url=base))
    folder = tmp / "manifests"
    folder.mkdir()
    (folder / "show.toml").write_text(SOURCE_SHOW)
    for name, text in SOURCE_EPISODES.items():
        (folder / name).write_text(text)
    publish_folder(c, folder)
    assert c.queue.wait_idle(180)  # type: ignore[attr-defined]
    server = uvicorn.Server(
        uvicorn.Config(create_app(c, scheduler=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield c, base
    server.should_exit = True
    thread.join(10)
    c.close()


@pytest.mark.slow
def test_round_trip_of_our_own_feed(source: tuple[Container, str], cli_env: Path) -> None:
    container, base = source
    with TestClient(create_app(container, scheduler=False)) as client:
        theirs = client.get("/feeds/source.xml").content
        old_chapters = client.get(_xpath(theirs, "//item/podcast:chapters/@url")[0].removeprefix(base)).json()
    assert len(_items(theirs)) == 2
    url = f"{base}/feeds/source.xml"
    locked = runner.invoke(cli_app, ["import", url, "--slug", "moved", "--allow-private"])
    assert "locked" in _one_error_line(locked)
    result = runner.invoke(
        cli_app, ["import", url, "--slug", "moved", "--copy-media", "--allow-private", "--ignore-lock"]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count("published: ") == 2, result.stderr
    c = bootstrap(get_settings())
    try:
        with TestClient(create_app(c, scheduler=False)) as client:
            ours = client.get("/feeds/moved.xml").content
            new_chapters = client.get(
                _xpath(ours, "//item/podcast:chapters/@url")[0].removeprefix("https://pod.example")
            ).json()
    finally:
        c.close()
    assert _items(ours) == _items(theirs)  # same guids, titles, dates, numbers, types
    old_fp, new_fp = feedparser.parse(theirs).feed, feedparser.parse(ours).feed
    for key in ("title", "subtitle", "language", "link", "rights", "author"):
        assert new_fp.get(key) == old_fp.get(key), key
    assert _podcast_values(ours) == _podcast_values(theirs)
    assert [c["title"] for c in new_chapters["chapters"]] == [c["title"] for c in old_chapters["chapters"]]
    for new, old in zip(new_chapters["chapters"], old_chapters["chapters"], strict=True):
        assert new["startTime"] == pytest.approx(old["startTime"], abs=0.1)
