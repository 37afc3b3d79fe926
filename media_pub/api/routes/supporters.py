"""Supporters: listeners with a private feed (owners and editors of the show manage them)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.db.models import Supporter
from media_pub.services import supporters as svc

router = APIRouter(tags=["supporters"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SupporterCreate(_In):
    name: str = Field(min_length=1, max_length=svc.MAX_NAME)
    email: str | None = Field(default=None, max_length=svc.MAX_EMAIL)
    expires_at: AwareDatetime | None = Field(default=None, description="When the private feed stops working")


class SupporterUpdate(_In):
    expires_at: AwareDatetime | None = Field(
        description="New expiry (null: never). A past time suspends the feed until it is moved again."
    )


class SupporterRead(BaseModel):
    """A supporter as listed: never the token, nor its hash."""

    id: str
    show: str
    name: str
    email: str | None
    prefix: str = Field(description="The token's first characters, to tell supporters' URLs apart")
    status: svc.SupporterStatus
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, supporter: Supporter, show_slug: str) -> SupporterRead:
        return cls(
            id=supporter.id,
            show=show_slug,
            name=supporter.name,
            email=supporter.email,
            prefix=supporter.prefix,
            status=svc.supporter_status(supporter),
            created_at=supporter.created_at,
            expires_at=supporter.expires_at,
            revoked_at=supporter.revoked_at,
        )


class SupporterCreated(SupporterRead):
    feed_url: str = Field(description="The private feed URL with the token: given in this response only")


@router.post("/api/v1/shows/{show}/supporters", status_code=status.HTTP_201_CREATED)
def add_supporter(
    show: str, body: SupporterCreate, uow: UowDep, user: UserDep, c: ContainerDep
) -> SupporterCreated:
    """Add a supporter; the answer holds their private feed URL, which cannot be read again later."""
    supporter, token = svc.add_supporter(uow, user, show, body.name, body.email, body.expires_at)
    uow.commit()
    read = SupporterRead.of(supporter, show)
    return SupporterCreated(**read.model_dump(), feed_url=c.urls.private_feed(show, token))


@router.get("/api/v1/shows/{show}/supporters")
def list_supporters(show: str, uow: UowDep, user: UserDep) -> list[SupporterRead]:
    """The show's supporters, revoked ones included; no tokens."""
    return [SupporterRead.of(s, show) for s in svc.list_supporters(uow, user, show)]


@router.get("/api/v1/supporters/{supporter_id}")
def get_supporter(supporter_id: str, uow: UowDep, user: UserDep) -> SupporterRead:
    """One supporter; no token."""
    supporter = svc.get_supporter(uow, user, supporter_id)
    return SupporterRead.of(supporter, svc.show_of(uow, supporter).slug)


@router.patch("/api/v1/supporters/{supporter_id}")
def update_supporter(supporter_id: str, body: SupporterUpdate, uow: UowDep, user: UserDep) -> SupporterRead:
    """Change when the supporter's private feed expires."""
    supporter = svc.set_supporter_expiry(uow, user, supporter_id, body.expires_at)
    uow.commit()
    return SupporterRead.of(supporter, svc.show_of(uow, supporter).slug)


@router.delete("/api/v1/supporters/{supporter_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_supporter(supporter_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> Response:
    """Revoke the supporter's private feed for good (410 from the next request); repeating it is harmless."""
    svc.revoke_supporter(uow, user, supporter_id)
    uow.commit()
    c.feeds.forget(supporter_id)  # the token is checked on every request; this frees the rendered feed
    return Response(status_code=status.HTTP_204_NO_CONTENT)
