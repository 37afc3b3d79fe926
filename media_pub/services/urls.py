"""Public URLs of a show's feeds, media, chapters and transcripts, and the feeds' podcast:guid."""

from __future__ import annotations

from typing import Literal

from media_pub.db.models import Episode, Show
from media_pub.domain.rules import podcast_guid
from media_pub.services.supporters import private_feed_url, private_media_url
from media_pub.storage.base import Storage

FeedKind = Literal["audio", "video", "live"]
FEED_KINDS: tuple[FeedKind, ...] = ("audio", "video", "live")


class Urls:
    """Public URLs of feeds, media, chapters and transcripts, from the base URL and the storage backend."""

    def __init__(self, base_url: str, storage: Storage) -> None:
        self.base = base_url.rstrip("/")
        self.storage = storage

    def feed(self, show: Show | str, kind: FeedKind = "audio", page: int | None = None) -> str:
        slug = show if isinstance(show, str) else show.slug
        url = f"{self.base}/feeds/{slug}.xml" if kind == "audio" else f"{self.base}/feeds/{slug}/{kind}.xml"
        return url if page is None or page <= 1 else f"{url}?page={page}"

    def private_feed(self, slug: str, token: str) -> str:
        return private_feed_url(self.base, slug, token)

    def media(self, key: str, token: str | None = None) -> str:
        if token is not None:
            return private_media_url(self.base, token, key)
        return self.storage.public_url(key) or f"{self.base}/media/{key}"

    def chapters(self, episode: Episode, token: str | None = None) -> str:
        where = f"{self.base}/private/{token}" if token is not None else self.base
        return f"{where}/chapters/{episode.id}.json"

    def transcript(self, episode_id: str, language: str, fmt: str = "vtt", token: str | None = None) -> str:
        where = f"{self.base}/private/{token}" if token is not None else self.base
        return f"{where}/transcripts/{episode_id}/{language}.{fmt}"


def feed_guid(show: Show, urls: Urls, kind: FeedKind) -> str:
    """podcast:guid of one of the show's feeds: fixed when the feed first moved, else from its URL."""
    return str((show.feed_guids or {}).get(kind) or podcast_guid(urls.feed(show, kind)))


def freeze_feed_guids(show: Show, urls: Urls) -> None:
    """Record every feed's podcast:guid as it is now, before the feeds' URLs change."""
    show.feed_guids = {kind: feed_guid(show, urls, kind) for kind in FEED_KINDS}
