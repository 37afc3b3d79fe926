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

Runner = Callable[[str, str], object]
SEND_RETRY = {"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}
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
    """Sends jobs to Celery workers over the broker (Redis); job state stays in the database.

    A message that cannot be sent (broker down) is logged, not raised: the job row is committed and
    queued, and housekeeping sends it again later (`requeue_stale_jobs`)."""

    def __init__(self, broker_url: str, visibility_timeout: int = 3600) -> None:
        self.app = make_celery(broker_url, visibility_timeout)

    def enqueue(self, kind: str, job_id: str) -> None:
        try:
            self.app.send_task("media_pub.run_job", args=[kind, job_id], retry=True, retry_policy=SEND_RETRY)
        except Exception as exc:
            log.warning("job.send_failed job_id=%s kind=%s error=%s", job_id, kind, type(exc).__name__)


def make_celery(broker_url: str, visibility_timeout: int = 3600) -> Any:
    from celery import Celery

    app = Celery("media_pub", broker=broker_url)
    app.conf.update(
        # At least once: a message is acknowledged after its job ran, and comes back when the worker dies
        # (reject on worker lost) or, with Redis, when unacknowledged for `visibility_timeout` seconds. The
        # job's lease in the database keeps a redelivered job from running twice at once.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        # kombu looks for unacknowledged messages every interval x throttle seconds (10 x 10 by default)
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            "unacked_restore_interval": max(1, min(10, visibility_timeout)),
            "unacked_restore_throttle": 1,
        },
        result_backend=None,
        task_ignore_result=True,
    )
    return app
