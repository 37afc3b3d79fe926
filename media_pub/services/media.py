"""Which stored objects the public may fetch, and where from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from media_pub.db import repositories as repo
from media_pub.db.models import Show
from media_pub.db.uow import UnitOfWork
from media_pub.errors import NotFound
from media_pub.services.episodes import public_episode
from media_pub.storage.base import Storage


@dataclass(frozen=True)
class MediaLocation:
    """Either a local file to serve with ranges, or a URL to redirect to."""

    content_type: str
    size: int
    path: Path | None = None
    redirect_url: str | None = None
    filename: str | None = None


def locate_public_media(
    uow: UnitOfWork, storage: Storage, key: str, *, supporter_of: str | None = None
) -> MediaLocation:
    """Renditions and posters of published episodes and show artwork are public; anything else is 404.

    Supporter-only episodes are served only with `supporter_of` set to their show's id (a supporter's
    token, already checked), and then never from a public object-store URL.
    """
    missing = NotFound("no such media", code="media-not-found")
    asset = repo.asset_by_key(uow.session, key)
    private = False
    if asset is not None:
        episode = repo.episode_by_id(uow.session, asset.episode_id)
        if asset.role not in ("rendition", "poster") or episode.status != "published":
            raise missing
        if supporter_of is not None and episode.show_id != supporter_of:
            raise missing
        if episode.supporter_only:
            if supporter_of is None:
                raise missing
            private = True
        content_type, size = asset.mime_type, asset.byte_size
        filename = f"{episode.show.slug}-{episode.id[:8]}.{key.rsplit('.', 1)[-1]}"
    elif uow.session.scalar(select(Show.id).where(Show.artwork_key == key)) is not None:
        info = storage.stat(key)
        content_type, size, filename = info.content_type or "image/jpeg", info.size, None
    else:
        raise missing
    path = storage.local_path(key)
    if path is not None:
        if not path.is_file():
            raise missing
        return MediaLocation(content_type, size, path=path, filename=filename)
    url = (None if private else storage.public_url(key)) or storage.presigned_get_url(key, filename=filename)
    return MediaLocation(content_type, size, redirect_url=url, filename=filename)


def media_show_slug(uow: UnitOfWork, key: str) -> str:
    """The slug of the show an episode's stored object belongs to (NotFound for anything else)."""
    asset = repo.asset_by_key(uow.session, key)
    if asset is None:
        raise NotFound("no such media", code="media-not-found")
    return repo.episode_by_id(uow.session, asset.episode_id).show.slug


def episode_waveform(uow: UnitOfWork, storage: Storage, episode_id: str, *, public: bool) -> bytes:
    """Waveform peaks (audiowaveform JSON) of the episode's current rendition."""
    episode = public_episode(uow, episode_id) if public else repo.episode_by_id(uow.session, episode_id)
    if not episode.media_asset_id:
        raise NotFound("the episode has no processed media yet", code="waveform-not-found")
    key = repo.asset_by_id(uow.session, episode.media_asset_id).processing.get("waveform_key")
    if not key:
        raise NotFound("no waveform was made for this rendition", code="waveform-not-found")
    return storage.read_bytes(key)
