"""Livestreams: announce, go live, end, and publish the recording as an episode with the same guid.

A livestream is a `podcast:liveItem` in the show's live feed from its announcement (or from `publish_at`)
on. Its status moves pending -> live -> ended (or pending -> ended for a stream that never started).
The recording is an episode created once per livestream, with the livestream's guid: when it is
published, the live feed shows it as an item in place of the ended liveItem, and the audio feed carries
its MP3 rendition when `audio_feed` is set.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, Job, Livestream, Show, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import EpisodeStatus, new_episode_guid
from media_pub.errors import Conflict, InvalidInput, NotFound
from media_pub.feeds.sanitize import clean_text, sanitize_notes
from media_pub.services import podcast_values as p20
from media_pub.services.auth import require_role
from media_pub.services.episodes import parse_chapters, request_publish_when_ready
from media_pub.services.jobs import JobQueue
from media_pub.services.shows import touch_feed
from media_pub.services.uploads import Spooled, TrimRequest, attach_upload, episode_for_upload
from media_pub.storage.base import Storage

log = logging.getLogger(__name__)

LIVESTREAM_FIELDS = {
    "title", "notes", "start_at", "end_at", "content_link", "stream_url", "stream_type", "publish_at",
    "audio_feed", "persons", "chapters",
}  # fmt: skip
MAX_GUID = 500
# The fallback enclosure's type when the host gives none: guessed from the stream URL's extension.
STREAM_TYPES = {
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".m4a": "audio/mp4",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".m3u8": "application/x-mpegURL",
    ".mpd": "application/dash+xml",
}
_MIME = re.compile(r"^(audio|video|application)/[A-Za-z0-9][A-Za-z0-9.+-]{0,80}$")


class LivestreamStatus(StrEnum):
    PENDING = "pending"
    LIVE = "live"
    ENDED = "ended"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _time(fields: dict[str, Any], name: str, *, required: bool = False) -> datetime | None:
    value = fields[name]
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required", code=f"invalid-{name.replace('_', '-')}")
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(
            f"give {name} with a time zone, e.g. 2026-12-01T09:00:00Z",
            code=f"invalid-{name.replace('_', '-')}",
        )
    # Whole seconds: feeds show no more, and livestreams_due compares publish_at with feed_changed_at.
    return value.astimezone(UTC).replace(microsecond=0)


def _stream_type(url: str, given: object) -> str:
    if given not in (None, ""):
        if not isinstance(given, str) or not _MIME.match(given.strip()):
            raise InvalidInput(
                "stream_type is a MIME type such as audio/mpeg, video/mp4 or application/x-mpegURL",
                code="invalid-stream-type",
            )
        return given.strip()
    path = url.split("?", 1)[0].split("#", 1)[0].lower()
    for ext, mime in STREAM_TYPES.items():
        if path.endswith(ext):
            return mime
    raise InvalidInput("give stream_type: it cannot be told from the stream URL", code="invalid-stream-type")


def _apply_stream(stream: Livestream, fields: dict[str, Any]) -> None:
    """The fallback enclosure: an https stream URL and its type (both cleared by a null stream_url)."""
    if "stream_url" in fields:
        stream.stream_url = p20.https_url(fields["stream_url"], "stream_url", "invalid-stream-url")
        if stream.stream_url is None:
            if fields.get("stream_type"):
                raise InvalidInput("stream_type needs a stream_url", code="invalid-stream-type")
            stream.stream_type = None
            return
        stream.stream_type = _stream_type(stream.stream_url, fields.get("stream_type"))
    elif "stream_type" in fields:
        if stream.stream_url is None:
            if fields["stream_type"]:
                raise InvalidInput("stream_type needs a stream_url", code="invalid-stream-type")
            return
        stream.stream_type = _stream_type(stream.stream_url, fields["stream_type"])


def _apply(stream: Livestream, fields: dict[str, Any]) -> None:
    unknown = set(fields) - LIVESTREAM_FIELDS
    if unknown:
        raise InvalidInput(f"unknown livestream fields: {', '.join(sorted(unknown))}")
    if "title" in fields:
        stream.title = clean_text(fields["title"] or "").strip()
        if not stream.title:
            raise InvalidInput("a livestream needs a title", code="invalid-title")
    if "notes" in fields:
        stream.notes_html = sanitize_notes(fields["notes"] or "")
    if "start_at" in fields:
        stream.start_at = _time(fields, "start_at", required=True)  # type: ignore[assignment]
    if "end_at" in fields:
        stream.end_at = _time(fields, "end_at")
    if stream.end_at is not None and stream.end_at <= stream.start_at:
        raise InvalidInput("end_at must come after start_at", code="invalid-end-at")
    if "content_link" in fields:
        link = p20.https_url(fields["content_link"], "content_link", "invalid-content-link", required=True)
        stream.content_link = link  # type: ignore[assignment]
    _apply_stream(stream, fields)
    if "publish_at" in fields:
        stream.publish_at = _time(fields, "publish_at")
    if "audio_feed" in fields:
        if not isinstance(fields["audio_feed"], bool):
            raise InvalidInput("audio_feed is true or false", code="invalid-audio-feed")
        stream.audio_feed = fields["audio_feed"]
    if "persons" in fields:
        stream.persons = p20.persons(fields["persons"])
    if "chapters" in fields:
        stream.chapters = parse_chapters(fields["chapters"] or [])
    stream.updated_at = datetime.now(UTC)


def livestream_warnings(stream: Livestream) -> list[str]:
    """Advice that does not block announcing (what apps and feed checkers recommend)."""
    warnings = []
    if stream.stream_url is None:
        warnings.append(
            "no stream_url: the liveItem has no fallback <enclosure>; feed checkers flag it and some apps "
            "(Podcast Index's parser) skip such a liveItem"
        )
    if stream.end_at is None:
        warnings.append("no end_at: the Podcasting 2.0 namespace recommends an expected end")
    return warnings


def _show(uow: UnitOfWork, stream: Livestream) -> Show:
    return repo.show_by_id(uow.session, stream.show_id)


def _guid(guid: str) -> str:
    value = clean_text(guid).strip()
    if not value or len(value) > MAX_GUID or any(ch.isspace() for ch in value):
        raise InvalidInput(f"a guid is 1 to {MAX_GUID} characters without spaces", code="invalid-guid")
    return value


def _guid_taken(uow: UnitOfWork, guid: str) -> bool:
    taken = uow.session.scalar(select(Livestream.id).where(Livestream.guid == guid)) is not None
    return taken or repo.episode_by_guid(uow.session, guid) is not None


def create_livestream(
    uow: UnitOfWork, user: User, show_slug: str, fields: dict[str, Any], *, guid: str | None = None
) -> Livestream:
    """Announce a livestream (status pending) with a permanent guid: a new UUID unless the host gives one.

    It is in the live feed at once, or from `publish_at` on.
    """
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    for name in ("title", "start_at", "content_link"):
        if fields.get(name) in (None, ""):
            raise InvalidInput(f"{name} is required", code=f"invalid-{name.replace('_', '-')}")
    if guid is not None:
        guid = _guid(guid)
        if _guid_taken(uow, guid):
            raise Conflict(f"a livestream or episode with guid {guid!r} exists already", code="guid-taken")
    stream = Livestream(
        show_id=show.id,
        guid=guid or new_episode_guid(),
        status=LivestreamStatus.PENDING.value,
        notes_html="",
        audio_feed=False,
        chapters=[],
    )
    _apply(stream, fields)
    uow.session.add(stream)
    uow.session.flush()
    touch_feed(show)
    log.info("livestream.announced livestream_id=%s show=%s", stream.id, show.slug)
    return stream


def _by_id(uow: UnitOfWork, livestream_id: str) -> Livestream:
    stream = uow.session.get(Livestream, livestream_id)
    if stream is None:
        raise NotFound(f"no livestream with id {livestream_id!r}", code="livestream-not-found")
    return stream


def get_livestream(uow: UnitOfWork, user: User, livestream_id: str) -> Livestream:
    stream = _by_id(uow, livestream_id)
    require_role(uow, user, _show(uow, stream))
    return stream


def list_livestreams(uow: UnitOfWork, user: User, show_slug: str) -> Sequence[Livestream]:
    """The show's livestreams, the latest start first."""
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    query = select(Livestream).where(Livestream.show_id == show.id)
    return uow.session.scalars(query.order_by(Livestream.start_at.desc(), Livestream.id)).all()


def recording_of(uow: UnitOfWork, stream: Livestream) -> Episode | None:
    """The episode holding the livestream's recording, if one was uploaded."""
    if stream.episode_id is not None and (episode := uow.session.get(Episode, stream.episode_id)):
        return episode
    return uow.session.scalar(select(Episode).where(Episode.livestream_id == stream.id))


def update_livestream(uow: UnitOfWork, user: User, livestream_id: str, fields: dict[str, Any]) -> Livestream:
    """Edit the livestream's metadata (its guid and status stay). `audio_feed` also moves its recording."""
    stream = get_livestream(uow, user, livestream_id)
    _apply(stream, fields)
    if "audio_feed" in fields and (episode := recording_of(uow, stream)) is not None:
        episode.audio_feed = stream.audio_feed
        episode.updated_at = stream.updated_at
    touch_feed(_show(uow, stream))
    return stream


def delete_livestream(uow: UnitOfWork, user: User, livestream_id: str) -> None:
    """Withdraw a livestream; refused once a recording is attached (the episode carries its guid)."""
    stream = get_livestream(uow, user, livestream_id)
    if recording_of(uow, stream) is not None:
        raise Conflict(
            "the livestream has a recording; it stays as long as its episode does",
            code="livestream-has-recording",
        )
    show = _show(uow, stream)
    uow.session.delete(stream)
    touch_feed(show)
    log.info("livestream.deleted livestream_id=%s show=%s", livestream_id, show.slug)


def go_live(uow: UnitOfWork, user: User, livestream_id: str) -> Livestream:
    """pending -> live (a repeat answers the stream unchanged). A stream not yet shown is shown now."""
    stream = get_livestream(uow, user, livestream_id)
    if stream.status == LivestreamStatus.LIVE:
        return stream
    if stream.status != LivestreamStatus.PENDING:
        raise Conflict(
            f"a livestream that is {stream.status} cannot go live", code="livestream-status-conflict"
        )
    now = _now()
    stream.status = LivestreamStatus.LIVE.value
    stream.went_live_at = now
    if stream.publish_at is not None and stream.publish_at > now:
        stream.publish_at = now
    stream.updated_at = now
    touch_feed(_show(uow, stream), reason="live")
    log.info("livestream.live livestream_id=%s", stream.id)
    return stream


def end_livestream(uow: UnitOfWork, user: User, livestream_id: str) -> Livestream:
    """live or pending -> ended (a repeat answers the stream unchanged)."""
    stream = get_livestream(uow, user, livestream_id)
    if stream.status == LivestreamStatus.ENDED:
        return stream
    now = _now()
    stream.status = LivestreamStatus.ENDED.value
    stream.ended_at = stream.updated_at = now
    touch_feed(_show(uow, stream), reason="liveEnd")
    log.info("livestream.ended livestream_id=%s", stream.id)
    return stream


def recording_target(uow: UnitOfWork, user: User, livestream_id: str) -> Livestream:
    """Check, before any byte is read, that `user` may upload this livestream's recording now.

    The stream must have ended (POST .../end first): an upload never ends a stream by itself, so a
    mistaken upload cannot tell apps that a running stream is over.
    """
    stream = get_livestream(uow, user, livestream_id)
    if stream.status != LivestreamStatus.ENDED:
        raise Conflict(
            f"the livestream is {stream.status}; end it before uploading its recording",
            code="livestream-not-ended",
        )
    episode = recording_of(uow, stream)
    if episode is not None:
        episode_for_upload(uow, user, episode.id)  # refuses while the recording is being processed
    return stream


def _recording_episode(uow: UnitOfWork, stream: Livestream) -> Episode:
    """The recording's episode, created on the first upload with the livestream's guid and metadata."""
    episode = recording_of(uow, stream)
    if episode is None:
        if repo.episode_by_guid(uow.session, stream.guid) is not None:
            raise Conflict(f"another episode has the livestream's guid {stream.guid!r}", code="guid-taken")
        episode = Episode(
            show_id=stream.show_id,
            guid=stream.guid,
            title=stream.title,
            notes_html=stream.notes_html,
            chapters=list(stream.chapters or []),
            persons=stream.persons,
            audio_feed=stream.audio_feed,
            livestream_id=stream.id,
            status=EpisodeStatus.DRAFT.value,
        )
        uow.session.add(episode)
        uow.session.flush()
        log.info("livestream.recording_episode livestream_id=%s episode_id=%s", stream.id, episode.id)
    stream.episode_id = episode.id
    return episode


def attach_recording(
    uow: UnitOfWork,
    storage: Storage,
    queue: JobQueue,
    user: User,
    livestream_id: str,
    spooled: Spooled,
    trim: TrimRequest,
    *,
    probe_timeout: float,
    probe_memory_mb: int,
) -> Job:
    """Keep the spooled recording as the livestream's episode's original and queue its processing job.

    The first upload creates the episode; later ones process the same episode again (same guid). The
    episode is published as soon as processing succeeds; the livestream's chapters, in the recording's
    timeline, move with the pre-show trim. The spool file is always removed.
    """
    try:
        stream = recording_target(uow, user, livestream_id)
        episode = _recording_episode(uow, stream)
    except BaseException:
        spooled.path.unlink(missing_ok=True)
        raise
    job = attach_upload(
        uow, storage, queue, user, episode.id, spooled, trim,
        probe_timeout=probe_timeout, probe_memory_mb=probe_memory_mb,
    )  # fmt: skip
    if stream.chapters:
        job.payload = {**job.payload, "source_chapters": list(stream.chapters)}
    if episode.status == EpisodeStatus.PROCESSING:  # a published recording stays published meanwhile
        request_publish_when_ready(episode)
    return job


def livestreams_due(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Bump the feeds of shows with a livestream whose `publish_at` has come since their feeds last changed.

    Idempotent: the show's `feed_changed_at` moves to at least `publish_at`, so each time counts once.
    Returns how many livestreams came due.
    """
    now = now or datetime.now(UTC)
    query = (
        select(Livestream, Show)
        .join(Show, Show.id == Livestream.show_id)
        .where(Livestream.publish_at <= now, Show.feed_changed_at < Livestream.publish_at)
    )
    rows = uow.session.execute(query).all()
    for stream, show in rows:
        assert stream.publish_at is not None
        touch_feed(show)
        show.feed_changed_at = max(show.feed_changed_at, stream.publish_at)
        log.info("livestream.shown livestream_id=%s show=%s", stream.id, show.slug)
    return len(rows)
