"""Moving a show in: create a show and its episodes from an existing RSS feed (Anchor, Libsyn, Castopod...).

What is kept exactly: every episode guid (apps must not download the back catalogue again), each
pubDate (as published_at, so apps keep the order) and the old feed's podcast:guid (the feed's identity).
Media is copied only when asked (`copy_media`): each enclosure is downloaded through the guarded fetcher
and goes through the normal upload path, then the episode is published as soon as it is processed.
Without it, episodes are drafts holding their metadata, each waiting to be published on its old date as
soon as media is uploaded to it. Imported shows are created with silence trimming and leveling off, so
times in show notes, chapters and soundbites stay right.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import ShowAlias, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import SLUG_RE, podcast_guid
from media_pub.domain.values import Chapter
from media_pub.errors import Conflict, InvalidInput, MediaPubError, TooLarge, Unavailable
from media_pub.feeds.categories import APPLE_CATEGORIES
from media_pub.feeds.importer import (
    ImportedEpisode,
    ImportedFunding,
    ImportedPerson,
    ImportedShow,
    parse_feed,
)
from media_pub.feeds.sanitize import clean_text
from media_pub.net.fetch import fetch, fetch_to_file
from media_pub.services import episodes as ep_svc
from media_pub.services import podcast_values as p20
from media_pub.services import shows as show_svc
from media_pub.services import transcripts as transcript_svc
from media_pub.services.episodes import chapters_to_json
from media_pub.services.uploads import Spooled, TrimRequest, attach_upload

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 20 * 1024 * 1024
FEED_TIMEOUT_SECONDS = 30.0
SMALL_FILE_TIMEOUT_SECONDS = 60.0  # artwork and chapters files
MEDIA_TIMEOUT_SECONDS = 3600.0  # one enclosure
MAX_CHAPTERS_BYTES = 2 * 1024 * 1024
MAX_TRANSCRIPT_BYTES = 5 * 1024 * 1024
DEFAULT_CATEGORY = "Society & Culture"
MEDIUMS = frozenset({"podcast", "music", "video", "film", "audiobook", "newsletter", "blog", "course"})
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Apple's categories before the 2019 list, as hosts that never updated still send them.
_LEGACY_CATEGORIES: dict[str, tuple[str, str | None]] = {
    "games and hobbies": ("Leisure", None),
    "games and hobbies/video games": ("Leisure", "Video Games"),
    "games and hobbies/automotive": ("Leisure", "Automotive"),
    "games and hobbies/aviation": ("Leisure", "Aviation"),
    "games and hobbies/hobbies": ("Leisure", "Hobbies"),
    "games and hobbies/other games": ("Leisure", "Games"),
    "sports and recreation": ("Sports", None),
    "sports and recreation/outdoor": ("Sports", "Wilderness"),
    "news and politics": ("News", "Politics"),
    "science and medicine": ("Science", None),
    "science and medicine/medicine": ("Health & Fitness", "Medicine"),
    "science and medicine/natural sciences": ("Science", "Natural Sciences"),
    "science and medicine/social sciences": ("Science", "Social Sciences"),
    "health": ("Health & Fitness", None),
    "health/alternative health": ("Health & Fitness", "Alternative Health"),
    "health/fitness and nutrition": ("Health & Fitness", "Fitness"),
    "health/self help": ("Education", "Self-Improvement"),
    "health/sexuality": ("Health & Fitness", "Sexuality"),
    "government and organizations": ("Government", None),
    "arts/literature": ("Arts", "Books"),
    "business/business news": ("News", "Business News"),
    "technology/tech news": ("News", "Tech News"),
    "education/language courses": ("Education", "Language Learning"),
    "education/higher education": ("Education", "Courses"),
    "education/training": ("Education", "Courses"),
    "society and culture/history": ("History", None),
}


@dataclass(frozen=True)
class ImportOptions:
    """How to import: the new show's slug (else from the title), whether to copy media, and the fetch rule.

    `allow_private` lets the fetcher reach private and loopback addresses (CLI flag, tests; never the API).
    `ignore_lock` imports a feed marked podcast:locked; the caller affirms owning the show.
    """

    slug: str | None = None
    copy_media: bool = False
    allow_private: bool = False
    ignore_lock: bool = False


@dataclass
class EpisodeOutcome:
    """What became of one <item>. media: "pending" (to be copied), "queued" (copied, processing),
    "not-copied" (draft waiting for an upload), "none" (the item had no enclosure) or "failed"."""

    id: str
    guid: str
    title: str
    status: str
    published_at: datetime | None
    enclosure_url: str | None
    media: str
    chapters_url: str | None = None
    chapters: str = "none"  # "copied", "not-copied" or "none"
    transcripts: list[dict[str, str | None]] = field(default_factory=list)
    job_id: str | None = None
    error: str | None = None


@dataclass
class ImportReport:
    """The imported show, its episodes in feed order, what could not be kept, and what the host does next."""

    slug: str
    show_id: str
    feed_url: str
    feed_guid: str | None
    source_url: str | None
    episodes: list[EpisodeOutcome]
    warnings: list[str]
    artwork_stored: bool = False
    next_steps: list[str] = field(default_factory=list)


def _http_error(url: str, status: int) -> MediaPubError:
    host = urlsplit(url).hostname or "the host"
    kind = Unavailable if status >= 500 or status in (408, 429) else InvalidInput
    return kind(f"the feed URL on {host} answered HTTP {status}", code="import-feed-unavailable")


def fetch_feed(url: str, *, allow_private: bool = False) -> bytes:
    """The feed's bytes from an http(s) URL: public addresses only (unless allowed), 20 MB, 30 s."""
    got = fetch(url, max_bytes=MAX_FEED_BYTES, timeout=FEED_TIMEOUT_SECONDS, allow_private=allow_private)
    if not 200 <= got.status < 300:
        raise _http_error(url, got.status)
    return got.body


def read_feed_file(path: Path) -> bytes:
    """A feed file's bytes, refused beyond 20 MB before reading."""
    try:
        if path.stat().st_size > MAX_FEED_BYTES:
            raise TooLarge(f"the feed is larger than {MAX_FEED_BYTES} bytes", code="import-feed-too-large")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(
            f"cannot read {path}: {exc.strerror or exc}", code="import-feed-unreadable"
        ) from None


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower().replace("&", " and ")).strip()


def map_category(category: str | None, sub: str | None, warnings: list[str]) -> tuple[str, str | None]:
    """The feed's category on Apple's current list: exact, then loosely ("and" for "&"), then legacy names."""
    given = f"{category}/{sub}" if sub else str(category)
    if not category:
        warnings.append(f"the feed has no category; set to {DEFAULT_CATEGORY!r}")
        return DEFAULT_CATEGORY, None
    current = {_key(name): name for name in APPLE_CATEGORIES}
    legacy = _LEGACY_CATEGORIES.get(f"{_key(category)}/{_key(sub)}" if sub else _key(category))
    if legacy is None and sub and _key(category) not in current:
        legacy = _LEGACY_CATEGORIES.get(_key(category))
    if legacy is not None:
        warnings.append(
            f"category {given!r} is from Apple's old list; mapped to {'/'.join(filter(None, legacy))!r}"
        )
        return legacy
    name = current.get(_key(category))
    if name is None:
        warnings.append(f"category {given!r} is not on Apple's list; set to {DEFAULT_CATEGORY!r}")
        return DEFAULT_CATEGORY, None
    if not sub:
        return name, None
    subs = {_key(s): s for s in APPLE_CATEGORIES[name]}
    if _key(sub) in subs:
        return name, subs[_key(sub)]
    warnings.append(f"subcategory {sub!r} is not on Apple's list under {name!r}; dropped")
    return name, None


def _slugify(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")[:64].strip("-")


def _web_url(value: str | None) -> str | None:
    value = clean_text(value or "").strip()
    return value if value.lower().startswith(("https://", "http://")) else None


def _kept(
    what: str,
    entries: list[dict[str, Any]],
    check: Callable[[list[Any]], Any],
    warnings: list[str],
    where: str,
) -> list[dict[str, Any]]:
    """The entries the Podcasting 2.0 rules accept (https links, short texts), each checked on its own."""
    kept: list[dict[str, Any]] = []
    for entry in entries:
        try:
            kept.extend(check([entry]) or [])
        except InvalidInput as exc:
            detail = exc.detail.replace(f"{what}[0].", "").replace(f"{what}[0]", "it")
            warnings.append(f"{where}: a {what} entry was dropped ({detail})")
    return kept


def _persons(persons: list[ImportedPerson], warnings: list[str], where: str) -> list[dict[str, Any]]:
    raw = [
        {"name": p.name[:128], "role": p.role, "group": p.group, "img": p.img, "href": p.href}
        for p in persons
    ]
    return _kept("persons", raw, p20.persons, warnings, where)


def _funding(links: list[ImportedFunding], warnings: list[str], where: str) -> list[dict[str, Any]]:
    raw = [{"url": link.url, "text": link.text[:128] or None} for link in links]
    return _kept("funding", raw, p20.funding, warnings, where)


def _soundbites(item: ImportedEpisode, warnings: list[str], where: str) -> list[dict[str, Any]]:
    raw = [
        {"start": s.start, "duration": s.duration, "title": (s.title or "")[:128] or None}
        for s in item.soundbites
    ]
    return _kept("soundbites", raw, lambda bites: p20.soundbites(bites, None), warnings, where)


def _show_fields(feed: ImportedShow, warnings: list[str]) -> dict[str, Any]:
    title = clean_text(feed.title).strip()[:500]
    if not title:
        raise InvalidInput("the feed's channel has no title", code="import-not-a-feed")
    language = (feed.language or "").strip()
    if not _LANG.match(language):
        warnings.append(f"language {language[:40]!r} is not an ISO 639 code; set to 'en'")
        language = "en"
    email = (feed.owner_email or "").strip()
    if email and not _EMAIL.match(email):
        warnings.append(f"owner e-mail {email[:100]!r} is not an e-mail address; dropped")
        email = ""
    category, subcategory = map_category(feed.category, feed.subcategory, warnings)
    return {
        "title": title,
        "description": clean_text(feed.description).strip(),
        "author": clean_text(feed.author or "")[:500],
        "owner_name": clean_text(feed.owner_name or "")[:500],
        "owner_email": email[:320],
        "language": language.lower(),
        "category": category,
        "subcategory": subcategory,
        "explicit": bool(feed.explicit),
        "show_type": feed.show_type or "episodic",
        "website": _web_url(feed.link),
        "copyright": clean_text(feed.copyright or "")[:500] or None,
        "funding": _funding(feed.funding, warnings, "the show"),
        "persons": _persons(feed.persons, warnings, "the show"),
        "locked": True if feed.locked is None else feed.locked,
        # Back-catalogue timing stays as published: only loudness is normalized.
        "trim_silence": False,
        "level": False,
    }


def _check_feed(feed: ImportedShow, options: ImportOptions, warnings: list[str]) -> list[ImportedEpisode]:
    """Refuse what cannot be imported faithfully; the items to import (first of each guid)."""
    if feed.locked and not options.ignore_lock:
        owner = f" (owner {feed.locked_owner})" if feed.locked_owner else ""
        raise Conflict(
            f"the feed is locked against imports (podcast:locked yes{owner}); unlock it at the old host, "
            "or import with ignore-lock if you own the show",
            code="import-feed-locked",
        )
    if feed.new_feed_url:
        warnings.append(f"the feed says it moved to {feed.new_feed_url[:300]} (itunes:new-feed-url)")
    if feed.block:
        warnings.append("the old feed was hidden from Apple Podcasts (itunes:block); ours is not")
    seen: set[str] = set()
    items = []
    for item in feed.episodes:
        if len(item.guid) > 500:
            raise InvalidInput(
                f"the guid {item.guid[:60]!r}... is longer than 500 characters and cannot be kept",
                code="import-guid-too-long",
            )
        if item.guid in seen:
            warnings.append(f"guid {item.guid!r} appears twice in the feed; the later item is skipped")
            continue
        seen.add(item.guid)
        items.append(item)
    return items


def _episode_fields(item: ImportedEpisode, show_explicit: bool) -> dict[str, Any]:
    def positive(n: int | None) -> int | None:
        return n if n is not None and n >= 1 else None

    return {
        "title": clean_text(item.title).strip()[:500],
        "notes": item.description_html,
        "season": positive(item.season),
        "number": positive(item.number),
        "episode_type": item.episode_type or "full",
        "explicit": show_explicit if item.explicit is None else item.explicit,
    }


def _is_json_chapters(item: ImportedEpisode) -> bool:
    kind = (item.chapters_type or "").lower()
    return "json" in kind or (not kind and urlsplit(item.chapters_url or "").path.lower().endswith(".json"))


def parse_json_chapters(data: bytes) -> list[Chapter]:
    """JSON chapters (Podcasting 2.0) as values: sorted, one per start, hidden ones (toc false) left out."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise InvalidInput("the chapters file is not JSON", code="import-chapters-invalid") from None
    items = doc.get("chapters") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InvalidInput("the chapters file has no chapters list", code="import-chapters-invalid")
    found: dict[float, Chapter] = {}
    for raw in items:
        if not isinstance(raw, dict) or raw.get("toc") is False:
            continue
        try:
            start = float(raw["startTime"])
            end = float(raw["endTime"]) if raw.get("endTime") is not None else None
        except (KeyError, TypeError, ValueError):
            continue
        if not math.isfinite(start) or start < 0 or start in found:
            continue
        found[start] = Chapter(
            start=start,
            title=clean_text(str(raw.get("title") or ""))[:500],
            end=end if end is not None and math.isfinite(end) and end > start else None,
            url=_web_url(raw.get("url") if isinstance(raw.get("url"), str) else None),
            image_url=_web_url(raw.get("img") if isinstance(raw.get("img"), str) else None),
        )
    return [found[start] for start in sorted(found)]


def _fetch_chapters(item: ImportedEpisode, allow_private: bool) -> list[Chapter]:
    got = fetch(
        item.chapters_url or "",
        max_bytes=MAX_CHAPTERS_BYTES,
        timeout=SMALL_FILE_TIMEOUT_SECONDS,
        allow_private=allow_private,
        accept="application/json+chapters, application/json;q=0.9, */*;q=0.1",
    )
    if got.status != 200:
        raise InvalidInput(f"HTTP {got.status}", code="import-chapters-unavailable")
    return parse_json_chapters(got.body)


def _fetch_artwork(url: str, allow_private: bool) -> bytes:
    got = fetch(
        url,
        max_bytes=show_svc.MAX_ARTWORK_BYTES,
        timeout=SMALL_FILE_TIMEOUT_SECONDS,
        allow_private=allow_private,
        accept="image/jpeg, image/png;q=0.9, image/*;q=0.5",
    )
    if got.status != 200:
        raise InvalidInput(f"HTTP {got.status}", code="import-artwork-unavailable")
    return got.body


@dataclass
class _Extras:
    """What copy-media fetches before anything is written: artwork bytes and chapters per guid."""

    artwork: bytes | None = None
    chapters: dict[str, list[Chapter]] = field(default_factory=dict)


def _fetch_extras(
    feed: ImportedShow, items: list[ImportedEpisode], options: ImportOptions, warnings: list[str]
) -> _Extras:
    extras = _Extras()
    if feed.image_url:
        try:
            extras.artwork = _fetch_artwork(feed.image_url, options.allow_private)
        except MediaPubError as exc:
            warnings.append(f"the show artwork could not be fetched: {exc.detail}")
    for item in items:
        if item.chapters_url and _is_json_chapters(item):
            try:
                extras.chapters[item.guid] = _fetch_chapters(item, options.allow_private)
            except MediaPubError as exc:
                warnings.append(f"episode {item.guid!r}: chapters not copied: {exc.detail}")
    return extras


def _check_free(uow: UnitOfWork, slug: str, items: list[ImportedEpisode]) -> None:
    if repo.slug_taken(uow.session, slug) or uow.session.get(ShowAlias, slug) is not None:
        raise Conflict(f"a show with slug {slug!r} exists already", code="show-exists")
    for item in items:
        if repo.episode_by_guid(uow.session, item.guid) is not None:
            raise Conflict(
                f"an episode with guid {item.guid!r} is in the catalogue already", code="episode-exists"
            )


def _choose_slug(feed: ImportedShow, options: ImportOptions) -> str:
    slug = options.slug or _slugify(feed.title)
    if not slug:
        raise InvalidInput("no slug can be made from the show's title; give one", code="invalid-slug")
    if not SLUG_RE.match(slug):
        raise InvalidInput(
            "a slug is 1 to 64 lowercase letters, digits and inner hyphens", code="invalid-slug"
        )
    return slug


def _feed_guid(feed: ImportedShow, source_url: str | None, warnings: list[str]) -> str | None:
    """The old feed's podcast:guid, else the one the Podcast Index derives from the old feed's URL."""
    if feed.podcast_guid:
        return feed.podcast_guid[:100]
    old_url = source_url or feed.feed_url
    if old_url:
        return podcast_guid(old_url)
    warnings.append("the old feed has no podcast:guid and its URL is unknown; our feed gets a new one")
    return None


def _outcome(item: ImportedEpisode, episode_id: str, status: str, options: ImportOptions) -> EpisodeOutcome:
    media = "none" if not item.has_media else "pending" if options.copy_media else "not-copied"
    return EpisodeOutcome(
        id=episode_id,
        guid=item.guid,
        title=item.title,
        status=status,
        published_at=item.pub_date,
        enclosure_url=item.enclosure_url,
        media=media,
        chapters_url=item.chapters_url,
        chapters="none" if not item.chapters_url else "not-copied",
        transcripts=[
            {"url": t.url, "type": t.type, "language": t.language, "rel": t.rel} for t in item.transcripts
        ],
    )


def _create(
    uow: UnitOfWork,
    container: Container,
    user: User,
    slug: str,
    feed: ImportedShow,
    items: list[ImportedEpisode],
    extras: _Extras,
    warnings: list[str],
    options: ImportOptions,
) -> tuple[str, list[EpisodeOutcome], bool]:
    """The show and its episodes, in the caller's transaction."""
    show = show_svc.create_show(uow, user, slug, _show_fields(feed, warnings))
    medium = (feed.medium or "podcast").lower()
    if medium in MEDIUMS:
        show.medium = medium
    else:
        warnings.append(f"podcast:medium {medium[:40]!r} is not supported; set to 'podcast'")
    stored = False
    if extras.artwork is not None:
        try:
            show_svc.set_artwork(uow, container.storage, user, slug, extras.artwork)
            stored = True
        except MediaPubError as exc:
            warnings.append(f"the show artwork was not stored: {exc.detail}")
    outcomes = []
    for item in items:
        episode = ep_svc.create_episode(uow, user, slug, _episode_fields(item, show.explicit), guid=item.guid)
        where = f"episode {item.guid!r}"
        episode.persons = _persons(item.persons, warnings, where) or None
        episode.funding = _funding(item.funding, warnings, where)
        episode.soundbites = _soundbites(item, warnings, where)
        # Published on its old date as soon as it has media (copied now or uploaded later).
        episode.publish_when_ready = item.has_media
        episode.publish_at = item.pub_date if item.has_media else None
        outcome = _outcome(item, episode.id, episode.status, options)
        chapters = extras.chapters.get(item.guid)
        if chapters is not None:
            episode.chapters = chapters_to_json(chapters)
            outcome.chapters = "copied"
        outcomes.append(outcome)
    return show.id, outcomes, stored


def _item_warnings(items: list[ImportedEpisode], options: ImportOptions, warnings: list[str]) -> None:
    for item in items:
        where = f"episode {item.guid!r}"
        if item.guid_source != "guid":
            warnings.append(f"{where} had no <guid>; kept the {item.guid_source} value apps use instead")
        if not item.has_media:
            warnings.append(f"{where} has no enclosure; it stays a draft")
        elif item.pub_date is None:
            warnings.append(f"{where} has no pubDate; it will be dated when it is published here")
        if item.chapters_url and not (options.copy_media and _is_json_chapters(item)):
            why = "copy media to copy them" if _is_json_chapters(item) else "not a JSON chapters file"
            warnings.append(f"{where}: chapters at {item.chapters_url[:300]} not copied ({why})")
        if item.transcripts and not options.copy_media:
            warnings.append(f"{where}: {len(item.transcripts)} transcript link(s) not copied (copy media)")
        if item.block:
            warnings.append(f"{where} was hidden from Apple Podcasts (itunes:block); ours is not")
    if not items:
        warnings.append("the feed has no episodes")
    images = sum(1 for item in items if item.image_url)
    if images:
        warnings.append(f"{images} episode image(s) not kept: episodes show the show's artwork")


def import_feed(
    container: Container, user: User, data: bytes, *, source_url: str | None, options: ImportOptions
) -> ImportReport:
    """Create a show owned by `user` and its episodes from feed bytes; enclosures are not fetched here.

    With copy_media the show artwork and JSON chapters are fetched before anything is written; call
    copy_media() afterwards for the enclosures (it may take long: the API runs it after responding).

    Raises:
        InvalidInput: import-unsafe-xml, import-not-a-feed, invalid-slug, import-guid-too-long.
        Conflict: show-exists (the slug), episode-exists (a guid already in the catalogue, named),
            import-feed-locked (podcast:locked yes, unless options.ignore_lock).
    """
    if len(data) > MAX_FEED_BYTES:
        raise TooLarge(f"the feed is larger than {MAX_FEED_BYTES} bytes", code="import-feed-too-large")
    feed = parse_feed(data)
    warnings: list[str] = []
    items = _check_feed(feed, options, warnings)
    slug = _choose_slug(feed, options)
    with container.uow() as uow:
        _check_free(uow, slug, items)
    extras = _fetch_extras(feed, items, options, warnings) if options.copy_media else _Extras()
    feed_guid = _feed_guid(feed, source_url, warnings)
    with container.uow() as uow:
        acting = uow.session.get(User, user.id) or user
        show_id, outcomes, stored = _create(
            uow, container, acting, slug, feed, items, extras, warnings, options
        )
        show = repo.show_by_id(uow.session, show_id)
        if feed_guid:
            show.feed_guids = {**(show.feed_guids or {}), "audio": feed_guid}
        feed_url = container.urls.feed(show)
        uow.commit()
    _item_warnings(items, options, warnings)
    if feed.image_url and not stored and not options.copy_media:
        warnings.append("the show artwork was not copied (copy media to copy it)")
    report = ImportReport(slug, show_id, feed_url, feed_guid, source_url, outcomes, warnings, stored)
    report.next_steps = next_steps(report)
    log.info("import.created show=%s episodes=%d", slug, len(outcomes))
    return report


def _spooled(path: Path, size: int) -> Spooled:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return Spooled(path, size, digest.hexdigest())


def copy_episode_media(
    container: Container, user_id: str, outcome: EpisodeOutcome, *, allow_private: bool
) -> None:
    """Download one enclosure, take it in as an upload (processing queued) and record the outcome."""
    settings = container.settings
    tmp = settings.data_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"import-{uuid.uuid4().hex}"
    try:
        got = fetch_to_file(
            outcome.enclosure_url or "",
            path,
            max_bytes=settings.max_upload_bytes,
            timeout=MEDIA_TIMEOUT_SECONDS,
            allow_private=allow_private,
        )
        spooled = _spooled(got.path, got.size)
        with container.uow() as uow:
            user = uow.session.get(User, user_id)
            if user is None:
                raise InvalidInput("the importing user is gone", code="user-not-found")
            episode = repo.episode_by_id(uow.session, outcome.id)
            chapters = list(episode.chapters or [])
            job = attach_upload(
                uow, container.storage, container.queue, user, outcome.id, spooled, TrimRequest(),
                probe_timeout=settings.probe_timeout_seconds, probe_memory_mb=settings.probe_memory_mb,
            )  # fmt: skip
            if chapters:  # in the original's timeline: processing moves them with any cut
                job.payload = {**job.payload, "source_chapters": chapters}
            outcome.job_id, outcome.status, outcome.media = job.id, episode.status, "queued"
            uow.commit()
        _copy_transcripts(container, user_id, outcome, allow_private=allow_private)
    except Exception as exc:  # one episode's failure must not stop the copy of the others
        if isinstance(exc, MediaPubError):
            error: MediaPubError = exc
        elif isinstance(exc, OSError):
            error = Unavailable(f"storing the download failed: {exc}")
        else:
            log.exception("import.media_crashed episode_id=%s", outcome.id)
            error = MediaPubError(f"internal error ({type(exc).__name__})", code="internal-error")
        outcome.media, outcome.error = "failed", f"{error.title}: {error.detail}"
        with container.uow() as uow:
            episode = repo.episode_by_id(uow.session, outcome.id)
            episode.last_error = f"media copy failed: {error.detail}"
            uow.commit()
        log.warning("import.media_failed episode_id=%s code=%s", outcome.id, error.code)
    finally:
        path.unlink(missing_ok=True)


def _copy_transcripts(
    container: Container, user_id: str, outcome: EpisodeOutcome, *, allow_private: bool
) -> None:
    """Fetch each transcript the old feed linked and take it in like an upload (validated, stored as WebVTT
    and JSON, in the original's timeline so it follows any cut); a bad one is recorded, not fatal."""
    for link in outcome.transcripts:
        url, kind = link.get("url") or "", link.get("type")
        try:
            got = fetch(url, max_bytes=MAX_TRANSCRIPT_BYTES, timeout=SMALL_FILE_TIMEOUT_SECONDS,
                        allow_private=allow_private, accept=kind or "*/*")  # fmt: skip
            if got.status != 200:
                raise _http_error(url, got.status)
            with container.uow() as uow:
                user = uow.session.get(User, user_id)
                if user is None:
                    raise InvalidInput("the importing user is gone", code="user-not-found")
                language = link.get("language") or repo.episode_by_id(uow.session, outcome.id).show.language
                transcript_svc.put_transcript(
                    uow, container.storage, user, outcome.id, language, got.body,
                    filename=urlsplit(url).path, content_type=kind, timeline="original",
                    captions=link.get("rel") == "captions",
                )  # fmt: skip
                uow.commit()
            link["copied"] = "yes"
        except MediaPubError as error:
            link["copied"] = f"no: {error.detail}"
            log.warning("import.transcript_failed episode_id=%s code=%s", outcome.id, error.code)


def copy_media(
    container: Container,
    report: ImportReport,
    user_id: str,
    *,
    allow_private: bool,
    progress: Callable[[EpisodeOutcome], None] | None = None,
) -> None:
    """Copy every pending enclosure of an import, oldest first, one at a time; failures stay on the report
    (and on the episode as last_error), the other episodes go on."""
    pending = [o for o in report.episodes if o.media == "pending"]
    pending.sort(key=lambda o: o.published_at or datetime.max.replace(tzinfo=UTC))
    for outcome in pending:
        copy_episode_media(container, user_id, outcome, allow_private=allow_private)
        if progress is not None:
            progress(outcome)
    report.next_steps = next_steps(report)


def next_steps(report: ImportReport) -> list[str]:
    """What the host does at the old host (and here) to finish the move."""
    old = report.source_url or "the old feed's URL"
    with_media = [o for o in report.episodes if o.media != "none"]
    waiting = [o for o in with_media if o.media in ("not-copied", "failed")]
    steps = []
    if waiting:
        steps.append(
            f"{len(waiting)} episode(s) have no media here yet: upload each one's file "
            "(media-pub episode upload, or PUT /api/v1/episodes/{id}/media); each is published as soon as "
            "it is processed, dated as in the old feed."
        )
    if not report.artwork_stored:
        steps.append(f"Upload the show artwork: PUT /api/v1/shows/{report.slug}/artwork (JPEG or PNG).")
    steps += [
        f"Check the new feed: media-pub feed check {report.feed_url}",
        "Only once every episode is published here: apps that follow the move drop episodes missing from "
        "the new feed.",
        f"At the old host, set <itunes:new-feed-url>{report.feed_url}</itunes:new-feed-url> in the old "
        "feed (often a 'redirect' or 'move podcast' setting).",
        f"And, where the old host allows it, make {old} answer 301 Moved Permanently to {report.feed_url}.",
        "Keep the old feed (with the tag and the redirect) up until the apps have moved: at least four "
        "weeks. Episode guids and the podcast:guid are kept, so listeners download nothing again.",
        "Imported episodes are only loudness-normalized (no silence trimming or leveling, so times in notes "
        f"and chapters stay right); turn trim_silence and level on with PATCH /api/v1/shows/{report.slug} "
        "for new episodes if wanted.",
    ]
    return steps
