"""Imports: move a show in from its existing RSS feed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from media_pub.api.deps import ContainerDep, UserDep
from media_pub.api.schemas import ShowRead
from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import User
from media_pub.errors import TooLarge
from media_pub.services import imports as svc

router = APIRouter(prefix="/api/v1/shows", tags=["imports"])

# JSON escaping can make the feed text longer than the feed (\" \n \uXXXX); the feed itself is checked too.
MAX_BODY_BYTES = 2 * svc.MAX_FEED_BYTES


class ShowImport(BaseModel):
    """Where the feed comes from (exactly one of url and feed) and how to import it."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2000, description="The old feed's http(s) URL")
    feed: str | None = Field(default=None, description="The feed's XML text, instead of a URL")
    slug: str | None = Field(
        default=None, max_length=64, description="The new show's slug (else from its title)"
    )
    copy_media: bool = Field(
        default=False,
        description="Copy artwork, JSON chapters and every episode's media here; episodes are then published "
        "on their old dates once processed. Without it, episodes are drafts waiting for their media.",
    )
    ignore_lock: bool = Field(
        default=False, description="Import a feed marked podcast:locked (you affirm you own the show)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> ShowImport:
        if (self.url is None) == (self.feed is None):
            raise ValueError("give exactly one of url and feed")
        return self


class ImportedEpisodeRead(BaseModel):
    id: str
    guid: str
    title: str
    status: str
    published_at: datetime | None = Field(description="The old pubDate, kept as the publication date")
    enclosure_url: str | None = Field(description="The media URL at the old host")
    media: str = Field(description="pending (being copied), queued (processing), not-copied, none or failed")
    job_id: str | None
    error: str | None
    chapters_url: str | None
    chapters: str = Field(description="copied, not-copied or none")
    transcripts: list[dict[str, str | None]] = Field(
        description="Transcript links of the old feed (not copied)"
    )


class ImportRead(BaseModel):
    show: ShowRead
    feed_url: str
    feed_guid: str | None = Field(description="podcast:guid kept from the old feed (or derived from its URL)")
    episodes_imported: int
    episodes: list[ImportedEpisodeRead]
    warnings: list[str]
    next_steps: list[str]


def _read(c: Container, report: svc.ImportReport) -> ImportRead:
    with c.uow() as uow:
        show = repo.show_by_id(uow.session, report.show_id)
        show_read = ShowRead.of(show, report.feed_url)
    return ImportRead(
        show=show_read,
        feed_url=report.feed_url,
        feed_guid=report.feed_guid,
        episodes_imported=len(report.episodes),
        episodes=[ImportedEpisodeRead.model_validate(o, from_attributes=True) for o in report.episodes],
        warnings=report.warnings,
        next_steps=report.next_steps,
    )


def _import(c: Container, user: User, body: ShowImport) -> svc.ImportReport:
    options = svc.ImportOptions(slug=body.slug, copy_media=body.copy_media, ignore_lock=body.ignore_lock)
    if body.url is not None:
        data = svc.fetch_feed(body.url)  # never allow_private: the server must not reach its own network
        return svc.import_feed(c, user, data, source_url=body.url, options=options)
    assert body.feed is not None
    data = body.feed.encode("utf-8", "surrogatepass")
    return svc.import_feed(c, user, data, source_url=None, options=options)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": ShowImport.model_json_schema()}},
            "required": True,
        }
    },
)
async def import_show(
    request: Request, response: Response, background: BackgroundTasks, user: UserDep, c: ContainerDep
) -> ImportRead:
    """Create a show from an existing RSS feed (a show leaving Anchor, Libsyn, Castopod...).

    The caller becomes the show's owner. Every episode keeps its guid exactly and its pubDate as its
    publication date; the old feed's podcast:guid is kept. Feeds are fetched from public addresses only,
    up to 20 MB and 30 s. With copy_media the media is copied after this answer (follow the episodes'
    status); `next_steps` says what to change at the old host (itunes:new-feed-url and a 301 redirect).
    """
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise TooLarge(f"the request is larger than {MAX_BODY_BYTES} bytes", code="import-feed-too-large")
    try:
        body = ShowImport.model_validate_json(bytes(data))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    report = await run_in_threadpool(_import, c, user, body)
    if any(o.media == "pending" for o in report.episodes):
        background.add_task(svc.copy_media, c, report, user.id, allow_private=False)
    response.headers["Location"] = f"/api/v1/shows/{report.slug}"
    return await run_in_threadpool(_read, c, report)
