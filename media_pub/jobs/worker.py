"""Celery worker entry point: `media-pub worker` (or `celery -A media_pub.jobs.worker worker`).

Each worker process builds its own container (database engine, storage clients) on first use, after the
pool has forked. The main process runs housekeeping, which sends again jobs whose worker died.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from media_pub import housekeeping
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import get_settings
from media_pub.errors import MediaPubError
from media_pub.jobs.handlers import run_job
from media_pub.jobs.queue import make_celery

MAX_RETRIES = 7  # transient errors, with backoff 2, 4 ... 128 s (about 4 minutes in all)

_containers: dict[int, Container] = {}
_lock = threading.Lock()


def _container() -> Container:
    """This process's container (a forked pool process must not share its parent's connections)."""
    with _lock:
        pid = os.getpid()
        if pid not in _containers:
            _containers[pid] = bootstrap(get_settings(), migrate=False)
        return _containers[pid]


def make_worker_app() -> Any:
    settings = get_settings()
    if not settings.broker_url:
        raise SystemExit("set MEDIA_PUB_BROKER_URL to run a worker")
    bootstrap(settings).close()  # run the migrations once, before any job
    app = make_celery(settings.broker_url, settings.broker_visibility_timeout)

    @app.task(name="media_pub.run_job", bind=True, max_retries=MAX_RETRIES)  # type: ignore[untyped-decorator]
    def _run(self: Any, kind: str, job_id: str) -> None:
        try:
            run_job(_container(), kind, job_id)
        except MediaPubError as exc:
            if exc.retryable:
                raise self.retry(exc=exc, countdown=min(300, 2 ** (self.request.retries + 1))) from exc
            raise

    from celery.signals import worker_ready, worker_shutting_down

    stop = threading.Event()

    # weak=False: these are local functions, and Celery holds signal receivers weakly by default
    @worker_ready.connect(weak=False)  # type: ignore[untyped-decorator]
    def _start_housekeeping(**_: Any) -> None:
        housekeeping.start(_container(), stop)

    @worker_shutting_down.connect(weak=False)  # type: ignore[untyped-decorator]
    def _stop_housekeeping(**_: Any) -> None:
        stop.set()

    return app
