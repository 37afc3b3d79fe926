"""Jobs: status, progress and errors of background work."""

from __future__ import annotations

from fastapi import APIRouter

from media_pub.api.deps import UowDep, UserDep
from media_pub.api.schemas import JobRead
from media_pub.db import repositories as repo
from media_pub.errors import NotFound
from media_pub.services.auth import require_role
from media_pub.services.jobs import get_job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("/{job_id}")
def read_job(job_id: str, uow: UowDep, user: UserDep) -> JobRead:
    """A job's status, stage, progress (0 to 1) and error."""
    job = get_job(uow, job_id)
    if job.show_id is None:
        if not user.is_admin:
            raise NotFound(f"no job with id {job_id!r}", code="job-not-found")
    else:
        require_role(uow, user, repo.show_by_id(uow.session, job.show_id))
    return JobRead.of(job)
