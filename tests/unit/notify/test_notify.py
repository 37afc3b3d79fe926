"""Notifier: WebSub publish and Podping GETs against a real HTTP server on loopback."""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from media_pub.notify import Notifier

TOKEN = "pp-secret-Blahblah^^12345678"
FEED = "https://feeds.example.org/shows/night-shift.rss?lang=en&x=1"


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Hub:
    """What the test server saw, and what it answers: per path, a list of statuses ("stall" waits)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    script: dict[str, list[int | str]] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        hub = self.server.hub
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with hub.lock:
            hub.seen.append(
                Seen(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers),
                    body,
                    time.monotonic(),
                )
            )
            queue = hub.script.get(parts.path, [])
            action = queue.pop(0) if queue else 204
        if action == "stall":
            hub.release.wait(10)  # bounded: the test releases it
            action = 204
        status = int(action)
        # A careless receiver echoes the credentials it got: the notifier must still never log them.
        reply = f"status {status}; you sent Authorization: {self.headers.get('Authorization')}".encode()
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: Hub


@pytest.fixture
def hub() -> Iterator[Hub]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.hub = Hub(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.hub
    finally:
        server.hub.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def make_notifier() -> Iterator[type[Notifier]]:
    made: list[Notifier] = []

    class _Tracked(Notifier):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("timeout", 5.0)
            kwargs.setdefault("base_delay", 0.05)
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield _Tracked
    for notifier in made:
        notifier.close(timeout=1)


def test_websub_publish_and_podping_requests(hub: Hub, make_notifier: type[Notifier]):
    notifier = make_notifier([f"{hub.url}/hub"], f"{hub.url}/podping/", TOKEN)
    notifier.notify(FEED)
    notifier.notify("https://feeds.example.org/live.rss", reason="live", medium="music")
    assert notifier.flush(5)

    posts = hub.on("/hub")
    assert [(s.method, parse_qs(s.body.decode())) for s in posts] == [
        ("POST", {"hub.mode": ["publish"], "hub.url": [FEED]}),
        ("POST", {"hub.mode": ["publish"], "hub.url": ["https://feeds.example.org/live.rss"]}),
    ]
    assert posts[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in posts[0].headers  # the Podping token goes to Podping only
    assert posts[0].headers["User-Agent"].startswith("media_pub/")

    pings = hub.on("/podping/")
    assert [(s.method, s.query) for s in pings] == [
        ("GET", {"url": [FEED], "reason": ["update"], "medium": ["podcast"]}),
        ("GET", {"url": ["https://feeds.example.org/live.rss"], "reason": ["live"], "medium": ["music"]}),
    ]
    assert [s.headers["Authorization"] for s in pings] == [TOKEN, TOKEN]
    assert notifier.pending == 0


def test_retries_with_exponential_backoff(hub: Hub, make_notifier: type[Notifier]):
    hub.script["/hub"] = [500, 429, 204]
    notifier = make_notifier([f"{hub.url}/hub"], attempts=5, base_delay=0.1)
    notifier.notify(FEED)
    assert notifier.flush(5)
    seen = hub.on("/hub")
    assert len(seen) == 3
    assert all(parse_qs(s.body.decode())["hub.url"] == [FEED] for s in seen)
    gaps = [b.at - a.at for a, b in itertools.pairwise(seen)]
    assert gaps[0] >= 0.1
    assert gaps[1] >= 0.2  # doubled
    assert gaps[1] < 2  # and not waiting longer than needed


def test_gives_up_after_the_last_attempt_and_on_client_errors(
    hub: Hub, make_notifier: type[Notifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="media_pub.notify")
    hub.script["/down"] = [503] * 10
    hub.script["/gone"] = [404] * 10
    notifier = make_notifier([f"{hub.url}/down", f"{hub.url}/gone"], attempts=3, base_delay=0.01)
    notifier.notify(FEED)
    assert notifier.flush(5)
    assert len(hub.on("/down")) == 3
    assert len(hub.on("/gone")) == 1  # 4xx: retrying would not help
    gave_up = [r.getMessage() for r in caplog.records if "next=give-up" in r.getMessage()]
    assert len(gave_up) == 2
    assert any("HTTP 503" in m and "attempt=3/3" in m for m in gave_up)


def test_unreachable_receiver_is_retried_then_dropped(
    make_notifier: type[Notifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="media_pub.notify")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = make_notifier([f"http://user:pw@127.0.0.1:{port}/hub"], attempts=2, base_delay=0.01, timeout=1)
    notifier.notify(FEED)
    assert notifier.flush(5)
    assert notifier.pending == 0
    failed = [r.getMessage() for r in caplog.records if "notify.failed" in r.getMessage()]
    assert len(failed) == 2
    assert "ConnectError" in failed[0]
    assert "next=give-up" in failed[1]
    assert "user:pw" not in caplog.text


def test_notify_returns_at_once_while_the_receiver_stalls(hub: Hub, make_notifier: type[Notifier]):
    hub.script["/hub"] = ["stall"]
    notifier = make_notifier([f"{hub.url}/hub"], f"{hub.url}/podping", TOKEN)
    slowest = 0.0
    for n in range(50):
        began = time.perf_counter()
        notifier.notify(f"https://feeds.example.org/{n}.rss", reason="live" if n % 2 else "update")
        slowest = max(slowest, time.perf_counter() - began)
        if n == 0:
            deadline = time.monotonic() + 5
            while not hub.on("/hub") and time.monotonic() < deadline:
                time.sleep(0.01)  # wait until the worker is stuck in the stalled request
    assert slowest < 0.05
    assert len(hub.seen) == 1  # everything else waits behind the stalled request
    assert notifier.flush(0.05) is False
    hub.release.set()
    assert notifier.flush(10)
    assert len(hub.on("/hub")) == 50
    assert len(hub.on("/podping")) == 50


def test_duplicates_waiting_in_the_queue_are_coalesced(hub: Hub, make_notifier: type[Notifier]):
    hub.script["/hub"] = ["stall"]
    notifier = make_notifier([f"{hub.url}/hub"], f"{hub.url}/podping", TOKEN)
    a, b = "https://feeds.example.org/a.rss", "https://feeds.example.org/b.rss"
    notifier.notify(a)
    deadline = time.monotonic() + 5
    while not hub.on("/hub") and time.monotonic() < deadline:
        time.sleep(0.01)
    # The hub is now handling a's first ping. While it stalls:
    for _ in range(5):
        notifier.notify(b)
    notifier.notify(b, reason="live")
    notifier.notify(a)  # a's hub ping is in flight (may predate this change): queued again
    hub.release.set()
    assert notifier.flush(10)
    hub_urls = [parse_qs(s.body.decode())["hub.url"][0] for s in hub.on("/hub")]
    assert hub_urls == [a, b, a]  # WebSub has no reason: b's update and live are one ping
    pings = [(s.query["url"][0], s.query["reason"][0]) for s in hub.on("/podping")]
    assert pings == [(a, "update"), (b, "update"), (b, "live")]


def test_the_token_never_reaches_the_logs(
    hub: Hub, make_notifier: type[Notifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    hub.script["/podping"] = [401, 500, 200]
    notifier = make_notifier([], f"{hub.url}/podping", TOKEN, attempts=3, base_delay=0.01)
    notifier.notify(FEED, reason="liveEnd")
    assert notifier.flush(5)
    assert len(hub.on("/podping")) == 1  # 401 is final
    hub.script["/podping"] = [500, 200]
    notifier.notify(FEED)
    assert notifier.flush(5)
    assert [s.headers["Authorization"] for s in hub.on("/podping")] == [TOKEN] * 3
    text = caplog.text + "".join(str(r.args) + r.getMessage() for r in caplog.records)
    assert "notify.failed" in text
    assert "HTTP 401" in text
    assert "[redacted]" in text  # the echoed header was logged, with the token removed
    assert TOKEN not in text
    assert "Blahblah" not in text


def test_close_stops_the_worker_and_drops_what_is_left(
    hub: Hub, make_notifier: type[Notifier], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.WARNING, logger="media_pub.notify")
    hub.script["/hub"] = [500] * 10
    notifier = make_notifier([f"{hub.url}/hub"], attempts=5, base_delay=30)
    notifier.notify(FEED)
    deadline = time.monotonic() + 5
    while not hub.on("/hub") and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    notifier.close(timeout=0.2)  # the retry is 30 s away: not waited for
    assert time.monotonic() - began < 2
    assert "notify.abandoned count=1" in caplog.text
    assert notifier._thread is not None
    assert not notifier._thread.is_alive()
    notifier.notify(FEED)  # ignored after close
    time.sleep(0.05)
    assert len(hub.on("/hub")) == 1


def test_disabled_notifier_does_nothing():
    notifier = Notifier()
    assert not notifier.enabled
    notifier.notify(FEED)
    assert notifier._thread is None
    assert notifier.flush(0)
    notifier.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hubs": ["ftp://hub.example"]}, "WebSub hub"),
        ({"hubs": ["/relative"]}, "WebSub hub"),
        ({"podping_url": "podping.cloud"}, "podping_url"),
        ({"attempts": 0}, "attempts"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], message: str):
    with pytest.raises(ValueError, match=message):
        Notifier(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("https://f.example/rss", "changed"), "reason"),
        (("https://f.example/rss", "update", "radio"), "medium"),
        (("feeds/show.rss",), "feed_url"),
    ],
)
def test_bad_notification(args: tuple[str, ...], message: str):
    with pytest.raises(ValueError, match=message):
        Notifier(["https://hub.example/"]).notify(*args)
