"""Shows: create, list, read, edit."""

from __future__ import annotations

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import ShowCreate, ShowRead, ShowUpdate
from media_pub.bootstrap import Container
from media_pub.db.models import User
from media_pub.errors import TooLarge
from media_pub.services import shows as svc

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
