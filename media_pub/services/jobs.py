"""Job rows: creation (enqueued after commit), leases, progress, and their end.

Delivery is at least once (a broker may hand the same job to two workers, a worker may die mid-job), so a
job runs only under a lease: `claim_job` takes it with one conditional UPDATE, a heartbeat renews it, and
the end of a job is written only by the lease's holder. A job whose lease ran out (its worker died) is sent
again by `requeue_stale_jobs`, which every API process and worker runs periodically.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, Job
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.domain.rules import EpisodeStatus, JobStatus
from media_pub.errors import Cancelled, Conflict, MediaPubError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8  # claims of one job (crashes and transient retries) before it fails


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
    uow_factory: UowFactory, job_id: str, every: float = 0.5, *, owner: str | None = None
) -> Callable[[str, float], None]:
    """A callback that records stage and percent on the job row, at most every `every` seconds.

    It stops the work (raises Cancelled) when the job is cancelled or its lease is no longer `owner`'s."""
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
            if owner is not None and job.lease_owner != owner:
                raise Cancelled("the job's lease was lost to another worker")
            job.stage = stage
            job.progress = round(max(0.0, min(1.0, fraction)), 4)
            job.updated_at = datetime.now(UTC)
            uow.commit()

    return report


def fail_job(job: Job, error: MediaPubError) -> None:
    job.status = JobStatus.FAILED.value
    job.lease_owner = job.lease_expires_at = None
    job.error_code = error.code
    job.error = f"{error.title}: {error.detail}"
    job.finished_at = job.updated_at = datetime.now(UTC)


def episode_after_failed_job(episode: Episode, error: str | None) -> None:
    """The episode of a job that failed keeps what it had: one still processing goes back to ready if it has
    media, else it is failed; the job's error is kept on it."""
    if episode.status == EpisodeStatus.PROCESSING:
        episode.status = EpisodeStatus.READY.value if episode.media_asset_id else EpisodeStatus.FAILED.value
    episode.last_error = error


def requeue_for_retry(
    uow_factory: UowFactory, job_id: str, error: MediaPubError, *, owner: str | None = None
) -> None:
    """A transient failure: the job goes back to the queue (stage "retry"), with the error kept for show."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id, for_update=True)
        if not holds_lease(job, owner):
            return
        job.status, job.stage = JobStatus.QUEUED.value, "retry"
        job.error, job.error_code = error.detail, error.code
        job.lease_owner = job.lease_expires_at = None
        job.updated_at = datetime.now(UTC)
        uow.commit()


def resume_unfinished(uow_factory: UowFactory, queue: JobQueue) -> int:
    """Queue again the jobs an earlier process left queued or running (in-process mode only)."""
    with uow_factory() as uow:
        unfinished = repo.unfinished_jobs(uow.session)
        for job in unfinished:  # their leases were this machine's earlier process's
            job.status = JobStatus.QUEUED.value
            job.lease_owner = job.lease_expires_at = None
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
    job.status, job.stage, job.progress, job.attempts = JobStatus.QUEUED.value, "queued", 0.0, 0
    job.error = job.error_code = None
    job.lease_owner = job.lease_expires_at = None
    job.started_at = job.finished_at = None
    job.updated_at = datetime.now(UTC)
    kind, job_id = job.kind, job.id
    uow.after_commit(lambda: queue.enqueue(kind, job_id))
    return job


class Claim(StrEnum):
    CLAIMED = "claimed"  # the lease is ours: run the job
    BUSY = "busy"  # another worker holds a live lease: this delivery is a duplicate
    FINISHED = "finished"  # nothing to do


@dataclass(frozen=True)
class Lease:
    """A job's lease held by `owner`, `seconds` long at each renewal."""

    job_id: str
    owner: str
    seconds: float


def _now() -> datetime:
    return datetime.now(UTC)


def claim_job(uow_factory: UowFactory, job_id: str, owner: str, seconds: float) -> Claim:
    """Take the job's lease if it is queued, or running under a lease that ran out (its worker died).

    One conditional UPDATE decides between concurrent claimers, on SQLite and PostgreSQL alike. A job
    claimed MAX_ATTEMPTS times already fails instead (code `too-many-attempts`)."""
    now = _now()
    with uow_factory() as uow:
        claimed = uow.session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                # free, dead, or ours already (a retry of ours after the database came back)
                or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < now, Job.lease_owner == owner),
                Job.attempts < MAX_ATTEMPTS,
            )
            .values(
                status=JobStatus.RUNNING.value,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=seconds),
                attempts=Job.attempts + 1,
                started_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed == 1:
            uow.commit()
            return Claim.CLAIMED
        job = repo.job_by_id(uow.session, job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return Claim.FINISHED
        expires = job.lease_expires_at
        if expires is not None and expires >= now:
            return Claim.BUSY
        # Out of attempts: the job fails and its episode goes back to what it was.
        fail_job(job, MediaPubError(f"the job was started {job.attempts} times without finishing",
                                    code="too-many-attempts"))  # fmt: skip
        if job.episode_id:
            episode_after_failed_job(repo.episode_by_id(uow.session, job.episode_id), job.error)
        uow.commit()
        log.warning("job.gave_up job_id=%s attempts=%s", job_id, job.attempts)
        return Claim.FINISHED


def renew_lease(uow_factory: UowFactory, lease: Lease) -> bool:
    """Push the lease's expiry `seconds` ahead; False when it is no longer ours (or the job ended)."""
    now = _now()
    with uow_factory() as uow:
        renewed = uow.session.execute(
            update(Job)
            .where(
                Job.id == lease.job_id, Job.lease_owner == lease.owner, Job.status == JobStatus.RUNNING.value
            )
            .values(lease_expires_at=now + timedelta(seconds=lease.seconds))
            .execution_options(synchronize_session=False)
        ).rowcount
        uow.commit()
    return renewed == 1


def release_lease(uow_factory: UowFactory, lease: Lease) -> None:
    """Give the lease up (the job ended, or went back to the queue); someone else's lease is left alone."""
    with uow_factory() as uow:
        uow.session.execute(
            update(Job)
            .where(Job.id == lease.job_id, Job.lease_owner == lease.owner)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        uow.commit()


def holds_lease(job: Job, owner: str | None) -> bool:
    """Whether the one who is about to write a job's end still holds its lease (None: no lease in play)."""
    return owner is None or job.lease_owner == owner


@contextmanager
def heartbeat(uow_factory: UowFactory, lease: Lease) -> Iterator[Lease]:
    """Renew `lease` every third of its length in a thread while the block runs, until a renewal finds it
    gone (the work then stops at its next progress report). A renewal that fails (database down) is tried
    again at the next beat."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease.seconds / 3):
            try:
                if not renew_lease(uow_factory, lease):
                    log.warning("job.lease_lost job_id=%s owner=%s", lease.job_id, lease.owner)
                    return
            except Exception:
                log.warning("job.heartbeat_failed job_id=%s", lease.job_id, exc_info=True)

    thread = threading.Thread(target=beat, daemon=True, name=f"heartbeat-{lease.job_id[:8]}")
    thread.start()
    try:
        yield lease
    finally:
        stop.set()
        thread.join(5)


def requeue_stale_jobs(uow_factory: UowFactory, queue: JobQueue, *, resend_after: float) -> int:
    """Send again the jobs no live worker holds: running ones whose lease ran out (their worker died), and
    queued ones not sent or touched for `resend_after` seconds (a message lost with the broker). Safe in
    several processes at once: each job is taken back by one conditional UPDATE. Returns how many."""
    now = _now()
    quiet_since = now - timedelta(seconds=resend_after)
    sent: list[tuple[str, str]] = []
    unheld = and_(
        Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
        or_(Job.lease_expires_at < now, and_(Job.lease_expires_at.is_(None), Job.updated_at < quiet_since)),
    )
    with uow_factory() as uow:
        stale = uow.session.execute(select(Job.id, Job.kind).where(unheld)).all()
        for job_id, kind in stale:
            taken = uow.session.execute(
                update(Job)
                .where(Job.id == job_id, unheld)  # still unheld: another process may have taken it back
                .values(
                    status=JobStatus.QUEUED.value,
                    stage="requeued",
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken == 1:
                sent.append((kind, job_id))
        uow.commit()
    for kind, job_id in sent:
        log.info("job.requeued job_id=%s kind=%s", job_id, kind)
        queue.enqueue(kind, job_id)
    return len(sent)
