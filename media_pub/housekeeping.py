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


_last_sweep: dict[int, float] = {}  # per container: the sweep lists the whole store, so it runs seldom


def _sweep(container: Container, now: datetime) -> None:
    last = _last_sweep.get(id(container))
    if last is not None and time.monotonic() - last < container.settings.sweep_interval_seconds:
        return
    _last_sweep[id(container)] = time.monotonic()
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


_last_orphan_scan: dict[int, float] = {}  # per container: listing uploads/ runs as seldom as the sweep


def _orphan_uploads(container: Container, now: datetime) -> None:
    last = _last_orphan_scan.get(id(container))
    if last is not None and time.monotonic() - last < container.settings.sweep_interval_seconds:
        return
    _last_orphan_scan[id(container)] = time.monotonic()
    grace = timedelta(seconds=container.settings.direct_upload_expires_seconds)
    abort_orphan_multipart_uploads(container.uow, container.storage, now, grace)
    delete_orphan_upload_objects(container.uow, container.storage, now, grace)


TASKS: list[tuple[str, Callable[[Container, datetime], None]]] = [
    ("publish", _publish),
    ("jobs", _jobs),
    ("uploads", _uploads),
    ("s3_uploads", _s3_uploads),
    ("direct_uploads", _direct_uploads),
    ("orphan_uploads", _orphan_uploads),
    ("sweep", _sweep),
]


def run_once(container: Container, now: datetime | None = None) -> None:
    """Run every task once; one task failing does not stop the others."""
    now = now or datetime.now(UTC)
    for name, task in TASKS:
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
