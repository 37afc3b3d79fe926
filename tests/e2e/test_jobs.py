"""Jobs: progress while running, cancel (the episode stays as it was) and retry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Long enough (3 minutes) that processing is still running when the test cancels it."""
    return write_speech_like(
        tmp_path_factory.mktemp("jobs") / "long.wav", 180.0, lufs=-24, seed=9
    ).read_bytes()


def test_cancel_a_running_job_then_retry(client: TestClient, host: dict[str, str], long_clip: bytes) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "Long"}, headers=host).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=long_clip, headers=host).json()
    deadline = time.monotonic() + 60
    while True:  # progress is visible while the job runs
        job = client.get(job["url"], headers=host).json()
        if job["status"] == "running" and job["progress"] > 0:
            break
        assert job["status"] in ("queued", "running"), job
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["stage"] in ("measure", "normalize", "encode", "verify")

    cancelled = client.post(f"{job['url']}/cancel", headers=host)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(2)  # the worker notices at its next progress report and kills the child
    after = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert after["status"] == "draft"
    assert after["media"] is None
    assert client.get(job["url"], headers=host).json()["status"] == "cancelled"
    again = client.post(f"{job['url']}/cancel", headers=host)
    assert again.status_code == 409
    assert again.json()["code"] == "job-not-cancellable"

    retried = client.post(f"{job['url']}/retry", headers=host)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "queued"
    assert client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()["status"] == "processing"
    done = wait_job(client, retried.json(), host, timeout=180)
    assert done["status"] == "succeeded", done
    ready = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert ready["status"] == "ready"
    assert ready["media"]["duration"] == pytest.approx(180, abs=1)
    assert client.post(f"{job['url']}/retry", headers=host).json()["code"] == "job-not-retryable"


def test_jobs_of_other_shows_are_hidden(client: TestClient, host: dict[str, str], tmp_path: Path) -> None:
    from tests.conftest import new_user

    clip = write_speech_like(tmp_path / "c.wav", 2.0, lufs=-20).read_bytes()
    client.post("/api/v1/shows", json=SHOW, headers=host)
    episode = client.post("/api/v1/shows/test-show/episodes", json={"title": "x"}, headers=host).json()
    job = client.put(f"/api/v1/episodes/{episode['id']}/media", content=clip, headers=host).json()
    stranger = new_user(client.app.state.container, "stranger")  # type: ignore[attr-defined]
    for method, suffix in (("GET", ""), ("POST", "/cancel"), ("POST", "/retry")):
        assert client.request(method, job["url"] + suffix, headers=stranger).status_code == 404
    wait_job(client, job, host)
