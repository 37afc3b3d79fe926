"""The `media.retag` job: write an episode's current chapters (and tags) into copies of its renditions.

Published bytes never change in place: apps cache enclosures by URL, and a half-written object must never
be served. Each rendition is downloaded, tagged with mutagen, and stored under a new content-addressed key;
new Asset rows take the new keys and the episode points at them. The old rows and objects stay, so URLs
already handed out keep serving the bytes they served.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect

from media_pub.db import repositories as repo
from media_pub.db.models import Asset
from media_pub.db.uow import UowFactory
from media_pub.domain.keys import asset_key
from media_pub.domain.rules import FINISHED_JOB, EpisodeStatus, JobStatus
from media_pub.errors import MediaPubError
from media_pub.media.tags import RenditionKind, TagInfo, write_tags
from media_pub.services.episodes import chapters_from_json
from media_pub.services.jobs import fail_job, holds_lease, requeue_for_retry
from media_pub.services.processing import _tags as rendition_tags
from media_pub.services.shows import touch_feed
from media_pub.storage.base import Storage

log = logging.getLogger(__name__)

# Columns a retagged copy takes from the rendition it copies; the rest describe the new object.
_OWN = {"id", "storage_key", "byte_size", "sha256", "created_at"}
_TAG_KINDS: dict[str, RenditionKind] = {"mp3": "mp3", "aac": "m4a", "video": "m4a", "opus": "opus"}
_KIND_BY_EXT = {"mp3": "mp3", "m4a": "aac", "opus": "opus", "mp4": "video"}


@dataclass(frozen=True)
class _Source:
    kind: str  # mp3, aac, opus, video
    asset_id: str
    key: str
    mime: str


@dataclass(frozen=True)
class _Plan:
    """What the job read before the slow part, and what must still hold when it writes back."""

    show_id: str
    episode_id: str
    main_id: str
    chapters: list[Any]
    sources: list[_Source]
    tags: TagInfo
    duration: float


@dataclass(frozen=True)
class _Made:
    key: str
    sha256: str
    size: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _start(uow_factory: UowFactory, storage: Storage, job_id: str, owner: str | None) -> _Plan | None:
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status in FINISHED_JOB or not holds_lease(job, owner):
            return None
        job.status, job.stage = JobStatus.RUNNING.value, "retag"
        job.updated_at = datetime.now(UTC)
        episode = repo.episode_by_id(uow.session, job.episode_id or "")
        if not episode.media_asset_id:
            _succeed(job, {"skipped": "the episode has no processed media"})
            uow.commit()
            return None
        main = repo.asset_by_id(uow.session, episode.media_asset_id)
        made = dict((main.processing or {}).get("renditions") or {})
        if main.id not in made.values():  # media processed before renditions were recorded
            made[_KIND_BY_EXT.get(main.storage_key.rsplit(".", 1)[-1], "mp3")] = main.id
        sources = []
        for kind, asset_id in made.items():
            if kind not in _TAG_KINDS:  # the poster, and anything without a tag to write
                continue
            asset = repo.asset_by_id(uow.session, asset_id)
            sources.append(_Source(kind, asset.id, asset.storage_key, asset.mime_type))
        show = episode.show
        artwork = storage.read_bytes(show.artwork_key) if show.artwork_key else None
        chapters = list(episode.chapters or [])
        tags = rendition_tags(show, episode, chapters_from_json(chapters), artwork)
        plan = _Plan(show.id, episode.id, main.id, chapters, sources, tags, float(main.duration or 0.0))
        uow.commit()
    return plan


def _retag(storage: Storage, plan: _Plan, work: Path) -> dict[str, _Made]:
    made: dict[str, _Made] = {}
    for src in plan.sources:
        ext = src.key.rsplit(".", 1)[-1]
        path = work / f"{src.kind}.{ext}"
        storage.download_to(src.key, path)
        write_tags(path, plan.tags, plan.duration, kind=_TAG_KINDS[src.kind])
        sha = _sha256(path)
        key = asset_key(plan.show_id, plan.episode_id, f"{src.kind}-{sha[:16]}", ext)
        size = storage.put_file(key, path, content_type=src.mime).size
        made[src.kind] = _Made(key, sha, size)
    return made


def _copy(old: Asset, out: _Made) -> Asset:
    values = {c.key: getattr(old, c.key) for c in inspect(Asset).column_attrs if c.key not in _OWN}
    return Asset(**values, storage_key=out.key, byte_size=out.size, sha256=out.sha256)


def _succeed(job: Any, result: dict[str, Any]) -> None:
    job.status, job.stage, job.progress = JobStatus.SUCCEEDED.value, "done", 1.0
    job.error = job.error_code = None
    job.lease_owner = job.lease_expires_at = None
    job.result = result
    job.finished_at = job.updated_at = datetime.now(UTC)


def _finish(
    uow_factory: UowFactory, job_id: str, plan: _Plan, made: dict[str, _Made], owner: str | None
) -> None:
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id, for_update=True)
        if job.status == JobStatus.CANCELLED or not holds_lease(job, owner):
            return
        episode = repo.episode_by_id(uow.session, plan.episode_id)
        if episode.media_asset_id != plan.main_id or list(episode.chapters or []) != plan.chapters:
            # New media or newer chapters came in meanwhile: their own job tags them; ours would undo it.
            _succeed(job, {"superseded": True})
            uow.commit()
            return
        old_main = repo.asset_by_id(uow.session, plan.main_id)
        ids: dict[str, str] = dict((old_main.processing or {}).get("renditions") or {})
        main_kind = next(s.kind for s in plan.sources if s.asset_id == plan.main_id)
        assets: dict[str, Asset] = {}
        for src in plan.sources:
            out = made[src.kind]
            asset = repo.asset_by_key(uow.session, out.key)  # the same bytes made before: reuse the row
            if asset is None:
                asset = _copy(repo.asset_by_id(uow.session, src.asset_id), out)
                uow.session.add(asset)
            assets[src.kind] = asset
        uow.session.flush()
        ids.update({kind: asset.id for kind, asset in assets.items()})
        main = assets[main_kind]
        if main.id != old_main.id:
            main.processing = {**(old_main.processing or {}), "renditions": ids, "retagged_from": old_main.id}
        episode.media_asset_id = main.id
        episode.updated_at = datetime.now(UTC)
        if episode.status == EpisodeStatus.PUBLISHED:
            touch_feed(episode.show)
        _succeed(job, {"rendition_asset_id": main.id, "storage_key": main.storage_key, "renditions": ids})
        uow.commit()
    log.info("job.succeeded job_id=%s kind=media.retag", job_id)


def _fail(uow_factory: UowFactory, job_id: str, error: MediaPubError, owner: str | None) -> None:
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id, for_update=True)
        if job.status != JobStatus.CANCELLED and holds_lease(job, owner):
            fail_job(job, error)
            uow.commit()
    log.warning("job.failed job_id=%s kind=media.retag code=%s", job_id, error.code)


def retag_episode_media(
    uow_factory: UowFactory, storage: Storage, job_id: str, *, owner: str | None = None
) -> None:
    """Run the `media.retag` job `job_id` as lease holder `owner`. Safe to run again: a finished job is
    left alone, and only the lease's holder writes the job's end."""
    plan = _start(uow_factory, storage, job_id, owner)
    if plan is None:
        return
    work = Path(tempfile.mkdtemp(prefix="media-pub-retag-"))
    try:
        _finish(uow_factory, job_id, plan, _retag(storage, plan, work), owner)
    except MediaPubError as error:
        if error.retryable:
            requeue_for_retry(uow_factory, job_id, error, owner=owner)
            raise
        _fail(uow_factory, job_id, error, owner)  # the episode keeps the renditions it had
    except Exception as exc:  # a bug, not bad input: fail the job visibly rather than leave it running
        log.exception("job.crashed job_id=%s kind=media.retag", job_id)
        _fail(uow_factory, job_id, MediaPubError(f"internal error while retagging ({type(exc).__name__})",
                                                 code="internal-error"), owner)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
