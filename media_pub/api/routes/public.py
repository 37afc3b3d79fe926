"""What apps fetch without a token: feeds, media, chapters."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from media_pub.api.deps import ContainerDep, UowDep
from media_pub.feeds.chapters import CHAPTERS_MIME
from media_pub.services.feeds import RenderedFeed, episode_chapters_json
from media_pub.services.media import episode_waveform, locate_public_media

router = APIRouter(tags=["public"])

RSS_TYPE = "application/rss+xml; charset=utf-8"


def _http_date(value: datetime) -> str:
    return format_datetime(value, usegmt=True)


def _not_modified(request: Request, etag: str, last_modified: datetime) -> bool:
    """RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is not None:
            return last_modified.replace(microsecond=0) <= since
    return False


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def feed_response(request: Request, feed: RenderedFeed) -> Response:
    headers = {
        "ETag": feed.etag,
        "Last-Modified": _http_date(feed.last_modified),
        "Cache-Control": "public, max-age=300",
        "Vary": "Accept-Encoding",
    }
    if _not_modified(request, feed.etag, feed.last_modified):
        return Response(status_code=304, headers=headers)
    body = feed.body
    if _accepts_gzip(request):
        body, headers["Content-Encoding"] = feed.body_gzip, "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=RSS_TYPE)
    return Response(body, headers=headers, media_type=RSS_TYPE)


@router.head("/feeds/{show}.xml", include_in_schema=False)
@router.get(
    "/feeds/{show}.xml",
    response_class=Response,
    responses={200: {"content": {"application/rss+xml": {}}}},
)
def show_feed(show: str, request: Request, uow: UowDep, c: ContainerDep) -> Response:
    """The show's RSS feed, with ETag/Last-Modified (304 on conditional GET) and gzip when asked."""
    return feed_response(request, c.feeds.get(uow, show))


@router.head("/media/{key:path}", include_in_schema=False)
@router.get("/media/{key:path}", response_class=Response)
def media(key: str, uow: UowDep, c: ContainerDep) -> Response:
    """Published media: HEAD and byte ranges (206) from local storage, or a redirect to the object store."""
    where = locate_public_media(uow, c.storage, key)
    if where.redirect_url:
        return RedirectResponse(where.redirect_url, status_code=302)
    assert where.path is not None
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=31536000, immutable"}
    return FileResponse(
        where.path,
        media_type=where.content_type,
        headers=headers,
        content_disposition_type="inline",
        filename=where.filename,
    )


@router.get("/chapters/{episode_id}.json", response_class=Response)
def chapters(episode_id: str, uow: UowDep) -> Response:
    """The episode's chapters as Podcasting 2.0 JSON chapters."""
    body = episode_chapters_json(uow, episode_id)
    return Response(body, media_type=CHAPTERS_MIME, headers={"Access-Control-Allow-Origin": "*"})


@router.get("/waveforms/{episode_id}.json", response_class=Response)
def waveform(episode_id: str, uow: UowDep, c: ContainerDep) -> Response:
    """Waveform peaks of a published episode in BBC audiowaveform JSON (version 2), for players."""
    body = episode_waveform(uow, c.storage, episode_id, public=True)
    return Response(body, media_type="application/json", headers={"Access-Control-Allow-Origin": "*",
                    "Cache-Control": "public, max-age=300"})  # fmt: skip


@router.get("/healthz")
def health(c: ContainerDep) -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}
