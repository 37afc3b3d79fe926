"""A public feed over HTTP: validators, 304s and gzip, and the fast path that serves a fresh memo.

`FeedFastPath` is a pure ASGI middleware in front of the FastAPI stack. It answers GET and HEAD of a public
feed's first page (`/feeds/{show}.xml`, `/video.xml`, `/live.xml`, no query string) when the feed service
holds that feed checked against the database less than a second ago (`FeedService.fresh`): no routing, no
dependencies, no thread, no database. Anything else, including a feed not fresh, goes on to the app, whose
route revalidates and refreshes the memo. Both paths build their answer with `feed_answer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from functools import lru_cache

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from media_pub.services.feeds import FeedKind, FeedService, RenderedFeed

RSS_TYPE = "application/rss+xml; charset=utf-8"
PUBLIC_CACHE = "public, max-age=300"
_PUBLIC_FEED = re.compile(r"/feeds/(?P<slug>[^/]+?)(?:/(?P<kind>video|live))?\.xml")


@lru_cache(maxsize=1024)
def http_date(value: datetime) -> str:
    """An IMF-fixdate (a feed has few distinct ones: each is formatted once)."""
    return format_datetime(value, usegmt=True)


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since."""
    inm = headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is not None:
            return last_modified.replace(microsecond=0) <= since
    return False


def accepts_gzip(headers: Mapping[str, str]) -> bool:
    for part in headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def feed_answer(
    request_headers: Mapping[str, str], feed: RenderedFeed, cache_control: str = PUBLIC_CACHE
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the answer to a GET of `feed` (a HEAD sends the same without the body)."""
    headers = {
        "ETag": feed.etag,
        "Last-Modified": http_date(feed.last_modified),
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
    }
    if not_modified(request_headers, feed.etag, feed.last_modified):
        return 304, headers, b""
    body = feed.body
    if accepts_gzip(request_headers):
        body, headers["Content-Encoding"] = feed.body_gzip, "gzip"
    headers["Content-Type"] = RSS_TYPE
    headers["Content-Length"] = str(len(body))
    return 200, headers, body


class FeedFastPath:
    """Public feeds straight from the feed service's fresh memo; every other request goes to `app`."""

    def __init__(self, app: ASGIApp, feeds: FeedService) -> None:
        self.app = app
        self.feeds = feeds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        feed = self._fresh(scope)
        if feed is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = feed_answer(Headers(scope=scope), feed)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    def _fresh(self, scope: Scope) -> RenderedFeed | None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["query_string"]:
            return None
        match = _PUBLIC_FEED.fullmatch(scope["path"])
        if match is None:
            return None
        kind: FeedKind = match["kind"] or "audio"  # type: ignore[assignment]
        return self.feeds.fresh(match["slug"], kind)
