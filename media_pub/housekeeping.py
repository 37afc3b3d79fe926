"""Periodic work every API process and worker does: publish what is due, send again jobs whose worker
died, remove expired uploads, sweep orphan objects. Each task is safe to run in several processes at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from media_pub.bootstrap import Container
from media_pub.services.direct_uploads import (
    abort_orphan_multipart_uploads,
    delete_orphan_upload_objects,
    expire_direct_uploads,
)
from media_pub.services.episodes import publish_due
from media_pub.services.jobs import requeue_stale_jobs
from media_pub.services.livestreams import livestreams_due
from media_pub.services.resumable import expire_uploads
from media_pub.services.resumable_s3 import expire_s3_uploads
from media_pub.services.sweeper import sweep

log = logging.getLogger(__name__)


def _publish(container: Container, now: datetime) -> None:
    with container.uow() as uow:
        if publish_due(uow) + livestreams_due(uow):
            uow.commit()


def _uploads(container: Container, now: datetime) -> None:
    expire_uploads(container.settings.data_dir, now)


def _jobs(container: Container, now: datetime) -> None:
    requeue_stale_jobs(
        container.uow, container.queue, resend_after=container.settings.broker_visibility_timeout
    )


def _sweep(container: Container, now: datetime) -> None:
    report = sweep(
        container.uow, container.storage, now=now, grace_seconds=container.settings.sweep_grace_seconds
    )
    if report.deleted:
        log.info("housekeeping.swept deleted=%d scanned=%d", len(report.deleted), report.scanned)


def _s3_uploads(container: Container, now: datetime) -> None:
    s = container.settings
    expire_s3_uploads(container.uow, container.storage, s.data_dir / "tmp", now, s.upload_lock_seconds)


def _direct_uploads(container: Container, now: datetime) -> None:
    expire_direct_uploads(container.uow, container.storage, now)


def _orphan_uploads(container: Container, now: datetime) -> None:
    grace = timedelta(seconds=container.settings.direct_upload_expires_seconds)
    abort_orphan_multipart_uploads(container.uow, container.storage, now, grace)
    delete_orphan_upload_objects(container.uow, container.storage, now, grace)


# (name, task, seldom): a seldom task lists the whole store, so it runs once per sweep interval at most.
TASKS: list[tuple[str, Callable[[Container, datetime], None], bool]] = [
    ("publish", _publish, False),
    ("jobs", _jobs, False),
    ("uploads", _uploads, False),
    ("s3_uploads", _s3_uploads, False),
    ("direct_uploads", _direct_uploads, False),
    ("orphan_uploads", _orphan_uploads, True),
    ("sweep", _sweep, True),
]
_last_run: dict[tuple[int, str], float] = {}  # (container, seldom task) -> when it last ran


def _due(container: Container, name: str) -> bool:
    key, now = (id(container), name), time.monotonic()
    last = _last_run.get(key)
    if last is not None and now - last < container.settings.sweep_interval_seconds:
        return False
    _last_run[key] = now
    return True


def run_once(container: Container, now: datetime | None = None) -> None:
    """Run every task once (seldom ones when due); one task failing does not stop the others."""
    now = now or datetime.now(UTC)
    for name, task, seldom in TASKS:
        if seldom and not _due(container, name):
            continue
        try:
            task(container, now)
        except Exception:
            log.exception("housekeeping.failed task=%s", name)


def run_forever(container: Container, stop: threading.Event, interval: float | None = None) -> None:
    """`run_once` every `interval` seconds (default: the scheduler interval) until `stop` is set."""
    interval = interval or container.settings.scheduler_interval_seconds
    while not stop.wait(interval):
        started = time.monotonic()
        run_once(container)
        log.debug("housekeeping.ran seconds=%.3f", time.monotonic() - started)


def start(container: Container, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=run_forever, args=(container, stop), daemon=True, name="housekeeping")
    thread.start()
    return thread
