"""Shared fixtures: settings on a temp folder, a wired container per backend, an API client, users."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, StorageSettings
from media_pub.services import auth

pytest_plugins = ["tests.s3server", "tests.workers"]

PG_HOST, PG_PORT = "127.0.0.1", 5432
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI keeps unfinished uploads under XDG_CACHE_HOME: never the real ~/.cache in tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    if not _pg_reachable():
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} and CI=true")
        pytest.skip(f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import psycopg

    name = f"media_pub_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with psycopg.connect(f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "base_url": "http://testserver",
        "job_threads": 1,
        "scheduler_interval_seconds": 0.2,
        "probe_timeout_seconds": 60,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    c = bootstrap(settings)
    yield c
    c.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as tc:
        yield tc


def new_user(container: Container, name: str | None = None, *, admin: bool = False) -> dict[str, str]:
    """Create a user; returns auth headers for it."""
    with container.uow() as uow:
        _, token = auth.create_user(uow, name or f"user-{uuid.uuid4().hex[:8]}", admin=admin)
        uow.commit()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def host(container: Container) -> dict[str, str]:
    return new_user(container, "host")


@pytest.fixture(params=["sqlite-local", "sqlite-s3", "postgres-local"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for each supported deployment: embedded defaults, S3 storage, PostgreSQL."""
    if request.param == "sqlite-s3":
        s3: StorageSettings = request.getfixturevalue("s3_settings")
        return make_settings(tmp_path, storage=s3)
    if request.param == "postgres-local":
        return make_settings(tmp_path, database_url=request.getfixturevalue("pg_url"))
    return make_settings(tmp_path)


SHOW = {
    "slug": "test-show",
    "title": "Test Show",
    "description": "A show for tests",
    "author": "Tester",
    "owner_name": "Tess Ter",
    "owner_email": "tess@example.org",
    "language": "en",
    "category": "Technology",
    "funding": [{"url": "https://example.org/donate", "text": "Donate"}],
}
