"""Queries the services need, kept in one place."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from media_pub.db.models import (
    ApiToken,
    Asset,
    Episode,
    FeedCache,
    Job,
    Show,
    ShowAlias,
    ShowMember,
    User,
)
from media_pub.errors import NotFound


def show_by_slug(session: Session, slug: str) -> Show:
    show = session.scalar(select(Show).where(Show.slug == slug))
    if show is None:
        raise NotFound(f"no show with slug {slug!r}", code="show-not-found")
    return show


def show_by_slug_or_alias(session: Session, slug: str) -> Show:
    """The show with this slug now, or the one that had it before moving."""
    show = session.scalar(select(Show).where(Show.slug == slug))
    if show is None:
        alias = session.get(ShowAlias, slug)
        show = session.get(Show, alias.show_id) if alias is not None else None
    if show is None:
        raise NotFound(f"no show with slug {slug!r}", code="show-not-found")
    return show


def slug_taken(session: Session, slug: str) -> bool:
    return session.scalar(select(Show.id).where(Show.slug == slug)) is not None


def show_by_id(session: Session, show_id: str) -> Show:
    show = session.get(Show, show_id)
    if show is None:
        raise NotFound(f"no show with id {show_id!r}", code="show-not-found")
    return show


def list_shows(session: Session) -> Sequence[Show]:
    return session.scalars(select(Show).order_by(Show.created_at)).all()


def episode_by_id(session: Session, episode_id: str) -> Episode:
    episode = session.get(Episode, episode_id)
    if episode is None:
        raise NotFound(f"no episode with id {episode_id!r}", code="episode-not-found")
    return episode


def episode_by_guid(session: Session, guid: str) -> Episode | None:
    return session.scalar(select(Episode).where(Episode.guid == guid))


def episodes_of(session: Session, show_id: str) -> Sequence[Episode]:
    stmt = select(Episode).where(Episode.show_id == show_id).order_by(Episode.created_at)
    return session.scalars(stmt).all()


def published_episodes(session: Session, show_id: str) -> Sequence[Episode]:
    stmt = select(Episode).where(Episode.show_id == show_id, Episode.status == "published")
    return session.scalars(stmt).all()


def due_episodes(session: Session, now: datetime) -> Sequence[Episode]:
    stmt = select(Episode).where(Episode.status == "ready", Episode.publish_at <= now)
    return session.scalars(stmt).all()


def asset_by_id(session: Session, asset_id: str) -> Asset:
    asset = session.get(Asset, asset_id)
    if asset is None:
        raise NotFound(f"no asset with id {asset_id!r}", code="asset-not-found")
    return asset


def asset_by_key(session: Session, key: str) -> Asset | None:
    return session.scalar(select(Asset).where(Asset.storage_key == key))


def latest_original(session: Session, episode_id: str) -> Asset | None:
    """The episode's most recently uploaded original."""
    query = (
        select(Asset)
        .where(Asset.episode_id == episode_id, Asset.role == "original")
        .order_by(Asset.created_at.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def job_by_id(session: Session, job_id: str, *, for_update: bool = False) -> Job:
    """The job; `for_update` locks its row until the transaction ends (PostgreSQL), so a check of its
    lease and the write that follows see no other writer in between."""
    job = session.get(Job, job_id, with_for_update=for_update or None)
    if job is None:
        raise NotFound(f"no job with id {job_id!r}", code="job-not-found")
    return job


def unfinished_jobs(session: Session) -> Sequence[Job]:
    return session.scalars(select(Job).where(Job.status.in_(["queued", "running"]))).all()


def user_by_name(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def token_by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))


def membership(session: Session, show_id: str, user_id: str) -> ShowMember | None:
    stmt = select(ShowMember).where(ShowMember.show_id == show_id, ShowMember.user_id == user_id)
    return session.scalar(stmt)


def feed_cache(session: Session, show_id: str, name: str = "audio") -> FeedCache | None:
    return session.get(FeedCache, (show_id, name))
