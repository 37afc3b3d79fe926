"""Receiving an upload at the edge: the size check before reading, then the body streamed into a spool."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request, UploadFile
from starlette.requests import ClientDisconnect

from media_pub.api.schemas import JobRead
from media_pub.bootstrap import Container
from media_pub.db.models import User
from media_pub.errors import InvalidInput, TooLarge
from media_pub.services.uploads import CHUNK, Spool, Spooled, TrimRequest, attach_upload


def check_length(c: Container, request: Request) -> None:
    """Refuse a body announced larger than the limit before reading any of it."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > c.settings.max_upload_bytes:
        raise TooLarge(
            f"the upload is larger than the limit of {c.settings.max_upload_bytes} bytes",
            code="upload-too-large",
        )


async def spool_upload(c: Container, chunks: AsyncIterator[bytes]) -> Spooled:
    """Stream `chunks` into a spool file (hashing, size limit); an abandoned upload leaves nothing."""
    with Spool(c.settings.data_dir / "tmp", c.settings.max_upload_bytes) as spool:
        try:
            async for chunk in chunks:
                spool.write(chunk)
        except ClientDisconnect:
            raise InvalidInput(
                "the client closed the connection before the upload ended", code="upload-incomplete"
            ) from None
    return spool.finish()


async def file_chunks(file: UploadFile) -> AsyncIterator[bytes]:
    """A multipart file part, read in chunks."""
    while chunk := await file.read(CHUNK):
        yield chunk


def attach(c: Container, user: User, episode_id: str, spooled: Spooled, trim: TrimRequest) -> JobRead:
    """Attach a received upload to the episode (probe, keep the original, queue processing): its job."""
    with c.uow() as uow:
        job = attach_upload(
            uow,
            c.storage,
            c.queue,
            user,
            episode_id,
            spooled,
            trim,
            probe_timeout=c.settings.probe_timeout_seconds,
            probe_memory_mb=c.settings.probe_memory_mb,
        )
        uow.commit()
        return JobRead.of(job)
