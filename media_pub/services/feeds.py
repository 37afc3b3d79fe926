"""The show's feed: built from the catalogue when it changes, cached with its validators."""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, FeedCache, Show
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import podcast_guid
from media_pub.feeds.chapters import chapters_json
from media_pub.feeds.model import FeedChannel, FeedFunding, FeedItem, FeedPerson
from media_pub.feeds.podcast import build_feed
from media_pub.services.episodes import chapters_from_json, public_episode, publish_due
from media_pub.storage.base import Storage


@dataclass(frozen=True)
class RenderedFeed:
    body: bytes
    body_gzip: bytes
    etag: str
    last_modified: datetime
    version: int


class Urls:
    """Public URLs of feeds, media and chapters, from the service's base URL and the storage backend."""

    def __init__(self, base_url: str, storage: Storage) -> None:
        self.base = base_url.rstrip("/")
        self.storage = storage

    def feed(self, show: Show) -> str:
        return f"{self.base}/feeds/{show.slug}.xml"

    def media(self, key: str) -> str:
        return self.storage.public_url(key) or f"{self.base}/media/{key}"

    def chapters(self, episode: Episode) -> str:
        return f"{self.base}/chapters/{episode.id}.json"


def _channel(show: Show, urls: Urls) -> FeedChannel:
    feed_url = urls.feed(show)
    return FeedChannel(
        title=show.title,
        description=show.description or show.title,
        link=show.website or feed_url,
        feed_url=feed_url,
        language=show.language,
        author=show.author or show.owner_name or show.title,
        owner_name=show.owner_name or show.author,
        owner_email=show.owner_email,
        image_url=urls.media(show.artwork_key) if show.artwork_key else None,
        category=show.category,
        subcategory=show.subcategory,
        explicit=show.explicit,
        show_type=show.show_type,
        copyright=show.copyright,
        funding=[
            FeedFunding(url=f["url"], text=f.get("text", "Support the show")) for f in show.funding or []
        ],
        persons=[FeedPerson(**p) for p in show.persons or []],
        locked=show.locked,
        podcast_guid=podcast_guid(feed_url),
        last_build=show.feed_changed_at,
    )


def _item(session: Session, show: Show, episode: Episode, urls: Urls) -> FeedItem | None:
    if not episode.media_asset_id or episode.published_at is None:
        return None
    asset = repo.asset_by_id(session, episode.media_asset_id)
    return FeedItem(
        guid=episode.guid,
        title=episode.title or "Untitled episode",
        description_html=episode.notes_html or episode.title,
        link=show.website or None,
        pub_date=episode.published_at,
        enclosure_url=urls.media(asset.storage_key),
        enclosure_length=asset.byte_size,
        enclosure_type=asset.mime_type,
        duration=asset.duration,
        explicit=episode.explicit,
        episode_type=episode.episode_type,
        season=episode.season,
        number=episode.number,
        image_url=None,
        chapters_url=urls.chapters(episode) if episode.chapters else None,
    )


def render_feed(uow: UnitOfWork, show: Show, urls: Urls) -> bytes:
    """The feed's bytes for the show as the catalogue has it now."""
    items = [
        i for e in repo.published_episodes(uow.session, show.id) if (i := _item(uow.session, show, e, urls))
    ]
    return build_feed(_channel(show, urls), items)


class FeedService:
    """Serves each show's feed from a cache that is rebuilt only when the show's feed_version moves."""

    def __init__(self, urls: Urls) -> None:
        self.urls = urls
        self._memo: dict[str, RenderedFeed] = {}
        self._lock = threading.Lock()

    def get(self, uow: UnitOfWork, slug: str) -> RenderedFeed:
        if publish_due(uow):
            uow.commit()
        show = repo.show_by_slug(uow.session, slug)
        memo = self._memo.get(show.id)
        if memo is not None and memo.version == show.feed_version:
            return memo
        cache = repo.feed_cache(uow.session, show.id)
        if cache is None or cache.feed_version != show.feed_version:
            cache = self._rebuild(uow, show, cache)
        rendered = RenderedFeed(
            cache.body, cache.body_gzip, cache.etag, cache.last_modified, cache.feed_version
        )
        with self._lock:
            self._memo[show.id] = rendered
        return rendered

    def _rebuild(self, uow: UnitOfWork, show: Show, cache: FeedCache | None) -> FeedCache:
        body = render_feed(uow, show, self.urls)
        etag = '"' + hashlib.sha256(body).hexdigest()[:40] + '"'
        now = datetime.now(UTC).replace(microsecond=0)
        if cache is None:
            cache = FeedCache(
                show_id=show.id,
                feed_version=show.feed_version,
                body=b"",
                body_gzip=b"",
                etag="",
                last_modified=now,
            )
            uow.session.add(cache)
        if cache.etag != etag:
            cache.body, cache.etag, cache.last_modified = body, etag, now
            cache.body_gzip = gzip.compress(body, compresslevel=6, mtime=0)
        cache.feed_version = show.feed_version
        try:
            uow.commit()
        except IntegrityError:  # another process rebuilt it at the same moment: use theirs
            uow.session.rollback()
            fresh = repo.feed_cache(uow.session, show.id)
            assert fresh is not None
            return fresh
        return cache


def episode_chapters_json(uow: UnitOfWork, episode_id: str) -> bytes:
    """Chapters JSON of a published episode (NotFound otherwise)."""
    episode = public_episode(uow, episode_id)
    return chapters_json(
        chapters_from_json(episode.chapters), title=episode.title, podcast_name=episode.show.title
    )
