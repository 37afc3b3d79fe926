"""Objects in an S3-compatible bucket (AWS, MinIO, R2, B2...) via boto3; botocore errors stop here."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from boto3.exceptions import RetriesExceededError, S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
)

from media_pub.config import StorageSettings
from media_pub.errors import InvalidInput, MediaPubError, Unavailable
from media_pub.storage.base import (
    CHUNK_SIZE,
    MultipartUpload,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    content_disposition,
    validate_key,
    validate_prefix,
)

MIB = 1024 * 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "OperationAborted",
    }
)
_UNREACHABLE = (ConnectionError, HTTPClientError, IncompleteReadError, RetriesExceededError)
_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError)
_BOTO_ERRORS = (ClientError, BotoCoreError, S3UploadFailedError, RetriesExceededError)
_BAD_PARTS_CODES = frozenset({"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "MalformedXML"})


def translate_error(exc: BaseException, what: str) -> MediaPubError:
    """Map a boto3/botocore exception to a domain error whose detail names `what` and never a secret."""
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(error.get("Message", ""))[:200]
        if code == "NoSuchBucket":
            return StorageError(f"{what}: the bucket does not exist", code="bucket-not-found")
        if code in _NOT_FOUND_CODES or status == 404:
            return ObjectNotFound(f"{what}: no such object")
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return Unavailable(f"{what}: object store unavailable ({code or status})")
        return StorageError(f"{what}: object store refused the request ({code or status}: {message})".strip())
    if isinstance(exc, _UNREACHABLE):
        return Unavailable(f"{what}: cannot reach the object store ({type(exc).__name__})")
    if isinstance(exc, _CREDENTIALS):
        return StorageError(f"{what}: no usable object store credentials", code="storage-credentials")
    return StorageError(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _boundary(what: str) -> Iterator[None]:
    try:
        yield
    except _BOTO_ERRORS as exc:
        raise translate_error(exc, what) from exc


class _Body(io.RawIOBase):
    """A GetObject body whose read errors are domain errors."""

    def __init__(self, body: Any, what: str) -> None:
        self._body = body
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with _boundary(self._what):
            data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


def _status_and_code(exc: ClientError) -> tuple[int, str]:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status, str(exc.response.get("Error", {}).get("Code", ""))


class S3Storage:
    """A bucket, optionally under a key prefix; path-style addressing when an endpoint URL is configured."""

    def __init__(
        self,
        settings: StorageSettings,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 4,
        create_bucket: bool = True,
    ) -> None:
        self.bucket = settings.bucket
        self.endpoint_url = settings.endpoint_url
        self.region = settings.region
        self.prefix = _normalize_prefix(settings.key_prefix)
        self.public_base_url = settings.public_base_url.rstrip("/") if settings.public_base_url else None
        self.presign_seconds = settings.presign_seconds
        self.create_bucket = create_bucket
        options: dict[str, Any] = {
            "region_name": settings.region,
            "signature_version": "s3v4",
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"max_attempts": max_attempts, "mode": "standard"},
            "s3": {"addressing_style": "path" if settings.endpoint_url else "auto"},
        }
        if settings.endpoint_url and "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            # Some third-party stores (B2, older MinIO) reject the CRC checksums botocore >= 1.36 adds.
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=(
                settings.secret_access_key.get_secret_value() if settings.secret_access_key else None
            ),
            region_name=settings.region,
        )
        self.client = session.client("s3", endpoint_url=settings.endpoint_url, config=Config(**options))
        self.transfer = TransferConfig(
            multipart_threshold=settings.multipart_threshold_mb * MIB,
            multipart_chunksize=settings.multipart_chunk_mb * MIB,
            max_concurrency=4,
            io_chunksize=256 * 1024,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        self._bucket_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, endpoint={self.endpoint_url!r}, prefix={self.prefix!r})"

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use if it is missing (and creation is allowed)."""
        if self._bucket_ready:
            return
        with self._lock, _boundary(f"storage: check bucket {self.bucket!r}"):
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status, code = _status_and_code(exc)
                missing = status == 404 or code in ("NoSuchBucket", "404", "NotFound")
                if not missing or not self.create_bucket:
                    raise
                self._create_bucket()
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if _status_and_code(exc)[1] != "BucketAlreadyOwnedByYou":
                raise

    def put_file(self, key: str, path: Path, *, content_type: str) -> ObjectInfo:
        """Upload a local file; multipart (in parallel parts) above the configured threshold."""
        full = self._key(key)
        size = Path(path).stat().st_size
        self._ensure_bucket()
        with _boundary(f"storage: upload {key!r}"):
            self.client.upload_file(
                str(path), self.bucket, full, ExtraArgs={"ContentType": content_type}, Config=self.transfer
            )
        return ObjectInfo(key=key, size=size, content_type=content_type)

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str) -> ObjectInfo:
        """Upload from a stream in parts; an error raised by `fileobj` aborts the upload and propagates."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: upload {key!r}"):
            self.client.upload_fileobj(
                fileobj, self.bucket, full, ExtraArgs={"ContentType": content_type}, Config=self.transfer
            )
        return self.stat(key)

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> ObjectInfo:
        """One PutObject request."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: put {key!r}"):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentType=content_type)
        return ObjectInfo(key=key, size=len(data), content_type=content_type)

    def open(self, key: str) -> BinaryIO:
        """A buffered, non-seekable stream of the object's body."""
        full = self._key(key)
        self._ensure_bucket()
        what = f"storage: get {key!r}"
        with _boundary(what):
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
        return cast(BinaryIO, io.BufferedReader(_Body(body, what), CHUNK_SIZE))

    def read_bytes(self, key: str) -> bytes:
        """The whole object."""
        with self.open(key) as f:
            return f.read()

    def download_to(self, key: str, path: Path) -> None:
        """Download to `path` (boto3 writes a temp file and renames it when complete)."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: download {key!r}"):
            self.client.download_file(self.bucket, full, str(path), Config=self.transfer)

    def stat(self, key: str) -> ObjectInfo:
        """HeadObject."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: stat {key!r}"):
            head = self.client.head_object(Bucket=self.bucket, Key=full)
        return ObjectInfo(key=key, size=int(head["ContentLength"]), content_type=head.get("ContentType"))

    def exists(self, key: str) -> bool:
        """HeadObject, with a missing object as False."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        """DeleteObject (S3 deletes are idempotent)."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: delete {key!r}"):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """ListObjectsV2 pages, with the backend's key prefix stripped."""
        return (info.key for info in self.list_objects(prefix))

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """ListObjectsV2 pages with size and LastModified."""
        return (
            ObjectInfo(
                key=item["Key"][len(self.prefix) :],
                size=int(item["Size"]),
                content_type=None,
                modified=item.get("LastModified"),
            )
            for item in self._listed("list_objects_v2", "Contents", prefix)
        )

    def _listed(self, operation: str, field: str, prefix: str) -> Iterator[dict[str, Any]]:
        """The `field` entries of every page of a listing `operation` under `prefix` (checked at once)."""
        validate_prefix(prefix)

        def pages() -> Iterator[dict[str, Any]]:
            self._ensure_bucket()
            paginator = self.client.get_paginator(operation)
            with _boundary(f"storage: {operation} {prefix!r}"):
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                    yield from page.get(field, [])

        return pages()

    def public_url(self, key: str) -> str | None:
        """public_base_url (the bucket's public root, e.g. a CDN) + the full object key, if configured."""
        full = self._key(key)
        return f"{self.public_base_url}/{full}" if self.public_base_url else None

    def presigned_get_url(
        self, key: str, *, expires: int | None = None, filename: str | None = None
    ) -> str | None:
        """A SigV4 presigned GET; `filename` makes the store answer with an inline Content-Disposition."""
        full = self._key(key)
        seconds = self.presign_seconds if expires is None else expires
        if not 1 <= seconds <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"presigned URL expiry must be 1..{MAX_PRESIGN_SECONDS} seconds, not {seconds}")
        params: dict[str, str] = {"Bucket": self.bucket, "Key": full}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        with _boundary(f"storage: presign {key!r}"):
            return str(self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds))

    def local_path(self, key: str) -> Path | None:
        """None: objects are not on this machine."""
        validate_key(key)
        return None

    # Multipart primitives (storage.base.MultipartStorage): resumable and direct-to-store uploads.

    def create_multipart(self, key: str) -> str:
        """CreateMultipartUpload; returns the UploadId."""
        full = self._key(key)
        self._ensure_bucket()
        with _boundary(f"storage: start multipart upload {key!r}"):
            return str(self.client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, fileobj: BinaryIO, size: int) -> str:
        """UploadPart of `size` bytes from `fileobj`; returns the ETag."""
        full = self._key(key)
        with _boundary(f"storage: upload part {number} of {key!r}"):
            reply = self.client.upload_part(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                PartNumber=number,
                Body=fileobj,
                ContentLength=size,
            )
        return str(reply["ETag"])

    def presign_part(self, key: str, upload_id: str, number: int, *, expires: int) -> str:
        """A SigV4 presigned UploadPart URL: the key, upload id and part number are all signed."""
        full = self._key(key)
        if not 1 <= expires <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"presigned URL expiry must be 1..{MAX_PRESIGN_SECONDS} seconds, not {expires}")
        params = {"Bucket": self.bucket, "Key": full, "UploadId": upload_id, "PartNumber": number}
        with _boundary(f"storage: presign part {number} of {key!r}"):
            return str(self.client.generate_presigned_url("upload_part", Params=params, ExpiresIn=expires))

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """CompleteMultipartUpload; parts the store does not hold (or too small) are InvalidInput."""
        full = self._key(key)
        listed = [{"PartNumber": number, "ETag": etag} for number, etag in sorted(parts)]
        with _boundary(f"storage: complete multipart upload {key!r}"):
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": listed}
                )
            except ClientError as exc:
                if _status_and_code(exc)[1] in _BAD_PARTS_CODES:
                    detail = f"the parts do not match what the store holds ({_status_and_code(exc)[1]})"
                    raise InvalidInput(detail, code="invalid-parts") from exc
                raise

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """AbortMultipartUpload; an upload already gone is not an error."""
        full = self._key(key)
        with contextlib.suppress(ObjectNotFound), _boundary(f"storage: abort multipart upload {key!r}"):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)

    def list_multipart_uploads(self, prefix: str) -> Iterator[MultipartUpload]:
        """ListMultipartUploads pages under `prefix`, with the backend's key prefix stripped."""
        return (
            MultipartUpload(
                key=item["Key"][len(self.prefix) :],
                upload_id=item["UploadId"],
                initiated=item.get("Initiated"),
            )
            for item in self._listed("list_multipart_uploads", "Uploads", prefix)
        )

    def copy(self, source: str, key: str, *, content_type: str) -> ObjectInfo:
        """A server-side copy (UploadPartCopy in parts above the multipart threshold)."""
        src, full = self._key(source), self._key(key)
        self._ensure_bucket()
        extra = {"ContentType": content_type, "MetadataDirective": "REPLACE"}
        with _boundary(f"storage: copy {source!r} to {key!r}"):
            self.client.copy(
                {"Bucket": self.bucket, "Key": src}, self.bucket, full, ExtraArgs=extra, Config=self.transfer
            )
        return self.stat(key)

    def check(self) -> None:
        """The bucket answers (and exists, creating it if allowed)."""
        self._bucket_ready = False
        try:
            self._ensure_bucket()
        except Unavailable:
            raise
        except MediaPubError as exc:
            raise Unavailable(exc.detail) from exc


def _normalize_prefix(prefix: str) -> str:
    """`media`, `/media/` -> `media/`; empty stays empty."""
    stripped = prefix.strip("/")
    if not stripped:
        return ""
    validate_key(stripped)
    return stripped + "/"
