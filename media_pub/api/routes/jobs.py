"""Jobs: status, progress and errors of background work."""

from __future__ import annotations

from fastapi import APIRouter

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import JobRead
from media_pub.db import repositories as repo
from media_pub.db.models import Job, User
from media_pub.db.uow import UnitOfWork
from media_pub.errors import NotFound
from media_pub.services.auth import require_role
from media_pub.services.jobs import cancel_job, get_job, retry_job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


def _job_for(uow: UnitOfWork, user: User, job_id: str) -> Job:
    job = get_job(uow, job_id)
    if job.show_id is None:
        if not user.is_admin:
            raise NotFound(f"no job with id {job_id!r}", code="job-not-found")
    else:
        require_role(uow, user, repo.show_by_id(uow.session, job.show_id))
    return job


@router.get("/{job_id}")
def read_job(job_id: str, uow: UowDep, user: UserDep) -> JobRead:
    """A job's status, stage, progress (0 to 1) and error."""
    return JobRead.of(_job_for(uow, user, job_id))


@router.post("/{job_id}/cancel")
def cancel(job_id: str, uow: UowDep, user: UserDep) -> JobRead:
    """Cancel a queued or running job; the episode stays as it was before the job."""
    job = cancel_job(uow, _job_for(uow, user, job_id))
    uow.commit()
    return JobRead.of(job)


@router.post("/{job_id}/retry")
def retry(job_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> JobRead:
    """Run a failed or cancelled job again from the untouched original."""
    job = retry_job(uow, c.queue, _job_for(uow, user, job_id))
    uow.commit()
    return JobRead.of(job)
