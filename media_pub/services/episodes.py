"""Creating, editing and publishing episodes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, Job, Show, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import EpisodeStatus, EpisodeType, JobStatus, check_transition, new_episode_guid
from media_pub.domain.values import Chapter
from media_pub.errors import Conflict, InvalidInput, NotFound
from media_pub.feeds.sanitize import clean_text, sanitize_notes
from media_pub.media.process import parse_timestamp
from media_pub.services import podcast_values as p20
from media_pub.services.auth import require_role
from media_pub.services.jobs import JobQueue, create_job
from media_pub.services.shows import touch_feed

EPISODE_FIELDS = {
    "title", "notes", "season", "number", "episode_type", "explicit", "chapters",
    "persons", "funding", "location", "license", "txt", "soundbites", "season_name", "episode_display",
    "supporter_only", "audio_feed",
}  # fmt: skip
RETAG_JOB = "media.retag"


def chapters_from_json(items: list[dict[str, Any]]) -> list[Chapter]:
    """Chapters as stored on an episode (a list of dicts) to values."""
    return [
        Chapter(
            start=float(c["start"]),
            title=c.get("title", ""),
            end=c.get("end"),
            url=c.get("url"),
            image_url=c.get("image_url"),
        )
        for c in items
    ]


def chapters_to_json(chapters: list[Chapter]) -> list[dict[str, Any]]:
    return [
        {
            k: v
            for k, v in {
                "start": c.start,
                "title": c.title,
                "end": c.end,
                "url": c.url,
                "image_url": c.image_url,
            }.items()
            if v is not None
        }
        for c in chapters
    ]


def parse_chapters(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate chapters given by a host: start (seconds or HH:MM:SS.mmm), title, optional url."""
    out: list[Chapter] = []
    for item in raw:
        if not isinstance(item, dict) or "start" not in item:
            raise InvalidInput("each chapter needs a start and a title", code="invalid-chapters")
        start = parse_timestamp(item["start"])
        title = clean_text(str(item.get("title", ""))).strip()
        url = item.get("url")
        if url is not None and not str(url).startswith(("https://", "http://")):
            raise InvalidInput("a chapter url must be http(s)", code="invalid-chapters")
        out.append(Chapter(start=start, title=title, url=url))
    starts = [c.start for c in out]
    if len(set(starts)) != len(starts):
        raise InvalidInput("two chapters start at the same time", code="invalid-chapters")
    return chapters_to_json(sorted(out, key=lambda c: c.start))


def _flag(fields: dict[str, Any], name: str, *, nullable: bool = False) -> bool | None:
    value = fields[name]
    if value is None and nullable:
        return None
    if not isinstance(value, bool):
        allowed = "true, false or null" if nullable else "true or false"
        raise InvalidInput(f"{name} is {allowed}", code=f"invalid-{name.replace('_', '-')}")
    return value


def _short_text(fields: dict[str, Any], name: str, limit: int) -> str | None:
    value = fields[name]
    if value is None:
        return None
    if not isinstance(value, str) or len(text := " ".join(clean_text(value).split())) > limit:
        raise InvalidInput(
            f"{name} is text of at most {limit} characters", code=f"invalid-{name.replace('_', '-')}"
        )
    return text or None


def _apply_p20(episode: Episode, fields: dict[str, Any], duration: float | None) -> None:
    """The Podcasting 2.0 values of an episode (see podcast_values for the rules)."""
    if "persons" in fields:
        episode.persons = p20.persons(fields["persons"])
    if "funding" in fields:
        episode.funding = p20.funding(fields["funding"])
    if "location" in fields:
        episode.location = p20.location(fields["location"])
    if "license" in fields:
        episode.license = p20.license_(fields["license"])
    if "txt" in fields:
        episode.txt = p20.txt(fields["txt"])
    if "soundbites" in fields:
        episode.soundbites = p20.soundbites(fields["soundbites"], duration)
    if "season_name" in fields:
        episode.season_name = _short_text(fields, "season_name", 128)
    if "episode_display" in fields:
        episode.episode_display = _short_text(fields, "episode_display", 32)
    if "supporter_only" in fields:
        episode.supporter_only = bool(_flag(fields, "supporter_only"))
    if "audio_feed" in fields:
        episode.audio_feed = _flag(fields, "audio_feed", nullable=True)
    # podcast:season and podcast:episode carry the number; a name or display text alone would be lost.
    if episode.season_name and episode.season is None:
        raise InvalidInput("season_name needs a season number", code="invalid-season-name")
    if episode.episode_display and episode.number is None:
        raise InvalidInput("episode_display needs an episode number", code="invalid-episode-display")


def _apply(episode: Episode, fields: dict[str, Any], duration: float | None = None) -> None:
    unknown = set(fields) - EPISODE_FIELDS
    if unknown:
        raise InvalidInput(f"unknown episode fields: {', '.join(sorted(unknown))}")
    if "title" in fields:
        episode.title = clean_text(fields["title"] or "").strip()
    if "notes" in fields:
        episode.notes_html = sanitize_notes(fields["notes"] or "")
    for name in ("season", "number"):
        if name in fields:
            value = fields[name]
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInput(f"{name} is a whole number from 1", code=f"invalid-{name}")
            setattr(episode, name, value)
    if "episode_type" in fields:
        try:
            episode.episode_type = EpisodeType(fields["episode_type"]).value
        except ValueError:
            raise InvalidInput(
                "episode_type is full, trailer or bonus", code="invalid-episode-type"
            ) from None
    if "explicit" in fields:
        episode.explicit = bool(fields["explicit"])
    if "chapters" in fields:
        episode.chapters = parse_chapters(fields["chapters"] or [])
    _apply_p20(episode, fields, duration)
    episode.updated_at = datetime.now(UTC)


def media_duration(uow: UnitOfWork, episode: Episode) -> float | None:
    """Duration in seconds of the episode's processed media, None before processing."""
    if not episode.media_asset_id:
        return None
    return repo.asset_by_id(uow.session, episode.media_asset_id).duration


def active_jobs(uow: UnitOfWork, episode: Episode) -> Sequence[Job]:
    """The episode's queued and running jobs (processing, retagging), oldest first."""
    stmt = (
        select(Job)
        .where(
            Job.episode_id == episode.id, Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        )
        .order_by(Job.created_at)
    )
    return uow.session.scalars(stmt).all()


def episode_warnings(uow: UnitOfWork, episode: Episode) -> list[str]:
    """Advice that does not block publishing (soundbite lengths, soundbites past a shorter edit)."""
    return p20.soundbite_advice(list(episode.soundbites or []), media_duration(uow, episode))


def create_episode(
    uow: UnitOfWork, user: User, show_slug: str, fields: dict[str, Any], *, guid: str | None = None
) -> Episode:
    """A draft episode with a permanent guid (a new UUID unless one is kept from an earlier host)."""
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    if guid is not None and repo.episode_by_guid(uow.session, guid) is not None:
        raise Conflict(f"an episode with guid {guid!r} exists already", code="episode-exists")
    episode = Episode(show_id=show.id, guid=guid or new_episode_guid(), status=EpisodeStatus.DRAFT.value)
    _apply(episode, fields)
    uow.session.add(episode)
    uow.session.flush()
    return episode


def get_episode(uow: UnitOfWork, user: User, episode_id: str) -> Episode:
    episode = repo.episode_by_id(uow.session, episode_id)
    require_role(uow, user, episode.show)
    return episode


def list_episodes(uow: UnitOfWork, user: User, show_slug: str) -> Sequence[Episode]:
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    return repo.episodes_of(uow.session, show.id)


def update_episode(
    uow: UnitOfWork, user: User, episode_id: str, fields: dict[str, Any], queue: JobQueue | None = None
) -> Episode:
    """Edit an episode. New chapters of processed media are written into its renditions by a job."""
    episode = get_episode(uow, user, episode_id)
    chapters_before = list(episode.chapters or [])
    _apply(episode, fields, media_duration(uow, episode))
    if episode.status == EpisodeStatus.PUBLISHED:
        touch_feed(episode.show)
    if queue is not None and episode.chapters != chapters_before:
        queue_retag(uow, queue, episode)
    return episode


def queue_retag(uow: UnitOfWork, queue: JobQueue, episode: Episode) -> bool:
    """Queue a `media.retag` job writing the episode's chapters into its renditions (new objects).

    Nothing to do before processing; while processing, the running job tags with the chapters as they are.
    """
    if not episode.media_asset_id or episode.status not in (EpisodeStatus.READY, EpisodeStatus.PUBLISHED):
        return False
    create_job(uow, queue, RETAG_JOB, episode=episode, payload={"media_asset_id": episode.media_asset_id})
    return True


def _publish(episode: Episode, show: Show, when: datetime) -> None:
    check_transition(EpisodeStatus(episode.status), EpisodeStatus.PUBLISHED)
    episode.status = EpisodeStatus.PUBLISHED.value
    episode.published_at = when
    episode.publish_at = None
    touch_feed(show)


def publish_episode(uow: UnitOfWork, user: User, episode_id: str, at: datetime | None = None) -> Episode:
    """Publish a ready episode now, or schedule it for `at` (it then goes out by itself)."""
    episode = get_episode(uow, user, episode_id)
    if episode.status not in (EpisodeStatus.READY, EpisodeStatus.PUBLISHED):
        raise Conflict(
            f"only a ready episode can be published; this one is {episode.status}", code="episode-not-ready"
        )
    now = datetime.now(UTC).replace(microsecond=0)
    if at is not None and at.tzinfo is None:
        raise InvalidInput("give the publish time with a time zone, e.g. 2026-12-01T09:00:00Z")
    if at is None or at <= now:
        if episode.status == EpisodeStatus.PUBLISHED:
            return episode
        _publish(episode, episode.show, at or now)  # a time in the past back-dates the episode
    else:
        if episode.status == EpisodeStatus.PUBLISHED:
            raise Conflict("the episode is published already", code="episode-published")
        episode.publish_at = at
        touch_feed(episode.show)
    return episode


def request_publish_when_ready(episode: Episode, at: datetime | None = None) -> None:
    """Mark an episode to be published (or scheduled) as soon as its processing succeeds."""
    episode.publish_when_ready = True
    episode.publish_at = at


def on_ready(episode: Episode) -> None:
    """Called when processing made an episode ready: carry out a publish request made earlier."""
    if not episode.publish_when_ready:
        return
    episode.publish_when_ready = False
    now = datetime.now(UTC).replace(microsecond=0)
    if episode.publish_at is None or episode.publish_at <= now:
        _publish(episode, episode.show, episode.publish_at or now)
    else:
        touch_feed(episode.show)


def publish_due(uow: UnitOfWork, now: datetime | None = None) -> int:
    """Publish every ready episode whose scheduled time has come; returns how many."""
    now = now or datetime.now(UTC)
    due = repo.due_episodes(uow.session, now)
    for episode in due:
        assert episode.publish_at is not None
        _publish(episode, episode.show, episode.publish_at)
    return len(due)


def public_episode(uow: UnitOfWork, episode_id: str, *, supporter_of: str | None = None) -> Episode:
    """An episode apps may see: published, with its time come, and not supporter-only, unless
    `supporter_of` is the show id of a checked supporter token (then only that show's episodes)."""
    episode = uow.session.get(Episode, episode_id)
    missing = NotFound("no such published episode", code="episode-not-found")
    if episode is None or episode.published_at is None or episode.status != "published":
        raise missing
    if supporter_of is not None and episode.show_id != supporter_of:
        raise missing
    if episode.supporter_only and supporter_of is None:
        raise missing
    return episode


def episode_show_slug(uow: UnitOfWork, episode_id: str) -> str:
    """The slug of an episode's show (NotFound for an unknown episode)."""
    episode = uow.session.get(Episode, episode_id)
    if episode is None:
        raise NotFound("no such published episode", code="episode-not-found")
    return episode.show.slug
