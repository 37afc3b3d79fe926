"""Taking an upload in: spool while hashing, probe in a child process, store the original, queue work."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media_pub.db import repositories as repo
from media_pub.db.models import Asset, Episode, Job, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.keys import asset_key
from media_pub.domain.rules import EpisodeStatus
from media_pub.domain.values import Chapter
from media_pub.errors import Conflict, InvalidInput, InvalidMedia, MediaPubError, TooLarge
from media_pub.feeds.sanitize import clean_text, sanitize_notes
from media_pub.media.probe import ProbeResult, probe_file
from media_pub.media.process import parse_timestamp
from media_pub.services.auth import require_role
from media_pub.services.episodes import chapters_from_json, chapters_to_json
from media_pub.services.jobs import JobQueue, create_job
from media_pub.storage.base import MultipartStorage, Storage

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    sha256: str


class Spool:
    """A temporary file that an upload streams into, counting bytes and hashing as it goes.

    Use it as a context manager: an exception while writing removes the file.
    """

    def __init__(self, tmp_dir: Path, limit: int) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=tmp_dir)
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.limit = limit
        self.size = 0
        self._hash = hashlib.sha256()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:  # a failed or abandoned upload leaves no spool file behind
            self.discard()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            self.discard()
            raise TooLarge(
                f"the upload is larger than the limit of {self.limit} bytes", code="upload-too-large"
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> Spooled:
        self._file.close()
        if self.size == 0:
            self.discard()
            raise InvalidMedia("the upload is empty (0 bytes)", code="media-empty")
        return Spooled(self.path, self.size, self._hash.hexdigest())

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class TrimRequest:
    start: str | float | None = None
    end: str | float | None = None
    frame_accurate: bool = False  # video: re-encode so the cuts fall exactly on the points
    poster_at: str | float | None = None  # video: the poster frame's time in the output (else automatic)

    def seconds(self, duration: float) -> tuple[float | None, float | None]:
        """In and out points in seconds, checked against the decoded duration."""
        start = None if self.start in (None, "") else parse_timestamp(self.start)  # type: ignore[arg-type]
        end = None if self.end in (None, "") else parse_timestamp(self.end)  # type: ignore[arg-type]
        if start is not None and start >= duration:
            raise InvalidInput(
                f"the in point {start:.3f} s is past the end ({duration:.3f} s)", code="invalid-trim"
            )
        if start is not None and end is not None and end <= start:
            raise InvalidInput("the out point must come after the in point", code="invalid-trim")
        return start, end


def episode_for_upload(uow: UnitOfWork, user: User, episode_id: str) -> Episode:
    """Check, before any byte is read, that `user` may upload to this episode."""
    episode = repo.episode_by_id(uow.session, episode_id)
    require_role(uow, user, episode.show)
    if episode.status == EpisodeStatus.PROCESSING:
        raise Conflict("the episode is being processed; wait for its job to end", code="episode-busy")
    return episode


def _fill_from_tags(episode: Episode, probe: ProbeResult) -> None:
    """Tag values fill episode fields the host left empty."""
    if not episode.title and probe.tags.get("title"):
        episode.title = clean_text(probe.tags["title"])[:500].strip()
    if not episode.notes_html and probe.tags.get("comment"):
        episode.notes_html = sanitize_notes(probe.tags["comment"])


def attach_upload(
    uow: UnitOfWork,
    storage: Storage,
    queue: JobQueue,
    user: User,
    episode_id: str,
    spooled: Spooled,
    trim: TrimRequest,
    *,
    probe_timeout: float,
    probe_memory_mb: int,
) -> Job:
    """Probe the spooled upload, keep it as the episode's original and queue its processing job.

    The spool file is always removed; on any error nothing is stored and the episode is unchanged.
    """

    def keep(key: str, content_type: str) -> None:
        storage.put_file(key, spooled.path, content_type=content_type)

    return _attach(uow, queue, user, episode_id, spooled, trim, keep, probe_timeout, probe_memory_mb)


def attach_stored(
    uow: UnitOfWork,
    storage: MultipartStorage,
    queue: JobQueue,
    user: User,
    episode_id: str,
    source_key: str,
    spooled: Spooled,
    trim: TrimRequest,
    *,
    probe_timeout: float,
    probe_memory_mb: int,
) -> Job:
    """Like attach_upload, for bytes already in the store under `source_key` (a completed multipart upload).

    `spooled` is a local copy of the object (see spool_object), probed and then removed. The original is a
    server-side copy of the source, byte for byte; the caller deletes the source once this has committed.
    """

    def keep(key: str, content_type: str) -> None:
        storage.copy(source_key, key, content_type=content_type)

    return _attach(uow, queue, user, episode_id, spooled, trim, keep, probe_timeout, probe_memory_mb)


def content_error(exc: MediaPubError) -> bool:
    """An error in what was uploaded (sending the same bytes again cannot help), not in the moment."""
    return isinstance(exc, (InvalidInput, InvalidMedia, TooLarge))


def spool_object(storage: Storage, key: str, tmp_dir: Path, limit: int) -> Spooled:
    """Stream a stored object into a temporary file, counting and hashing it (one pass)."""
    with Spool(tmp_dir, limit) as spool, storage.open(key) as stream:
        while chunk := stream.read(CHUNK):
            spool.write(chunk)
        return spool.finish()


def _attach(
    uow: UnitOfWork,
    queue: JobQueue,
    user: User,
    episode_id: str,
    spooled: Spooled,
    trim: TrimRequest,
    keep: Callable[[str, str], None],
    probe_timeout: float,
    probe_memory_mb: int,
) -> Job:
    try:
        episode = episode_for_upload(uow, user, episode_id)
        probe = probe_file(spooled.path, timeout=probe_timeout, memory_mb=probe_memory_mb)
        if probe.sample_rate is None and probe.kind == "audio":
            raise InvalidMedia("the file has no audio stream", code="media-no-audio")
        start, end = trim.seconds(probe.duration)
        poster_at = None if trim.poster_at in (None, "") else parse_timestamp(trim.poster_at)  # type: ignore[arg-type]
        key = asset_key(episode.show_id, episode.id, f"original-{spooled.sha256[:16]}", probe.extension)
        # Object first, row second: the database never points at a missing object.
        keep(key, probe.mime_type)
    finally:
        spooled.path.unlink(missing_ok=True)
    asset = repo.asset_by_key(uow.session, key)
    if asset is None:
        asset = Asset(
            episode_id=episode.id,
            role="original",
            storage_key=key,
            mime_type=probe.mime_type,
            byte_size=spooled.size,
            sha256=spooled.sha256,
            duration=probe.duration,
            bitrate=probe.bitrate,
            sample_rate=probe.sample_rate,
            channels=probe.channels,
            codec=probe.audio_codec,
            kind=probe.kind,
            width=probe.width,
            height=probe.height,
            frame_rate=probe.frame_rate,
        )
        uow.session.add(asset)
        uow.session.flush()
    _fill_from_tags(episode, probe)
    payload: dict[str, Any] = {"asset_id": asset.id, "start": start, "end": end}
    if probe.kind == "video":
        payload["frame_accurate"] = trim.frame_accurate
        if poster_at is not None:
            payload["poster_at"] = poster_at
    if not episode.chapters and probe.chapters:
        payload["source_chapters"] = chapters_to_json(list(probe.chapters))
    if probe.artwork and probe.artwork_mime in ("image/jpeg", "image/png"):
        payload["has_embedded_artwork"] = True
    previous = episode.status
    if episode.status in (EpisodeStatus.DRAFT, EpisodeStatus.FAILED):
        episode.status = EpisodeStatus.PROCESSING.value
    payload["previous_status"] = previous
    return create_job(uow, queue, "media.process", episode=episode, payload=payload)


def reprocess(uow: UnitOfWork, queue: JobQueue, user: User, episode_id: str) -> Job:
    """Queue processing of the episode's original again, with the show's current settings.

    For rebuilding renditions after a show's target or renditions change. The same in and out points are
    used; the chapters stay as they are. New renditions get new keys: published URLs keep their bytes.
    """
    episode = episode_for_upload(uow, user, episode_id)
    original_id = episode.original_asset_id
    if original_id is None:
        latest = repo.latest_original(uow.session, episode.id)
        if latest is None:
            raise Conflict("the episode has no uploaded media to process", code="episode-no-media")
        original_id = latest.id
    media = repo.asset_by_id(uow.session, episode.media_asset_id) if episode.media_asset_id else None
    done = media.processing if media is not None else {}
    payload: dict[str, Any] = {
        "asset_id": original_id,
        "start": done.get("trim_start"),
        "end": done.get("trim_end"),
        "previous_status": episode.status,
        **{k: done[k] for k in ("frame_accurate", "poster_at") if done.get(k) is not None},
    }
    if episode.status == EpisodeStatus.FAILED:
        episode.status = EpisodeStatus.PROCESSING.value
    return create_job(uow, queue, "media.process", episode=episode, payload=payload)


def source_chapters(payload: dict[str, Any]) -> list[Chapter]:
    """Chapters read from the uploaded file, in the original's timeline."""
    return chapters_from_json(payload.get("source_chapters") or [])
