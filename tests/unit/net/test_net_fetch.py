"""fetch / fetch_to_file against a loopback HTTP server: address checks before connecting, redirects
re-checked per hop, byte and total-time limits. The resolver and the dial are our own module functions,
swapped here so a "public" host can be simulated without any real network."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from media_pub.errors import InvalidInput, MediaPubError, TooLarge, Unavailable
from media_pub.net import fetch as fetch_mod
from media_pub.net.fetch import fetch, fetch_to_file

PUBLIC_IP = "93.184.216.34"  # never dialled for real: _dial sends it to the loopback server
FEED = b"<rss><channel><title>Hello</title></channel></rss>"
CHUNK = 16 * 1024


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.paths: list[str] = []
        self.sent = 0
        self.redirect_to = "/ok"
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def verify_request(self, request: Any, client_address: Any) -> bool:
        self.connections += 1
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what these tests do


_GZIP_BOMB: list[bytes] = []


def _gzip_bomb() -> bytes:
    """About 64 KB of gzip that inflates to 64 MiB of zeros (made once, in 1 MiB steps)."""
    if not _GZIP_BOMB:
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        _GZIP_BOMB.append(b"".join([*(comp.compress(zeros) for _ in range(64)), comp.flush()]))
    return _GZIP_BOMB[0]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _head(self, status: int, **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()

    def _stream(self, piece: bytes, pause: float = 0.0, limit: int = 512 << 20) -> None:
        """Write until the client leaves, the test ends or `limit` bytes went out."""
        try:
            while not self.server.stop.is_set() and self.server.sent < limit:
                self.wfile.write(piece)
                self.server.sent += len(piece)
                if pause:
                    self.server.stop.wait(pause)
        except OSError:
            pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        path = self.path.split("?")[0]
        if path == "/ok":
            self._head(200, Content_Type="application/rss+xml", Content_Length=str(len(FEED)))
            self.wfile.write(FEED)
        elif path == "/redirect":
            self._head(302, Location="/ok")
        elif path == "/hop":
            self._head(302, Location=self.server.redirect_to)
        elif path == "/loop":
            self._head(301, Location="/loop")
        elif path == "/missing":
            self._head(404, Content_Length="9")
            self.wfile.write(b"not found")
        elif path == "/endless":
            self._head(200, Content_Type="application/octet-stream")
            self._stream(b"x" * CHUNK)
        elif path == "/huge-length":
            self._head(200, Content_Length=str(1 << 30))
            self._stream(b"x" * CHUNK)
        elif path == "/gzip-bomb":
            body = _gzip_bomb()
            self._head(200, Content_Encoding="gzip", Content_Length=str(len(body)))
            self.wfile.write(body)
        elif path == "/gzip":
            body = _gzip(FEED * 100)
            self._head(200, Content_Encoding="gzip", Content_Length=str(len(body)))
            self.wfile.write(body)
        elif path == "/stall-body":
            self._head(200, Content_Length="1000")
            self.wfile.write(b"x" * 10)
            self.server.stop.wait(10)
        elif path == "/stall-headers":
            self.server.stop.wait(10)
        elif path == "/trickle":
            self._head(200)
            self._stream(b"x", pause=0.05, limit=400)


def _gzip(data: bytes) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    return comp.compress(data) + comp.flush()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


class _CountingStream:
    """Wraps the connection our fetcher dials, counting the bytes it really reads off the socket."""

    def __init__(self, inner: Any, counter: list[int]) -> None:
        self._inner = inner
        self._counter = counter

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self._inner.read(max_bytes, timeout)
        self._counter[0] += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.start_tls(*args, **kwargs)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


@pytest.fixture
def net(monkeypatch: pytest.MonkeyPatch, server: _Server) -> dict[str, Any]:
    """A fake DNS table and a dial log; PUBLIC_IP is routed to the loopback server, nothing else private."""
    real_resolve, real_dial = fetch_mod.resolve, fetch_mod._dial
    state: dict[str, Any] = {"dns": {}, "dials": [], "lookups": [], "read": [0]}

    def resolve(host: str, port: int) -> list[str]:
        state["lookups"].append(host)
        answer = state["dns"].get(host)
        if callable(answer):
            return answer()
        return answer if answer is not None else real_resolve(host, port)

    def dial(address: str, port: int, timeout: float, options: Any) -> Any:
        state["dials"].append(address)
        if address == PUBLIC_IP:
            return _CountingStream(real_dial("127.0.0.1", server.port, timeout, options), state["read"])
        if address == "127.0.0.1":  # only reachable with allow_private=True
            return _CountingStream(real_dial(address, port, timeout, options), state["read"])
        raise AssertionError(f"the fetcher dialled {address}")

    monkeypatch.setattr(fetch_mod, "resolve", resolve)
    monkeypatch.setattr(fetch_mod, "_dial", dial)
    state["dns"]["feeds.public.example"] = [PUBLIC_IP]
    return state


def _code(call: Callable[[], object]) -> MediaPubError:
    with pytest.raises(MediaPubError) as caught:
        call()
    return caught.value


# --- addresses -------------------------------------------------------------------------------------


def test_loopback_server_is_refused_without_a_connection(server: _Server, net: dict[str, Any]) -> None:
    url = f"http://127.0.0.1:{server.port}/ok?token=SECRET-TOKEN-123"
    exc = _code(lambda: fetch(url, max_bytes=10_000, timeout=5))
    assert isinstance(exc, InvalidInput)
    assert exc.code == "fetch-refused-address"
    assert "127.0.0.1" in str(exc)
    assert "SECRET-TOKEN" not in str(exc)
    assert "/ok" not in str(exc)
    time.sleep(0.1)  # a connection, had there been one, would be counted by now
    assert server.connections == 0
    assert server.paths == []
    assert net["dials"] == []


def test_allow_private_fetches_the_local_server(server: _Server, net: dict[str, Any]) -> None:
    got = fetch(f"http://127.0.0.1:{server.port}/redirect", max_bytes=10_000, timeout=5, allow_private=True)
    assert got.status == 200
    assert got.body == FEED
    assert got.url_final == f"http://127.0.0.1:{server.port}/ok"
    assert got.headers["content-type"] == "application/rss+xml"
    assert server.paths == ["/redirect", "/ok"]


def test_public_host_is_fetched_through_the_checked_address(server: _Server, net: dict[str, Any]) -> None:
    got = fetch(f"http://feeds.public.example:{server.port}/ok", max_bytes=10_000, timeout=5)
    assert got.body == FEED
    assert net["dials"] == [PUBLIC_IP]
    assert net["lookups"] == ["feeds.public.example"]


def test_dns_rebinding_cannot_swap_the_address(server: _Server, net: dict[str, Any]) -> None:
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    net["dns"]["rebind.example"] = lambda: next(answers)
    got = fetch(f"http://rebind.example:{server.port}/ok", max_bytes=10_000, timeout=5)
    assert got.body == FEED
    assert net["lookups"] == ["rebind.example"]  # resolved once, and that answer was dialled
    assert net["dials"] == [PUBLIC_IP]
    # the next connection resolves again, sees loopback and is refused before dialling
    exc = _code(lambda: fetch(f"http://rebind.example:{server.port}/ok", max_bytes=10_000, timeout=5))
    assert exc.code == "fetch-refused-address"
    assert net["dials"] == [PUBLIC_IP]


BLOCKED = [
    ["127.0.0.1"],
    ["127.8.9.10"],
    ["10.1.2.3"],
    ["172.16.5.4"],
    ["192.168.1.1"],
    ["169.254.169.254"],
    ["100.64.0.1"],
    ["100.127.255.254"],
    ["0.0.0.0"],
    ["224.0.0.1"],
    ["240.0.0.1"],
    ["::1"],
    ["::"],
    ["fc00::1"],
    ["fd12:3456::1"],
    ["fe80::1"],
    ["ff02::1"],
    ["::ffff:127.0.0.1"],
    ["::ffff:169.254.169.254"],
    ["::ffff:10.0.0.1"],
    ["64:ff9b::a9fe:a9fe"],
    ["2002:7f00:1::1"],
    [PUBLIC_IP, "10.0.0.1"],  # one private answer among public ones is enough
]


@pytest.mark.parametrize("answer", BLOCKED, ids=lambda a: ",".join(a))
def test_non_public_answers_are_refused_before_connecting(net: dict[str, Any], answer: list[str]) -> None:
    net["dns"]["victim.example"] = answer
    exc = _code(lambda: fetch("http://victim.example/feed.xml", max_bytes=1000, timeout=5))
    assert exc.code == "fetch-refused-address"
    assert "victim.example" in str(exc)
    assert net["dials"] == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://10.0.0.1/",
        "http://100.64.0.1/",
        "http://2130706433/",  # 127.0.0.1 as a decimal number
        "http://0x7f.1/",  # 127.0.0.1 in hexadecimal shorthand
        "http://localhost/",
        "https://127.0.0.1/",
    ],
)
def test_literal_and_numeric_hosts_are_refused(net: dict[str, Any], url: str) -> None:
    exc = _code(lambda: fetch(url, max_bytes=1000, timeout=5))
    assert exc.code in ("fetch-refused-address", "fetch-invalid-url")
    assert net["dials"] == []


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://feeds.public.example/x", "gopher://x/", "javascript:alert(1)", "/rel"],
)
def test_other_schemes_are_refused(net: dict[str, Any], url: str) -> None:
    exc = _code(lambda: fetch(url, max_bytes=1000, timeout=5))
    assert exc.code == "fetch-refused-scheme"
    assert net["lookups"] == []


# --- redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("http://127.0.0.1:{port}/ok?token=abc", "fetch-refused-address"),
        ("http://internal.example/admin", "fetch-refused-address"),
        ("http://[::1]:{port}/ok", "fetch-refused-address"),
        ("http://169.254.169.254/latest/meta-data/", "fetch-refused-address"),
        ("file:///etc/passwd", "fetch-refused-scheme"),
    ],
)
def test_redirect_to_a_private_target_is_refused_on_the_hop(
    server: _Server, net: dict[str, Any], target: str, code: str
) -> None:
    net["dns"]["internal.example"] = ["10.0.0.7"]
    server.redirect_to = target.format(port=server.port)
    exc = _code(lambda: fetch(f"http://feeds.public.example:{server.port}/hop", max_bytes=10_000, timeout=5))
    assert exc.code == code
    assert server.paths == ["/hop"]  # the private target was never requested
    assert net["dials"] == [PUBLIC_IP]
    assert "token=abc" not in str(exc)


def test_redirects_are_followed_then_capped_at_five(server: _Server, net: dict[str, Any]) -> None:
    got = fetch(f"http://feeds.public.example:{server.port}/redirect", max_bytes=10_000, timeout=5)
    assert got.url_final == f"http://feeds.public.example:{server.port}/ok"
    server.paths.clear()
    exc = _code(lambda: fetch(f"http://feeds.public.example:{server.port}/loop", max_bytes=10_000, timeout=5))
    assert exc.code == "fetch-too-many-redirects"
    assert server.paths == ["/loop"] * 6  # the first request and five redirects


def test_error_statuses_are_returned_not_raised(server: _Server, net: dict[str, Any]) -> None:
    got = fetch(f"http://feeds.public.example:{server.port}/missing", max_bytes=10_000, timeout=5)
    assert (got.status, got.body) == (404, b"not found")


def test_connection_refused_is_fetch_failed(net: dict[str, Any]) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    exc = _code(
        lambda: fetch(f"http://127.0.0.1:{port}/x?k=SECRET", max_bytes=10, timeout=5, allow_private=True)
    )
    assert isinstance(exc, Unavailable)
    assert exc.code == "fetch-failed"
    assert "127.0.0.1" in str(exc)
    assert "SECRET" not in str(exc)


# --- size ------------------------------------------------------------------------------------------


def test_endless_body_stops_at_the_byte_limit(server: _Server, net: dict[str, Any]) -> None:
    limit = 256 * 1024
    started = time.monotonic()
    exc = _code(
        lambda: fetch(f"http://feeds.public.example:{server.port}/endless", max_bytes=limit, timeout=10)
    )
    assert isinstance(exc, TooLarge)
    assert exc.code == "fetch-too-large"
    assert time.monotonic() - started < 3
    read = net["read"][0]
    assert limit < read <= limit + 2 * 64 * 1024 + 1024  # at most one read past the limit, plus headers


def test_huge_content_length_is_refused_before_the_body(server: _Server, net: dict[str, Any]) -> None:
    url = f"http://feeds.public.example:{server.port}/huge-length"
    exc = _code(lambda: fetch(url, max_bytes=1 << 20, timeout=10))
    assert exc.code == "fetch-too-large"
    assert net["read"][0] <= 64 * 1024 + 1024  # the headers' read, not the gigabyte


def test_gzip_bomb_stops_at_the_decoded_limit(server: _Server, net: dict[str, Any]) -> None:
    started = time.monotonic()
    url = f"http://feeds.public.example:{server.port}/gzip-bomb"
    exc = _code(lambda: fetch(url, max_bytes=1 << 20, timeout=10))
    assert exc.code == "fetch-too-large"
    assert time.monotonic() - started < 3


def test_gzip_body_is_decoded(server: _Server, net: dict[str, Any]) -> None:
    got = fetch(f"http://feeds.public.example:{server.port}/gzip", max_bytes=1 << 20, timeout=5)
    assert got.body == FEED * 100


# --- time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/stall-headers", "/stall-body", "/trickle"])
def test_total_time_limit(server: _Server, net: dict[str, Any], path: str) -> None:
    # /trickle sends a byte every 50 ms: only a total deadline (not a per-read timeout) stops it in time
    started = time.monotonic()
    exc = _code(
        lambda: fetch(f"http://feeds.public.example:{server.port}{path}", max_bytes=1 << 20, timeout=0.5)
    )
    elapsed = time.monotonic() - started
    assert isinstance(exc, Unavailable)
    assert exc.code == "fetch-timeout"
    assert exc.retryable
    assert "feeds.public.example" in str(exc)
    assert 0.4 < elapsed < 1.5


# --- to a file -------------------------------------------------------------------------------------


def test_fetch_to_file(server: _Server, net: dict[str, Any], tmp_path: Path) -> None:
    target = tmp_path / "feed.xml"
    got = fetch_to_file(
        f"http://feeds.public.example:{server.port}/redirect", target, max_bytes=10_000, timeout=5
    )
    assert target.read_bytes() == FEED
    assert (got.path, got.size, got.status) == (target, len(FEED), 200)
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(("path", "code"), [("/endless", "fetch-too-large"), ("/missing", "fetch-failed")])
def test_fetch_to_file_leaves_nothing_behind(
    server: _Server, net: dict[str, Any], tmp_path: Path, path: str, code: str
) -> None:
    target = tmp_path / "media.mp3"
    url = f"http://feeds.public.example:{server.port}{path}"
    exc = _code(lambda: fetch_to_file(url, target, max_bytes=200_000, timeout=5))
    assert exc.code == code
    assert list(tmp_path.iterdir()) == []


def test_fetch_to_file_checks_addresses(server: _Server, net: dict[str, Any], tmp_path: Path) -> None:
    exc = _code(
        lambda: fetch_to_file(f"http://127.0.0.1:{server.port}/ok", tmp_path / "x", max_bytes=10, timeout=5)
    )
    assert exc.code == "fetch-refused-address"
    assert server.connections == 0


# --- TLS -------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command for a test certificate"
)
def test_tls_keeps_the_host_name_while_dialling_the_checked_address(
    server: _Server, net: dict[str, Any], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=feeds.public.example", "-addext", "subjectAltName=DNS:feeds.public.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    names: list[str | None] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server_ctx.sni_callback = lambda sock, name, ctx: names.append(name)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    net["dns"]["other.public.example"] = [PUBLIC_IP]
    client_ctx = ssl.create_default_context(cafile=str(cert))

    transport = fetch_mod.GuardedTransport(timeout=5, ssl_context=client_ctx)
    with httpx.Client(transport=transport) as client:
        response = client.get(f"https://feeds.public.example:{server.port}/ok")
        assert response.content == FEED
        assert names == ["feeds.public.example"]  # SNI is the host name, not the dialled address
        assert net["dials"] == [PUBLIC_IP]
        with pytest.raises(httpx.ConnectError, match="certificate"):  # and the certificate is checked
            client.get(f"https://other.public.example:{server.port}/ok")
