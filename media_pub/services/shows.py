"""Creating, reading and editing shows."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import object_session

from media_pub.db import repositories as repo
from media_pub.db.models import Show, ShowAlias, User
from media_pub.db.uow import FEEDS_CHANGED, UnitOfWork
from media_pub.domain.keys import show_key
from media_pub.domain.rules import Role, ShowType, validate_slug
from media_pub.errors import Conflict, InvalidInput, InvalidMedia, TooLarge
from media_pub.feeds.categories import validate_category
from media_pub.media.artwork import inspect_artwork
from media_pub.media.probe import probe_file
from media_pub.media.process import MAX_CLIP_SECONDS
from media_pub.services import podcast_values as p20
from media_pub.services.auth import grant, require_role
from media_pub.services.urls import Urls, freeze_feed_guids
from media_pub.storage.base import Storage

SHOW_FIELDS = {
    "title",
    "description",
    "author",
    "owner_name",
    "owner_email",
    "language",
    "category",
    "subcategory",
    "explicit",
    "show_type",
    "website",
    "copyright",
    "funding",
    "persons",
    "locked",
    "loudness_target",
    "trim_silence",
    "loudness_target_mono",
    "silence_threshold_db",
    "silence_min_seconds",
    "level",
    "max_silence",
    "renditions",
    "video_height",
    "medium",
    "location",
    "license",
    "txt",
    "update_frequency",
    "feed_page_size",
    "moved_to",
}
MEDIUMS = ("podcast", "music", "video", "film", "audiobook", "newsletter", "blog", "course", "mixed")
_LANG = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{2,8})*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


FEED_REASONS = ("update", "live", "liveEnd")


def touch_feed(show: Show, reason: str = "update") -> None:
    """Record that something in the show's feeds changed: the cached feeds are rebuilt, and once the
    transaction commits, hubs and Podping are told (`reason`: update, live or liveEnd)."""
    show.feed_version = (show.feed_version or 0) + 1
    show.feed_changed_at = datetime.now(UTC).replace(microsecond=0)
    show.updated_at = show.feed_changed_at
    session = object_session(show)
    if session is not None:
        changed: dict[str, tuple[str, str]] = session.info.setdefault(FEEDS_CHANGED, {})
        before = changed.get(show.id, (show.slug, "update"))[1]
        # A go-live or an end is worth more than an update: it is the one kept when both happen at once.
        changed[show.id] = (show.slug, reason if reason != "update" else before)


def _validate(fields: dict[str, Any], show: Show | None = None) -> None:
    unknown = set(fields) - SHOW_FIELDS
    if unknown:
        raise InvalidInput(f"unknown show fields: {', '.join(sorted(unknown))}")
    if "title" in fields and not str(fields["title"] or "").strip():
        raise InvalidInput("a show needs a title", code="invalid-title")
    if "language" in fields and not _LANG.match(fields["language"] or ""):
        raise InvalidInput(
            "language must be an ISO 639 code such as 'en' or 'en-us'", code="invalid-language"
        )
    if fields.get("owner_email") and not _EMAIL.match(fields["owner_email"]):
        raise InvalidInput("owner_email is not an e-mail address", code="invalid-email")
    if "show_type" in fields:
        try:
            ShowType(fields["show_type"])
        except ValueError:
            raise InvalidInput("show_type is 'episodic' or 'serial'", code="invalid-show-type") from None
    if "category" in fields or "subcategory" in fields:
        category = fields.get("category", show.category if show else None)
        subcategory = fields.get("subcategory", show.subcategory if show else None)
        validate_category(category or "", subcategory)
    for name in ("loudness_target", "loudness_target_mono"):
        if name in fields and not -31.0 <= float(fields[name]) <= -9.0:
            raise InvalidInput(f"{name} is between -31 and -9 LUFS", code="invalid-loudness-target")
    if "renditions" in fields:
        kinds = list(fields["renditions"] or [])
        if not set(kinds) <= {"mp3", "aac", "opus"}:
            raise InvalidInput("renditions are chosen from mp3, aac and opus", code="invalid-renditions")
        fields["renditions"] = ["mp3"] + [k for k in ("aac", "opus") if k in kinds]
    if "video_height" in fields and not 144 <= int(fields["video_height"]) <= 2160:
        raise InvalidInput("video_height is between 144 and 2160", code="invalid-options")
    for link in fields.get("funding") or []:
        if not str(link.get("url", "")).startswith(("https://", "http://")):
            raise InvalidInput("funding links need an http(s) url", code="invalid-funding")
    _validate_feed_fields(fields)


def _validate_feed_fields(fields: dict[str, Any]) -> None:
    """The Podcasting 2.0 values a show carries in its feeds, checked (and normalized) as episodes' are."""
    if "medium" in fields and fields["medium"] not in MEDIUMS:
        raise InvalidInput(f"medium is one of {', '.join(MEDIUMS)}", code="invalid-medium")
    if "location" in fields:
        fields["location"] = p20.location(fields["location"])
    if "license" in fields:
        fields["license"] = p20.license_(fields["license"])
    if "txt" in fields:
        fields["txt"] = p20.txt(fields["txt"])
    if "update_frequency" in fields:
        fields["update_frequency"] = _update_frequency(fields["update_frequency"])
    size = fields.get("feed_page_size")
    if size is not None and not 10 <= int(size) <= 1000:
        raise InvalidInput("feed_page_size is 10 to 1000 (or null: one complete feed)", code="invalid-paging")
    if fields.get("moved_to") is not None:  # null clears it; anything else must be an https URL
        fields["moved_to"] = p20.https_url(fields["moved_to"], "moved_to", "invalid-moved-to", required=True)


def _update_frequency(value: object) -> dict[str, Any] | None:
    """podcast:updateFrequency: text, an RFC 5545 rrule, complete, and dtstart (a time with its zone)."""
    if value is None:
        return None
    code = "invalid-frequency"
    if not isinstance(value, dict) or set(value) - {"text", "rrule", "complete", "dtstart"}:
        raise InvalidInput("update_frequency is {text, rrule, complete, dtstart}", code=code)
    text = value.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > 128:
        raise InvalidInput("update_frequency needs a text such as 'Weekly' (128 characters)", code=code)
    out: dict[str, Any] = {"text": text.strip(), "complete": bool(value.get("complete"))}
    rrule = value.get("rrule")
    if rrule not in (None, ""):
        if not isinstance(rrule, str) or "FREQ=" not in rrule.upper() or len(rrule) > 500:
            raise InvalidInput("the rrule is an RFC 5545 rule with FREQ", code=code)
        out["rrule"] = rrule.strip()
    start = value.get("dtstart")
    if start not in (None, ""):
        try:
            parsed = datetime.fromisoformat(str(start))
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise InvalidInput("dtstart is an ISO 8601 time with its zone", code=code) from None
        out["dtstart"] = parsed.isoformat()
    if "COUNT=" in str(out.get("rrule", "")).upper() and "dtstart" not in out:
        raise InvalidInput("an rrule with COUNT needs a dtstart", code=code)
    return out


def create_show(uow: UnitOfWork, user: User, slug: str, fields: dict[str, Any]) -> Show:
    """Create a show owned by `user`."""
    validate_slug(slug)
    _validate(fields)
    if "title" not in fields:
        raise InvalidInput("a show needs a title", code="invalid-title")
    if repo.slug_taken(uow.session, slug) or uow.session.get(ShowAlias, slug) is not None:
        # An old slug of a moved show stays its own: its URLs still 301 to that show's feeds.
        raise Conflict(f"a show with slug {slug!r} exists already", code="show-exists")
    show = Show(slug=slug, **fields)
    uow.session.add(show)
    uow.session.flush()
    grant(uow, show, user, Role.OWNER)
    return show


def update_show(uow: UnitOfWork, user: User, slug: str, fields: dict[str, Any]) -> Show:
    """Change some fields of a show (owner or editor)."""
    show = repo.show_by_slug(uow.session, slug)
    require_role(uow, user, show)
    _validate(fields, show)
    for name, value in fields.items():
        setattr(show, name, value)
    touch_feed(show)
    return show


def get_show(uow: UnitOfWork, user: User, slug: str) -> Show:
    show = repo.show_by_slug(uow.session, slug)
    require_role(uow, user, show)
    return show


def list_shows(uow: UnitOfWork, user: User) -> Sequence[Show]:
    """The shows `user` has a role on (all of them for admins)."""
    shows = repo.list_shows(uow.session)
    if user.is_admin:
        return shows
    return [s for s in shows if repo.membership(uow.session, s.id, user.id) is not None]


MAX_ARTWORK_BYTES = 10 * 1024 * 1024


def set_artwork(uow: UnitOfWork, storage: Storage, user: User, slug: str, data: bytes) -> Show:
    """Store new show artwork under a new, content-addressed key (apps cache artwork by URL)."""
    show = repo.show_by_slug(uow.session, slug)
    require_role(uow, user, show)
    if len(data) > MAX_ARTWORK_BYTES:
        raise TooLarge("artwork is limited to 10 MB", code="artwork-too-large")
    mime, _, _ = inspect_artwork(data)
    ext = "png" if mime == "image/png" else "jpg"
    key = show_key(show.id, f"artwork-{hashlib.sha256(data).hexdigest()[:16]}", ext)
    storage.put_bytes(key, data, content_type=mime)
    show.artwork_key = key
    touch_feed(show)
    return show


def set_bumper(
    uow: UnitOfWork,
    storage: Storage,
    user: User,
    slug: str,
    which: str,
    path: Path | None,
    *,
    probe_timeout: float,
    probe_memory_mb: int,
) -> Show:
    """Set (a probed audio file at `path`) or remove (None) the show's intro or outro clip.

    Episodes processed from now on start or end with it, crossfaded, at their own loudness.
    """
    show = repo.show_by_slug(uow.session, slug)
    require_role(uow, user, show)
    if which not in ("intro", "outro"):
        raise InvalidInput("a show has an intro and an outro", code="invalid-bumper")
    key: str | None = None
    if path is not None:
        probe = probe_file(path, timeout=probe_timeout, memory_mb=probe_memory_mb)
        if probe.kind != "audio" or not probe.sample_rate:
            raise InvalidMedia(f"the {which} must be audio", code="clip-not-audio")
        if probe.duration > MAX_CLIP_SECONDS:
            raise InvalidInput(f"the {which} is longer than {MAX_CLIP_SECONDS:g} s", code="clip-too-long")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
        key = show_key(show.id, f"{which}-{digest.hexdigest()[:16]}", probe.extension)
        storage.put_file(key, path, content_type=probe.mime_type)
    setattr(show, f"{which}_key", key)
    show.updated_at = datetime.now(UTC)
    return show


def move_show(uow: UnitOfWork, user: User, slug: str, new_slug: str, urls: Urls) -> Show:
    """Give the show a new slug (new feed URLs). The old URLs answer 301 for good, the feeds carry
    itunes:new-feed-url, and each feed keeps its podcast:guid (frozen from the old URLs)."""
    show = repo.show_by_slug(uow.session, slug)
    require_role(uow, user, show, Role.OWNER)
    validate_slug(new_slug)
    if new_slug == show.slug:
        return show
    alias = uow.session.get(ShowAlias, new_slug)
    if repo.slug_taken(uow.session, new_slug) or (alias is not None and alias.show_id != show.id):
        raise Conflict(f"the slug {new_slug!r} is taken", code="show-exists")
    freeze_feed_guids(show, urls)
    if alias is not None:  # moving back to an old slug of its own
        uow.session.delete(alias)
    if uow.session.get(ShowAlias, show.slug) is None:
        uow.session.add(ShowAlias(slug=show.slug, show_id=show.id))
    show.slug = new_slug
    touch_feed(show)
    return show
