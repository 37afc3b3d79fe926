"""Episode and job lifecycles, identifiers and naming rules."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum

from media_pub.errors import Conflict, InvalidInput

PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class EpisodeStatus(StrEnum):
    DRAFT = "draft"
    PROCESSING = "processing"
    READY = "ready"
    PUBLISHED = "published"
    FAILED = "failed"


class EpisodeType(StrEnum):
    FULL = "full"
    TRAILER = "trailer"
    BONUS = "bonus"


class ShowType(StrEnum):
    EPISODIC = "episodic"
    SERIAL = "serial"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_JOB = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class AssetRole(StrEnum):
    ORIGINAL = "original"
    RENDITION = "rendition"


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"


_TRANSITIONS: dict[EpisodeStatus, set[EpisodeStatus]] = {
    EpisodeStatus.DRAFT: {EpisodeStatus.PROCESSING},
    EpisodeStatus.PROCESSING: {EpisodeStatus.READY, EpisodeStatus.FAILED, EpisodeStatus.DRAFT},
    EpisodeStatus.READY: {EpisodeStatus.PUBLISHED, EpisodeStatus.PROCESSING},
    EpisodeStatus.PUBLISHED: {EpisodeStatus.READY, EpisodeStatus.PROCESSING},
    EpisodeStatus.FAILED: {EpisodeStatus.PROCESSING},
}


def check_transition(current: EpisodeStatus, new: EpisodeStatus) -> None:
    """Raise Conflict unless an episode may move from `current` to `new`."""
    if new not in _TRANSITIONS[current]:
        raise Conflict(f"an episode that is {current} cannot become {new}", code="episode-status-conflict")


def validate_slug(slug: str) -> str:
    """Return the slug if it is lowercase letters, digits and hyphens; raise InvalidInput otherwise."""
    if not SLUG_RE.match(slug):
        raise InvalidInput(
            "a slug is 1 to 64 lowercase letters, digits and inner hyphens", code="invalid-slug"
        )
    return slug


def new_episode_guid() -> str:
    """A permanent episode GUID, assigned once when the episode is created."""
    return str(uuid.uuid4())


def podcast_guid(feed_url: str) -> str:
    """Podcasting 2.0 podcast:guid: UUIDv5 of the feed URL without scheme and trailing slashes."""
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", feed_url).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))
