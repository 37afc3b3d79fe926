"""Livestreams: announce, list, edit, go live, end, withdraw, and upload the recording."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import ChapterIn, EpisodePerson, JobRead
from media_pub.api.uploading import check_length, file_chunks, spool_upload
from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Livestream, User
from media_pub.db.uow import UnitOfWork
from media_pub.services import livestreams as svc
from media_pub.services.uploads import Spooled, TrimRequest

router = APIRouter(prefix="/api/v1", tags=["livestreams"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LivestreamFields(_In):
    title: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=100_000, description="Description; HTML is sanitized")
    start_at: AwareDatetime | None = Field(default=None, description="When the stream starts (approximate)")
    end_at: AwareDatetime | None = Field(default=None, description="When it is expected to end")
    content_link: str | None = Field(
        default=None, max_length=2000, description="https URL of the page where people watch or listen"
    )
    stream_url: str | None = Field(
        default=None, max_length=2000, description="https URL of the stream itself: the fallback enclosure"
    )
    stream_type: str | None = Field(
        default=None,
        max_length=100,
        description="MIME type of stream_url (audio/mpeg, video/mp4, application/x-mpegURL...); "
        "guessed from its extension if omitted",
    )
    publish_at: AwareDatetime | None = Field(
        default=None, description="Show it in the live feed from this time on (null: at once)"
    )
    audio_feed: bool | None = Field(
        default=None, description="The recording's MP3 also goes in the show's audio feed"
    )
    persons: list[EpisodePerson] | None = Field(default=None, description="Credits; null: the show's")
    chapters: list[ChapterIn] | None = Field(
        default=None, description="Chapters in the recording's timeline (moved with the pre-show trim)"
    )

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class LivestreamCreate(LivestreamFields):
    title: str = Field(min_length=1, max_length=500)
    start_at: AwareDatetime = Field(description="When the stream starts (approximate)")
    content_link: str = Field(
        max_length=2000, description="https URL of the page where people watch or listen"
    )
    guid: str | None = Field(
        default=None, max_length=500, description="A guid kept from another host (default: a new UUID)"
    )

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"guid"})


class LivestreamUpdate(LivestreamFields):
    pass


class LivestreamRead(BaseModel):
    id: str
    show: str
    guid: str
    title: str
    notes: str
    status: str = Field(description="pending, live or ended")
    start_at: datetime
    end_at: datetime | None
    content_link: str
    stream_url: str | None
    stream_type: str | None
    publish_at: datetime | None
    audio_feed: bool
    persons: list[dict[str, Any]] | None
    chapters: list[dict[str, Any]]
    went_live_at: datetime | None
    ended_at: datetime | None
    episode_id: str | None = Field(description="The recording's episode (same guid), once uploaded")
    warnings: list[str] = Field(
        default_factory=list, description="Advice that does not block announcing (e.g. no fallback stream)"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stream: Livestream, show_slug: str) -> LivestreamRead:
        computed = ("show", "notes", "warnings")
        data = {name: getattr(stream, name) for name in cls.model_fields if name not in computed}
        data["chapters"] = data["chapters"] or []
        warnings = svc.livestream_warnings(stream)
        return cls(show=show_slug, notes=stream.notes_html, warnings=warnings, **data)


def _read(uow: UnitOfWork, stream: Livestream) -> LivestreamRead:
    return LivestreamRead.of(stream, repo.show_by_id(uow.session, stream.show_id).slug)


@router.post("/shows/{show}/livestreams", status_code=status.HTTP_201_CREATED)
def create_livestream(show: str, body: LivestreamCreate, uow: UowDep, user: UserDep) -> LivestreamRead:
    """Announce a livestream: it is a pending `podcast:liveItem` in the live feed at once (or from
    `publish_at` on). Its guid never changes; the recording's episode reuses it."""
    stream = svc.create_livestream(uow, user, show, body.fields(), guid=body.guid)
    uow.commit()
    return _read(uow, stream)


@router.get("/shows/{show}/livestreams")
def list_livestreams(show: str, uow: UowDep, user: UserDep) -> list[LivestreamRead]:
    """The show's livestreams, the latest start first."""
    return [LivestreamRead.of(s, show) for s in svc.list_livestreams(uow, user, show)]


@router.get("/livestreams/{livestream_id}")
def get_livestream(livestream_id: str, uow: UowDep, user: UserDep) -> LivestreamRead:
    """One livestream."""
    return _read(uow, svc.get_livestream(uow, user, livestream_id))


@router.patch("/livestreams/{livestream_id}")
def update_livestream(
    livestream_id: str, body: LivestreamUpdate, uow: UowDep, user: UserDep
) -> LivestreamRead:
    """Edit the metadata (not the guid nor the status). `audio_feed` also applies to the recording."""
    stream = svc.update_livestream(uow, user, livestream_id, body.fields())
    uow.commit()
    return _read(uow, stream)


@router.delete("/livestreams/{livestream_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_livestream(livestream_id: str, uow: UowDep, user: UserDep) -> Response:
    """Withdraw a livestream from the feeds; 409 once a recording is attached."""
    svc.delete_livestream(uow, user, livestream_id)
    uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/livestreams/{livestream_id}/live")
def go_live(livestream_id: str, uow: UowDep, user: UserDep) -> LivestreamRead:
    """pending -> live: apps are told (Podping reason `live`). A repeat changes nothing; 409 once ended."""
    stream = svc.go_live(uow, user, livestream_id)
    uow.commit()
    return _read(uow, stream)


@router.post("/livestreams/{livestream_id}/end")
def end_livestream(livestream_id: str, uow: UowDep, user: UserDep) -> LivestreamRead:
    """live (or pending) -> ended: apps are told (Podping reason `liveEnd`). Repeating it changes nothing."""
    stream = svc.end_livestream(uow, user, livestream_id)
    uow.commit()
    return _read(uow, stream)


def _attach(c: Container, user: User, livestream_id: str, spooled: Spooled, trim: TrimRequest) -> JobRead:
    with c.uow() as uow:
        job = svc.attach_recording(
            uow, c.storage, c.queue, user, livestream_id, spooled, trim,
            probe_timeout=c.settings.probe_timeout_seconds, probe_memory_mb=c.settings.probe_memory_mb,
        )  # fmt: skip
        uow.commit()
        return JobRead.of(job)


def _check_upload(c: Container, user: User, livestream_id: str, request: Request) -> None:
    with c.uow() as uow:
        svc.recording_target(uow, user, livestream_id)
    check_length(c, request)


async def _receive(
    c: Container, user: User, livestream_id: str, chunks: AsyncIterator[bytes], trim: TrimRequest
) -> JobRead:
    spooled = await spool_upload(c, chunks)
    return await run_in_threadpool(_attach, c, user, livestream_id, spooled, trim)


@router.post("/livestreams/{livestream_id}/recording", status_code=status.HTTP_202_ACCEPTED)
async def upload_recording(
    livestream_id: str,
    request: Request,
    user: UserDep,
    c: ContainerDep,
    file: Annotated[UploadFile, File(description="The recording (video or audio)")],
    start: Annotated[str | None, Form(description="Cut the pre-show: seconds or HH:MM:SS.mmm")] = None,
    end: Annotated[str | None, Form(description="Cut the post-show: seconds or HH:MM:SS.mmm")] = None,
    frame_accurate: Annotated[bool, Form()] = False,
    poster_at: Annotated[str | None, Form()] = None,
) -> JobRead:
    """Upload the recording of an ended livestream as a multipart form. Answers 202 with the processing job.

    The first upload creates the recording's episode (the livestream's guid, title, notes and chapters);
    it is published as soon as processing succeeds. A later upload processes the same episode again.
    """
    await run_in_threadpool(_check_upload, c, user, livestream_id, request)
    try:
        trim = TrimRequest(start, end, frame_accurate, poster_at)
        return await _receive(c, user, livestream_id, file_chunks(file), trim)
    finally:
        await file.close()


@router.put(
    "/livestreams/{livestream_id}/recording",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def upload_recording_raw(
    livestream_id: str,
    request: Request,
    user: UserDep,
    c: ContainerDep,
    start: Annotated[str | None, Query(description="Cut the pre-show: seconds or HH:MM:SS.mmm")] = None,
    end: Annotated[str | None, Query(description="Cut the post-show: seconds or HH:MM:SS.mmm")] = None,
    frame_accurate: Annotated[bool, Query()] = False,
    poster_at: Annotated[str | None, Query()] = None,
) -> JobRead:
    """Upload the recording as the raw request body (as POST, for scripts). Answers 202 with the job."""
    await run_in_threadpool(_check_upload, c, user, livestream_id, request)
    trim = TrimRequest(start, end, frame_accurate, poster_at)
    return await _receive(c, user, livestream_id, request.stream(), trim)
