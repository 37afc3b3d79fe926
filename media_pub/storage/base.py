"""The storage contract: keys, object metadata, errors and the `Storage` protocol every backend implements."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable
from urllib.parse import quote

from media_pub.errors import MediaPubError, NotFound

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 900
MAX_SEGMENT_LENGTH = 200
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]*")
_PREFIX_CHARS = re.compile(r"[a-z0-9/._-]*")
_FALLBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]+")


class ObjectNotFound(NotFound):
    code = "object-not-found"
    title = "Object not found"


class StorageError(MediaPubError):
    """The storage backend refused a request for a reason retrying will not fix (permissions, config...)."""

    code = "storage-error"
    title = "Storage error"


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    content_type: str | None
    modified: datetime | None = None  # set by list_objects (the sweeper's grace period counts from it)


@runtime_checkable
class Storage(Protocol):
    """Where media objects live: a local folder or an S3-compatible bucket."""

    def put_file(self, key: str, path: Path, *, content_type: str) -> ObjectInfo:
        """Store a local file under `key`, replacing any previous object all-or-nothing."""
        ...

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str) -> ObjectInfo:
        """Store what `fileobj` yields, read in chunks (never whole into memory)."""
        ...

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> ObjectInfo:
        """Store a small object held in memory (artwork, JSON)."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A readable stream of the object (seekable for the local backend); ObjectNotFound if missing."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFound if missing."""
        ...

    def download_to(self, key: str, path: Path) -> None:
        """Copy the object to a local file; ObjectNotFound if missing."""
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size and content type of the object; ObjectNotFound if missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under `key`."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing object is not an error."""
        ...

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix` (a plain string prefix, as in S3), in lexicographic order."""
        ...

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Like list_keys, with each object's size and last-modified time (content type may be None)."""
        ...

    def public_url(self, key: str) -> str | None:
        """A permanent public URL of the object, or None when the API must serve it."""
        ...

    def presigned_get_url(
        self, key: str, *, expires: int | None = None, filename: str | None = None
    ) -> str | None:
        """A temporary GET URL (S3 only), optionally naming the download via Content-Disposition."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's file for zero-copy serving (local backend only), whether or not it exists yet."""
        ...

    def check(self) -> None:
        """Readiness probe: raise Unavailable unless the backend can be written to."""
        ...


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative object key (`[a-z0-9/._-]`, no `..`, no empty segment)."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key longer than {MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or len(segment) > MAX_SEGMENT_LENGTH:
            raise ValueError(
                f"unsafe storage key {key!r}: segments must be non-empty, start with [a-z0-9] "
                "and contain only [a-z0-9._-]"
            )
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is "" or the start of a valid key (may end with `/` or mid-segment)."""
    if not prefix:
        return prefix
    if not _PREFIX_CHARS.fullmatch(prefix) or len(prefix) > MAX_KEY_LENGTH:
        raise ValueError(f"unsafe storage key prefix {prefix!r}")
    segments = prefix.split("/")
    complete, last = segments[:-1], segments[-1]
    if any(not _SEGMENT.fullmatch(s) for s in complete) or (last and not _SEGMENT.fullmatch(last)):
        raise ValueError(f"unsafe storage key prefix {prefix!r}")
    return prefix


def content_disposition(filename: str, disposition: str = "inline") -> str:
    """An RFC 6266 Content-Disposition value (ASCII only): a quoted fallback plus RFC 8187 `filename*`."""
    cleaned = "".join(ch for ch in filename if unicodedata.category(ch)[0] != "C")
    cleaned = cleaned.replace("/", "_").replace("\\", "_").strip() or "download"
    ascii_name = unicodedata.normalize("NFKD", cleaned).encode("ascii", "ignore").decode("ascii")
    fallback = " ".join(_FALLBACK_UNSAFE.sub("_", ascii_name).split()).strip(" ._") or "download"
    value = f'{disposition}; filename="{fallback}"'
    if fallback != cleaned:
        value += "; filename*=UTF-8''" + quote(cleaned, safe="!#$&+-.^_`|~")
    return value


@dataclass(frozen=True)
class MultipartUpload:
    """An S3 multipart upload in progress (as ListMultipartUploads reports it)."""

    key: str
    upload_id: str
    initiated: datetime | None


@runtime_checkable
class MultipartStorage(Protocol):
    """The multipart capability of a backend (S3 only): parts written by this process or by clients."""

    def create_multipart(self, key: str) -> str:
        """Start a multipart upload of `key`; returns its upload id."""
        ...

    def upload_part(self, key: str, upload_id: str, number: int, fileobj: BinaryIO, size: int) -> str:
        """Send part `number` (1..10,000) of `size` bytes read from `fileobj`; returns its ETag."""
        ...

    def presign_part(self, key: str, upload_id: str, number: int, *, expires: int) -> str:
        """A presigned UploadPart URL for this key, upload and part only, valid `expires` seconds."""
        ...

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts (number, ETag) into the object; InvalidInput if they do not match the store's."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort the upload and free its parts; an unknown upload is not an error."""
        ...

    def list_multipart_uploads(self, prefix: str) -> Iterator[MultipartUpload]:
        """Multipart uploads in progress under `prefix` (the backend's key prefix stripped)."""
        ...

    def copy(self, source: str, key: str, *, content_type: str) -> ObjectInfo:
        """Copy an object inside the store (multipart copy for large ones), setting its content type."""
        ...
