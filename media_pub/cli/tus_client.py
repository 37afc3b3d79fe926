"""A tus 1.0 client for the CLI: chunked, checksummed uploads that resume after a failure or a new run.

Each chunk goes in one PATCH with `Upload-Checksum: sha256 ...`, so the server keeps a chunk whole or not at
all. A connection error, a timeout, a 5xx or a 409 (offset mismatch, upload locked by a cut request) is
transient: the client asks HEAD for the true offset and goes on from there after a backoff, until too many
failures in a row. Other 4xx answers are final. What a new run needs to resume (the upload URL, the
episode id, the Idempotency-Key of the episode-creating POST) is kept in a small state file under the
user's cache dir; the API token is never written there.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from media_pub.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    MediaPubError,
    NotFound,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMedia,
)

T = TypeVar("T")
TUS = {"Tus-Resumable": "1.0.0"}
OFFSET_STREAM = "application/offset+octet-stream"
CHUNK_SIZE = 8 * 1024 * 1024
SLICE = 256 * 1024  # progress granularity within a chunk
MAX_FAILURES = 8  # backoff 0.5, 1, 2 ... 20 s: about 50 s of trying, more than a stale S3 lock lasts
BACKOFF_BASE, BACKOFF_CAP = 0.5, 20.0
RETRY_CODES = frozenset({"upload-offset-mismatch", "upload-locked", "idempotency-in-flight"})
STATE_TTL = timedelta(days=7)  # the server forgets unfinished uploads after a day; we forget after a week

Progress = Callable[[int], None]


class UploadGone(NotFound):
    """The server no longer knows the upload (finished, failed on completion, expired or deleted)."""

    code = "upload-gone"
    title = "Upload gone"


class Transient(Exception):
    """A failure worth retrying after a backoff."""


KINDS: dict[int, type[MediaPubError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: TooLarge,
    415: UnsupportedMedia,
    422: InvalidInput,
}


def remote_error(response: httpx.Response) -> MediaPubError:
    """The server's problem+json answer as the matching domain error, printed by the CLI in one line."""
    status = response.status_code
    kind = Unavailable if status >= 500 else KINDS.get(status, MediaPubError)
    try:
        body = response.json()
        error = kind(f"{body.get('detail')} ({body.get('code')}, HTTP {status})", code=body.get("code"))
        error.title = str(body.get("title") or error.title)
    except (ValueError, AttributeError):
        error = kind(f"HTTP {status} from the server")
    return error


def _problem_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json().get("code"))
    except (ValueError, AttributeError):
        return None


def _is_transient(response: httpx.Response) -> bool:
    status = response.status_code
    if status >= 500 or status in (408, 429, 460):  # 460: the chunk arrived damaged and was discarded
        return True
    return status == 409 and _problem_code(response) in RETRY_CODES


def send(http: httpx.Client, method: str, url: str, *, gone: bool = False, **kwargs: Any) -> httpx.Response:
    """One request; raises Transient for what a retry may cure, the problem as an error for other 4xx.

    With `gone`, a 404 or 410 raises UploadGone (the URL is an upload's).
    """
    try:
        response = http.request(method, url, **kwargs)
    except httpx.TransportError as exc:  # connection refused/reset, timeouts, a cut mid-answer
        raise Transient(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
    status = response.status_code
    if status < 400:
        return response
    if _is_transient(response):
        raise Transient(f"HTTP {status} ({_problem_code(response) or 'no problem code'})")
    if gone and status in (404, 410):
        raise UploadGone(f"the server no longer has the upload {url} (HTTP {status})")
    raise remote_error(response)


@dataclass
class Retry:
    """Consecutive failures with exponential backoff; gives up with a resumable error after `limit`."""

    limit: int = MAX_FAILURES
    on_retry: Callable[[str, float], None] = lambda reason, delay: None
    sleep: Callable[[float], None] = time.sleep
    failures: int = 0

    def failed(self, exc: Transient) -> None:
        self.failures += 1
        if self.failures >= self.limit:
            raise Unavailable(
                f"{exc} ({self.failures} failures in a row); run the same command again to resume",
                code="upload-interrupted",
            ) from exc
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (self.failures - 1))
        self.on_retry(str(exc), delay)
        self.sleep(delay)

    def succeeded(self) -> None:
        self.failures = 0

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()` until it does not raise Transient."""
        while True:
            try:
                result = fn()
            except Transient as exc:
                self.failed(exc)
                continue
            self.succeeded()
            return result


def _metadata(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items() if v)


def create_upload(http: httpx.Client, length: int, metadata: dict[str, str]) -> str:
    """A new upload of `length` bytes; returns its URL (as the server's Location gives it)."""
    headers = {**TUS, "Upload-Length": str(length), "Upload-Metadata": _metadata(metadata)}
    response = send(http, "POST", "/api/v1/uploads", headers=headers)
    return response.headers["Location"]


def head_offset(http: httpx.Client, url: str) -> int:
    """How many bytes the server holds; UploadGone on 404 or 410."""
    response = send(http, "HEAD", url, gone=True, headers=TUS)
    return int(response.headers["Upload-Offset"])


def _checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def patch_chunk(
    http: httpx.Client, url: str, offset: int, data: bytes, progress: Progress
) -> tuple[int, str | None]:
    """Append `data` at `offset`; returns the new offset and, after the last chunk, the job id."""

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), SLICE):
            yield data[start : start + SLICE]
            progress(offset + min(len(data), start + SLICE))

    headers = {
        **TUS,
        "Content-Type": OFFSET_STREAM,
        "Content-Length": str(len(data)),
        "Upload-Offset": str(offset),
        "Upload-Checksum": _checksum(data),
    }
    response = send(http, "PATCH", url, gone=True, content=body(), headers=headers)
    return int(response.headers["Upload-Offset"]), response.headers.get("Upload-Job")


def send_file(
    http: httpx.Client,
    url: str,
    fh: BinaryIO,
    length: int,
    offset: int | None,
    retry: Retry,
    progress: Progress,
    chunk_size: int = CHUNK_SIZE,
) -> str | None:
    """Send the file from `offset` (None: ask HEAD) to its end; returns the job id of the last PATCH.

    Raises:
        UploadGone: the server dropped the upload (the caller decides whether it was finished).
        Unavailable: too many transient failures in a row (resumable by a new run).
    """
    while True:
        try:
            if offset is None:
                offset = head_offset(http, url)
            progress(offset)
            fh.seek(offset)
            offset, job = patch_chunk(http, url, offset, fh.read(chunk_size), progress)
        except Transient as exc:
            offset = None
            retry.failed(exc)
            continue
        retry.succeeded()
        if offset >= length:
            return job


def state_file() -> Path:
    """`$XDG_CACHE_HOME/media-pub/uploads.json` (`~/.cache` without it)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "media-pub" / "uploads.json"


def upload_key(server: str, show: str, path: Path) -> str:
    """Which saved upload a run continues: same server, show, file (absolute path), size and mtime."""
    stat = path.stat()
    return json.dumps([server.rstrip("/"), show, str(path.resolve()), stat.st_size, stat.st_mtime_ns])


@dataclass
class SavedUpload:
    idempotency_key: str
    episode_id: str | None = None
    url: str | None = None
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())


class UploadStates:
    """The state file: {key: SavedUpload}, written atomically with mode 0600 under an advisory lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            detail = f"cannot keep upload state in {self.path.parent}: {exc.strerror}; set XDG_CACHE_HOME"
            raise InvalidInput(detail, code="upload-state-unwritable") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text())
                entries = data if isinstance(data, dict) else {}
            except (FileNotFoundError, ValueError):
                entries = {}  # missing or damaged: nothing to resume
            yield entries
        finally:
            os.close(fd)

    def _write(self, entries: dict[str, Any]) -> None:
        cutoff = (datetime.now(UTC) - STATE_TTL).isoformat()
        kept = {k: v for k, v in entries.items() if isinstance(v, dict) and v.get("created", "") > cutoff}
        fd, name = tempfile.mkstemp(prefix=".uploads-", dir=self.path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(kept, out, indent=1)
            os.replace(name, self.path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> SavedUpload | None:
        with self._locked() as entries:
            entry = entries.get(key)
        try:
            return SavedUpload(**entry) if isinstance(entry, dict) else None
        except TypeError:  # written by another version
            return None

    def put(self, key: str, entry: SavedUpload) -> None:
        with self._locked() as entries:
            entries[key] = asdict(entry)
            self._write(entries)

    def remove(self, key: str) -> None:
        with self._locked() as entries:
            if entries.pop(key, None) is not None:
                self._write(entries)
