"""Scaled out: PostgreSQL, Celery over Redis, S3 over HTTP, workers in their own processes.

The publishing path end to end, then what the reliability table (D2, D4, D5) demands: workers SIGKILLed at
each step of a job and at random moments, two workers with a short broker visibility timeout, and storage
that goes away for a while. After every run: the job ended, one rendition row per kind, the episode has its
media, every row's object exists, and after a sweep no object is left that no row names.
"""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import podcastparser
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Asset
from media_pub.media.synth import write_speech_like
from media_pub.services.sweeper import sweep
from tests.conftest import SHOW, new_user
from tests.e2e import test_bad_input as foundation_bad_input
from tests.e2e import test_feed_http as foundation_feed_http
from tests.e2e import test_publishing_path as foundation_publishing
from tests.e2e import test_uploads as foundation_uploads
from tests.e2e.test_uploads import tagged_mp3  # noqa: F401 - a fixture a reused test needs
from tests.workers import VENV_BIN, VISIBILITY_TIMEOUT, Scaled, WorkerFactory, WorkerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]

KINDS = {"mp3": 1, "aac": 1}  # the renditions a show makes by default: one row each, per job
RENDER_STAGES = {"measure", "normalize", "encode", "verify"}
FAILPOINTS = ["job.claimed", "process.rendered", "process.stored", "process.committed"]
# A few seconds of media: with the lease (2 s) and housekeeping (0.5 s) a dead worker's job is running
# again within seconds. Kombu's own restore of unacknowledged messages comes only every ~100 s: a test that
# needs that long has found a recovery that does not work.
JOB_TIMEOUT = 45.0
LONG_SECONDS = 200.0  # about 10 s of processing here: more than three visibility timeouts


@pytest.fixture(scope="module")
def short_audio(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Four seconds of speech-like stereo (FLAC: small to upload), quiet enough to need normalizing."""
    path = tmp_path_factory.mktemp("scale") / "short.flac"
    return write_speech_like(path, 4.0, lufs=-26.0, seed=11).read_bytes()


# --- helpers -----------------------------------------------------------------------------------------------


def upload_episode(
    client: TestClient, headers: dict[str, str], audio: bytes, title: str
) -> tuple[dict, dict]:
    """Create an episode of the test show (made if missing) and upload `audio`; returns (episode, job)."""
    if client.get(f"/api/v1/shows/{SHOW['slug']}", headers=headers).status_code == 404:
        assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    created = client.post(f"/api/v1/shows/{SHOW['slug']}/episodes", json={"title": title}, headers=headers)
    assert created.status_code == 201, created.text
    episode = created.json()
    upload = client.put(
        f"/api/v1/episodes/{episode['id']}/media",
        content=audio,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 202, upload.text
    return episode, upload.json()


def job_row(c: Container, job_id: str) -> dict[str, Any]:
    with c.uow() as uow:
        job = repo.job_by_id(uow.session, job_id)
        return {
            "status": job.status,
            "stage": job.stage,
            "attempts": job.attempts,
            "lease_owner": job.lease_owner,
            "lease_left": (
                round((job.lease_expires_at - datetime.now(UTC)).total_seconds(), 1)
                if job.lease_expires_at
                else None
            ),
            "error_code": job.error_code,
            "error": job.error,
            "result": dict(job.result or {}),
        }


def wait_job_end(
    c: Container, job_id: str, workers: list[WorkerProcess], timeout: float = JOB_TIMEOUT
) -> dict:
    def ended() -> dict | None:
        row = job_row(c, job_id)
        return row if row["status"] not in ("queued", "running") else None

    try:
        return wait_until(ended, timeout, f"job {job_id} to end", every=0.2, logs=workers)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\njob row: {job_row(c, job_id)}") from None


def bucket_keys(s3_client: Any, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.update(obj["Key"] for obj in page.get("Contents", []))
    return keys


def cli_sweep(scaled: Scaled, cwd: Path) -> list[str]:
    """`media-pub storage sweep --grace 0` in its own process; the keys it deleted."""
    done = subprocess.run(
        [str(VENV_BIN / "media-pub"), "storage", "sweep", "--grace", "0"],
        env=scaled.env("cli"),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.removeprefix("deleted ") for line in done.stdout.splitlines() if line.startswith("deleted ")]


def check_outcome(
    c: Container,
    s3_client: Any,
    bucket: str,
    episode_id: str,
    job_id: str,
    sweeper: Callable[[], list[str]] | None = None,
) -> dict:
    """The job succeeded once: one rendition row per kind, the episode is ready with them, every row's
    object is in S3, and once swept (grace 0; `sweeper`, or the sweep function here) no object is left
    that no row names."""
    job = job_row(c, job_id)
    assert job["status"] == "succeeded", job
    assert job["lease_owner"] is None, job  # the end is written with the lease given up
    with c.uow() as uow:
        episode = repo.episode_by_id(uow.session, episode_id)
        assert episode.status in ("ready", "published"), (episode.status, episode.last_error)
        assets = uow.session.scalars(select(Asset).where(Asset.episode_id == episode_id)).all()
        renditions = [a for a in assets if a.role == "rendition"]
        assert Counter(a.codec for a in renditions) == KINDS, [(a.codec, a.storage_key) for a in renditions]
        assert job["result"]["renditions"] == {
            "mp3": next(a.id for a in renditions if a.codec == "mp3"),
            "aac": next(a.id for a in renditions if a.codec == "aac"),
        }
        assert episode.media_asset_id == job["result"]["rendition_asset_id"]
        named = {a.storage_key for a in assets}
        named |= {a.processing["waveform_key"] for a in assets if (a.processing or {}).get("waveform_key")}
    if sweeper is None:
        swept = sweep(c.uow, c.storage, now=datetime.now(UTC), grace_seconds=0).deleted
    else:
        swept = sweeper()
    stored = bucket_keys(s3_client, bucket)
    assert stored == named, f"unreferenced: {stored - named}; missing: {named - stored}"
    for key in named:  # HEAD over HTTP, past the storage layer
        assert s3_client.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert sweep(c.uow, c.storage, now=datetime.now(UTC), grace_seconds=0).deleted == []
    return {"job": job, "swept": swept}


def started_count(workers: list[WorkerProcess], job_id: str) -> int:
    return sum(w.count(rf"job\.started job_id={job_id}\b") for w in workers)


# --- the publishing path ------------------------------------------------------------------------------------


def test_publishing_path_with_worker_process(
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    scaled: Scaled,
    s3_client: Any,
    short_audio: bytes,
) -> None:
    c, client = scaled_container, scaled_client
    worker = workers("w1")
    headers = new_user(c, "host")
    episode, job = upload_episode(client, headers, short_audio, "Pilot")
    assert job["status"] == "queued"
    ended = wait_job_end(c, job["id"], [worker])
    assert ended["status"] == "succeeded", ended
    assert started_count([worker], job["id"]) == 1  # the worker process ran it, once
    api_job = client.get(f"/api/v1/jobs/{job['id']}", headers=headers).json()
    assert api_job["status"] == "succeeded"

    published = client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=headers)
    assert published.status_code == 200, published.text
    feed = client.get(f"/feeds/{SHOW['slug']}.xml")
    assert feed.status_code == 200
    parsed = podcastparser.parse(f"http://testserver/feeds/{SHOW['slug']}.xml", io.BytesIO(feed.content))
    assert [e["guid"] for e in parsed["episodes"]] == [episode["guid"]]
    enclosure = parsed["episodes"][0]["enclosures"][0]
    assert enclosure["mime_type"] == "audio/mpeg"

    # The enclosure redirects to a presigned URL on the object store; a Range request gets those bytes.
    ready = client.get(f"/api/v1/episodes/{episode['id']}", headers=headers).json()
    media = ready["media"]
    redirect = client.get(enclosure["url"].removeprefix("http://testserver"), follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(scaled.storage.endpoint_url or "")
    whole = httpx.get(location)
    assert whole.status_code == 200
    assert len(whole.content) == enclosure["file_size"] == media["byte_size"]
    ranged = httpx.get(location, headers={"Range": "bytes=100-1123"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 100-1123/{enclosure['file_size']}"
    assert ranged.content == whole.content[100:1124]
    tail = httpx.get(location, headers={"Range": "bytes=-16"})
    assert tail.status_code == 206
    assert tail.content == whole.content[-16:]

    check_outcome(c, s3_client, scaled.storage.bucket, episode["id"], job["id"])


# The foundation's own end-to-end tests, run as they are against this deployment (the API here, the
# worker in its process): each gets a fresh database, so each makes the show it needs.
FOUNDATION: dict[str, Callable[[Container, TestClient, pytest.FixtureRequest], None]] = {
    "publishing-path": lambda c, client, request: foundation_publishing.test_upload_process_publish_and_fetch(
        c, client, request.getfixturevalue("speech_wav")
    ),
    "upload-tags-and-chapters": lambda c, client, request: (
        foundation_uploads.test_multipart_upload_reads_tags_and_shifts_chapters(
            client, new_user(c, "host"), request.getfixturevalue("tagged_mp3")
        )
    ),
    "upload-in-and-out-points": lambda c, client, request: foundation_uploads.test_explicit_in_and_out_points(
        client, new_user(c, "host"), request.getfixturevalue("tmp_path")
    ),
    "other-users-cannot-touch-a-show": lambda c, client, request: (
        foundation_publishing.test_other_users_cannot_touch_a_show(c, client)
    ),
    "bad-input-not-media": lambda c, client, request: _with_episode(
        c,
        client,
        foundation_bad_input.test_not_media_is_refused,
        b"this is a text file, not audio\n" * 50,
        415,
        "unsupported-media-type",
    ),
    "bad-input-unknown-is-404": lambda c, client, request: foundation_bad_input.test_unknown_things_are_404(
        client, new_user(c, "host")
    ),
    "bad-input-invalid-fields": lambda c, client, request: _with_episode(
        c, client, foundation_bad_input.test_invalid_fields_are_422
    ),
    "silent-upload-fails-the-job": lambda c, client, request: _with_episode(
        c,
        client,
        foundation_bad_input.test_silent_upload_fails_the_job_and_keeps_the_original,
        request.getfixturevalue("tmp_path"),
    ),
    "feed-conditional-get-and-gzip": lambda c, client, request: _with_show(
        c, client, foundation_feed_http.test_conditional_get_and_gzip, _clip(request)
    ),
    "feed-hostile-text": lambda c, client, request: _with_show(
        c, client, foundation_feed_http.test_hostile_text_keeps_the_feed_well_formed, _clip(request)
    ),
    "upload-mono-target": lambda c, client, request: (
        foundation_uploads.test_mono_episode_lands_on_the_mono_target(
            client, new_user(c, "host"), request.getfixturevalue("tmp_path")
        )
    ),
}


NO_JOBS = {
    "bad-input-not-media",
    "bad-input-unknown-is-404",
    "bad-input-invalid-fields",
    "other-users-cannot-touch-a-show",
}


def _with_episode(c: Container, client: TestClient, test: Callable[..., None], *extra: Any) -> None:
    headers = new_user(c, "owner")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Ep"}, headers=headers).json()
    test(client, headers, episode, *extra)


def _with_show(c: Container, client: TestClient, test: Callable[..., None], clip: bytes) -> None:
    headers = new_user(c, "owner")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    test(client, headers, None, clip)


def _clip(request: pytest.FixtureRequest) -> bytes:
    path = request.getfixturevalue("tmp_path") / "clip.wav"
    return write_speech_like(path, 3.0, lufs=-20).read_bytes()


@pytest.mark.parametrize("name", list(FOUNDATION))
def test_foundation_end_to_end_scaled_out(
    name: str,
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    request: pytest.FixtureRequest,
) -> None:
    worker = workers("w1")
    FOUNDATION[name](scaled_container, scaled_client, request)
    if name not in NO_JOBS:
        assert worker.count(r"job\.started job_id=") >= 1  # the worker process ran the job, not this one


# --- SIGKILL at each step -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failpoint", "kill"),
    [(name, "group") for name in FAILPOINTS] + [("job.claimed", "process")],
    ids=[*FAILPOINTS, "job.claimed-pool-only"],
)
def test_sigkill_at_each_step(
    failpoint: str,
    kill: str,
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    scaled: Scaled,
    s3_client: Any,
    short_audio: bytes,
    tmp_path: Path,
) -> None:
    """The worker dies at `failpoint` (its whole process group; or, "process", only the pool process that
    runs the job, the Celery main process living on); restarted, it takes the job over. At
    `process.stored` the show's loudness target changes before the restart, so the second run stores other
    objects: the first run's become orphans, which the sweep must delete (and nothing else)."""
    c, client = scaled_container, scaled_client
    markers = tmp_path / "failpoints"
    markers.mkdir()
    # Pool process only: Celery sees it die within seconds and hands the message back at once, while the
    # dead process's lease still runs (a lease longer than that, as in production): that delivery is
    # dropped as a duplicate, and only housekeeping's resend after the lease runs out finishes the job.
    lease = {"MEDIA_PUB_JOB_LEASE_SECONDS": "10"} if kill == "process" else {}
    worker = workers(
        "w1",
        MEDIA_PUB_FAILPOINTS=failpoint,
        MEDIA_PUB_FAILPOINT_DIR=str(markers),
        MEDIA_PUB_FAILPOINT_KILL=kill,
        **lease,
    )
    headers = new_user(c, "host")
    episode, job = upload_episode(client, headers, short_audio, f"Killed at {failpoint}")

    wait_until(lambda: (markers / failpoint).exists(), 60, f"failpoint {failpoint}", logs=[worker])
    before = job_row(c, job["id"])
    assert before["status"] in ("running", "succeeded"), before
    orphans: set[str] = set()
    if kill == "group":
        wait_until(lambda: not worker.alive(), 10, "the worker to die", logs=[worker])
        if failpoint == "process.stored":
            with c.uow() as uow:
                named = {a.storage_key for a in uow.session.scalars(select(Asset))}
            orphans = bucket_keys(s3_client, scaled.storage.bucket) - named
            assert len(orphans) == 3, orphans  # mp3, m4a and the waveform, that no row names yet
            patched = client.patch(
                f"/api/v1/shows/{SHOW['slug']}", json={"loudness_target": -19}, headers=headers
            )
            assert patched.status_code == 200, patched.text
        worker.restart()
    else:
        assert worker.alive()  # the pool process died; Celery forks another

    ended = wait_job_end(c, job["id"], [worker])
    assert ended["status"] == "succeeded", ended
    outcome = check_outcome(
        c, s3_client, scaled.storage.bucket, episode["id"], job["id"], lambda: cli_sweep(scaled, tmp_path)
    )
    assert set(outcome["swept"]) == orphans
    if failpoint == "process.committed":
        assert before["status"] == "succeeded"  # the commit was in; the redelivery finds the job finished
        assert ended["attempts"] == 1
    else:
        assert ended["attempts"] == 2, ended  # claimed by the dead worker, then by its restart
    if kill == "process":
        assert worker.count(rf"job\.skipped job_id={job['id']} kind=media\.process claim=busy") >= 1
    print(f"{failpoint}/{kill}: attempts={ended['attempts']} swept={outcome['swept']}")


def _pool_children(worker: WorkerProcess) -> list[int]:
    """The worker's direct children (the Celery pool processes), from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == worker.pid:
            children.append(int(entry))
    return children


def test_sigkill_repeatedly_during_render(
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    scaled: Scaled,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    """Killed three times at random moments while rendering (the pool process alone, as an OOM killer does,
    or the whole worker): the job still ends, with one rendition per kind."""
    c = scaled_container
    rng = random.Random(os.environ.get("PYTEST_SEED", "scale-out"))
    audio = write_speech_like(tmp_path / "ten.flac", 10.0, lufs=-26.0, seed=5).read_bytes()
    worker = workers("w1")
    headers = new_user(c, "host")
    episode, job = upload_episode(scaled_client, headers, audio, "Killed repeatedly")

    kills: list[str] = []
    owner = None  # the lease holder last killed: the next kill waits for a new claim
    for round_ in range(3):

        def rendering(previous: str | None = owner) -> dict | None:
            row = job_row(c, job["id"])
            if row["status"] not in ("queued", "running"):
                return row
            fresh = row["lease_owner"] is not None and row["lease_owner"] != previous
            return row if row["status"] == "running" and fresh and row["stage"] in RENDER_STAGES else None

        row = wait_until(
            rendering, JOB_TIMEOUT, f"a render stage (round {round_})", every=0.02, logs=[worker]
        )
        if row["status"] != "running":
            break  # finished before we could kill it again
        time.sleep(rng.uniform(0.0, 0.4))
        if round_ % 2 == 0:
            children = _pool_children(worker)
            assert children, "no pool process"
            for pid in children:
                os.kill(pid, signal.SIGKILL)
            how = "pool"
            # The Celery main process lives on and forks a new pool process; the job is sent again by
            # the broker (task_reject_on_worker_lost) or by housekeeping once the lease runs out.
        else:
            worker.kill(signal.SIGKILL)
            how = "worker"
        after = job_row(c, job["id"])
        if after["status"] != "running":
            break  # it ended just before the kill
        kills.append(f"{how}@{after['stage']}")
        owner = row["lease_owner"]
        if how == "worker":
            worker.restart()

    assert len(kills) >= 2, kills
    ended = wait_job_end(c, job["id"], [worker])
    print(f"kills={kills} attempts={ended['attempts']} status={ended['status']}")
    if ended["status"] == "failed":
        assert ended["error_code"] == "too-many-attempts", ended
    else:
        check_outcome(c, s3_client, scaled.storage.bucket, episode["id"], job["id"])
        assert ended["attempts"] == len(kills) + 1, (ended, kills)


# --- two workers, short visibility timeout, a long job ------------------------------------------------------


def test_long_job_runs_once_with_two_workers(
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    scaled: Scaled,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    """The broker hands a job that outlives the visibility timeout to the other worker; it runs once."""
    c = scaled_container
    audio = write_speech_like(tmp_path / "long.flac", LONG_SECONDS, lufs=-26.0, seed=9).read_bytes()
    w1 = workers("w1")
    headers = new_user(c, "host")
    episode, job = upload_episode(scaled_client, headers, audio, "Long one")
    wait_until(lambda: started_count([w1], job["id"]), 30, "w1 to start the job", logs=[w1])
    started = time.monotonic()
    # The message stays unacknowledged past the visibility timeout; a worker starting now restores it
    # from Redis when it begins polling (and running workers do so periodically).
    time.sleep(VISIBILITY_TIMEOUT + 1)
    w2 = workers("w2")
    both = [w1, w2]
    ended = wait_job_end(c, job["id"], both, timeout=180)
    took = time.monotonic() - started
    assert ended["status"] == "succeeded", ended
    assert took >= 2 * VISIBILITY_TIMEOUT, f"the job took {took:.1f} s: too short to prove anything"
    assert started_count(both, job["id"]) == 1, "the job ran more than once"
    assert ended["attempts"] == 1, ended
    redelivered = sum(
        w.count(rf"job\.skipped job_id={job['id']} kind=media\.process claim=busy") for w in both
    )
    assert redelivered >= 1, "the broker did not redeliver the job: the test proved nothing"
    assert sum(w.count(rf"job\.succeeded job_id={job['id']}") for w in both) == 1
    check_outcome(c, s3_client, scaled.storage.bucket, episode["id"], job["id"])
    print(f"long job: {took:.1f} s, duplicate deliveries dropped: {redelivered}")


# --- storage away for a while -------------------------------------------------------------------------------


def test_storage_outage_retries_then_finishes(
    scaled_container: Container,
    scaled_client: TestClient,
    workers: WorkerFactory,
    scaled: Scaled,
    s3_client: Any,
    short_audio: bytes,
) -> None:
    """S3 goes away while the job renders (so when it comes to store): the job goes back to the queue with
    stage "retry", and finishes once S3 is back."""
    c = scaled_container
    worker = workers("w1")
    headers = new_user(c, "host")
    episode, job = upload_episode(scaled_client, headers, short_audio, "Through an outage")

    def rendering() -> dict | None:
        row = job_row(c, job["id"])
        return row if row["stage"] in RENDER_STAGES or row["status"] not in ("queued", "running") else None

    row = wait_until(rendering, 60, "a render stage", every=0.02, logs=[worker])
    assert row["status"] == "running", row
    scaled.proxy.down()
    try:
        retry = wait_until(
            lambda: (r := job_row(c, job["id"]))["stage"] == "retry" and r,
            60,
            'stage "retry"',
            every=0.05,
            logs=[worker],
        )
        assert retry["status"] == "queued", retry
        assert retry["error_code"] == "unavailable", retry
        assert "upload" in (retry["error"] or ""), retry  # it failed storing its renditions
        time.sleep(3)  # storage stays away a while longer: retries fail again
        assert job_row(c, job["id"])["status"] in ("queued", "running")
    finally:
        scaled.proxy.up()
    ended = wait_job_end(c, job["id"], [worker])
    assert ended["status"] == "succeeded", ended
    check_outcome(c, s3_client, scaled.storage.bucket, episode["id"], job["id"])
