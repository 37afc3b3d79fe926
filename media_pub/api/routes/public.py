"""What apps fetch without a token: feeds, media, chapters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from media_pub.api.deps import ContainerDep, UowDep
from media_pub.api.feed_http import PUBLIC_CACHE, feed_answer
from media_pub.db import repositories as repo
from media_pub.errors import NotFound
from media_pub.feeds.chapters import CHAPTERS_MIME
from media_pub.services.episodes import episode_show_slug
from media_pub.services.feeds import FeedKind, Moved, RenderedFeed, episode_chapters_json
from media_pub.services.media import (
    MediaLocation,
    episode_waveform,
    locate_public_media,
    media_show_slug,
)
from media_pub.services.supporters import authenticate_supporter
from media_pub.services.transcripts import PUBLIC_TYPES, public_transcript

router = APIRouter(tags=["public"])


def feed_response(request: Request, feed: RenderedFeed, cache_control: str = PUBLIC_CACHE) -> Response:
    """The feed, a 304, or (HEAD) its headers alone: the answer the fast path gives a fresh feed too."""
    status, headers, body = feed_answer(request.headers, feed, cache_control)
    if request.method == "HEAD":
        body = b""  # Content-Length stays the GET's
    return Response(body, status_code=status, headers=headers)


def _public_feed(
    show: str, kind: FeedKind, page: int | None, request: Request, uow: UowDep, c: ContainerDep
) -> Response:
    feed = c.feeds.get(uow, show, kind, page)
    if isinstance(feed, Moved):
        # 301: gPodder and AntennaPod rewrite the subscription (302/307 they would not).
        return RedirectResponse(feed.url, status_code=301)
    return feed_response(request, feed)


FEED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/rss+xml": {}}},
    301: {"description": "The show moved: its feed is at the Location"},
}
Page = Annotated[int | None, Query(ge=1, le=100000, description="RFC 5005 page (paged feeds only)")]


@router.head("/feeds/{show}.xml", include_in_schema=False)
@router.get("/feeds/{show}.xml", response_class=Response, responses=FEED_RESPONSES)
def show_feed(show: str, request: Request, uow: UowDep, c: ContainerDep, page: Page = None) -> Response:
    """The show's audio feed, with ETag/Last-Modified (304 on conditional GET) and gzip when asked."""
    return _public_feed(show, "audio", page, request, uow, c)


@router.head("/feeds/{show}/video.xml", include_in_schema=False)
@router.get("/feeds/{show}/video.xml", response_class=Response, responses=FEED_RESPONSES)
def video_feed(show: str, request: Request, uow: UowDep, c: ContainerDep, page: Page = None) -> Response:
    """The show's video feed (the vlog: podcast:medium video)."""
    return _public_feed(show, "video", page, request, uow, c)


@router.head("/feeds/{show}/live.xml", include_in_schema=False)
@router.get("/feeds/{show}/live.xml", response_class=Response, responses=FEED_RESPONSES)
def live_feed(show: str, request: Request, uow: UowDep, c: ContainerDep, page: Page = None) -> Response:
    """The livestream archive: upcoming and live streams as podcast:liveItem, recordings as items."""
    return _public_feed(show, "live", page, request, uow, c)


@router.head("/feeds/{show}/private/{token}.xml", include_in_schema=False)
@router.get("/feeds/{show}/private/{token}.xml", response_class=Response, responses=FEED_RESPONSES)
def private_feed(show: str, token: str, request: Request, uow: UowDep, c: ContainerDep) -> Response:
    """A supporter's private feed (itunes:block): 404 for an unknown token, 410 once revoked or expired."""
    supporter = authenticate_supporter(uow, show, token)
    found = repo.show_by_id(uow.session, supporter.show_id)
    response = feed_response(request, c.feeds.private(uow, found, supporter.id, token), "private, max-age=60")
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@router.head("/private/{token}/media/{key:path}", include_in_schema=False)
@router.get("/private/{token}/media/{key:path}", response_class=Response)
def private_media(token: str, key: str, uow: UowDep, c: ContainerDep) -> Response:
    """Media through a supporter's token (public and supporter-only episodes of that show)."""
    supporter = authenticate_supporter(uow, media_show_slug(uow, key), token)
    where = locate_public_media(uow, c.storage, key, supporter_of=supporter.show_id)
    return _media_response(where, private=True)


@router.get("/private/{token}/chapters/{episode_id}.json", response_class=Response)
def private_chapters(token: str, episode_id: str, uow: UowDep) -> Response:
    """A supporter-only episode's chapters, through a supporter's token."""
    supporter = authenticate_supporter(uow, episode_show_slug(uow, episode_id), token)
    body = episode_chapters_json(uow, episode_id, supporter_of=supporter.show_id)
    return Response(body, media_type=CHAPTERS_MIME, headers={"Cache-Control": "private, max-age=60"})


@router.get("/private/{token}/transcripts/{episode_id}/{language}.{fmt}", response_class=Response)
def private_transcript(
    token: str, episode_id: str, language: str, fmt: str, uow: UowDep, c: ContainerDep
) -> Response:
    """A supporter-only episode's transcript (vtt or json), through a supporter's token."""
    if fmt not in PUBLIC_TYPES:
        raise NotFound("no such transcript", code="transcript-not-found")
    supporter = authenticate_supporter(uow, episode_show_slug(uow, episode_id), token)
    body = public_transcript(uow, c.storage, episode_id, language, fmt, supporter_of=supporter.show_id)  # type: ignore[arg-type]
    return Response(body, media_type=PUBLIC_TYPES[fmt], headers={"Cache-Control": "private, max-age=60"})


@router.head("/media/{key:path}", include_in_schema=False)
@router.get("/media/{key:path}", response_class=Response)
def media(key: str, uow: UowDep, c: ContainerDep) -> Response:
    """Published media: HEAD and byte ranges (206) from local storage, or a redirect to the object store."""
    return _media_response(locate_public_media(uow, c.storage, key), private=False)


def _media_response(where: MediaLocation, *, private: bool) -> Response:
    if where.redirect_url:
        return RedirectResponse(where.redirect_url, status_code=302)
    assert where.path is not None
    cache = "private, max-age=3600" if private else "public, max-age=31536000, immutable"
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": cache}
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
