"""Job queues. The only module that imports the queue library (Celery)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from media_pub.errors import MediaPubError

log = logging.getLogger(__name__)

Runner = Callable[[str, str], None]
MAX_ATTEMPTS = 5


class InProcessQueue:
    """Runs jobs on a small thread pool inside this process, retrying transient errors with backoff."""

    def __init__(self, threads: int = 2) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="media-pub-job")
        self._runner: Runner | None = None
        self._pending = 0
        self._cond = threading.Condition()

    def bind(self, runner: Runner) -> None:
        self._runner = runner

    def enqueue(self, kind: str, job_id: str) -> None:
        with self._cond:
            self._pending += 1
        self._pool.submit(self._run, kind, job_id)

    def _run(self, kind: str, job_id: str) -> None:
        assert self._runner is not None, "InProcessQueue.bind() was not called"
        try:
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    self._runner(kind, job_id)
                    return
                except MediaPubError as exc:
                    if not exc.retryable or attempt == MAX_ATTEMPTS:
                        log.warning("job.gave_up job_id=%s kind=%s code=%s", job_id, kind, exc.code)
                        return
                    time.sleep(min(30.0, 0.5 * 2**attempt))
                except Exception:
                    log.exception("job.crashed job_id=%s kind=%s", job_id, kind)
                    return
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is pending (tests and the demo loader use this)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout=timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)


class CeleryQueue:
    """Sends jobs to Celery workers over the broker (Redis); job state stays in the database."""

    def __init__(self, broker_url: str) -> None:
        self.app = make_celery(broker_url)

    def enqueue(self, kind: str, job_id: str) -> None:
        self.app.send_task("media_pub.run_job", args=[kind, job_id])


def make_celery(broker_url: str) -> Any:
    from celery import Celery

    app = Celery("media_pub", broker=broker_url)
    app.conf.update(
        task_acks_late=True,  # redeliver when a worker dies mid-job; handlers are idempotent
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    return app
