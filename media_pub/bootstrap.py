"""The composition root: builds storage, the unit-of-work factory and the job queue from Settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import Engine

from media_pub.config import Settings
from media_pub.db.engine import make_engine, make_session_factory, upgrade
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.notify import Notifier
from media_pub.services.feeds import FRESH_SECONDS, FeedOptions, FeedService, Urls
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
    notifier: Notifier = field(default_factory=Notifier)
    feeds: FeedService = field(init=False)

    def __post_init__(self) -> None:
        options = FeedOptions(
            hubs=tuple(self.settings.websub_hubs), podping=self.settings.podping_url is not None
        )
        self.feeds = FeedService(self.urls, options)

    def feeds_changed(self, changed: list[tuple[str, str]]) -> None:
        """After a commit: end this process's feed memos, and tell WebSub hubs and Podping which public
        feeds changed (never blocks)."""
        self.feeds.changed()
        if not self.notifier.enabled:
            return
        for slug, reason in changed:
            for kind, medium in (("audio", "podcast"), ("video", "video"), ("live", "video")):
                why = reason if kind == "live" else "update"
                self.notifier.notify(self.urls.feed(slug, kind), reason=why, medium=medium)

    def close(self) -> None:
        shutdown = getattr(self.queue, "shutdown", None)
        if shutdown:
            shutdown()
        self.notifier.close()
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

            queue = CeleryQueue(settings.broker_url, settings.broker_visibility_timeout)
        else:
            from media_pub.jobs.queue import InProcessQueue

            queue = InProcessQueue(settings.job_threads)
    token = settings.podping_token.get_secret_value() if settings.podping_token else None
    # Told after a commit, a hub or app fetches at once: wait out the other API processes' feed memo
    # (FeedService serves a public feed up to FRESH_SECONDS after it last checked the database).
    notifier = Notifier(
        settings.websub_hubs,
        settings.podping_url,
        token,
        attempts=settings.notify_attempts,
        first_delay=FRESH_SECONDS + 0.5,
    )
    changed: list[Container] = []  # the container, once built: the unit of work reports to it

    def feeds_changed(shows: list[tuple[str, str]]) -> None:
        changed[0].feeds_changed(shows)

    container = Container(
        settings,
        engine,
        partial(UnitOfWork, session_factory, on_feeds_changed=feeds_changed),
        storage,
        queue,
        Urls(settings.base_url, storage),
        notifier,
    )
    changed.append(container)
    bind = getattr(queue, "bind", None)
    if bind is not None:
        from media_pub.jobs.handlers import run_job

        bind(partial(run_job, container))
    return container
