"""Periodic work every API process and worker does: publish what is due, send again jobs whose worker
died, remove expired uploads, sweep orphan objects. Each task is safe to run in several processes at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from media_pub.bootstrap import Container
from media_pub.services.episodes import publish_due
from media_pub.services.livestreams import livestreams_due
from media_pub.services.resumable import expire_uploads

log = logging.getLogger(__name__)


def _publish(container: Container, now: datetime) -> None:
    with container.uow() as uow:
        if publish_due(uow) + livestreams_due(uow):
            uow.commit()


def _uploads(container: Container, now: datetime) -> None:
    expire_uploads(container.settings.data_dir, now)


TASKS: list[tuple[str, Callable[[Container, datetime], None]]] = [
    ("publish", _publish),
    ("uploads", _uploads),
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
