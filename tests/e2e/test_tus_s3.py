"""tus on the S3 backend: parts in an S3 multipart upload, state and lock in the database, so any API
process continues an upload another one started (two containers on one database and bucket here)."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, StorageSettings
from media_pub.db.models import ResumableUpload
from media_pub.errors import Conflict
from media_pub.media.synth import write_speech_like
from media_pub.services.resumable_s3 import S3UploadStore
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import emptied_container, wait_job

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, s3_settings: StorageSettings) -> Settings:
    """S3 storage, with the state on SQLite or PostgreSQL (where the lock matters: several machines)."""
    database = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return make_settings(tmp_path / "a", storage=s3_settings, upload_lock_seconds=1.0, database_url=database)


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    yield from emptied_container(settings)


@pytest.fixture
def other(container: Container, s3_settings: StorageSettings, tmp_path: Path) -> Iterator[TestClient]:
    """A second API process: the same database and bucket, its own data folder (no shared disk)."""
    settings = make_settings(
        tmp_path / "b",
        database_url=container.settings.effective_database_url,
        storage=s3_settings,
        upload_lock_seconds=1.0,
    )
    c = bootstrap(settings)
    with TestClient(create_app(c, scheduler=False), raise_server_exceptions=False) as tc:
        yield tc
    c.close()


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _patch(client: TestClient, headers: dict[str, str], location: str, offset: int, data: bytes,
           **extra: str) -> Any:  # fmt: skip
    return client.patch(
        location, content=data, headers={**headers, **STREAM, "Upload-Offset": str(offset), **extra}
    )


def _offset(client: TestClient, headers: dict[str, str], location: str) -> int:
    response = client.head(location, headers={**headers, **TUS})
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def _row(container: Container, location: str) -> ResumableUpload:
    with container.uow() as uow:
        row = uow.session.get(ResumableUpload, location.rsplit("/", 1)[1])
        assert row is not None
        uow.session.expunge(row)
        return row


def test_an_upload_continues_on_another_process(
    client: TestClient, other: TestClient, container: Container, s3_client: Any, tmp_path: Path
) -> None:
    """Chunks alternate between two API processes; parts are >= 5 MiB but the last; the episode is made."""
    host = new_user(container, "s3-host")
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"]
    data = write_speech_like(tmp_path / "long.wav", 60.0, lufs=-20, seed=4).read_bytes()
    assert len(data) > 2 * 5 * MIB
    response = client.post(
        "/api/v1/uploads",
        headers={
            **host,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": _meta(episode_id=episode),
        },
    )
    location = response.headers["Location"]
    offset, step, turn = 0, 3 * MIB + 17, 0
    job_id = None
    while offset < len(data):
        api = (client, other)[turn % 2]
        assert _offset(api, host, location) == offset
        chunk = data[offset : offset + step]
        response = _patch(api, host, location, offset, chunk)
        assert response.status_code == 204, response.text
        offset += len(chunk)
        job_id = response.headers.get("Upload-Job")
        if offset < len(data):
            row = _row(container, location)
            assert row.offset == offset
            assert all(p["size"] == 5 * MIB for p in row.parts)  # whole parts only; the rest is the tail
            assert row.tail_size == offset - 5 * MIB * len(row.parts)
        turn += 1
    assert job_id is not None
    job = client.get(f"/api/v1/jobs/{job_id}", headers=host).json()
    assert wait_job(client, job, host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    # The original is kept byte for byte; nothing is left under uploads/ (objects, multipart uploads).
    original = [k["Key"] for k in s3_client.list_objects_v2(Bucket=container.storage.bucket)["Contents"]]  # type: ignore[attr-defined]
    assert not [k for k in original if k.startswith("uploads/")]
    bucket = container.storage.bucket  # type: ignore[attr-defined]
    assert s3_client.list_multipart_uploads(Bucket=bucket, Prefix="uploads/").get("Uploads", []) == []
    with container.uow() as uow:
        assert uow.session.query(ResumableUpload).count() == 0


def test_one_writer_across_processes(client: TestClient, other: TestClient, container: Container) -> None:
    """A lock held by one process refuses a PATCH on another (409), until its lease runs out."""
    host = new_user(container, "lock-host")
    location = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": "10"}).headers[
        "Location"
    ]
    upload_id = location.rsplit("/", 1)[1]
    store = S3UploadStore(container.uow, container.storage, tmp_path_of(container), lock_seconds=1.0)
    with store.locked(upload_id) as token:
        response = _patch(other, host, location, 0, b"abc")
        assert response.status_code == 409
        assert response.json()["code"] == "upload-locked"
        assert _offset(other, host, location) == 0
        time.sleep(1.1)  # the holder stalled past its lease: another request takes over
        assert _patch(other, host, location, 0, b"abc").status_code == 204
        # The stalled holder can no longer write anything.
        with pytest.raises(Conflict):
            store.save(upload_id, token, offset=7)
    assert _offset(client, host, location) == 3
    assert _patch(client, host, location, 3, b"defghij").status_code == 204
    assert container.storage.read_bytes(f"uploads/tus/{upload_id}") == b"abcdefghij"


def test_a_writer_that_lost_its_lock_cannot_replace_the_tail(
    client: TestClient, other: TestClient, container: Container
) -> None:
    """A PATCH stalls (half-open connection) past its lock; another takes over and writes a tail; when the
    stalled one finally ends, it writes nothing and the upload completes with the right bytes."""
    host = new_user(container, "stale-host")
    location = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": "10"}).headers[
        "Location"
    ]
    upload_id = location.rsplit("/", 1)[1]
    store = S3UploadStore(container.uow, container.storage, tmp_path_of(container), lock_seconds=1.0)
    with store.locked(upload_id) as token:
        stale = store.writer(upload_id, token)
        stale.write(b"XXXX")  # its bytes arrive, then the connection stalls
        time.sleep(1.1)
        assert _patch(other, host, location, 0, b"abcd").status_code == 204  # the client resumed elsewhere
        with pytest.raises(Conflict):
            stale.finish()
        stale.close()
    assert _offset(client, host, location) == 4
    assert _patch(client, host, location, 4, b"efghij").status_code == 204
    assert container.storage.read_bytes(f"uploads/tus/{upload_id}") == b"abcdefghij"


def test_checksum_mismatch_stores_nothing(client: TestClient, container: Container) -> None:
    host = new_user(container, "sum-host")
    location = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": "100"}).headers[
        "Location"
    ]
    assert _patch(client, host, location, 0, b"x" * 10).status_code == 204
    tail = f"uploads/tus/{location.rsplit('/', 1)[1]}.tail-0-10"
    before = container.storage.read_bytes(tail)
    bad = f"sha256 {base64.b64encode(hashlib.sha256(b'nope').digest()).decode()}"
    response = _patch(client, host, location, 10, b"y" * 20, **{"Upload-Checksum": bad})
    assert response.status_code == 460
    assert _offset(client, host, location) == 10
    assert container.storage.read_bytes(tail) == before
    row = _row(container, location)
    assert (row.offset, row.tail_size, row.parts) == (10, 10, [])


def test_expired_upload_is_aborted(client: TestClient, container: Container, s3_client: Any) -> None:
    from media_pub.housekeeping import run_once

    host = new_user(container, "exp-host")
    location = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": str(6 * MIB)}).headers[
        "Location"
    ]
    assert _patch(client, host, location, 0, b"z" * (5 * MIB + 5)).status_code == 204
    assert len(_row(container, location).parts) == 1
    run_once(container, datetime.now(UTC).replace(year=datetime.now(UTC).year + 1))
    bucket = container.storage.bucket  # type: ignore[attr-defined]
    assert s3_client.list_multipart_uploads(Bucket=bucket, Prefix="uploads/").get("Uploads", []) == []
    assert list(container.storage.list_keys("uploads/")) == []
    assert client.head(location, headers={**host, **TUS}).status_code == 404


def tmp_path_of(container: Container) -> Path:
    return container.settings.data_dir / "tmp"


def test_completion_is_recorded_even_after_a_crash(client: TestClient, container: Container) -> None:
    """The multipart upload was completed but the process died before recording it: resuming finishes."""
    host = new_user(container, "crash-host")
    location = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": "6"}).headers[
        "Location"
    ]
    assert _patch(client, host, location, 0, b"abcdef").status_code == 204
    with container.uow() as uow:
        row = uow.session.get(ResumableUpload, location.rsplit("/", 1)[1])
        assert row is not None
        assert row.completed
        row.completed = False
        uow.commit()
    assert _patch(client, host, location, 6, b"").status_code == 204
    assert _row(container, location).completed
    assert container.storage.read_bytes(f"uploads/tus/{location.rsplit('/', 1)[1]}") == b"abcdef"
