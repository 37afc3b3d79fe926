"""The FastAPI application."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI

from media_pub import __version__
from media_pub.api import idempotency, problems
from media_pub.api.routes import (
    episodes,
    imports,
    jobs,
    livestreams,
    public,
    shows,
    supporters,
    transcripts,
    tus,
)
from media_pub.bootstrap import Container
from media_pub.services.episodes import publish_due
from media_pub.services.livestreams import livestreams_due
from media_pub.services.resumable import expire_uploads

log = logging.getLogger(__name__)


def _scheduler(container: Container, stop: threading.Event) -> None:
    """Publish scheduled episodes and announcements when their time comes, with no request needed; remove
    resumable uploads past their expiry."""
    while not stop.wait(container.settings.scheduler_interval_seconds):
        try:
            with container.uow() as uow:
                if publish_due(uow) + livestreams_due(uow):
                    uow.commit()
            expire_uploads(container.settings.data_dir, datetime.now(UTC))
        except Exception:
            log.exception("scheduler.failed")


def create_app(container: Container, *, scheduler: bool = True) -> FastAPI:
    """The API over an already-wired container."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if scheduler:
            threading.Thread(target=_scheduler, args=(container, stop), daemon=True, name="scheduler").start()
        yield
        stop.set()

    app = FastAPI(
        title="media_pub",
        version=__version__,
        description="Podcast and video publishing backend: upload, process, publish feeds, serve media.",
        lifespan=lifespan,
    )
    app.state.container = container
    problems.install(app)
    idempotency.install(app)
    for module in (shows, episodes, livestreams, transcripts, supporters, imports, tus, jobs, public):
        app.include_router(module.router)
    return app
