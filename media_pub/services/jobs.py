"""Job rows: creation (enqueued after commit), progress, and their end."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, Job
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.domain.rules import EpisodeStatus, JobStatus
from media_pub.errors import Cancelled, Conflict, MediaPubError


class JobQueue(Protocol):
    """Delivers job ids to whatever runs them (threads in-process, or Celery workers)."""

    def enqueue(self, kind: str, job_id: str) -> None: ...


def create_job(
    uow: UnitOfWork, queue: JobQueue, kind: str, *, episode: Episode | None, payload: dict[str, Any]
) -> Job:
    """A queued job; it is handed to the queue only once the transaction commits."""
    job = Job(
        kind=kind,
        episode_id=episode.id if episode else None,
        show_id=episode.show_id if episode else None,
        payload=payload,
        status=JobStatus.QUEUED.value,
    )
    uow.session.add(job)
    uow.session.flush()
    job_id = job.id
    uow.after_commit(lambda: queue.enqueue(kind, job_id))
    return job


def get_job(uow: UnitOfWork, job_id: str) -> Job:
    return repo.job_by_id(uow.session, job_id)


def progress_reporter(
    uow_factory: UowFactory, job_id: str, every: float = 0.5
) -> Callable[[str, float], None]:
    """A callback that records stage and percent on the job row, at most every `every` seconds."""
    last_time, last_stage = 0.0, ""

    def report(stage: str, fraction: float) -> None:
        nonlocal last_time, last_stage
        now = time.monotonic()
        if stage == last_stage and now - last_time < every and fraction < 1.0:
            return
        last_time, last_stage = now, stage
        with uow_factory() as uow:
            job = repo.job_by_id(uow.session, job_id)
            if job.status == JobStatus.CANCELLED:
                raise Cancelled("the job was cancelled")  # stops the work: the child process is killed
            job.stage = stage
            job.progress = round(max(0.0, min(1.0, fraction)), 4)
            job.updated_at = datetime.now(UTC)
            uow.commit()

    return report


def fail_job(job: Job, error: MediaPubError) -> None:
    job.status = JobStatus.FAILED.value
    job.error_code = error.code
    job.error = f"{error.title}: {error.detail}"
    job.finished_at = job.updated_at = datetime.now(UTC)


def requeue_for_retry(uow_factory: UowFactory, job_id: str, error: MediaPubError) -> None:
    """A transient failure: the job goes back to the queue (stage "retry"), with the error kept for show."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        job.status, job.stage = JobStatus.QUEUED.value, "retry"
        job.error, job.error_code = error.detail, error.code
        uow.commit()


def resume_unfinished(uow_factory: UowFactory, queue: JobQueue) -> int:
    """Queue again the jobs an earlier process left queued or running (in-process mode only)."""
    with uow_factory() as uow:
        unfinished = repo.unfinished_jobs(uow.session)
        for job in unfinished:
            job.status = JobStatus.QUEUED.value
        jobs = [(j.kind, j.id) for j in unfinished]
        uow.commit()
    for kind, job_id in jobs:
        queue.enqueue(kind, job_id)
    return len(jobs)


def _restore_episode(episode: Episode, payload: dict[str, Any]) -> None:
    """Put an episode whose job will not finish back as it was before the job."""
    if episode.status != EpisodeStatus.PROCESSING:
        return
    if episode.media_asset_id:
        episode.status = EpisodeStatus.READY.value
    else:
        previous = payload.get("previous_status")
        episode.status = previous if previous in (EpisodeStatus.DRAFT, EpisodeStatus.FAILED) else "draft"


def cancel_job(uow: UnitOfWork, job: Job) -> Job:
    """Cancel a queued or running job; a running one stops at its next progress report."""
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise Conflict(f"a {job.status} job cannot be cancelled", code="job-not-cancellable")
    job.status, job.stage = JobStatus.CANCELLED.value, "cancelled"
    job.finished_at = job.updated_at = datetime.now(UTC)
    if job.episode_id:
        _restore_episode(repo.episode_by_id(uow.session, job.episode_id), job.payload)
    return job


def retry_job(uow: UnitOfWork, queue: JobQueue, job: Job) -> Job:
    """Run a failed or cancelled job again, from the same untouched original."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Conflict(f"a {job.status} job cannot be retried", code="job-not-retryable")
    if job.episode_id:
        episode = repo.episode_by_id(uow.session, job.episode_id)
        if episode.status == EpisodeStatus.PROCESSING:
            raise Conflict("another job is processing this episode", code="episode-busy")
        if episode.status in (EpisodeStatus.DRAFT, EpisodeStatus.FAILED):
            job.payload = {**job.payload, "previous_status": episode.status}
            episode.status = EpisodeStatus.PROCESSING.value
    job.status, job.stage, job.progress = JobStatus.QUEUED.value, "queued", 0.0
    job.error = job.error_code = None
    job.started_at = job.finished_at = None
    job.updated_at = datetime.now(UTC)
    kind, job_id = job.kind, job.id
    uow.after_commit(lambda: queue.enqueue(kind, job_id))
    return job
