"""Shows: create, list, read, edit; artwork, intro and outro."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import ShowCreate, ShowRead, ShowUpdate
from media_pub.bootstrap import Container
from media_pub.db.models import User
from media_pub.errors import TooLarge
from media_pub.services import shows as svc
from media_pub.services.uploads import Spool

MAX_CLIP_BYTES = 200 * 1024 * 1024  # an intro or outro of 120 s, even as uncompressed 96 kHz audio

router = APIRouter(prefix="/api/v1/shows", tags=["shows"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_show(body: ShowCreate, uow: UowDep, user: UserDep, c: ContainerDep) -> ShowRead:
    """Create a show; the caller becomes its owner."""
    fields = body.fields()
    slug = fields.pop("slug")
    show = svc.create_show(uow, user, slug, fields)
    uow.commit()
    return ShowRead.of(show, c.urls.feed(show))


@router.get("")
def list_shows(uow: UowDep, user: UserDep, c: ContainerDep) -> list[ShowRead]:
    """The shows the caller has a role on."""
    return [ShowRead.of(s, c.urls.feed(s)) for s in svc.list_shows(uow, user)]


@router.get("/{show}")
def get_show(show: str, uow: UowDep, user: UserDep, c: ContainerDep) -> ShowRead:
    """One show, by slug."""
    found = svc.get_show(uow, user, show)
    return ShowRead.of(found, c.urls.feed(found))


@router.patch("/{show}")
def update_show(show: str, body: ShowUpdate, uow: UowDep, user: UserDep, c: ContainerDep) -> ShowRead:
    """Change some fields of a show."""
    found = svc.update_show(uow, user, show, body.fields())
    uow.commit()
    return ShowRead.of(found, c.urls.feed(found))


class ShowMove(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slug: str = Field(max_length=64, description="The new slug: the feeds' new URLs")


@router.post("/{show}/move")
def move_show(show: str, body: ShowMove, uow: UowDep, user: UserDep, c: ContainerDep) -> ShowRead:
    """Move the show to a new slug (owner). The old feed URLs answer 301 to the new ones for good, the
    feeds carry itunes:new-feed-url, and each keeps its podcast:guid."""
    found = svc.move_show(uow, user, show, body.slug, c.urls)
    uow.commit()
    return ShowRead.of(found, c.urls.feed(found))


@router.put(
    "/{show}/artwork",
    openapi_extra={"requestBody": {"content": {"image/jpeg": {}, "image/png": {}}, "required": True}},
)
async def put_artwork(show: str, request: Request, user: UserDep, c: ContainerDep) -> ShowRead:
    """Upload the show's cover art as the raw body: JPEG or PNG, square, 1400 to 3000 pixels."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > svc.MAX_ARTWORK_BYTES:
            raise TooLarge("artwork is limited to 10 MB", code="artwork-too-large")
    return await run_in_threadpool(_set_artwork, c, user, show, bytes(data))


def _set_artwork(c: Container, user: User, show: str, data: bytes) -> ShowRead:
    with c.uow() as uow:
        found = svc.set_artwork(uow, c.storage, user, show, data)
        uow.commit()
        return ShowRead.of(found, c.urls.feed(found))


@router.put(
    "/{show}/{which}",
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def put_bumper(
    show: str, which: Literal["intro", "outro"], request: Request, user: UserDep, c: ContainerDep
) -> ShowRead:
    """Upload the show's intro or outro clip (audio, up to 120 s) as the raw body.

    Episodes processed from now on start (or end) with it, crossfaded, at the episode's loudness.
    """
    with Spool(c.settings.data_dir / "tmp", MAX_CLIP_BYTES) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
    spooled = spool.finish()
    try:
        return await run_in_threadpool(_set_bumper, c, user, show, which, spooled.path)
    finally:
        spooled.path.unlink(missing_ok=True)


@router.delete("/{show}/{which}")
def delete_bumper(show: str, which: Literal["intro", "outro"], user: UserDep, c: ContainerDep) -> ShowRead:
    """Remove the show's intro or outro: episodes processed from now on go without it."""
    return _set_bumper(c, user, show, which, None)


def _set_bumper(c: Container, user: User, show: str, which: str, path: Path | None) -> ShowRead:
    with c.uow() as uow:
        found = svc.set_bumper(
            uow, c.storage, user, show, which, path,
            probe_timeout=c.settings.probe_timeout_seconds, probe_memory_mb=c.settings.probe_memory_mb,
        )  # fmt: skip
        uow.commit()
        return ShowRead.of(found, c.urls.feed(found))
