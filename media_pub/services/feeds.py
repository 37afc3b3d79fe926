"""A show's feeds (audio, video, livestream archive, supporters'), built from the catalogue when it changes.

Each public feed is cached with its validators, per show and feed name, and rebuilt only when the show's
feed_version moves; private (supporter) feeds are rendered per supporter and kept in memory the same way.

A public feed served from this process's memo is checked against the database at most `FRESH_SECONDS`
after the last check (other API processes write the database too); a feed change committed in this
process ends every such grace at once (`changed`, called after the commit), so its own edits show on
the next request.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from media_pub.db import repositories as repo
from media_pub.db.models import Asset, Episode, FeedCache, Livestream, Show, ShowAlias, Transcript
from media_pub.db.uow import UnitOfWork
from media_pub.errors import NotFound
from media_pub.feeds.chapters import chapters_json
from media_pub.feeds.ext_podcasting20 import sri_sha256
from media_pub.feeds.model import (
    FeedAlternateEnclosure,
    FeedChannel,
    FeedContentLink,
    FeedFunding,
    FeedItem,
    FeedLicense,
    FeedLiveItem,
    FeedLocation,
    FeedPerson,
    FeedSoundbite,
    FeedSource,
    FeedTrailer,
    FeedTranscript,
    FeedTxt,
    FeedUpdateFrequency,
)
from media_pub.feeds.podcast import build_feed, order_items
from media_pub.services.episodes import chapters_from_json, public_episode, publish_due
from media_pub.services.livestreams import livestreams_due
from media_pub.services.urls import FeedKind, Urls, feed_guid

TRANSCRIPT_TYPES = {"vtt": "text/vtt", "json": "application/json"}
DUE_CHECK_SECONDS = 1.0  # a feed request looks for due episodes at most this often (per process)
MEMO_LIMIT = 512  # rendered feeds kept in memory per process (public feeds also live in the database)
FRESH_SECONDS = 1.0  # a public feed is served from memory without asking the database for this long


@dataclass(frozen=True)
class RenderedFeed:
    body: bytes
    body_gzip: bytes
    etag: str
    last_modified: datetime
    version: int


@dataclass(slots=True)
class _Checked:
    """A public feed in memory: when it was checked against the database, and the feed-change commits of
    this process by then; `revalidating` once a request has gone to check it again."""

    at: float
    commits: int
    show_id: str
    feed: RenderedFeed
    revalidating: bool = False


@dataclass(frozen=True)
class Moved:
    """The feed lives elsewhere now: answer 301 with this URL."""

    url: str


# --- from catalogue rows to feed values ---------------------------------------------------------------


def _persons(raw: list[dict[str, Any]] | None) -> list[FeedPerson]:
    return [FeedPerson(**{k: v for k, v in p.items() if k in _PERSON_KEYS}) for p in raw or []]


_PERSON_KEYS = {"name", "role", "group", "img", "href"}


def _funding(raw: list[dict[str, Any]] | None) -> list[FeedFunding]:
    return [FeedFunding(url=f["url"], text=f.get("text") or "Support the show") for f in raw or []]


def _locations(raw: dict[str, Any] | None) -> list[FeedLocation]:
    if not raw or not raw.get("text"):
        return []
    keys = ("geo", "osm", "rel", "country")
    return [FeedLocation(text=raw["text"], **{k: raw.get(k) for k in keys})]


def _license(raw: dict[str, Any] | None) -> FeedLicense | None:
    return FeedLicense(slug=raw["slug"], url=raw.get("url")) if raw and raw.get("slug") else None


def _txts(raw: list[dict[str, Any]] | None) -> list[FeedTxt]:
    return [FeedTxt(text=t["text"], purpose=t.get("purpose")) for t in raw or [] if t.get("text")]


def _update_frequency(raw: dict[str, Any] | None) -> FeedUpdateFrequency | None:
    if not raw or not raw.get("text"):
        return None
    start = raw.get("dtstart")
    return FeedUpdateFrequency(
        text=raw["text"],
        rrule=raw.get("rrule"),
        complete=bool(raw.get("complete")),
        dtstart=datetime.fromisoformat(start) if start else None,
    )


@dataclass
class _Catalogue:
    """What the feeds of one show read, loaded once per render."""

    show: Show
    episodes: list[Episode]
    assets: dict[str, Asset]
    transcripts: dict[str, list[Transcript]] = field(default_factory=dict)
    livestreams: list[Livestream] = field(default_factory=list)


def _load(session: Session, show: Show, now: datetime) -> _Catalogue:
    episodes = list(repo.published_episodes(session, show.id))
    ids = [e.id for e in episodes]
    assets = {a.id: a for a in session.scalars(select(Asset).where(Asset.episode_id.in_(ids)))} if ids else {}
    transcripts: dict[str, list[Transcript]] = {}
    if ids:
        rows = session.scalars(
            select(Transcript).where(Transcript.episode_id.in_(ids)).order_by(Transcript.language)
        )
        for row in rows:
            transcripts.setdefault(row.episode_id, []).append(row)
    livestreams = [
        ls
        for ls in session.scalars(select(Livestream).where(Livestream.show_id == show.id))
        if ls.publish_at is None or ls.publish_at <= now
    ]
    return _Catalogue(show, episodes, assets, transcripts, livestreams)


def _main_asset(cat: _Catalogue, episode: Episode) -> Asset | None:
    return cat.assets.get(episode.media_asset_id or "")


def _renditions(cat: _Catalogue, main: Asset) -> dict[str, Asset]:
    ids = (main.processing or {}).get("renditions") or {}
    return {kind: cat.assets[aid] for kind, aid in ids.items() if aid in cat.assets}


def _in_audio_feed(cat: _Catalogue, episode: Episode) -> bool:
    main = _main_asset(cat, episode)
    if main is None:
        return False
    if episode.audio_feed is not None:
        return episode.audio_feed and (main.kind == "audio" or "mp3" in _renditions(cat, main))
    return main.kind == "audio" and episode.livestream_id is None


def _alternates(
    cat: _Catalogue, main: Asset, chosen: Asset, urls: Urls, token: str | None, *, audio_only: bool
) -> list[FeedAlternateEnclosure]:
    out = []
    for kind, asset in sorted(_renditions(cat, main).items(), key=lambda kv: kv[1].id != chosen.id):
        if asset.role != "rendition" or (audio_only and asset.kind != "audio"):
            continue
        out.append(
            FeedAlternateEnclosure(
                type=asset.mime_type,
                sources=[FeedSource(uri=urls.media(asset.storage_key, token))],
                length=asset.byte_size,
                bitrate=float(asset.bitrate) if asset.bitrate else None,
                height=asset.height if asset.kind == "video" else None,
                title={"mp3": "MP3", "aac": "AAC", "opus": "Opus", "video": "Video"}.get(kind, kind),
                codecs=asset.codec,
                default=asset.id == chosen.id,
                integrity=sri_sha256(asset.sha256),
            )
        )
    return out


def _item(
    cat: _Catalogue, episode: Episode, urls: Urls, kind: FeedKind, token: str | None
) -> FeedItem | None:
    main = _main_asset(cat, episode)
    if main is None or episode.published_at is None:
        return None
    audio_only = kind == "audio"
    enclosure = main
    if audio_only and main.kind != "audio":
        mp3 = _renditions(cat, main).get("mp3")
        if mp3 is None:
            return None
        enclosure = mp3
    show = cat.show
    # A supporter-only episode's extras are served under the token too.
    extras_token = token if episode.supporter_only else None
    transcripts = [
        FeedTranscript(
            url=urls.transcript(episode.id, t.language, fmt, extras_token),
            type=mime,
            language=t.language,
            rel="captions" if t.captions and fmt == "vtt" else None,
        )
        for t in cat.transcripts.get(episode.id, [])
        for fmt, mime in TRANSCRIPT_TYPES.items()
    ]
    return FeedItem(
        guid=episode.guid,
        title=episode.title or "Untitled episode",
        description_html=episode.notes_html or episode.title,
        link=show.website or None,
        pub_date=episode.published_at,
        enclosure_url=urls.media(enclosure.storage_key, token),
        enclosure_length=enclosure.byte_size,
        enclosure_type=enclosure.mime_type,
        duration=enclosure.duration,
        explicit=episode.explicit,
        episode_type=episode.episode_type,
        season=episode.season,
        number=episode.number,
        image_url=None,
        chapters_url=urls.chapters(episode, extras_token) if episode.chapters else None,
        persons=_persons(episode.persons),
        season_name=episode.season_name,
        episode_display=episode.episode_display,
        funding=_funding(episode.funding),
        locations=_locations(episode.location),
        transcripts=transcripts,
        soundbites=[
            FeedSoundbite(start=float(s["start"]), duration=float(s["duration"]), title=s.get("title"))
            for s in episode.soundbites or []
        ],
        license=_license(episode.license),
        txts=_txts(episode.txt),
        alternate_enclosures=_alternates(cat, main, enclosure, urls, token, audio_only=audio_only),
    )


def _live_item(cat: _Catalogue, stream: Livestream) -> FeedLiveItem:
    return FeedLiveItem(
        guid=stream.guid,
        title=stream.title,
        status=stream.status,
        start=stream.start_at,
        end=_live_end(stream),
        content_links=[FeedContentLink(href=stream.content_link, text=f"Watch {stream.title}")],
        description_html=stream.notes_html or stream.title,
        enclosure_url=stream.stream_url,
        enclosure_type=stream.stream_type if stream.stream_url else None,
        persons=_persons(stream.persons),
    )


def _live_end(stream: Livestream) -> datetime | None:
    """The real end once known (when after the announced start), else the expected one."""
    if stream.ended_at is not None and stream.ended_at > stream.start_at:
        return stream.ended_at
    return stream.end_at


def _trailers(items: list[FeedItem]) -> list[FeedTrailer]:
    return [
        FeedTrailer(
            url=i.enclosure_url,
            title=i.title,
            pub_date=i.pub_date,
            length=i.enclosure_length,
            type=i.enclosure_type,
            season=i.season,
        )
        for i in items
        if i.episode_type == "trailer"
    ]


@dataclass(frozen=True)
class FeedOptions:
    """Service-wide feed settings: WebSub hubs and whether Podping notifications are sent."""

    hubs: tuple[str, ...] = ()
    podping: bool = False


def _channel(
    cat: _Catalogue,
    urls: Urls,
    kind: FeedKind,
    options: FeedOptions,
    items: list[FeedItem],
    *,
    feed_url: str,
    last_build: datetime,
    private: bool = False,
    moved: bool = False,
) -> FeedChannel:
    show = cat.show
    medium = "video" if kind != "audio" else (show.medium if show.medium != "video" else "podcast")
    titles = {"audio": show.title, "video": f"{show.title} (video)", "live": f"{show.title} (live)"}
    return FeedChannel(
        title=titles[kind] + (" (supporters)" if private else ""),
        description=show.description or show.title,
        link=show.website or urls.feed(show, kind),
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
        funding=_funding(show.funding),
        persons=_persons(show.persons),
        locked=show.locked,
        # A private feed is no public feed's copy: it gets no podcast:guid (indexes key feeds by it).
        podcast_guid="" if private else feed_guid(show, urls, kind),
        last_build=last_build,
        new_feed_url=None if private else _new_feed_url(show, urls, kind, moved),
        block=private,
        medium=medium,
        locations=_locations(show.location),
        license=_license(show.license),
        txts=_txts(show.txt),
        update_frequency=_update_frequency(show.update_frequency),
        uses_podping=True if options.podping and not private else None,
        trailers=_trailers(items),
        hubs=[] if private else list(options.hubs),
        live_items=[_live_item(cat, s) for s in cat.livestreams if kind == "live" and not _replayed(cat, s)],
    )


def _new_feed_url(show: Show, urls: Urls, kind: FeedKind, moved: bool) -> str | None:
    """itunes:new-feed-url: where the audio feed moved to (another host), or the feed's own URL after a
    move here (Apple asks for it in the new feed)."""
    if kind == "audio" and show.moved_to:
        return show.moved_to
    return urls.feed(show, kind) if moved else None


def _replayed(cat: _Catalogue, stream: Livestream) -> bool:
    """The stream's recording is published: the archive item (same guid) stands for it."""
    return any(e.livestream_id == stream.id for e in cat.episodes if e.media_asset_id)


def _selected(cat: _Catalogue, kind: FeedKind, *, supporter: bool) -> list[Episode]:
    out = []
    for episode in cat.episodes:
        if episode.supporter_only and not supporter:
            continue
        main = _main_asset(cat, episode)
        if main is None:
            continue
        if kind == "audio":
            bonus = supporter and episode.supporter_only
            has_audio = main.kind == "audio" or "mp3" in _renditions(cat, main)
            ok = (bonus and has_audio) or _in_audio_feed(cat, episode)
        elif kind == "video":
            ok = main.kind == "video" and episode.livestream_id is None
        else:
            ok = episode.livestream_id is not None
        if ok:
            out.append(episode)
    return out


def _page_of(items: list[FeedItem], size: int | None, page: int) -> list[FeedItem]:
    if size is None:
        return items
    return items[(page - 1) * size : page * size]


def render_feed(
    uow: UnitOfWork,
    show: Show,
    urls: Urls,
    kind: FeedKind = "audio",
    *,
    options: FeedOptions | None = None,
    page: int | None = None,
    token: str | None = None,
    now: datetime | None = None,
    last_build: datetime | None = None,
) -> bytes:
    """One of the show's feeds as the catalogue has it now; `token` renders a supporter's private feed.

    `last_build` is its lastBuildDate (default: when the show last changed).
    """
    options = options or FeedOptions()
    cat = _load(uow.session, show, now or datetime.now(UTC))
    private = token is not None
    episodes = _selected(cat, kind, supporter=private)
    items = order_items([i for e in episodes if (i := _item(cat, e, urls, kind, token))], show.show_type)
    moved = uow.session.scalar(select(ShowAlias.slug).where(ShowAlias.show_id == show.id)) is not None
    size = None if private else show.feed_page_size
    number = max(1, page or 1)
    pages = max(1, -(-len(items) // size)) if size else 1
    if number > pages:
        raise NotFound(f"the feed has {pages} pages", code="feed-page-not-found")
    links: list[tuple[str, str]] = []
    if size and pages > 1:  # RFC 5005 section 3: a paged feed
        links.append(("first", urls.feed(show, kind)))
        if number > 1:
            links.append(("previous", urls.feed(show, kind, number - 1)))
        if number < pages:
            links.append(("next", urls.feed(show, kind, number + 1)))
        links.append(("last", urls.feed(show, kind, pages)))
    feed_url = urls.private_feed(show.slug, token) if token is not None else urls.feed(show, kind, number)
    channel = _channel(
        cat, urls, kind, options, items, feed_url=feed_url, private=private, moved=moved,
        last_build=last_build or show.feed_changed_at,
    )  # fmt: skip
    if links:
        channel = replace(channel, page_links=links)
    return build_feed(channel, _page_of(items, size, number))


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:40] + '"'


class FeedService:
    """Serves each show's feeds from a cache that is rebuilt only when the show's feed_version moves."""

    def __init__(self, urls: Urls, options: FeedOptions | None = None) -> None:
        self.urls = urls
        self.options = options or FeedOptions()
        self._memo: dict[tuple[str, str], RenderedFeed] = {}  # private feeds: (show id, supporter)
        self._public: dict[tuple[str, str], _Checked] = {}  # public feeds: (slug, feed name)
        self._lock = threading.Lock()
        self._changes = 0  # feed changes committed through this container: a memo checked before is stale
        self._due_at = -math.inf

    def _due(self, uow: UnitOfWork) -> None:
        """Publish what has come due before serving (the scheduler does it too, every few seconds); at
        most once a second per process, since the check costs most of a cached feed's time."""
        now = time.monotonic()
        if now - self._due_at < DUE_CHECK_SECONDS:
            return
        self._due_at = now
        changed = publish_due(uow)
        changed += livestreams_due(uow)
        if changed:
            uow.commit()

    def changed(self) -> None:
        """A feed change was committed in this process (the unit of work says so after each commit)."""
        with self._lock:
            self._changes += 1

    def fresh(self, slug: str, kind: FeedKind = "audio") -> RenderedFeed | None:
        """A public feed (first page) from memory, without the database: only when this process checked it
        against the database less than FRESH_SECONDS ago and has committed no feed change since.

        From half that age on, the first caller gets None (it goes to `get`, which checks again) while
        the others still get the memo, so a busy feed is checked by one request, not by a crowd at once.
        """
        found = self._public.get((slug, kind))
        if found is None or found.commits != self._changes:
            return None
        age = time.monotonic() - found.at
        if age >= FRESH_SECONDS or (age >= FRESH_SECONDS / 2 and not found.revalidating):
            found.revalidating = True
            return None
        return found.feed

    def get(
        self, uow: UnitOfWork, slug: str, kind: FeedKind = "audio", page: int | None = None
    ) -> RenderedFeed | Moved:
        """A public feed, or where it moved to (an older slug of the show, or a feed moved away)."""
        checked_at, commits = time.monotonic(), self._changes  # before any read: a later commit ends it
        self._due(uow)
        show = uow.session.scalar(select(Show).where(Show.slug == slug))
        if show is None:
            alias = uow.session.get(ShowAlias, slug)
            if alias is None:
                raise NotFound(f"no show with slug {slug!r}", code="show-not-found")
            return Moved(self.urls.feed(repo.show_by_id(uow.session, alias.show_id), kind, page))
        if show.moved_to and kind == "audio":
            return Moved(show.moved_to)
        name = kind if page is None or page <= 1 else f"{kind}:{page}"
        memo = self._public.get((slug, name))
        rendered = memo.feed if memo is not None and memo.show_id == show.id else None
        if rendered is None or rendered.version != show.feed_version:
            cache = repo.feed_cache(uow.session, show.id, name)
            if cache is None or cache.feed_version != show.feed_version:
                cache = self._rebuild(uow, show, kind, page, name, cache)
            rendered = RenderedFeed(
                cache.body, cache.body_gzip, cache.etag, cache.last_modified, cache.feed_version
            )
        with self._lock:
            if (slug, name) not in self._public and len(self._public) >= MEMO_LIMIT:
                del self._public[next(iter(self._public))]  # the oldest (dicts keep insertion order)
            self._public[(slug, name)] = _Checked(checked_at, commits, show.id, rendered)
        return rendered

    def private(self, uow: UnitOfWork, show: Show, supporter_id: str, token: str) -> RenderedFeed:
        """A supporter's feed: public and supporter-only episodes, enclosures under the token."""
        self._due(uow)
        key = (show.id, f"private:{supporter_id}")
        memo = self._memo.get(key)
        if memo is not None and memo.version == show.feed_version:
            return memo
        body = render_feed(uow, show, self.urls, "audio", options=self.options, token=token)
        rendered = RenderedFeed(
            body,
            gzip.compress(body, compresslevel=6, mtime=0),
            _etag(body),
            show.feed_changed_at.replace(microsecond=0),
            show.feed_version,
        )
        with self._lock:
            if len(self._memo) >= MEMO_LIMIT:  # drop the oldest (dicts keep insertion order)
                del self._memo[next(iter(self._memo))]
            self._memo[key] = rendered
        return rendered

    def forget(self, supporter_id: str) -> None:
        """Drop a revoked supporter's rendered feed at once."""
        with self._lock:
            for key in [k for k in self._memo if k[1] == f"private:{supporter_id}"]:
                del self._memo[key]

    def _rebuild(
        self,
        uow: UnitOfWork,
        show: Show,
        kind: FeedKind,
        page: int | None,
        name: str,
        cache: FeedCache | None,
    ) -> FeedCache:
        """Render the feed again; its validators (and lastBuildDate) move only when its content did: a
        change elsewhere in the show (another feed, a supporter-only episode) leaves it as it was."""

        def render(last_build: datetime) -> bytes:
            return render_feed(
                uow, show, self.urls, kind, options=self.options, page=page, last_build=last_build
            )

        now = datetime.now(UTC).replace(microsecond=0)
        if cache is not None and cache.etag and _etag(render(cache.last_modified)) == cache.etag:
            body = cache.body  # the same bytes as before: only the version is brought up to date
        else:
            body = render(now)
        return self._store(uow, show, name, cache, body, now)

    def _store(
        self, uow: UnitOfWork, show: Show, name: str, cache: FeedCache | None, body: bytes, now: datetime
    ) -> FeedCache:
        etag = _etag(body)
        if cache is None:
            cache = FeedCache(
                show_id=show.id,
                name=name,
                feed_version=show.feed_version,
                body=b"",
                body_gzip=b"",
                etag="",
                last_modified=now,
            )
            uow.session.add(cache)
        if cache.etag != etag:  # the validators move exactly when the bytes do
            cache.body, cache.etag, cache.last_modified = body, etag, now
            cache.body_gzip = gzip.compress(body, compresslevel=6, mtime=0)
        cache.feed_version = show.feed_version
        try:
            uow.commit()
        except IntegrityError:  # another process rebuilt it at the same moment: use theirs
            uow.session.rollback()
            fresh = repo.feed_cache(uow.session, show.id, name)
            assert fresh is not None
            return fresh
        return cache


def episode_chapters_json(uow: UnitOfWork, episode_id: str, *, supporter_of: str | None = None) -> bytes:
    """Chapters JSON of a published episode (NotFound otherwise; see public_episode for `supporter_of`)."""
    episode = public_episode(uow, episode_id, supporter_of=supporter_of)
    return chapters_json(
        chapters_from_json(episode.chapters), title=episode.title, podcast_name=episode.show.title
    )
