"""One contract for every storage backend (a local folder, S3 over HTTP to moto's server), then specifics."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

import httpx
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from pydantic import SecretStr

from media_pub.config import StorageSettings
from media_pub.errors import MediaPubError, NotFound, Unavailable
from media_pub.storage import (
    ObjectInfo,
    ObjectNotFound,
    Storage,
    StorageError,
    content_disposition,
    validate_key,
)
from media_pub.storage.factory import build_storage
from media_pub.storage.local import LocalStorage, guess_content_type
from media_pub.storage.s3 import S3Storage, translate_error
from tests.s3server import free_port

MIB = 1024 * 1024
BIG_SIZE = 12 * MIB  # over the 5 MiB multipart threshold of s3_settings: three 5 MiB-max parts
KEY = "shows/s1/episodes/e1/original-0123abcd.mp3"
PREFIX = "media/"


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 12 MiB random file (written in 1 MiB chunks) and its sha256."""
    path = tmp_path_factory.mktemp("big") / "big.mp3"
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(BIG_SIZE // MIB):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            f.write(chunk)
    return path, digest.hexdigest()


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend as the app builds it; S3 under a key prefix, to prove it is applied and stripped."""
    if request.param == "local":
        return build_storage(StorageSettings(backend="local", root=tmp_path / "media"))
    settings: StorageSettings = request.getfixturevalue("s3_settings")
    return build_storage(settings.model_copy(update={"key_prefix": PREFIX}))


class TrickleReader:
    """A non-seekable stream over a file: refuses whole-stream reads, records the largest, may fail midway."""

    def __init__(self, path: Path, *, fail_after: int | None = None) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.fail_after = fail_after
        self.served = 0
        self.largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise AssertionError("the storage read the whole stream into memory")
        self.largest_read = max(self.largest_read, size)
        if self.fail_after is not None and self.served >= self.fail_after:
            raise ConnectionResetError("the client went away")
        data = self._file.read(size)
        self.served += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()


def sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(256 * 1024):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return sha256_stream(f)


def raw_etag(storage: Storage, key: str) -> str | None:
    """The ETag the object store gave the object (S3 only)."""
    if not isinstance(storage, S3Storage):
        return None
    return str(storage.client.head_object(Bucket=storage.bucket, Key=PREFIX + key)["ETag"])


def files_under(root: Path) -> list[str]:
    """Every file (temp files included) under root, as posix paths relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- the contract ------------------------------------------------------------------------------------------


def test_put_bytes_round_trip(storage: Storage) -> None:
    data = os.urandom(70_000)
    key = "shows/s1/artwork-1a2b.jpg"
    info = storage.put_bytes(key, data, content_type="image/jpeg")
    assert info == ObjectInfo(key=key, size=len(data), content_type="image/jpeg")
    assert storage.stat(key) == info
    assert storage.exists(key)
    assert storage.read_bytes(key) == data


@pytest.mark.parametrize(
    ("key", "content_type"),
    [("a/b.mp3", "audio/mpeg"), ("a/b.m4a", "audio/x-m4a"), ("a/c.json", "application/json")],
)
def test_content_type_is_stored_and_returned(storage: Storage, key: str, content_type: str) -> None:
    storage.put_bytes(key, b"x", content_type=content_type)
    assert storage.stat(key).content_type == content_type


def test_put_file_large_round_trip(storage: Storage, big_file: tuple[Path, str], tmp_path: Path) -> None:
    path, digest = big_file
    info = storage.put_file(KEY, path, content_type="audio/mpeg")
    assert info == ObjectInfo(key=KEY, size=BIG_SIZE, content_type="audio/mpeg")
    assert storage.stat(KEY) == info
    etag = raw_etag(storage, KEY)
    assert etag is None or etag.strip('"').endswith("-3"), f"not a 3-part multipart upload: {etag}"
    with storage.open(KEY) as stream:
        assert sha256_stream(stream) == digest
    dest = tmp_path / "copy.mp3"
    storage.download_to(KEY, dest)
    assert sha256_file(dest) == digest
    assert hashlib.sha256(storage.read_bytes(KEY)).hexdigest() == digest


def test_put_stream_large_round_trip_in_chunks(storage: Storage, big_file: tuple[Path, str]) -> None:
    path, digest = big_file
    reader = TrickleReader(path)
    try:
        info = storage.put(KEY, cast(BinaryIO, reader), content_type="audio/mpeg")
    finally:
        reader.close()
    assert info == ObjectInfo(key=KEY, size=BIG_SIZE, content_type="audio/mpeg")
    assert 0 < reader.largest_read <= 8 * MIB
    etag = raw_etag(storage, KEY)
    assert etag is None or etag.strip('"').endswith("-3"), f"not a 3-part multipart upload: {etag}"
    with storage.open(KEY) as stream:
        assert sha256_stream(stream) == digest


def test_open_streams_in_pieces(storage: Storage) -> None:
    data = os.urandom(3 * MIB + 17)
    storage.put_bytes("a/stream.mp3", data, content_type="audio/mpeg")
    with storage.open("a/stream.mp3") as stream:
        assert stream.read(1000) == data[:1000]
        assert stream.read(MIB) == data[1000 : 1000 + MIB]
        assert stream.read() == data[1000 + MIB :]
        assert stream.read(10) == b""


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.put_bytes("a/x.json", b'{"v": 1}', content_type="application/json")
    storage.put_bytes("a/x.json", b'{"v": 22}', content_type="application/json")
    assert storage.read_bytes("a/x.json") == b'{"v": 22}'
    assert storage.stat("a/x.json").size == 9
    assert list(storage.list_keys("a/")) == ["a/x.json"]


def test_failed_put_keeps_the_old_object(storage: Storage, big_file: tuple[Path, str]) -> None:
    storage.put_bytes(KEY, b"old content", content_type="audio/mpeg")
    reader = TrickleReader(big_file[0], fail_after=7 * MIB)  # fails after the multipart upload has begun
    try:
        with pytest.raises(ConnectionResetError):
            storage.put(KEY, cast(BinaryIO, reader), content_type="audio/mpeg")
    finally:
        reader.close()
    assert storage.read_bytes(KEY) == b"old content"
    assert list(storage.list_keys()) == [KEY]
    if isinstance(storage, LocalStorage):
        assert files_under(storage.root) == [KEY]
    if isinstance(storage, S3Storage):
        uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket)
        assert not uploads.get("Uploads"), "the failed multipart upload was not aborted"


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.put_bytes("a/gone.json", b"{}", content_type="application/json")
    storage.delete("a/gone.json")
    assert not storage.exists("a/gone.json")
    storage.delete("a/gone.json")
    storage.delete("never/was.json")
    with pytest.raises(ObjectNotFound):
        storage.stat("a/gone.json")


def test_missing_key_is_object_not_found(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("a/present.json", b"{}", content_type="application/json")
    missing = "a/missing.mp3"
    assert not storage.exists(missing)
    with pytest.raises(ObjectNotFound):
        storage.open(missing)
    with pytest.raises(ObjectNotFound):
        storage.stat(missing)
    with pytest.raises(ObjectNotFound):
        storage.read_bytes(missing)
    with pytest.raises(ObjectNotFound) as caught:
        storage.download_to(missing, tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()
    assert isinstance(caught.value, NotFound)
    assert caught.value.code == "object-not-found"
    assert not caught.value.retryable
    with pytest.raises(ObjectNotFound):
        storage.stat("a")  # a "folder" is not an object


def test_list_keys_by_prefix(storage: Storage) -> None:
    keys = ["shows/a/x.mp3", "shows/a/y/z.json", "shows/ab/c.jpg", "shows/b/d.mp3", "top.json"]
    for key in reversed(keys):
        storage.put_bytes(key, b"1", content_type="application/octet-stream")
    assert list(storage.list_keys()) == keys
    assert list(storage.list_keys("shows/a/")) == ["shows/a/x.mp3", "shows/a/y/z.json"]
    assert list(storage.list_keys("shows/a")) == ["shows/a/x.mp3", "shows/a/y/z.json", "shows/ab/c.jpg"]
    assert list(storage.list_keys("shows/a/y/z.json")) == ["shows/a/y/z.json"]
    assert list(storage.list_keys("to")) == ["top.json"]
    assert list(storage.list_keys("nothing/")) == []


def test_list_objects_gives_size_and_age(storage: Storage) -> None:
    from datetime import UTC, datetime, timedelta

    storage.put_bytes("shows/a/x.mp3", b"12345", content_type="audio/mpeg")
    storage.put_bytes("shows/b/y.json", b"{}", content_type="application/json")
    infos = list(storage.list_objects("shows/a/"))
    assert [(i.key, i.size) for i in infos] == [("shows/a/x.mp3", 5)]
    modified = infos[0].modified
    assert modified is not None
    assert modified.tzinfo is not None
    assert abs(datetime.now(UTC) - modified) < timedelta(minutes=2)
    assert [i.key for i in storage.list_objects()] == ["shows/a/x.mp3", "shows/b/y.json"]


BAD_KEYS = [
    "../x",
    "/abs",
    "a//b",
    "A.MP3",
    "a\x00b",
    "",
    "a/../b",
    "a/./b",
    "dir/",
    "a b",
    ".hidden",
    "a\\b",
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_rejected(storage: Storage, key: str, tmp_path: Path) -> None:
    calls: list[Any] = [
        lambda: storage.put_bytes(key, b"x", content_type="text/plain"),
        lambda: storage.put_file(key, tmp_path / "any", content_type="text/plain"),
        lambda: storage.stat(key),
        lambda: storage.open(key),
        lambda: storage.read_bytes(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.download_to(key, tmp_path / "out"),
        lambda: storage.public_url(key),
        lambda: storage.presigned_get_url(key),
        lambda: storage.local_path(key),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="storage key"):
            call()


@pytest.mark.parametrize("prefix", ["../", "/abs", "a//", "A", ".x/"])
def test_unsafe_prefixes_are_rejected(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        storage.list_keys(prefix)


def test_check_passes(storage: Storage) -> None:
    storage.check()
    storage.check()


def test_validate_key_accepts_domain_keys() -> None:
    for key in [KEY, "shows/abc/artwork-12ab.jpg", "a", "a.b-c_d/e"]:
        assert validate_key(key) == key


# --- local backend ------------------------------------------------------------------------------------------


def test_local_leaves_no_temp_files(tmp_path: Path, big_file: tuple[Path, str]) -> None:
    storage = LocalStorage(tmp_path / "media")
    storage.put_file(KEY, big_file[0], content_type="audio/mpeg")
    storage.put_file(KEY, big_file[0], content_type="audio/mpeg")
    storage.put_bytes("a/b.json", b"{}", content_type="application/json")
    with open(big_file[0], "rb") as f:
        storage.put("a/c.mp3", f, content_type="audio/mpeg")
    assert files_under(storage.root) == sorted([KEY, "a/b.json", "a/c.mp3"])


def test_local_open_is_seekable_and_local_path_is_the_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    storage.put_bytes("a/b.mp3", b"0123456789", content_type="audio/mpeg")
    with storage.open("a/b.mp3") as f:
        assert f.seekable()
        f.seek(5)
        assert f.read() == b"56789"
    path = storage.local_path("a/b.mp3")
    assert path == storage.root / "a" / "b.mp3"
    assert path.read_bytes() == b"0123456789"
    assert storage.local_path("not/yet.mp3") == storage.root / "not" / "yet.mp3"
    assert storage.public_url("a/b.mp3") is None
    assert storage.presigned_get_url("a/b.mp3", filename="b.mp3") is None


def test_local_never_resolves_outside_its_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    storage = LocalStorage(tmp_path / "media")
    storage.check()
    (storage.root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        storage.read_bytes("link/secret.txt")
    with pytest.raises(ValueError, match="outside"):
        storage.put_bytes("link/new.txt", b"x", content_type="text/plain")
    with pytest.raises(ValueError, match="outside"):
        storage.local_path("link/secret.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_local_content_type_follows_the_extension(tmp_path: Path) -> None:
    expected = {
        "a.mp3": "audio/mpeg",
        "a.m4a": "audio/x-m4a",
        "a.json": "application/json",
        "a.jpg": "image/jpeg",
        "a.png": "image/png",
        "a.mp4": "video/mp4",
        "a": None,
        "a.zzz9": None,
    }
    for key, content_type in expected.items():
        assert guess_content_type(key) == content_type, key
    storage = LocalStorage(tmp_path)
    assert storage.put_bytes("x/cover.png", b"png", content_type="image/png").content_type == "image/png"
    assert storage.stat("x/cover.png").content_type == "image/png"


def test_local_check_fails_when_root_is_not_writable(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a folder")
    with pytest.raises(Unavailable) as caught:
        LocalStorage(tmp_path / "file" / "media").check()
    assert caught.value.retryable


def test_local_object_and_folder_of_the_same_name_conflict(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("a", b"1", content_type="text/plain")
    with pytest.raises(StorageError):
        storage.put_bytes("a/b", b"2", content_type="text/plain")
    storage.put_bytes("c/d", b"3", content_type="text/plain")
    with pytest.raises(StorageError):
        storage.put_bytes("c", b"4", content_type="text/plain")
    assert files_under(tmp_path) == ["a", "c/d"]


# --- S3 backend ---------------------------------------------------------------------------------------------


@pytest.fixture
def s3(s3_settings: StorageSettings) -> S3Storage:
    return S3Storage(s3_settings.model_copy(update={"key_prefix": PREFIX}))


@pytest.mark.s3
def test_s3_presigned_url_serves_ranges_and_names_the_file(s3: S3Storage) -> None:
    data = os.urandom(MIB)
    s3.put_bytes(KEY, data, content_type="audio/mpeg")
    url = s3.presigned_get_url(KEY)
    assert url is not None
    assert "X-Amz-Expires=3600" in url
    response = httpx.get(url)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "audio/mpeg"
    ranged = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == data[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(data)}"

    filename = 'Épisode 1 — "ça va".mp3'
    named = s3.presigned_get_url(KEY, expires=120, filename=filename)
    assert named is not None
    assert "X-Amz-Expires=120" in named
    response = httpx.get(named)
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition == content_disposition(filename)
    assert disposition.isascii()
    assert disposition.startswith('inline; filename="Episode 1 _ca va_.mp3"')
    assert "filename*=UTF-8''%C3%89pisode%201%20%E2%80%94%20%22%C3%A7a%20va%22.mp3" in disposition
    with pytest.raises(ValueError, match="expiry"):
        s3.presigned_get_url(KEY, expires=0)


def test_content_disposition_values() -> None:
    assert content_disposition("show-1a2b3c4d.mp3") == 'inline; filename="show-1a2b3c4d.mp3"'
    hostile = content_disposition('../evil"\r\nX-Injected: 1.mp3', "attachment")
    assert hostile.isascii()
    assert "\r" not in hostile
    assert "\n" not in hostile
    assert hostile.startswith('attachment; filename="evil_X-Injected_ 1.mp3"')


@pytest.mark.s3
def test_s3_public_url(s3_settings: StorageSettings) -> None:
    plain = S3Storage(s3_settings)
    assert plain.public_url(KEY) is None
    cdn = S3Storage(
        s3_settings.model_copy(update={"public_base_url": "https://cdn.example.org/pod/", "key_prefix": "m"})
    )
    assert cdn.public_url(KEY) == f"https://cdn.example.org/pod/m/{KEY}"
    assert plain.local_path(KEY) is None


@pytest.mark.s3
def test_s3_key_prefix_is_applied_and_stripped(s3: S3Storage, s3_client: Any) -> None:
    s3.put_bytes("a/b.json", b"{}", content_type="application/json")
    raw = s3_client.list_objects_v2(Bucket=s3.bucket)
    assert [item["Key"] for item in raw["Contents"]] == ["media/a/b.json"]
    assert list(s3.list_keys()) == ["a/b.json"]


@pytest.mark.s3
def test_s3_bucket_is_created_on_first_use(s3: S3Storage, s3_client: Any) -> None:
    with pytest.raises(ClientError):
        s3_client.head_bucket(Bucket=s3.bucket)
    s3.check()
    s3_client.head_bucket(Bucket=s3.bucket)


@pytest.mark.s3
def test_s3_unreachable_endpoint_is_unavailable_quickly(s3_settings: StorageSettings, tmp_path: Path) -> None:
    settings = s3_settings.model_copy(
        update={
            "endpoint_url": f"http://127.0.0.1:{free_port()}",
            "secret_access_key": SecretStr("sekrit-do-not-log"),
        }
    )
    storage = S3Storage(settings, connect_timeout=1, read_timeout=1, max_attempts=1)
    (tmp_path / "f.mp3").write_bytes(b"x")
    calls: list[Any] = [
        storage.check,
        lambda: storage.put_bytes("a/b.json", b"{}", content_type="application/json"),
        lambda: storage.put_file("a/f.mp3", tmp_path / "f.mp3", content_type="audio/mpeg"),
        lambda: storage.stat("a/b.json"),
        lambda: storage.read_bytes("a/b.json"),
        lambda: list(storage.list_keys()),
    ]
    started = time.monotonic()
    for call in calls:
        with pytest.raises(Unavailable) as caught:
            call()
        assert caught.value.retryable
        assert "sekrit" not in str(caught.value)
    assert time.monotonic() - started < 10
    assert "sekrit" not in repr(storage)


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


def _upload_failed(cause: ClientError) -> S3UploadFailedError:
    try:
        try:
            raise cause
        except ClientError:
            raise S3UploadFailedError("Failed to upload") from None
    except S3UploadFailedError as exc:
        exc.__context__ = cause
        return exc


@pytest.mark.parametrize(
    ("exc", "expected", "retryable"),
    [
        (_client_error("NoSuchKey", 404), ObjectNotFound, False),
        (_client_error("404", 404), ObjectNotFound, False),
        (_client_error("SlowDown", 503), Unavailable, True),
        (_client_error("InternalError", 500), Unavailable, True),
        (_client_error("Throttling", 400), Unavailable, True),
        (_client_error("AccessDenied", 403), StorageError, False),
        (_client_error("NoSuchBucket", 404), StorageError, False),
        (_upload_failed(_client_error("ServiceUnavailable", 503)), Unavailable, True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Unavailable, True),
        (NoCredentialsError(), StorageError, False),
    ],
)
def test_botocore_errors_are_translated(
    exc: BaseException, expected: type[MediaPubError], retryable: bool
) -> None:
    error = translate_error(exc, "storage: get 'a/b.mp3'")
    assert type(error) is expected
    assert error.retryable is retryable
    assert "a/b.mp3" in error.detail


def test_storage_backends_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(LocalStorage(tmp_path), Storage)
    settings = StorageSettings(
        backend="s3", endpoint_url="http://127.0.0.1:9", access_key_id="k", secret_access_key="s"
    )
    built = build_storage(settings)
    assert isinstance(built, S3Storage)
    assert isinstance(built, Storage)
