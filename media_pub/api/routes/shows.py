"""Shows: create, list, read, edit."""

from __future__ import annotations

from fastapi import APIRouter, status

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import ShowCreate, ShowRead, ShowUpdate
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
