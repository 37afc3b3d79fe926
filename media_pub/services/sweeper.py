"""The orphan sweeper: stored objects that no row refers to, deleted once older than a grace period.

Objects are written before the rows that name them are committed (so no row ever points at a missing
object), which leaves an object behind when a process dies between the two, or when a row lets go of
one. The grace period covers writes whose row is still to come (a job's outputs wait for its commit).
Only `shows/` is swept: resumable uploads keep their own expiry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from media_pub.db.models import Asset, Job, Show, Transcript
from media_pub.db.uow import UowFactory
from media_pub.domain.rules import JobStatus
from media_pub.storage.base import Storage

log = logging.getLogger(__name__)

PREFIX = "shows/"


@dataclass
class SweepReport:
    scanned: int = 0
    deleted: list[str] = field(default_factory=list)
    young: int = 0  # unreferenced but inside the grace period


def referenced_keys(uow_factory: UowFactory) -> set[str]:
    """Every storage key a row names."""
    keys: set[str] = set()
    with uow_factory() as uow:
        s = uow.session
        for key, processing in s.execute(select(Asset.storage_key, Asset.processing)):
            keys.add(key)
            if processing and processing.get("waveform_key"):
                keys.add(processing["waveform_key"])
        for row in s.execute(select(Show.artwork_key, Show.intro_key, Show.outro_key)):
            keys.update(k for k in row if k)
        for row in s.execute(select(Transcript.source_key, Transcript.vtt_key, Transcript.json_key)):
            keys.update(row)
    return keys


def _busy_prefixes(uow_factory: UowFactory) -> tuple[str, ...]:
    """Key prefixes of episodes with a queued or running job: their outputs may still be waiting for the
    job's commit, so they are never swept, whatever the grace."""
    with uow_factory() as uow:
        rows = uow.session.execute(
            select(Job.show_id, Job.episode_id).where(
                Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]), Job.episode_id.is_not(None)
            )
        ).all()
    return tuple(f"shows/{show_id}/episodes/{episode_id}/" for show_id, episode_id in rows)


def _written_before(storage: Storage, key: str, cutoff: datetime) -> bool:
    info = next((i for i in storage.list_objects(key) if i.key == key), None)
    return info is not None and info.modified is not None and info.modified <= cutoff


def sweep(
    uow_factory: UowFactory, storage: Storage, *, now: datetime, grace_seconds: float, dry_run: bool = False
) -> SweepReport:
    """Delete objects under `shows/` that no row names and that were last written before now - grace
    (with `dry_run`, only list them in the report).

    Candidates are checked again just before deletion (rows read afresh, each object's age again), so a
    row committed during the listing, or an object written again meanwhile, keeps its object. Objects of
    episodes with a queued or running job are kept whatever the grace (their row may be on its way)."""
    report = SweepReport()
    cutoff = now - timedelta(seconds=grace_seconds)
    known = referenced_keys(uow_factory)
    candidates = []
    for info in storage.list_objects(PREFIX):
        report.scanned += 1
        if info.key in known:
            continue
        if info.modified is None or info.modified > cutoff:
            report.young += 1
        else:
            candidates.append(info.key)
    if not candidates:
        return report
    known, busy = referenced_keys(uow_factory), _busy_prefixes(uow_factory)
    for key in candidates:
        if key in known or key.startswith(busy) or not _written_before(storage, key, cutoff):
            continue
        if not dry_run:
            storage.delete(key)
        report.deleted.append(key)
        log.info("sweep.deleted key=%s", key)
    return report
