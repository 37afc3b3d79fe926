"""Resumable uploads (tus 1.0) at /api/v1/uploads: protocol rules, interruption, completion to an episode.

Every test runs on both storage backends: local files, and S3 (moto's server over HTTP), where the bytes go
into an S3 multipart upload and the state into the database.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container
from media_pub.config import Settings
from media_pub.db.models import ResumableUpload
from media_pub.media.synth import write_speech_like
from media_pub.services.resumable import expire_uploads
from media_pub.services.resumable_s3 import expire_s3_uploads
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import wait_job

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Both storage backends (overrides the shared local-only fixture for this module)."""
    if request.param == "s3":
        return make_settings(tmp_path, storage=request.getfixturevalue("s3_settings"))
    return make_settings(tmp_path)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    """Without the housekeeping thread, which would race the tests' own expiry sweeps."""
    with TestClient(create_app(container, scheduler=False), raise_server_exceptions=False) as tc:
        yield tc


def _s3(container: Container) -> bool:
    return container.settings.storage.backend == "s3"


def _id(location: str) -> str:
    return location.rsplit("/", 1)[1]


def _stored(container: Container, location: str) -> bytes:
    """The bytes the server holds for a complete upload."""
    if _s3(container):
        return container.storage.read_bytes(f"uploads/tus/{_id(location)}")
    return (container.settings.data_dir / "uploads" / f"{_id(location)}.bin").read_bytes()


def _leftovers(container: Container) -> list[str]:
    """What the upload store holds: files (local) or objects, multipart uploads and rows (S3)."""
    if not _s3(container):
        root = container.settings.data_dir / "uploads"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []
    multipart = container.storage.list_multipart_uploads("uploads/")  # type: ignore[attr-defined]
    with container.uow() as uow:
        rows = [f"row:{r.id}" for r in uow.session.query(ResumableUpload)]
    objects = [f"object:{k}" for k in container.storage.list_keys("uploads/")]
    return sorted(objects + [f"multipart:{m.key}" for m in multipart] + rows)


def _expire_now(container: Container, location: str) -> None:
    """Move the upload's expiry into the past."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    if _s3(container):
        with container.uow() as uow:
            uow.session.get(ResumableUpload, _id(location)).expires_at = past  # type: ignore[union-attr]
            uow.commit()
        return
    state_file = container.settings.data_dir / "uploads" / f"{_id(location)}.json"
    state = json.loads(state_file.read_text())
    state["expires"] = past.isoformat()
    state_file.write_text(json.dumps(state))


def _expire(container: Container, now: datetime) -> int:
    if _s3(container):
        return expire_s3_uploads(container.uow, container.storage, container.settings.data_dir / "tmp", now)
    return expire_uploads(container.settings.data_dir, now)


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(client: TestClient, headers: dict[str, str], length: int, **meta: str) -> str:
    extra = {"Upload-Metadata": _meta(**meta)} if meta else {}
    response = client.post(
        "/api/v1/uploads", headers={**headers, **TUS, "Upload-Length": str(length), **extra}
    )
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Expires"].endswith("GMT")
    location = response.headers["Location"]
    assert location.startswith("/api/v1/uploads/")
    assert len(location.rsplit("/", 1)[1]) == 32
    return location


def _offset(client: TestClient, headers: dict[str, str], location: str) -> int:
    response = client.head(location, headers={**headers, **TUS})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return int(response.headers["Upload-Offset"])


def _patch(
    client: TestClient, headers: dict[str, str], location: str, offset: int, data: bytes, **extra: str
) -> httpx.Response:
    return client.patch(
        location, content=data, headers={**headers, **STREAM, "Upload-Offset": str(offset), **extra}
    )


def _b64(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    return write_speech_like(tmp_path / "two.wav", 2.0, lufs=-20, seed=11)


@pytest.fixture
def episode(client: TestClient, host: dict[str, str]) -> str:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    return client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"]


def test_options_advertises_the_protocol(client: TestClient, container: Container) -> None:
    response = client.options("/api/v1/uploads")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Extension"] == "creation,expiration,checksum,termination"
    assert response.headers["Tus-Max-Size"] == str(container.settings.max_upload_bytes)
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,md5,sha256"


def test_chunks_complete_into_an_episode(
    client: TestClient, host: dict[str, str], episode: str, wav: Path
) -> None:
    data = wav.read_bytes()
    location = _create(client, host, len(data), filename="two.wav", episode_id=episode, start="0.5")
    assert _offset(client, host, location) == 0
    step = len(data) // 3 + 1
    job_id = None
    for offset in range(0, len(data), step):
        chunk = data[offset : offset + step]
        response = _patch(client, host, location, offset, chunk, **{"Upload-Checksum": _b64("sha256", chunk)})
        assert response.status_code == 204, response.text
        assert int(response.headers["Upload-Offset"]) == offset + len(chunk)
        assert response.headers["Tus-Resumable"] == "1.0.0"
        job_id = response.headers.get("Upload-Job")
        if offset + len(chunk) < len(data):
            assert job_id is None
            assert _offset(client, host, location) == offset + len(chunk)
    assert job_id is not None
    job = client.get(f"/api/v1/jobs/{job_id}", headers=host).json()
    assert wait_job(client, job, host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert ready["original"]["byte_size"] == len(data)
    assert ready["media"]["processing"]["trim_start"] == pytest.approx(0.5)
    # The finished upload is handed over: it is gone from the upload store.
    assert client.head(location, headers={**host, **TUS}).status_code == 404


def _cut_patch(
    server: str,
    headers: dict[str, str],
    location: str,
    offset: int,
    data: bytes,
    sent: int,
    *,
    reset: bool = False,
) -> None:
    """A PATCH announcing all of `data` whose connection closes (or is reset) after `sent` bytes of body."""
    url = urlsplit(server)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: {headers['Authorization']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: {offset}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + data[:sent])
        time.sleep(0.3)
        if reset:  # SO_LINGER 0: close sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _settled_offset(client: TestClient, headers: dict[str, str], location: str) -> int:
    """The offset once the cut request has released the upload (an empty PATCH at it succeeds)."""
    deadline = time.monotonic() + 5
    while True:
        offset = _offset(client, headers, location)
        response = _patch(client, headers, location, offset, b"")
        if response.status_code == 204:
            return offset
        assert response.status_code == 409, response.text
        assert time.monotonic() < deadline, "the cut request never released the upload"
        time.sleep(0.05)


def test_random_cuts_resume_to_identical_bytes(
    client: TestClient, live_server: str, container: Container
) -> None:
    """Cut by close or by reset at random points, then resumed from HEAD: the stored bytes are the file's."""
    host = new_user(container, "cuts-host")
    rng = random.Random(5)
    # On S3: several 5 MiB parts, cuts inside parts and across them (the tail carried between PATCHes).
    data = rng.randbytes(12 * 1024 * 1024 + 12345 if _s3(container) else 512 * 1024)
    location = _create(client, host, len(data))
    offset = 0
    for attempt in range(6):
        sent = rng.randrange(1, len(data) - offset)
        _cut_patch(live_server, host, location, offset, data[offset:], sent, reset=attempt % 2 == 1)
        kept = _settled_offset(client, host, location)
        assert offset <= kept <= offset + sent
        offset = kept
    assert _patch(client, host, location, offset, data[offset:]).status_code == 204
    assert hashlib.sha256(_stored(container, location)).hexdigest() == hashlib.sha256(data).hexdigest()


def test_interrupted_patch_keeps_the_bytes_and_resumes(
    client: TestClient, live_server: str, container: Container, wav: Path
) -> None:
    host = new_user(container, "cut-host")
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"]
    data = wav.read_bytes()
    location = _create(client, host, len(data), episode_id=episode)
    _cut_patch(live_server, host, location, 0, data, 100_000)
    deadline = time.monotonic() + 5
    while (kept := _offset(client, host, location)) == 0:
        assert time.monotonic() < deadline, "the server kept nothing of the cut PATCH"
        time.sleep(0.05)
    assert 0 < kept <= 100_000
    assert _offset(client, host, location) == kept  # settled
    # A stale offset is refused; resuming from HEAD completes.
    assert _patch(client, host, location, 0, data).status_code == 409
    response = _patch(client, host, location, kept, data[kept:])
    assert response.status_code == 204, response.text
    job = client.get(f"/api/v1/jobs/{response.headers['Upload-Job']}", headers=host).json()
    assert wait_job(client, job, host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["original"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_protocol_errors(client: TestClient, host: dict[str, str], container: Container) -> None:
    location = _create(client, host, 10)
    # Malformed metadata or trim points are refused at creation.
    for metadata in ("episode_id !!!", "a YQ==,a YQ==", _meta(start="soon")):
        response = client.post(
            "/api/v1/uploads", headers={**host, **TUS, "Upload-Length": "10", "Upload-Metadata": metadata}
        )
        assert response.status_code == 422, metadata
        assert response.headers["Tus-Resumable"] == "1.0.0"
    assert client.post("/api/v1/uploads", headers={**host, **TUS}).status_code == 400  # no Upload-Length
    unknown = {**host, **TUS, "Upload-Length": "10", "Upload-Metadata": _meta(episode_id="nope")}
    assert client.post("/api/v1/uploads", headers=unknown).status_code == 404
    # Missing or wrong Tus-Resumable: 412 with the supported version.
    response = client.post("/api/v1/uploads", headers={**host, "Upload-Length": "10"})
    assert response.status_code == 412
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["content-type"] == "application/problem+json"
    bad = {**host, **STREAM, "Tus-Resumable": "0.2.2", "Upload-Offset": "0"}
    assert client.patch(location, content=b"x", headers=bad).status_code == 412
    # Over the size limit: 413 problem, nothing created.
    limit = container.settings.max_upload_bytes
    response = client.post("/api/v1/uploads", headers={**host, **TUS, "Upload-Length": str(limit + 1)})
    assert response.status_code == 413
    assert response.json()["code"] == "upload-too-large"
    # Wrong content type: 415.
    response = client.patch(
        location, content=b"abc", headers={**host, **TUS, "Content-Type": "application/octet-stream",
                                           "Upload-Offset": "0"}
    )  # fmt: skip
    assert response.status_code == 415
    # Wrong offset: 409 problem.
    response = _patch(client, host, location, 3, b"abc")
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    # Bad checksum: 460, nothing appended; the same chunk with the right one goes in.
    for algorithm in ("sha1", "md5", "sha256"):
        response = _patch(client, host, location, 0, b"abc", **{"Upload-Checksum": _b64(algorithm, b"abd")})
        assert response.status_code == 460
        assert response.json()["code"] == "checksum-mismatch"
        assert _offset(client, host, location) == 0
    response = _patch(client, host, location, 0, b"abc", **{"Upload-Checksum": _b64("md5", b"abc")})
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "3"
    # Unknown algorithm: refused, offset unchanged.
    response = _patch(client, host, location, 3, b"def", **{"Upload-Checksum": "crc32 AAAA"})
    assert response.status_code == 422
    # Bytes past Upload-Length are ignored.
    response = _patch(client, host, location, 3, b"defghijklmnop")
    assert response.headers["Upload-Offset"] == "10"
    assert _stored(container, location) == b"abcdefghij"


def test_only_the_creator_sees_an_upload(
    client: TestClient, host: dict[str, str], container: Container
) -> None:
    location = _create(client, host, 5)
    other = new_user(container, "other")
    assert client.head(location, headers={**other, **TUS}).status_code == 404
    assert _patch(client, other, location, 0, b"hello").status_code == 404
    assert client.delete(location, headers={**other, **TUS}).status_code == 404
    assert client.head("/api/v1/uploads/../../etc", headers={**host, **TUS}).status_code == 404
    assert client.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "5"}).status_code == 401
    assert _offset(client, host, location) == 0


def test_delete_then_gone(client: TestClient, host: dict[str, str], container: Container) -> None:
    location = _create(client, host, 5)
    assert _patch(client, host, location, 0, b"he").status_code == 204
    response = client.delete(location, headers={**host, **TUS})
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert client.head(location, headers={**host, **TUS}).status_code == 404
    assert _patch(client, host, location, 2, b"llo").status_code == 404
    assert _leftovers(container) == []


def test_expired_uploads_are_refused_and_swept(
    client: TestClient, host: dict[str, str], container: Container
) -> None:
    keep = _create(client, host, 5)
    old = _create(client, host, 5)
    assert _patch(client, host, old, 0, b"hel").status_code == 204
    _expire_now(container, old)
    assert client.head(old, headers={**host, **TUS}).status_code == 410
    assert _patch(client, host, old, 3, b"lo").status_code == 410
    assert _expire(container, datetime.now(UTC)) == 1
    assert client.head(old, headers={**host, **TUS}).status_code == 404
    if _s3(container):  # the other one's row and multipart upload, nothing of the swept one
        assert _leftovers(container) == [f"multipart:uploads/tus/{_id(keep)}", f"row:{_id(keep)}"]
    else:
        assert _leftovers(container) == sorted(f"{_id(keep)}{s}" for s in (".bin", ".json"))
    # A day later (24 h default) the other one goes too.
    assert _expire(container, datetime.now(UTC) + timedelta(hours=24, seconds=1)) == 1
    assert _leftovers(container) == []


def test_bad_media_on_completion_is_a_problem(client: TestClient, host: dict[str, str], episode: str) -> None:
    data = b"this is not audio at all\n" * 100
    location = _create(client, host, len(data), episode_id=episode)
    response = _patch(client, host, location, 0, data)
    assert response.status_code in (415, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert client.get(f"/api/v1/episodes/{episode}", headers=host).json()["status"] == "draft"
    assert client.head(location, headers={**host, **TUS}).status_code == 404


def test_tuspy_client_uploads_to_a_live_server(
    client: TestClient, live_server: str, container: Container, wav: Path
) -> None:
    tus_client = pytest.importorskip("tusclient.client")
    host = new_user(container, "tuspy-host")
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"]
    uploader = tus_client.TusClient(f"{live_server}/api/v1/uploads", headers=host).uploader(
        str(wav), chunk_size=64 * 1024, metadata={"filename": wav.name, "episode_id": episode}
    )
    uploader.upload()
    assert uploader.offset == wav.stat().st_size
    jobs = client.get(f"/api/v1/episodes/{episode}", headers=host).json()["jobs"]
    assert len(jobs) == 1
    assert wait_job(client, jobs[0], host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["original"]["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()


def _wait_until_locked(container: Container, upload_id: str, timeout: float = 10.0) -> None:
    """Until the stalled PATCH holds the upload's lock: a row lease on S3, a flock on local files (seen in
    /proc/locks, without taking it: a probe that took it would make the PATCH itself fail)."""
    lock_file = container.settings.data_dir / "uploads" / f"{upload_id}.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if container.settings.storage.backend == "s3":
            with container.uow() as uow:
                row = uow.session.get(ResumableUpload, upload_id)
                if row is not None and row.lock_token is not None:
                    return
        elif lock_file.exists():
            inode = lock_file.stat().st_ino
            if any(f":{inode} " in line for line in Path("/proc/locks").read_text().splitlines()):
                return
        time.sleep(0.05)
    raise AssertionError("the PATCH never took the upload's lock")


def test_one_writer_at_a_time(client: TestClient, live_server: str, container: Container) -> None:
    """While a PATCH stalls mid-body, a second PATCH is refused (409), HEAD still answers at once."""
    host = new_user(container, "lock-host")
    data = bytes(range(256)) * 400
    location = _create(client, host, len(data))
    url = urlsplit(live_server)
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: {host['Authorization']}\r\n"
        f"Tus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode() + data[:1000])
        _wait_until_locked(container, location.rsplit("/", 1)[1])
        started = time.monotonic()
        assert _offset(client, host, location) == 0
        assert time.monotonic() - started < 1.5
        second = _patch(client, host, location, 0, data)
        assert second.status_code == 409
        assert second.json()["code"] == "upload-locked"
        sock.sendall(data[1000:])
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 204")
    assert _offset(client, host, location) == len(data)
    assert _stored(container, location) == data
