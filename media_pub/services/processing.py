"""The processing job: from the untouched original to a tagged, loudness-normalized distribution rendition."""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from media_pub.db import repositories as repo
from media_pub.db.models import Asset, Episode, Show
from media_pub.db.uow import UowFactory
from media_pub.domain.keys import asset_key
from media_pub.domain.rules import FINISHED_JOB, EpisodeStatus, JobStatus
from media_pub.domain.values import Chapter, shift_chapters
from media_pub.errors import Cancelled, MediaPubError
from media_pub.media.isolation import run_isolated
from media_pub.media.process import ProcessOptions, ProcessResult, process_audio
from media_pub.media.tags import TagInfo, write_id3
from media_pub.media.waveform import waveform_json
from media_pub.services.episodes import chapters_from_json, chapters_to_json, on_ready
from media_pub.services.jobs import fail_job, progress_reporter
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


def process_episode_media(uow_factory: UowFactory, storage: Storage, job_id: str, *, timeout: float) -> None:
    """Run the `media.process` job `job_id`. Safe to run again: a finished job is left alone."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status in FINISHED_JOB:
            return
        job.status, job.stage, job.attempts = JobStatus.RUNNING.value, "prepare", job.attempts + 1
        job.started_at = job.updated_at = datetime.now(UTC)
        payload = dict(job.payload)
        original = repo.asset_by_id(uow.session, payload["asset_id"])
        episode = repo.episode_by_id(uow.session, original.episode_id)
        show = episode.show
        options = _options(show, original.channels, payload.get("start"), payload.get("end"))
        original_key, original_channels = original.storage_key, original.channels
        artwork_key, show_id, episode_id = show.artwork_key, show.id, episode.id
        uow.commit()

    work = Path(tempfile.mkdtemp(prefix="media-pub-job-"))
    try:
        src = storage.local_path(original_key)
        if src is None:
            src = work / ("original." + original_key.rsplit(".", 1)[-1])
            storage.download_to(original_key, src)
        dst = work / "rendition.mp3"
        result: ProcessResult = run_isolated(
            process_audio,
            src,
            dst,
            options,
            timeout=timeout,
            memory_mb=None,
            progress=progress_reporter(uow_factory, job_id),
        )
        artwork = storage.read_bytes(artwork_key) if artwork_key else None
        with uow_factory() as uow:
            episode = repo.episode_by_id(uow.session, episode_id)
            chapters = (
                shift_chapters(source_chapters(payload), result.offset, result.duration_out)
                if payload.get("source_chapters")
                else chapters_from_json(episode.chapters)
            )
            tags = _tags(episode.show, episode, chapters, artwork)
        write_id3(dst, tags, result.duration_out)
        sha = _sha256(dst)
        key = asset_key(show_id, episode_id, f"mp3-{sha[:16]}", "mp3")
        info = storage.put_file(key, dst, content_type="audio/mpeg")
        peaks = waveform_json(dst)  # for players and trim editors, from what listeners will hear
        waveform_key = asset_key(show_id, episode_id, f"waveform-{sha[:16]}", "json")
        storage.put_bytes(waveform_key, peaks, content_type="application/json")
        result_keys = {"rendition": key, "waveform": waveform_key}
        _finish(
            uow_factory, job_id, result_keys, info.size, sha, result, chapters, original_channels, payload
        )
    except Cancelled:
        log.info("job.cancelled job_id=%s", job_id)
    except MediaPubError as error:
        if error.retryable:
            with uow_factory() as uow:
                job = repo.job_by_id(uow.session, job_id)
                job.status, job.stage = JobStatus.QUEUED.value, "retry"
                job.error, job.error_code = error.detail, error.code
                uow.commit()
            raise
        _fail(uow_factory, job_id, error)
    except Exception as exc:  # a bug, not bad input: fail the job visibly rather than leave it running
        log.exception("job.crashed job_id=%s", job_id)
        _fail(uow_factory, job_id, MediaPubError(f"internal error while processing ({type(exc).__name__})",
                                                 code="internal-error"))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _finish(
    uow_factory: UowFactory,
    job_id: str,
    keys: dict[str, str],
    size: int,
    sha: str,
    result: ProcessResult,
    chapters: list[Chapter],
    channels_in: int | None,
    payload: dict[str, object],
) -> None:
    key = keys["rendition"]
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status == JobStatus.CANCELLED:
            return  # cancelled after the last progress report: the episode keeps what it had
        episode = repo.episode_by_id(uow.session, job.episode_id or "")
        rendition = repo.asset_by_key(uow.session, key)
        if rendition is None:
            rendition = Asset(
                episode_id=episode.id,
                role="rendition",
                storage_key=key,
                mime_type="audio/mpeg",
                byte_size=size,
                sha256=sha,
                duration=result.duration_out,
                bitrate=result.bitrate,
                sample_rate=result.sample_rate,
                channels=result.channels,
                codec="mp3",
                kind="audio",
                source_asset_id=str(payload["asset_id"]),
            )
            uow.session.add(rendition)
        rendition.loudness_in = asdict(result.loudness_in)
        rendition.loudness_out = asdict(result.loudness_out)
        rendition.processing = {
            "waveform_key": keys["waveform"],
            "gain_db": result.gain_db,
            "offset": result.offset,
            "duration_in": result.duration_in,
            "trim_start": payload.get("start"),
            "trim_end": payload.get("end"),
            "channels_in": channels_in,
        }
        uow.session.flush()
        episode.media_asset_id = rendition.id
        episode.original_asset_id = str(payload["asset_id"])
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
        job.result = {"rendition_asset_id": rendition.id, "storage_key": key}
        job.finished_at = job.updated_at = datetime.now(UTC)
        uow.commit()
    log.info("job.succeeded job_id=%s kind=media.process", job_id)


def _fail(uow_factory: UowFactory, job_id: str, error: MediaPubError) -> None:
    """Mark the job failed; the episode keeps what it had (an episode with no media yet becomes failed)."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status == JobStatus.CANCELLED:
            return
        fail_job(job, error)
        episode = repo.episode_by_id(uow.session, job.episode_id or "")
        if episode.status == EpisodeStatus.PROCESSING:
            episode.status = (
                EpisodeStatus.READY.value if episode.media_asset_id else EpisodeStatus.FAILED.value
            )
        episode.last_error = job.error
        uow.commit()
    log.warning("job.failed job_id=%s code=%s", job_id, error.code)
