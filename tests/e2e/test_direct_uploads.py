"""Direct-to-S3 uploads: presigned part URLs, a verified completion into a processed episode, aborts.

moto's server on loopback plays S3 over HTTP. It does not check presigned signatures or their expiry, so
the binding of a URL to its key, upload and part is checked by recomputing its SigV4 signature here.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, StorageSettings
from media_pub.db.models import DirectUpload
from media_pub.media.synth import write_speech_like
from media_pub.services.direct_uploads import (
    abort_orphan_multipart_uploads,
    delete_orphan_upload_objects,
    expire_direct_uploads,
)
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import emptied_container, wait_job

MIB = 1024 * 1024


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, s3_settings: StorageSettings) -> Settings:
    database = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return make_settings(tmp_path, storage=s3_settings, direct_upload_url_seconds=900, database_url=database)


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    yield from emptied_container(settings)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    """Without the housekeeping thread: the tests run the sweeps themselves, at chosen times."""
    with TestClient(create_app(container, scheduler=False), raise_server_exceptions=False) as tc:
        yield tc


@pytest.fixture
def episode(client: TestClient, host: dict[str, str]) -> str:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    return str(client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"])


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About 11.5 MB of speech-like audio: three parts of 5 MiB (the last shorter)."""
    path = tmp_path_factory.mktemp("direct") / "long.wav"
    return write_speech_like(path, 60.0, lufs=-20, seed=9).read_bytes()


def _bucket(container: Container) -> str:
    return str(container.storage.bucket)  # type: ignore[attr-defined]


def _multipart(s3_client: Any, container: Container, prefix: str = "uploads/") -> list[dict[str, Any]]:
    return list(s3_client.list_multipart_uploads(Bucket=_bucket(container), Prefix=prefix).get("Uploads", []))


def _start(
    client: TestClient, host: dict[str, str], episode: str, data: bytes, **extra: Any
) -> httpx.Response:
    body = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "filename": "long.wav", **extra}
    return client.post(f"/api/v1/episodes/{episode}/direct-uploads", json=body, headers=host)


def _put_parts(made: dict[str, Any], data: bytes) -> list[dict[str, Any]]:
    size = made["part_size"]
    done = []
    for part in made["parts"]:
        chunk = data[(part["number"] - 1) * size : part["number"] * size]
        response = httpx.put(part["url"], content=chunk)
        assert response.status_code == 200, response.text
        done.append({"number": part["number"], "etag": response.headers["etag"]})
    return done


def test_presigned_parts_complete_into_a_processed_episode(
    client: TestClient, host: dict[str, str], episode: str, long_wav: bytes, container: Container,
    s3_client: Any,
) -> None:  # fmt: skip
    response = _start(client, host, episode, long_wav, content_type="audio/wav", start="1.5")
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["part_size"] == 5 * MIB
    assert [p["number"] for p in made["parts"]] == [1, 2, 3]
    urls_expire = datetime.fromisoformat(made["urls_expire_at"])
    assert timedelta(seconds=890) < urls_expire - datetime.now(UTC) <= timedelta(seconds=900)
    # Part 2 is first sent broken twice (cut short, then garbled), then retried: the last bytes count.
    broken = [
        httpx.put(made["parts"][1]["url"], content=body)
        for body in (long_wav[5 * MIB : 6 * MIB], b"\xff" * (5 * MIB))
    ]
    assert [r.status_code for r in broken] == [200, 200]
    # Fresh URLs for the same parts (for uploads that outlast the first ones).
    refreshed = client.get(f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}", headers=host)
    assert refreshed.status_code == 200
    assert [p["number"] for p in refreshed.json()["parts"]] == [1, 2, 3]
    made["parts"][2] = refreshed.json()["parts"][2]
    done = _put_parts(made, long_wav)
    assert done[1]["etag"] not in [r.headers["etag"] for r in broken]
    complete = f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}/complete"
    # An ETag the store does not hold: 422, and the upload stays open for the right list.
    wrong = [*done[:2], {"number": 3, "etag": '"0123456789abcdef0123456789abcdef"'}]
    response = client.post(complete, json={"parts": wrong}, headers=host)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid-parts"
    response = client.post(complete, json={"parts": done}, headers=host)
    assert response.status_code == 202, response.text
    job = response.json()
    assert wait_job(client, job, host)["status"] == "succeeded"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["original"]["sha256"] == hashlib.sha256(long_wav).hexdigest()
    assert ready["original"]["byte_size"] == len(long_wav)
    assert ready["media"]["processing"]["trim_start"] == pytest.approx(1.5)
    # Nothing is left of the upload: no staging object, multipart upload or row.
    assert list(container.storage.list_keys("uploads/")) == []
    assert _multipart(s3_client, container) == []
    with container.uow() as uow:
        assert uow.session.query(DirectUpload).count() == 0
    assert client.post(complete, json={"parts": done}, headers=host).status_code == 404


def test_wrong_sha256_is_refused_and_nothing_attached(
    client: TestClient,
    host: dict[str, str],
    episode: str,
    container: Container,
    s3_client: Any,
    tmp_path: Path,
) -> None:
    data = write_speech_like(tmp_path / "short.wav", 3.0, seed=2).read_bytes()
    response = _start(client, host, episode, data, sha256=hashlib.sha256(b"other").hexdigest())
    made = response.json()
    done = _put_parts(made, data)
    response = client.post(
        f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}/complete",
        json={"parts": done},
        headers=host,
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "checksum-mismatch"
    ready = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert ready["status"] == "draft"
    assert ready["original"] is None
    assert list(container.storage.list_keys("")) == []  # not even the staging object
    assert _multipart(s3_client, container) == []


def test_not_media_is_refused(
    client: TestClient, host: dict[str, str], episode: str, container: Container
) -> None:
    data = b"not audio at all\n" * 1000
    made = _start(client, host, episode, data).json()
    response = client.post(
        f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}/complete",
        json={"parts": _put_parts(made, data)},
        headers=host,
    )
    assert response.status_code in (415, 422), response.text
    assert client.get(f"/api/v1/episodes/{episode}", headers=host).json()["status"] == "draft"
    assert list(container.storage.list_keys("")) == []


def test_abandoned_uploads_are_aborted(
    client: TestClient, host: dict[str, str], episode: str, container: Container, s3_client: Any
) -> None:
    """50 abandoned: 20 with rows (some with parts sent), 30 no row knows (say, a process crashed)."""
    data = b"\0" * (11 * MIB)
    for n in range(20):
        made = _start(client, host, episode, data).json()
        if n % 5 == 0:
            assert httpx.put(made["parts"][0]["url"], content=data[: 5 * MIB]).status_code == 200
    for n in range(30):
        s3_client.create_multipart_upload(Bucket=_bucket(container), Key=f"uploads/direct/lost{n}")
    s3_client.create_multipart_upload(Bucket=_bucket(container), Key="elsewhere/keep")  # not ours
    assert len(_multipart(s3_client, container)) == 50
    now = datetime.now(UTC)
    assert expire_direct_uploads(container.uow, container.storage, now) == 0  # not expired yet
    later = now + timedelta(seconds=container.settings.direct_upload_expires_seconds + 1)
    assert expire_direct_uploads(container.uow, container.storage, later) == 20
    assert abort_orphan_multipart_uploads(container.uow, container.storage, later, timedelta(hours=1)) == 30
    assert _multipart(s3_client, container) == []
    assert [u["Key"] for u in _multipart(s3_client, container, "")] == ["elsewhere/keep"]
    # Objects a dying process left under uploads/ (no row knows them) go too, once old enough.
    for key in ("uploads/direct/done", "uploads/tus/0123.tail"):
        s3_client.put_object(Bucket=_bucket(container), Key=key, Body=b"left")
    assert delete_orphan_upload_objects(container.uow, container.storage, now, timedelta(hours=1)) == 0
    assert delete_orphan_upload_objects(container.uow, container.storage, later, timedelta(hours=1)) == 2
    assert list(container.storage.list_keys("uploads/")) == []
    with container.uow() as uow:
        assert uow.session.query(DirectUpload).count() == 0


def test_abort_by_the_client(
    client: TestClient, host: dict[str, str], episode: str, container: Container, s3_client: Any
) -> None:
    made = _start(client, host, episode, b"\1" * (6 * MIB)).json()
    assert httpx.put(made["parts"][0]["url"], content=b"\1" * (5 * MIB)).status_code == 200
    path = f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}"
    with container.uow() as uow:  # past its expiry: completing is refused (410) until it is swept
        upload = uow.session.get(DirectUpload, made["upload_id"])
        assert upload is not None
        upload.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        uow.commit()
    done = {"parts": [{"number": 1, "etag": '"x"'}]}
    assert client.post(f"{path}/complete", json=done, headers=host).status_code == 410
    with container.uow() as uow:
        upload = uow.session.get(DirectUpload, made["upload_id"])
        assert upload is not None
        upload.expires_at = datetime.now(UTC) + timedelta(hours=1)
        uow.commit()
    assert client.delete(path).status_code == 401
    assert client.delete(path, headers=host).status_code == 204
    assert client.delete(path, headers=host).status_code == 404
    assert _multipart(s3_client, container) == []


def _sigv4_valid(url: str, secret: str = "test") -> bool:
    """Whether a presigned PUT URL's signature matches its own path and query (SigV4, query auth)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(query)

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    canonical_query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(query) if k != "X-Amz-Signature")
    request = "\n".join(
        ["PUT", parts.path, canonical_query, f"host:{parts.netloc}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = values["X-Amz-Credential"].split("/", 1)[1]
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", values["X-Amz-Date"], scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for step in scope.split("/"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, values["X-Amz-Signature"])


def test_part_urls_are_short_lived_and_bound_to_their_key(
    client: TestClient, host: dict[str, str], episode: str, container: Container
) -> None:
    made = _start(client, host, episode, b"\2" * (6 * MIB), filename="../../etc/evil.wav").json()
    first, second = (p["url"] for p in made["parts"])
    path = urlsplit(first).path
    assert path == f"/{_bucket(container)}/uploads/direct/{made['upload_id']}"  # server-made key
    values = dict(parse_qsl(urlsplit(first).query))
    assert values["X-Amz-Expires"] == "900"
    signed = datetime.strptime(values["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed).total_seconds()) < 60
    assert _sigv4_valid(first)
    assert _sigv4_valid(second)
    # The same signature on another key, upload or part, or a longer life, no longer matches.
    other_key = first.replace(path, f"/{_bucket(container)}/shows/x/episodes/y/original.wav")
    assert not _sigv4_valid(other_key)
    assert not _sigv4_valid(first.replace("partNumber=1", "partNumber=2"))
    assert not _sigv4_valid(first.replace("uploadId=", "uploadId=x"))
    assert not _sigv4_valid(first.replace("X-Amz-Expires=900", "X-Amz-Expires=604800"))


def test_requests_are_checked(client: TestClient, host: dict[str, str], episode: str) -> None:
    data = b"\3" * 100
    assert _start(client, {}, episode, data).status_code == 401
    stranger = new_user(client.app.state.container, "stranger")  # type: ignore[attr-defined]
    assert _start(client, stranger, episode, data).status_code in (403, 404)
    assert _start(client, host, "nope", data).status_code == 404
    for bad in ({"sha256": "xyz"}, {"size": 0}, {"start": "soon"}):
        response = _start(client, host, episode, data, **bad)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    limit = client.app.state.container.settings.max_upload_bytes  # type: ignore[attr-defined]
    assert _start(client, host, episode, data, size=limit + 1).status_code == 413


@pytest.fixture
def local_client(tmp_path: Path) -> Iterator[TestClient]:
    c = bootstrap(make_settings(tmp_path / "local"))
    with TestClient(create_app(c, scheduler=False), raise_server_exceptions=False) as tc:
        yield tc
    c.close()


def test_local_backend_answers_a_clear_problem(local_client: TestClient) -> None:
    container: Container = local_client.app.state.container  # type: ignore[attr-defined]
    host = new_user(container, "local-host")
    assert local_client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = local_client.post("/api/v1/shows/test-show/episodes", json={}, headers=host).json()["id"]
    response = _start(local_client, host, episode, b"\4" * 100)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "direct-upload-unavailable"


def test_multipart_primitives_under_a_key_prefix(s3_settings: StorageSettings, s3_client: Any) -> None:
    """S3Storage's multipart methods apply the backend's key prefix and translate the store's errors."""
    from media_pub.errors import InvalidInput
    from media_pub.storage.base import MultipartStorage, ObjectNotFound
    from media_pub.storage.s3 import S3Storage

    storage = S3Storage(s3_settings.model_copy(update={"key_prefix": "media"}))
    assert isinstance(storage, MultipartStorage)
    upload_id = storage.create_multipart("uploads/direct/a")
    assert [(u.key, u.upload_id) for u in storage.list_multipart_uploads("uploads/")] == [
        ("uploads/direct/a", upload_id)
    ]
    listed = s3_client.list_multipart_uploads(Bucket=s3_settings.bucket)["Uploads"]
    assert [u["Key"] for u in listed] == ["media/uploads/direct/a"]
    first = b"a" * (5 * MIB)
    etags = [
        storage.upload_part("uploads/direct/a", upload_id, 1, io.BytesIO(first), len(first)),
        storage.upload_part("uploads/direct/a", upload_id, 2, io.BytesIO(b"tail"), 4),
    ]
    with pytest.raises(InvalidInput):
        storage.complete_multipart("uploads/direct/a", upload_id, [(1, etags[0]), (2, '"bogus"')])
    storage.complete_multipart("uploads/direct/a", upload_id, [(1, etags[0]), (2, etags[1])])
    assert storage.read_bytes("uploads/direct/a") == first + b"tail"
    copied = storage.copy("uploads/direct/a", "shows/s/episodes/e/original-x.wav", content_type="audio/wav")
    assert (copied.size, copied.content_type) == (len(first) + 4, "audio/wav")
    storage.abort_multipart("uploads/direct/a", upload_id)  # already completed: not an error
    assert list(storage.list_multipart_uploads("uploads/")) == []
    # (moto answers 500, not NoSuchUpload, to parts or completion of an unknown upload: not checked here)
    with pytest.raises(ObjectNotFound):
        storage.copy("uploads/direct/missing", "shows/s/x.wav", content_type="audio/wav")


def test_completing_parts_joined_already_finishes(
    client: TestClient, host: dict[str, str], episode: str, long_wav: bytes, container: Container,
    s3_client: Any,
) -> None:  # fmt: skip
    """The parts were joined already (a first `complete` failed after joining them, on a storage or
    database blip, and put the upload back to pending): the client's retry finishes it."""
    made = _start(client, host, episode, long_wav).json()
    done = _put_parts(made, long_wav)
    row = container.uow
    with row() as uow:
        upload = uow.session.get(DirectUpload, made["upload_id"])
        assert upload is not None
        key, s3_upload_id = upload.storage_key, upload.s3_upload_id
    s3_client.complete_multipart_upload(
        Bucket=_bucket(container), Key=key, UploadId=s3_upload_id,
        MultipartUpload={"Parts": [{"PartNumber": p["number"], "ETag": p["etag"]} for p in done]},
    )  # fmt: skip
    complete = f"/api/v1/episodes/{episode}/direct-uploads/{made['upload_id']}/complete"
    response = client.post(complete, json={"parts": done}, headers=host)
    assert response.status_code == 202, response.text
    job = wait_job(client, response.json(), host)
    assert job["status"] == "succeeded", job
    original = client.get(f"/api/v1/episodes/{episode}", headers=host).json()
    assert original["status"] == "ready"
