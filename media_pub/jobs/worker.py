"""Celery worker entry point: `media-pub worker` (or `celery -A media_pub.jobs.worker worker`)."""

from __future__ import annotations

from typing import Any

from media_pub.bootstrap import bootstrap
from media_pub.config import get_settings
from media_pub.jobs.handlers import run_job
from media_pub.jobs.queue import make_celery


def make_worker_app() -> Any:
    settings = get_settings()
    if not settings.broker_url:
        raise SystemExit("set MEDIA_PUB_BROKER_URL to run a worker")
    container = bootstrap(settings)
    app = make_celery(settings.broker_url)

    @app.task(name="media_pub.run_job", bind=True, max_retries=5)  # type: ignore[untyped-decorator]
    def _run(self: Any, kind: str, job_id: str) -> None:
        from media_pub.errors import MediaPubError

        try:
            run_job(container, kind, job_id)
        except MediaPubError as exc:
            if exc.retryable:
                raise self.retry(exc=exc, countdown=min(60, 2 ** (self.request.retries + 1))) from exc
            raise

    return app
