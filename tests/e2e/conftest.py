"""End-to-end fixtures: a container per backend with an API client, and generated media."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings
from media_pub.db.models import Base
from media_pub.media.synth import write_speech_like


def truncate_tables(c: Container) -> None:
    """PostgreSQL: one database for the session, emptied around each test (SQLite: a file per test)."""
    if c.engine.dialect.name != "postgresql":
        return
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with c.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))


def emptied_container(settings: Settings) -> Iterator[Container]:
    """A container on `settings` whose tables are empty before and after (for a fixture to yield from)."""
    c = bootstrap(settings)
    truncate_tables(c)
    yield c
    c.close()
    truncate_tables(c)


@pytest.fixture
def backend(backend_settings: Settings) -> Iterator[Container]:
    yield from emptied_container(backend_settings)


@pytest.fixture
def backend_client(backend: Container) -> Iterator[TestClient]:
    with TestClient(create_app(backend), raise_server_exceptions=False) as tc:
        yield tc


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Speech-like stereo at about -30 LUFS with 20 s of digital silence at both ends (55 s in all)."""
    path = tmp_path_factory.mktemp("media") / "speech.wav"
    return write_speech_like(path, 15.0, lufs=-30.0, lead_silence=20.0, tail_silence=20.0, seed=7)


def wait_job(client: TestClient, job: dict, headers: dict[str, str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job did not end in {timeout} s: {job}"
        time.sleep(0.2)
        response = client.get(job["url"], headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
    return job


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(container: Container) -> Iterator[str]:
    """The API on a real uvicorn server on a loopback port, in a thread (jobs run in this process)."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(container), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
