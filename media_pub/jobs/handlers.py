"""Job handlers: a job id in, a service call out, under the job's lease."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable

from media_pub import failpoints
from media_pub.bootstrap import Container
from media_pub.errors import InvalidInput
from media_pub.services.jobs import Claim, Lease, claim_job, heartbeat, release_lease
from media_pub.services.processing import process_episode_media
from media_pub.services.retag import retag_episode_media
from media_pub.services.transcripts import reshift_after_processing

log = logging.getLogger(__name__)

Handler = Callable[[Container, str, str], None]


def _media_process(container: Container, job_id: str, owner: str) -> None:
    process_episode_media(
        container.uow,
        container.storage,
        job_id,
        timeout=container.settings.job_timeout_seconds,
        owner=owner,
    )
    _follow_up_processing(container, job_id)


def _follow_up_processing(container: Container, job_id: str) -> None:
    """New media may have new cuts: transcripts made from the original follow them (idempotent)."""
    reshift_after_processing(container.uow, container.storage, job_id)


def _media_retag(container: Container, job_id: str, owner: str) -> None:
    retag_episode_media(container.uow, container.storage, job_id, owner=owner)


HANDLERS: dict[str, Handler] = {"media.process": _media_process, "media.retag": _media_retag}
# Steps after a job's end is committed, run again when a finished job is delivered again: the worker may have
# died between the commit and them (before the broker's acknowledgement).
FOLLOW_UPS: dict[str, Callable[[Container, str], None]] = {"media.process": _follow_up_processing}
_PROCESS_TOKEN: dict[int, str] = {}


def worker_identity() -> str:
    """Who runs a job (a lease owner): host, process, a random token of this process (pids repeat across
    containers and restarts) and thread."""
    pid = os.getpid()
    token = _PROCESS_TOKEN.setdefault(pid, secrets.token_hex(4))
    return f"{socket.gethostname()[:24]}:{pid}:{token}:{threading.get_ident() % 100000}"


def run_job(container: Container, kind: str, job_id: str) -> Claim:
    """Run job `job_id` of `kind` (e.g. "media.process") if its lease can be taken.

    A delivery of a job that another worker runs (BUSY) or that ended (FINISHED) does nothing: the broker
    may deliver a job twice, and a job whose worker died is sent again once its lease runs out."""
    handler = HANDLERS.get(kind)
    if handler is None:
        raise InvalidInput(f"unknown job kind {kind!r}")
    lease = Lease(job_id, worker_identity(), container.settings.job_lease_seconds)
    claim = claim_job(container.uow, job_id, lease.owner, lease.seconds)
    if claim is not Claim.CLAIMED:
        log.info("job.skipped job_id=%s kind=%s claim=%s", job_id, kind, claim.value)
        follow_up = FOLLOW_UPS.get(kind)
        if claim is Claim.FINISHED and follow_up is not None:
            follow_up(container, job_id)
        return claim
    log.info("job.started job_id=%s kind=%s owner=%s", job_id, kind, lease.owner)
    failpoints.hit("job.claimed")
    try:
        with heartbeat(container.uow, lease):
            handler(container, job_id, lease.owner)
    finally:
        release_lease(container.uow, lease)
    return claim
