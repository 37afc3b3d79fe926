"""Job handlers: a job id in, a service call out."""

from __future__ import annotations

from collections.abc import Callable

from media_pub.bootstrap import Container
from media_pub.errors import InvalidInput
from media_pub.services.processing import process_episode_media
from media_pub.services.retag import retag_episode_media
from media_pub.services.transcripts import reshift_after_processing

Handler = Callable[[Container, str], None]


def _media_process(container: Container, job_id: str) -> None:
    process_episode_media(
        container.uow, container.storage, job_id, timeout=container.settings.job_timeout_seconds
    )
    # New media may have new cuts: transcripts made from the original follow them.
    reshift_after_processing(container.uow, container.storage, job_id)


def _media_retag(container: Container, job_id: str) -> None:
    retag_episode_media(container.uow, container.storage, job_id)


HANDLERS: dict[str, Handler] = {"media.process": _media_process, "media.retag": _media_retag}


def run_job(container: Container, kind: str, job_id: str) -> None:
    """Run job `job_id` of `kind` (e.g. "media.process", "media.retag")."""
    handler = HANDLERS.get(kind)
    if handler is None:
        raise InvalidInput(f"unknown job kind {kind!r}")
    handler(container, job_id)
