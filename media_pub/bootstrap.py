"""The composition root: builds storage, the unit-of-work factory and the job queue from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine

from media_pub.config import Settings
from media_pub.db.engine import make_engine, make_session_factory, upgrade
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.services.feeds import FeedService, Urls
from media_pub.services.jobs import JobQueue
from media_pub.storage.base import Storage
from media_pub.storage.factory import build_storage

log = logging.getLogger(__name__)


@dataclass
class Container:
    settings: Settings
    engine: Engine
    uow: UowFactory
    storage: Storage
    queue: JobQueue
    urls: Urls
    feeds: FeedService = field(init=False)

    def __post_init__(self) -> None:
        self.feeds = FeedService(self.urls)

    def close(self) -> None:
        shutdown = getattr(self.queue, "shutdown", None)
        if shutdown:
            shutdown()
        self.engine.dispose()


def bootstrap(settings: Settings, *, migrate: bool = True, queue: JobQueue | None = None) -> Container:
    """Wire the app's collaborators; with no broker URL, jobs run in this process."""
    url = settings.effective_database_url
    if migrate:
        upgrade(url)
    engine = make_engine(url)
    session_factory = make_session_factory(engine)
    storage = build_storage(settings.storage)
    if queue is None:
        if settings.broker_url:
            from media_pub.jobs.queue import CeleryQueue

            queue = CeleryQueue(settings.broker_url)
        else:
            from media_pub.jobs.queue import InProcessQueue

            queue = InProcessQueue(settings.job_threads)
    container = Container(
        settings,
        engine,
        partial(UnitOfWork, session_factory),
        storage,
        queue,
        Urls(settings.base_url, storage),
    )
    bind = getattr(queue, "bind", None)
    if bind is not None:
        from media_pub.jobs.handlers import run_job

        bind(partial(run_job, container))
    return container
