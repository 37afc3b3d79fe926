"""The processing job: from the untouched original to a tagged, loudness-normalized distribution rendition."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from media_pub import failpoints
from media_pub.db import repositories as repo
from media_pub.db.models import Asset, Episode, Show
from media_pub.db.uow import UowFactory
from media_pub.domain.keys import asset_key
from media_pub.domain.rules import FINISHED_JOB, EpisodeStatus, JobStatus
from media_pub.domain.values import Chapter, shift_chapters
from media_pub.errors import Cancelled, MediaPubError
from media_pub.media.isolation import run_isolated
from media_pub.media.master import Made, Output, make_media
from media_pub.media.process import ProcessOptions
from media_pub.media.tags import TagInfo, write_tags
from media_pub.media.video import VideoOptions
from media_pub.media.waveform import waveform_json
from media_pub.services.episodes import chapters_from_json, chapters_to_json, on_ready
from media_pub.services.jobs import (
    episode_after_failed_job,
    fail_job,
    holds_lease,
    progress_reporter,
    requeue_for_retry,
)
from media_pub.services.shows import touch_feed
from media_pub.services.uploads import source_chapters
from media_pub.storage.base import Storage

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _options(show: Show, channels: int | None, start: float | None, end: float | None) -> ProcessOptions:
    mono = channels == 1
    return ProcessOptions(
        target_lufs=show.loudness_target_mono if mono else show.loudness_target,
        trim_silence=show.trim_silence,
        silence_threshold_db=show.silence_threshold_db,
        silence_min_seconds=show.silence_min_seconds,
        start=start,
        end=end,
        channels=1 if mono else 2,
        level=show.level,
        max_silence=show.max_silence,
    )


def _tags(show: Show, episode: Episode, chapters: list[Chapter], artwork: bytes | None) -> TagInfo:
    published = episode.published_at or episode.publish_at or datetime.now(UTC)
    return TagInfo(
        title=episode.title or "Untitled episode",
        show_title=show.title,
        artist=show.author or None,
        date=published.date().isoformat(),
        artwork=artwork,
        artwork_mime="image/png" if artwork and artwork[:4] == b"\x89PNG" else "image/jpeg",
        chapters=chapters,
    )


def process_episode_media(
    uow_factory: UowFactory, storage: Storage, job_id: str, *, timeout: float, owner: str | None = None
) -> None:
    """Run the `media.process` job `job_id` as lease holder `owner`. Safe to run again: a finished job is
    left alone, outputs have content-addressed keys, and only the lease's holder writes the job's end."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status in FINISHED_JOB or not holds_lease(job, owner):
            return
        job.status, job.stage = JobStatus.RUNNING.value, "prepare"
        job.updated_at = datetime.now(UTC)
        payload = dict(job.payload)
        original = repo.asset_by_id(uow.session, payload["asset_id"])
        episode = repo.episode_by_id(uow.session, original.episode_id)
        show = episode.show
        options = _options(show, original.channels, payload.get("start"), payload.get("end"))
        kinds = list(show.renditions or ["mp3"])
        video = (
            VideoOptions(
                height=show.video_height,
                frame_accurate=bool(payload.get("frame_accurate")),
                poster_at=payload.get("poster_at"),
            )
            if original.kind == "video"
            else None
        )
        original_key, original_channels = original.storage_key, original.channels
        bumper_keys = {} if video else {"intro": show.intro_key, "outro": show.outro_key}
        artwork_key, show_id, episode_id = show.artwork_key, show.id, episode.id
        uow.commit()

    work = Path(tempfile.mkdtemp(prefix="media-pub-job-"))
    try:
        src = storage.local_path(original_key)
        if src is None:
            src = work / ("original." + original_key.rsplit(".", 1)[-1])
            storage.download_to(original_key, src)
        clips: dict[str, Path] = {}
        for which, key in bumper_keys.items():
            if key:
                clips[which] = storage.local_path(key) or work / f"{which}.{key.rsplit('.', 1)[-1]}"
                if not clips[which].exists():
                    storage.download_to(key, clips[which])
        options = replace(options, intro=clips.get("intro"), outro=clips.get("outro"))
        report = progress_reporter(uow_factory, job_id, owner=owner)
        made: Made = run_isolated(
            make_media, src, work, options, kinds, video,
            timeout=timeout, memory_mb=None, progress=report,
        )  # fmt: skip
        failpoints.hit("process.rendered")
        report("store", 0.0)
        artwork = storage.read_bytes(artwork_key) if artwork_key else None
        with uow_factory() as uow:
            episode = repo.episode_by_id(uow.session, episode_id)
            chapters = (
                shift_chapters(source_chapters(payload), made.offset, made.duration, made.cuts, made.lead)
                if payload.get("source_chapters")
                else chapters_from_json(episode.chapters)
            )
            tags = _tags(episode.show, episode, chapters, artwork)
        for out in made.outputs:
            if out.kind != "poster":
                write_tags(
                    out.path, tags, made.duration, kind="m4a" if out.kind in ("aac", "video") else out.kind
                )
            out.sha = _sha256(out.path)
            ext = out.path.suffix.lstrip(".")
            out.key = asset_key(show_id, episode_id, f"{out.kind}-{out.sha[:16]}", ext)
            out.size = storage.put_file(out.key, out.path, content_type=out.mime).size
        listened = next((o for o in made.outputs if o.kind == "mp3"), None)
        keys: dict[str, str] = {}
        if listened is not None:
            # Waveform peaks for players and trim editors, from what listeners will hear.
            keys["waveform"] = asset_key(show_id, episode_id, f"waveform-{listened.sha[:16]}", "json")
            storage.put_bytes(keys["waveform"], waveform_json(listened.path), content_type="application/json")
        failpoints.hit("process.stored")
        _finish(uow_factory, job_id, made, keys, chapters, original_channels, payload, owner)
        failpoints.hit("process.committed")
    except Cancelled:
        log.info("job.cancelled job_id=%s", job_id)
    except MediaPubError as error:
        if error.retryable:
            requeue_for_retry(uow_factory, job_id, error, owner=owner)
            raise
        _fail(uow_factory, job_id, error, owner)
    except Exception as exc:  # a bug, not bad input: fail the job visibly rather than leave it running
        log.exception("job.crashed job_id=%s", job_id)
        _fail(uow_factory, job_id, MediaPubError(f"internal error while processing ({type(exc).__name__})",
                                                 code="internal-error"), owner)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _asset(session: Session, episode_id: str, out: Output, made: Made, source_id: str) -> Asset:
    """The rendition row for `out` (the same row when the same bytes were made before)."""
    asset = repo.asset_by_key(session, out.key)
    if asset is None:
        audio = made.audio
        asset = Asset(
            episode_id=episode_id,
            role="poster" if out.kind == "poster" else "rendition",
            storage_key=out.key,
            mime_type=out.mime,
            byte_size=out.size,
            sha256=out.sha,
            duration=out.duration,
            bitrate=audio.bitrate if audio is not None and out.kind == "mp3" else None,
            sample_rate=audio.sample_rate if audio is not None and out.media_kind != "image" else None,
            channels=audio.channels if audio is not None and out.media_kind != "image" else None,
            codec=out.codec,
            kind=out.media_kind,
            width=out.width,
            height=out.height,
            source_asset_id=source_id,
        )
        if out.kind == "opus":
            asset.sample_rate = 48000
        session.add(asset)
    if out.loudness is not None and made.audio is not None:
        asset.loudness_in = asdict(made.audio.loudness_in)
        asset.loudness_out = asdict(out.loudness)
    return asset


def _finish(
    uow_factory: UowFactory,
    job_id: str,
    made: Made,
    keys: dict[str, str],
    chapters: list[Chapter],
    channels_in: int | None,
    payload: dict[str, object],
    owner: str | None,
) -> None:
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id, for_update=True)
        if job.status == JobStatus.CANCELLED:
            return  # cancelled after the last progress report: the episode keeps what it had
        if not holds_lease(job, owner):  # another worker took the job over: its run writes the end
            log.warning("job.lease_lost job_id=%s owner=%s", job_id, owner)
            return
        episode = repo.episode_by_id(uow.session, job.episode_id or "")
        source_id = str(payload["asset_id"])
        assets = {out.kind: _asset(uow.session, episode.id, out, made, source_id) for out in made.outputs}
        uow.session.flush()
        main = assets.get("video") or assets["mp3"]
        audio = made.audio
        main.processing = {
            "waveform_key": keys.get("waveform"),
            "gain_db": audio.gain_db if audio else None,
            "offset": made.offset,
            "lead": made.lead,  # seconds of intro before the episode: transcripts and chapters move by it
            "cuts": [list(cut) for cut in made.cuts],
            "duration_in": audio.duration_in if audio else None,
            "trim_start": payload.get("start"),
            "trim_end": payload.get("end"),
            "frame_accurate": payload.get("frame_accurate"),
            "poster_at": payload.get("poster_at"),
            "channels_in": channels_in,
            "leveled": made.leveled,
            "renditions": {kind: asset.id for kind, asset in assets.items()},
            **({"video": made.video} if made.video else {}),
        }
        episode.media_asset_id = main.id
        episode.original_asset_id = source_id
        episode.chapters = chapters_to_json(chapters)
        episode.last_error = None
        episode.updated_at = datetime.now(UTC)
        if episode.status == EpisodeStatus.PROCESSING:
            episode.status = EpisodeStatus.READY.value
            on_ready(episode)
        elif episode.status == EpisodeStatus.PUBLISHED:
            touch_feed(episode.show)
        job.status, job.stage, job.progress = JobStatus.SUCCEEDED.value, "done", 1.0
        job.error = job.error_code = None
        job.lease_owner = job.lease_expires_at = None
        job.result = {"rendition_asset_id": main.id, "storage_key": main.storage_key,
                      "renditions": {kind: asset.id for kind, asset in assets.items()}}  # fmt: skip
        job.finished_at = job.updated_at = datetime.now(UTC)
        uow.commit()
    log.info("job.succeeded job_id=%s kind=media.process", job_id)


def _fail(uow_factory: UowFactory, job_id: str, error: MediaPubError, owner: str | None) -> None:
    """Mark the job failed; the episode keeps what it had (an episode with no media yet becomes failed)."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id, for_update=True)
        if job.status == JobStatus.CANCELLED or not holds_lease(job, owner):
            return
        fail_job(job, error)
        episode_after_failed_job(repo.episode_by_id(uow.session, job.episode_id or ""), job.error)
        uow.commit()
    log.warning("job.failed job_id=%s code=%s", job_id, error.code)
