"""Job leases, the stale-job reaper and the orphan sweeper, on SQLite, S3 storage and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Job
from media_pub.domain.rules import JobStatus
from media_pub.jobs.handlers import run_job
from media_pub.services.jobs import (
    MAX_ATTEMPTS,
    Claim,
    Lease,
    claim_job,
    create_job,
    heartbeat,
    release_lease,
    renew_lease,
    requeue_stale_jobs,
)
from media_pub.services.sweeper import referenced_keys, sweep
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import wait_job


class Sent:
    """A queue that records what it is handed (the delivery side is Celery's; here we test the rows)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[str, str]] = []

    def enqueue(self, kind: str, job_id: str) -> None:
        self.jobs.append((kind, job_id))


def _job(c: Container) -> str:
    with c.uow() as uow:
        job = create_job(uow, Sent(), "media.retag", episode=None, payload={})
        uow.commit()
        return job.id


def _set(c: Container, job_id: str, **values: object) -> None:
    with c.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(**values))


def _row(c: Container, job_id: str) -> Job:
    with c.uow() as uow:
        job = repo.job_by_id(uow.session, job_id)
        uow.session.expunge(job)
        return job


def test_one_claim_wins_and_a_dead_lease_is_taken_over(backend: Container) -> None:
    job_id = _job(backend)
    assert claim_job(backend.uow, job_id, "a", 30) is Claim.CLAIMED
    assert claim_job(backend.uow, job_id, "b", 30) is Claim.BUSY
    row = _row(backend, job_id)
    assert (row.status, row.lease_owner, row.attempts) == ("running", "a", 1)
    # a's worker dies: its lease runs out, b takes the job over and a can no longer renew it
    _set(backend, job_id, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert claim_job(backend.uow, job_id, "b", 30) is Claim.CLAIMED
    assert not renew_lease(backend.uow, Lease(job_id, "a", 30))
    assert renew_lease(backend.uow, Lease(job_id, "b", 30))
    release_lease(backend.uow, Lease(job_id, "a", 30))  # not a's: left alone
    assert _row(backend, job_id).lease_owner == "b"
    _set(backend, job_id, status=JobStatus.SUCCEEDED.value)
    assert claim_job(backend.uow, job_id, "c", 30) is Claim.FINISHED


def test_concurrent_claims_give_one_lease(backend: Container) -> None:
    job_id = _job(backend)
    results: list[Claim] = []
    barrier = threading.Barrier(8)

    def claim(n: int) -> None:
        barrier.wait()
        results.append(claim_job(backend.uow, job_id, f"w{n}", 30))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([Claim.CLAIMED] + [Claim.BUSY] * 7)
    assert _row(backend, job_id).attempts == 1


def test_a_job_started_too_often_fails(backend: Container) -> None:
    job_id = _job(backend)
    _set(backend, job_id, attempts=MAX_ATTEMPTS, status="running")
    assert claim_job(backend.uow, job_id, "a", 30) is Claim.FINISHED
    row = _row(backend, job_id)
    assert (row.status, row.error_code, row.lease_owner) == ("failed", "too-many-attempts", None)


def test_heartbeat_keeps_the_lease_alive(backend: Container) -> None:
    job_id = _job(backend)
    assert claim_job(backend.uow, job_id, "a", 2.0) is Claim.CLAIMED
    with heartbeat(backend.uow, Lease(job_id, "a", 2.0)):
        threading.Event().wait(3.0)  # longer than the lease itself
        assert claim_job(backend.uow, job_id, "b", 2.0) is Claim.BUSY
    expires = _row(backend, job_id).lease_expires_at
    assert expires is not None
    assert expires > datetime.now(UTC)


def test_reaper_sends_again_jobs_whose_worker_died(backend: Container) -> None:
    dead, waiting, fresh = _job(backend), _job(backend), _job(backend)
    assert claim_job(backend.uow, dead, "a", 30) is Claim.CLAIMED
    _set(backend, dead, lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    _set(backend, waiting, updated_at=datetime.now(UTC) - timedelta(hours=2))  # its message was lost
    queues = [Sent(), Sent()]
    counts = [requeue_stale_jobs(backend.uow, q, resend_after=3600) for q in queues]  # two processes
    assert sorted(counts) == [0, 2]
    sent = {job_id for q in queues for _, job_id in q.jobs}
    assert sent == {dead, waiting}
    assert fresh not in sent
    row = _row(backend, dead)
    assert (row.status, row.stage, row.lease_owner) == ("queued", "requeued", None)
    assert requeue_stale_jobs(backend.uow, Sent(), resend_after=3600) == 0  # nothing twice


@pytest.fixture
def owner(backend: Container) -> dict[str, str]:
    return new_user(backend, "owner")


def _processed_episode(client: TestClient, headers: dict[str, str], speech_wav: Path) -> tuple[str, dict]:
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    episode = client.post(
        f"/api/v1/shows/{SHOW['slug']}/episodes", json={"title": "One"}, headers=headers
    ).json()
    job = client.put(
        f"/api/v1/episodes/{episode['id']}/media", content=speech_wav.read_bytes(), headers=headers
    ).json()
    return episode["id"], wait_job(client, job, headers)


@pytest.mark.slow
def test_a_redelivered_job_runs_once_and_the_sweeper_removes_only_orphans(
    backend: Container, backend_client: TestClient, owner: dict[str, str], speech_wav: Path
) -> None:
    episode_id, job = _processed_episode(backend_client, owner, speech_wav)
    assert job["status"] == "succeeded"
    # The broker delivers the finished job again: nothing runs, nothing is written.
    before = sorted(backend.storage.list_keys("shows/"))
    assert run_job(backend, "media.process", job["id"]) is Claim.FINISHED
    assert sorted(backend.storage.list_keys("shows/")) == before
    # A worker that died after storing its outputs left an object no row names.
    show_id = _show_id(backend)
    orphan = f"shows/{show_id}/episodes/{episode_id}/mp3-0123456789abcdef.mp3"
    backend.storage.put_bytes(orphan, b"left by a dead worker", content_type="audio/mpeg")
    young = sweep(backend.uow, backend.storage, now=datetime.now(UTC), grace_seconds=3600)
    assert (young.deleted, young.young) == ([], 1)
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert sweep(backend.uow, backend.storage, now=later, grace_seconds=0, dry_run=True).deleted == [orphan]
    assert backend.storage.exists(orphan)
    # While a job of the episode is queued or running, its outputs may still await their row: kept.
    with backend.uow() as uow:
        episode = repo.episode_by_id(uow.session, episode_id)
        busy = create_job(uow, Sent(), "media.retag", episode=episode, payload={}).id
        uow.commit()
    assert sweep(backend.uow, backend.storage, now=later, grace_seconds=0).deleted == []
    _set(backend, busy, status=JobStatus.SUCCEEDED.value)
    report = sweep(backend.uow, backend.storage, now=later, grace_seconds=0)
    assert report.deleted == [orphan]
    assert sorted(backend.storage.list_keys("shows/")) == before
    # Every row's object is still there, and the episode still plays.
    for key in referenced_keys(backend.uow):
        assert backend.storage.exists(key), key
    episode = backend_client.get(f"/api/v1/episodes/{episode_id}", headers=owner).json()
    assert episode["status"] == "ready"
    assert len(episode["renditions"]) == len(job["result"]["renditions"])


def _show_id(c: Container) -> str:
    with c.uow() as uow:
        return repo.show_by_slug(uow.session, SHOW["slug"]).id


@pytest.mark.slow
def test_a_worker_that_lost_its_lease_writes_nothing(
    backend: Container, backend_client: TestClient, owner: dict[str, str], speech_wav: Path
) -> None:
    """The lease is taken over while the first worker renders: the first stops and writes no end."""
    from media_pub.services.processing import process_episode_media

    episode_id, first = _processed_episode(backend_client, owner, speech_wav)
    with backend.uow() as uow:
        episode = repo.episode_by_id(uow.session, episode_id)
        payload = dict(repo.job_by_id(uow.session, first["id"]).payload)
        job_id = create_job(uow, Sent(), "media.process", episode=episode, payload=payload).id
        uow.commit()
    assert claim_job(backend.uow, job_id, "a", 30) is Claim.CLAIMED
    keys_before = set(backend.storage.list_keys("shows/"))

    def take_over() -> None:
        for _ in range(200):
            if _row(backend, job_id).stage not in ("queued", "prepare"):
                break
            threading.Event().wait(0.05)
        _set(backend, job_id, lease_owner="b")

    thief = threading.Thread(target=take_over)
    thief.start()
    process_episode_media(backend.uow, backend.storage, job_id, timeout=60, owner="a")
    thief.join()
    row = _row(backend, job_id)
    assert (row.status, row.lease_owner, row.result) == ("running", "b", {})
    assert set(backend.storage.list_keys("shows/")) == keys_before  # stopped before storing anything
    with backend.uow() as uow:
        assert (
            repo.episode_by_id(uow.session, episode_id).media_asset_id
            == first["result"]["rendition_asset_id"]
        )
