"""The tus upload store: one data file and one state file per upload under `data_dir/uploads`.

`{id}.bin` holds the bytes received so far, `{id}.json` the state (length, offset, metadata, owner, times),
replaced atomically. `{id}.lock` is what writers `flock`: the state file cannot be locked itself because
each save replaces it with a new inode. `{id}.part` holds a chunk whose checksum is not verified yet.
The offset in the state is the count of bytes made durable (fsync'd); the data file may hold more after a
crash, and the next append truncates it back to the offset.

On the S3 backend, services.resumable_s3 keeps uploads instead (state in the database, bytes in S3).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from media_pub.errors import Conflict, Gone, InvalidInput, NotFound
from media_pub.media.process import parse_timestamp

DEFAULT_TTL = timedelta(hours=24)
CHECKSUM_ALGORITHMS = ("sha1", "md5", "sha256")
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
COPY_CHUNK = 1024 * 1024


@dataclass
class UploadState:
    id: str
    user_id: str
    length: int
    offset: int
    created: str  # ISO 8601, aware
    expires: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def expires_at(self) -> datetime:
        return datetime.fromisoformat(self.expires)

    @property
    def complete(self) -> bool:
        return self.offset >= self.length


def callers_upload(state: UploadState | None, user_id: str, now: datetime) -> UploadState:
    """`state` if it is `user_id`'s and not expired: someone else's is reported as missing (NotFound), an
    expired one as gone (Gone)."""
    if state is None or state.user_id != user_id:
        raise NotFound("no such upload", code="upload-not-found")
    if state.expires_at <= now:
        raise Gone("the upload expired", code="upload-expired")
    return state


def parse_metadata(header: str | None) -> dict[str, str]:
    """`Upload-Metadata`: comma-separated `key base64value` pairs (the value may be absent).

    Raises:
        InvalidInput: a malformed pair, a repeated key, or a `start`/`end` that is not a timestamp.
    """
    result: dict[str, str] = {}
    for pair in (header or "").split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not _KEY.match(key) or key in result:
            raise InvalidInput(
                f"invalid or repeated Upload-Metadata key {key[:40]!r}", code="invalid-metadata"
            )
        try:
            result[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidInput(
                f"the Upload-Metadata value of {key!r} is not base64 of UTF-8", code="invalid-metadata"
            ) from None
    for name in ("start", "end"):  # trim points: refused now rather than after the last byte
        if result.get(name):
            parse_timestamp(result[name])
    return result


def parse_checksum(header: str) -> tuple[str, bytes]:
    """`Upload-Checksum: <algorithm> <base64 digest>`; returns (algorithm, digest)."""
    algorithm, _, value = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(f"unsupported checksum algorithm {algorithm[:20]!r}", code="checksum-unsupported")
    try:
        return algorithm, base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise InvalidInput("the Upload-Checksum digest is not base64", code="invalid-checksum") from None


class UploadStore:
    """Uploads on the local file system; every method takes ids and checks them."""

    def __init__(self, data_dir: Path, ttl: timedelta = DEFAULT_TTL) -> None:
        self.root = data_dir / "uploads"
        self.ttl = ttl

    def path(self, upload_id: str, suffix: str) -> Path:
        return self.root / f"{upload_id}{suffix}"

    def create(self, user_id: str, length: int, metadata: dict[str, str], now: datetime) -> UploadState:
        """A new empty upload with a 128-bit random id."""
        self.root.mkdir(parents=True, exist_ok=True)
        upload_id = secrets.token_hex(16)
        state = UploadState(
            id=upload_id,
            user_id=user_id,
            length=length,
            offset=0,
            created=now.isoformat(),
            expires=(now + self.ttl).isoformat(),
            metadata=metadata,
        )
        self.path(upload_id, ".bin").touch()
        self.save(state)
        return state

    def load(self, upload_id: str) -> UploadState | None:
        if not ID_PATTERN.match(upload_id):
            return None
        try:
            data = json.loads(self.path(upload_id, ".json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return UploadState(**data)

    def get(self, upload_id: str, user_id: str, now: datetime) -> UploadState:
        """The caller's upload; someone else's is reported as missing, an expired one as gone."""
        return callers_upload(self.load(upload_id), user_id, now)

    def save(self, state: UploadState) -> None:
        """Write the state atomically (temp file, fsync, rename)."""
        fd, name = tempfile.mkstemp(prefix=f".{state.id}-", dir=self.root)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(asdict(state), fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(name, self.path(state.id, ".json"))
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    @contextmanager
    def locked(self, upload_id: str) -> Iterator[None]:
        """Hold the upload's write lock, or fail at once with a Conflict if another request has it."""
        fd = os.open(self.path(upload_id, ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict("another request is writing this upload", code="upload-locked") from None
            yield
        finally:
            os.close(fd)  # releases the lock

    def open_append(self, state: UploadState) -> BinaryIO:
        """The data file positioned at the durable offset (bytes past it, left by a crash, are dropped)."""
        fh = self.path(state.id, ".bin").open("r+b")
        fh.truncate(state.offset)
        fh.seek(state.offset)
        return fh

    def open_part(self, upload_id: str) -> BinaryIO:
        return self.path(upload_id, ".part").open("wb")

    def commit_part(self, state: UploadState) -> None:
        """Append the verified `.part` chunk to the data file and advance the offset."""
        part = self.path(state.id, ".part")
        with part.open("rb") as src, self.open_append(state) as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
            state.offset = dst.tell()
        self.save(state)
        part.unlink(missing_ok=True)

    def sha256(self, upload_id: str) -> str:
        digest = hashlib.sha256()
        with self.path(upload_id, ".bin").open("rb") as fh:
            while chunk := fh.read(COPY_CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def delete(self, upload_id: str) -> None:
        """Remove every file of the upload (the state last, so a crash leaves it findable by the sweeper)."""
        for suffix in (".bin", ".part", ".lock", ".json"):
            self.path(upload_id, suffix).unlink(missing_ok=True)


def expire_uploads(data_dir: Path, now: datetime) -> int:
    """Delete uploads whose expiry has passed; returns how many. Uploads being written are left for later."""
    store = UploadStore(data_dir)
    if not store.root.is_dir():
        return 0
    removed = 0
    for state_file in store.root.glob("*.json"):
        state = store.load(state_file.stem)
        if state is None or state.expires_at > now:
            continue
        try:
            with store.locked(state.id):
                store.delete(state.id)
        except Conflict:
            continue
        removed += 1
    return removed
