"""`media-pub feed check URL|FILE`: one line per problem; exit 0 (no errors), 1 (errors), 2 (unreadable)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from media_pub.cli import app
from media_pub.cli import feeds as feeds_cli
from media_pub.domain.rules import podcast_guid

runner = CliRunner()


def feed(*, guid: str = "", explicit: str = "false", length: str = "1000", self_url: str = "") -> bytes:
    self_link = f'<atom:link href="{self_url}" rel="self"/>' if self_url else ""
    podcast_guid_tag = f"<podcast:guid>{guid}</podcast:guid>" if guid else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
<title>Tiny</title><description>A tiny show.</description><link>https://tiny.example/</link>{self_link}
<language>en</language><itunes:author>Ana</itunes:author>
<itunes:image href="https://cdn.example/art.jpg"/><itunes:category text="Technology"/>
<itunes:explicit>{explicit}</itunes:explicit>{podcast_guid_tag}
<item><title>One</title><guid>t-1</guid><pubDate>Mon, 08 Jan 2024 06:00:00 +0000</pubDate>
<enclosure url="https://cdn.example/1.mp3" length="{length}" type="audio/mpeg"/></item>
<item><title>Two</title><guid>t-2</guid><pubDate>Mon, 15 Jan 2024 06:00:00 +0000</pubDate>
<enclosure url="https://cdn.example/2.mp3" length="{length}" type="audio/mpeg"/></item>
</channel>
</rss>
""".encode()


def run(*args: str):  # -> click.testing.Result
    return runner.invoke(app, ["feed", "check", *args])


def test_clean_file_exits_0_and_prints_nothing(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(feed())
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == "0 error(s), 0 warning(s)\n"


def test_warnings_only_exit_0(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(feed(explicit="no"))
    result = run(str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "warning: channel: itunes:explicit is 'no'; Apple documents true or false"
    ]


def test_errors_exit_1_one_line_each(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(feed(explicit="no", length="0"))
    result = run(str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "warning: channel: itunes:explicit is 'no'; Apple documents true or false",
        "error: item 1 (guid t-1): enclosure length '0' is not a positive integer (bytes)",
        "error: item 2 (guid t-2): enclosure length '0' is not a positive integer (bytes)",
    ]
    assert result.stderr == "2 error(s), 1 warning(s)\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "error: Unreadable feed: cannot read "),
        (b"<html><p>oops</html>", "error: Unreadable feed: not well-formed XML: "),
        (
            b'<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><rss>&b;</rss>',
            "error: Unreadable feed: the document declares XML entities",
        ),
    ],
    ids=["missing", "not-xml", "entities"],
)
def test_unreadable_file_exits_2_with_one_line(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "feed.xml"
    if content is not None:
        path.write_bytes(content)
    result = run(str(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(message)


def test_external_entity_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711")
    path = tmp_path / "feed.xml"
    path.write_bytes(
        feed()
        .replace(b"<rss ", f'<!DOCTYPE rss [<!ENTITY x SYSTEM "{secret.as_uri()}">]><rss '.encode(), 1)
        .replace(b"<title>Tiny</title>", b"<title>&x;</title>")
    )
    result = run(str(path))
    assert result.exit_code == 2
    assert "TOP-SECRET-4711" not in result.output


# -- URLs --------------------------------------------------------------------------------------------------


class FeedServer:
    """Routes path -> (status, headers, body) on a loopback ThreadingHTTPServer."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = routes.get(self.path, (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers and "Connection" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    srv = FeedServer()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    thread.join(5)


def test_url_is_fetched_and_guid_checked_against_it(server: FeedServer) -> None:
    url = f"{server.base}/feed.xml"
    server.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"}, feed(guid=podcast_guid(url)))
    server.routes["/old"] = (301, {"Location": "/feed.xml"}, b"")
    assert run(url).exit_code == 0
    redirected = run(f"{server.base}/old")
    assert (redirected.exit_code, redirected.stdout) == (0, "")


def test_url_guid_mismatch_is_a_warning(server: FeedServer) -> None:
    server.routes["/feed.xml"] = (200, {}, feed(guid=podcast_guid("https://elsewhere.example/feed")))
    result = run(f"{server.base}/feed.xml")
    assert result.exit_code == 0
    [line] = result.stdout.splitlines()
    assert line.startswith("warning: channel: podcast:guid ")
    assert f"the feed URL {server.base}/feed.xml" in line


def test_url_failures_exit_2(server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    not_found = run(f"{server.base}/missing.xml")
    assert not_found.exit_code == 2
    assert (
        not_found.stderr == f"error: Unreadable feed: fetch failed: HTTP 404 from {server.base}/missing.xml\n"
    )

    monkeypatch.setattr(feeds_cli, "MAX_FEED_BYTES", 500)
    server.routes["/big"] = (200, {}, feed())  # Content-Length > limit
    server.routes["/stream"] = (200, {"Connection": "close"}, feed())  # no Content-Length: body counted
    for path in ("/big", "/stream"):
        too_big = run(f"{server.base}{path}")
        assert too_big.exit_code == 2, path
        assert too_big.stderr == "error: Unreadable feed: fetch failed: the feed is larger than 500 bytes\n"

    with socket.socket() as sock:  # a port nothing listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = run(f"http://127.0.0.1:{port}/feed.xml")
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error: Unreadable feed: fetch failed: ")
    assert refused.stderr.count("\n") == 1


def test_installed_script(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(feed(length="-5"))
    script = Path(sys.executable).parent / "media-pub"
    done = subprocess.run(
        [str(script), "feed", "check", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("\n") == 2
    assert done.stdout.startswith("error: item 1 (guid t-1): enclosure length '-5' is not a positive integer")
