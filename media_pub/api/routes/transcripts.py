"""Transcripts: hosts upload, list and remove them; apps fetch them as WebVTT or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.bootstrap import Container
from media_pub.db.models import Transcript, User
from media_pub.errors import InvalidInput, TooLarge
from media_pub.feeds.transcripts import MAX_BYTES
from media_pub.services import transcripts as svc

router = APIRouter(tags=["transcripts"])

_TOO_LARGE = TooLarge(f"a transcript is at most {MAX_BYTES} bytes", code="transcript-too-large")


class TranscriptRead(BaseModel):
    language: str
    format: str = Field(description="Format of the upload: vtt, srt or json")
    timeline: str = Field(description="original: made from the original recording and moved onto the edit")
    cues: int
    captions: bool
    vtt_url: str = Field(description="Public WebVTT (served once the episode is published)")
    json_url: str = Field(description="Public Podcasting 2.0 JSON (served once the episode is published)")
    created_at: datetime

    @classmethod
    def of(cls, row: Transcript, base_url: str) -> TranscriptRead:
        url = f"{base_url.rstrip('/')}/transcripts/{row.episode_id}/{row.language}"
        return cls(
            language=row.language,
            format=row.source_format,
            timeline=svc.timeline_of(row),
            cues=row.cues,
            captions=row.captions,
            vtt_url=f"{url}.vtt",
            json_url=f"{url}.json",
            created_at=row.created_at,
        )


async def _body(request: Request) -> tuple[bytes, str | None, str | None]:
    """The upload's bytes, file name and type: the raw body, or the `file` part of a multipart form."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_BYTES + 64 * 1024:
        raise _TOO_LARGE
    content_type = request.headers.get("content-type")
    if content_type and content_type.lower().startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=10) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise InvalidInput("send the transcript as the form's 'file' part", code="invalid-transcript")
            data = await file.read(MAX_BYTES + 1)
            return data, file.filename, file.content_type
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                raise _TOO_LARGE
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidInput("the client closed the connection early", code="upload-incomplete") from None
    return b"".join(chunks), None, content_type


def _put(
    c: Container,
    user: User,
    episode_id: str,
    language: str,
    upload: tuple[bytes, str | None, str | None],
    timeline: svc.Timeline,
    captions: bool,
) -> TranscriptRead:
    data, filename, content_type = upload
    with c.uow() as uow:
        row = svc.put_transcript(
            uow, c.storage, user, episode_id, language, data,
            filename=filename, content_type=content_type, timeline=timeline, captions=captions,
        )  # fmt: skip
        uow.commit()
        return TranscriptRead.of(row, c.settings.base_url)


_TYPES = ("text/vtt", "application/x-subrip", "application/json", "multipart/form-data")


@router.put(
    "/api/v1/episodes/{episode_id}/transcripts/{language}",
    openapi_extra={"requestBody": {"required": True, "content": {t: {} for t in _TYPES}}},
)
async def put_transcript(
    episode_id: str,
    language: str,
    request: Request,
    user: UserDep,
    c: ContainerDep,
    timeline: Annotated[
        Literal["published", "original"],
        Query(description="original: cue times are in the uploaded original (moved onto the edited audio)"),
    ] = "published",
    captions: Annotated[bool, Query(description='Timed for video: rel="captions" in the feed')] = False,
) -> TranscriptRead:
    """Add or replace the transcript in `language`: WebVTT, SRT or Podcasting 2.0 JSON, as the raw body or
    a multipart `file`. A file that does not parse is refused with the line, cue or segment at fault."""
    upload = await _body(request)
    return await run_in_threadpool(_put, c, user, episode_id, language, upload, timeline, captions)


@router.get("/api/v1/episodes/{episode_id}/transcripts")
def list_transcripts(episode_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> list[TranscriptRead]:
    """The episode's transcripts, one per language."""
    rows = svc.list_transcripts(uow, user, episode_id)
    return [TranscriptRead.of(row, c.settings.base_url) for row in rows]


@router.delete("/api/v1/episodes/{episode_id}/transcripts/{language}", status_code=status.HTTP_204_NO_CONTENT)
def delete_transcript(episode_id: str, language: str, uow: UowDep, user: UserDep, c: ContainerDep) -> None:
    """Remove the transcript in `language`."""
    svc.delete_transcript(uow, c.storage, user, episode_id, language)
    uow.commit()


def _public(uow: UowDep, c: ContainerDep, episode_id: str, language: str, fmt: svc.PublicFormat) -> Response:
    body = svc.public_transcript(uow, c.storage, episode_id, language, fmt)
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"}
    return Response(body, headers=headers, media_type=svc.PUBLIC_TYPES[fmt])


@router.get(
    "/transcripts/{episode_id}/{language}.vtt",
    response_class=Response,
    responses={200: {"content": {"text/vtt": {}}}},
)
def transcript_vtt(episode_id: str, language: str, uow: UowDep, c: ContainerDep) -> Response:
    """A published episode's transcript as WebVTT (with `<v Speaker>` spans), for apps and players."""
    return _public(uow, c, episode_id, language, "vtt")


@router.get(
    "/transcripts/{episode_id}/{language}.json",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def transcript_json(episode_id: str, language: str, uow: UowDep, c: ContainerDep) -> Response:
    """A published episode's transcript as Podcasting 2.0 JSON ({version, segments})."""
    return _public(uow, c, episode_id, language, "json")
