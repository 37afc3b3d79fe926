"""Direct-to-S3 uploads of an episode's media: presigned part URLs, then a verified completion.

S3 storage backend only; on the local backend every route answers 409 `direct-upload-unavailable`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from media_pub.api.deps import ContainerDep, UserDep
from media_pub.api.schemas import JobRead
from media_pub.bootstrap import Container
from media_pub.services import direct_uploads as svc

router = APIRouter(prefix="/api/v1/episodes/{episode_id}/direct-uploads", tags=["uploads"])


class DirectUploadCreate(BaseModel):
    size: Annotated[int, Field(ge=1, description="The file's size in bytes")]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$", description="The file's SHA-256, hex")]
    filename: Annotated[str | None, Field(max_length=500)] = None
    content_type: Annotated[str | None, Field(max_length=100)] = None
    start: Annotated[str | None, Field(max_length=32, description="In point: seconds or HH:MM:SS.mmm")] = None
    end: Annotated[str | None, Field(max_length=32, description="Out point: seconds or HH:MM:SS.mmm")] = None


class PartUrl(BaseModel):
    number: int
    url: str


class DirectUploadRead(BaseModel):
    upload_id: str
    part_size: int
    parts: list[PartUrl]
    expires_at: datetime  # complete before this, or the upload is aborted
    urls_expire_at: datetime  # the part URLs stop working then


class PartDone(BaseModel):
    number: Annotated[int, Field(ge=1, le=svc.MAX_PARTS)]
    etag: Annotated[str, Field(min_length=1, max_length=200)]


class DirectUploadComplete(BaseModel):
    parts: Annotated[list[PartDone], Field(min_length=1, max_length=svc.MAX_PARTS)]


def _options(c: Container) -> svc.DirectUploadOptions:
    s = c.settings
    return svc.DirectUploadOptions(
        max_bytes=s.max_upload_bytes,
        url_seconds=s.direct_upload_url_seconds,
        expires_seconds=s.direct_upload_expires_seconds,
        tmp_dir=s.data_dir / "tmp",
        probe_timeout=s.probe_timeout_seconds,
        probe_memory_mb=s.probe_memory_mb,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
def create_direct_upload(
    episode_id: str, body: DirectUploadCreate, user: UserDep, c: ContainerDep
) -> DirectUploadRead:
    """Start a direct upload: PUT each part's bytes to its URL (keep each answer's ETag), then POST
    `.../{upload_id}/complete`. Parts are `part_size` bytes, the last one the rest."""
    request = svc.DirectUploadRequest(
        size=body.size,
        sha256=body.sha256.lower(),
        filename=body.filename,
        content_type=body.content_type,
        start=body.start,
        end=body.end,
    )
    made = svc.create_direct_upload(
        c.uow, c.storage, user, episode_id, request, _options(c), datetime.now(UTC)
    )
    return _read(made)


@router.get("/{upload_id}")
def refresh_direct_upload(
    episode_id: str, upload_id: str, user: UserDep, c: ContainerDep
) -> DirectUploadRead:
    """Fresh part URLs for an upload in progress (the URLs expire before the upload does)."""
    made = svc.presign_direct_upload(
        c.uow, c.storage, user, episode_id, upload_id, _options(c), datetime.now(UTC)
    )
    return _read(made)


def _read(made: svc.PresignedUpload) -> DirectUploadRead:
    return DirectUploadRead(
        upload_id=made.upload.id,
        part_size=made.upload.part_size,
        parts=[PartUrl(number=n, url=url) for n, url in made.urls],
        expires_at=made.upload.expires_at,
        urls_expire_at=made.urls_expire_at,
    )


@router.post("/{upload_id}/complete", status_code=status.HTTP_202_ACCEPTED)
async def complete_direct_upload(
    episode_id: str, upload_id: str, body: DirectUploadComplete, user: UserDep, c: ContainerDep
) -> JobRead:
    """Join the parts and check the stored file's size and SHA-256 against the announced ones, probe it,
    then attach it to the episode. Answers 202 with the processing job; a mismatch answers 422 and the
    upload is deleted."""
    parts = [(p.number, p.etag) for p in body.parts]
    job = await run_in_threadpool(
        svc.complete_direct_upload,
        c.uow,
        c.storage,
        c.queue,
        user,
        episode_id,
        upload_id,
        parts,
        _options(c),
        datetime.now(UTC),
    )
    return JobRead.of(job)


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT)
def abort_direct_upload(episode_id: str, upload_id: str, user: UserDep, c: ContainerDep) -> Response:
    """Abort the upload: the parts sent so far are deleted."""
    svc.abort_direct_upload(c.uow, c.storage, user, episode_id, upload_id, datetime.now(UTC))
    return Response(status_code=204)
