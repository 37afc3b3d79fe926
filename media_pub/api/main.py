"""Process-level wiring for `media-pub serve`: migrations, demo loading, resumed jobs, the app factory."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, get_settings
from media_pub.services.jobs import resume_unfinished
from media_pub.services.supporters import install_log_redaction

log = logging.getLogger(__name__)
_keep: list[Container] = []


def prepare(settings: Settings, demo_dir: Path | None) -> None:
    """Before serving: migrate, load the demo show once, and pick up jobs an earlier run left unfinished.

    Jobs run in-process go on in this (the main) process while uvicorn serves.
    """
    container = bootstrap(settings)
    _keep.append(container)
    if settings.broker_url is None:
        resumed = resume_unfinished(container.uow, container.queue)
        if resumed:
            log.info("jobs.resumed count=%d", resumed)
    if demo_dir is not None:
        load_demo(container, demo_dir)


def load_demo(container: Container, demo_dir: Path) -> None:
    """Load the demo show from its manifests if it is not there yet, and wait for its processing."""
    from media_pub.services.manifests import publish_folder

    if not (demo_dir / "show.toml").is_file():
        log.warning("demo.missing dir=%s", demo_dir)
        return
    report = publish_folder(container, demo_dir)
    if report.queued:
        print(f"demo: processing {len(report.queued)} episodes of '{report.show}'...", flush=True)
        wait = getattr(container.queue, "wait_idle", None)
        if wait is not None:
            wait(600)
    print(f"demo: feed at {container.settings.base_url}/feeds/{report.show}.xml", flush=True)


def app_factory() -> FastAPI:
    """The ASGI app of one server process (uvicorn --factory)."""
    settings = get_settings()
    install_log_redaction()  # no supporter token in uvicorn's access log or ours
    return create_app(bootstrap(settings, migrate=False))
