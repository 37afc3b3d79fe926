"""The FastAPI application."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from media_pub import __version__, housekeeping
from media_pub.api import idempotency, problems
from media_pub.api.feed_http import FeedFastPath
from media_pub.api.routes import (
    direct_uploads,
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

log = logging.getLogger(__name__)


def create_app(container: Container, *, scheduler: bool = True) -> FastAPI:
    """The API over an already-wired container."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        if scheduler:
            housekeeping.start(container, stop)  # scheduled publishing, job recovery, expiry, sweeping
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
    for module in (
        shows,
        episodes,
        livestreams,
        transcripts,
        supporters,
        imports,
        tus,
        direct_uploads,
        jobs,
        public,
    ):
        app.include_router(module.router)
    app.add_middleware(FeedFastPath, feeds=container.feeds)  # added last: the first to see a request
    return app
