"""Objects as files under one root folder: atomic, durable writes that never leave the root."""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from media_pub.errors import Unavailable
from media_pub.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    validate_key,
    validate_prefix,
)

# The local backend keeps no metadata: an object's content type follows from its key's extension.
# Keys are built by media_pub.domain.keys with the extension of the probed format, so this is faithful.
CONTENT_TYPES: dict[str, str] = {
    "mp3": "audio/mpeg",
    "m4a": "audio/x-m4a",
    "m4b": "audio/x-m4b",
    "aac": "audio/aac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "mp4": "video/mp4",
    "m4v": "video/x-m4v",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "json": "application/json",
    "xml": "application/xml",
    "rss": "application/rss+xml",
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "txt": "text/plain",
    "html": "text/html",
}
_DEFAULT_TYPES = mimetypes.MimeTypes()  # Python's built-in table, not /etc/mime.types: same on every host
_NOT_THERE = (FileNotFoundError, IsADirectoryError, NotADirectoryError)
_KEY_CONFLICT = (FileExistsError, IsADirectoryError, NotADirectoryError)


def guess_content_type(key: str) -> str | None:
    """The content type the local backend reports for `key`, from its extension."""
    name = key.rpartition("/")[2]
    if "." not in name:
        return None
    ext = name.rpartition(".")[2]
    return CONTENT_TYPES.get(ext) or _DEFAULT_TYPES.guess_type("x." + ext)[0]


@contextlib.contextmanager
def _writing(key: str) -> Iterator[None]:
    """Turn OS errors of the destination side into domain errors."""
    try:
        yield
    except _KEY_CONFLICT as exc:
        raise StorageError(
            f"cannot store {key!r}: a path component is both an object and a folder",
            code="object-key-conflict",
        ) from exc
    except OSError as exc:
        raise Unavailable(f"local storage cannot write {key!r}: {exc.strerror or exc}") from exc


class LocalStorage:
    """A folder of files. Content types are derived from key extensions (see CONTENT_TYPES)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(Path(root).expanduser()))

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        path = self.root / key
        real = os.path.realpath(path)
        if os.path.commonpath([real, self.root]) != str(self.root):
            raise ValueError(f"storage key {key!r} resolves outside the storage root")
        return path

    def _info(self, key: str, size: int) -> ObjectInfo:
        return ObjectInfo(key=key, size=size, content_type=guess_content_type(key))

    def _write(self, key: str, fill: Callable[[BinaryIO], None]) -> ObjectInfo:
        """Write via `fill` to a temp file beside the target, fsync, then atomically rename it into place."""
        target = self._path(key)
        with _writing(key):
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(target))
            tmp = target.parent / f".{target.name[:80]}.{secrets.token_hex(8)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
                with _writing(key):
                    out.flush()
                    os.fsync(out.fileno())
                    size = out.tell()
            with _writing(key):
                os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(target.parent)
        return self._info(key, size)

    def put_file(self, key: str, path: Path, *, content_type: str) -> ObjectInfo:
        """Copy a local file in, all-or-nothing."""
        self._path(key)
        with open(path, "rb") as src:
            return self.put(key, src, content_type=content_type)

    def put(self, key: str, fileobj: BinaryIO, *, content_type: str) -> ObjectInfo:
        """Stream `fileobj` in chunks, all-or-nothing; errors raised by `fileobj` propagate unchanged."""

        def fill(out: BinaryIO) -> None:
            while chunk := fileobj.read(CHUNK_SIZE):
                with _writing(key):
                    out.write(chunk)

        return self._write(key, fill)

    def put_bytes(self, key: str, data: bytes, *, content_type: str) -> ObjectInfo:
        """Store a small in-memory object, all-or-nothing."""

        def fill(out: BinaryIO) -> None:
            with _writing(key):
                out.write(data)

        return self._write(key, fill)

    def open(self, key: str) -> BinaryIO:
        """A seekable binary file."""
        path = self._path(key)
        try:
            return open(path, "rb")
        except _NOT_THERE as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise Unavailable(f"local storage cannot read {key!r}: {exc.strerror or exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        """The whole object."""
        with self.open(key) as f:
            return f.read()

    def download_to(self, key: str, path: Path) -> None:
        """Copy the object to `path` (a temp file beside it, renamed when complete)."""
        with self.open(key) as src:
            tmp = Path(path).with_name(f".{Path(path).name[:80]}.{secrets.token_hex(8)}.tmp")
            try:
                with open(tmp, "wb") as out:
                    while chunk := src.read(CHUNK_SIZE):
                        out.write(chunk)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def stat(self, key: str) -> ObjectInfo:
        """Size and (extension-derived) content type."""
        path = self._path(key)
        try:
            st = path.stat()
        except _NOT_THERE as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except OSError as exc:
            raise Unavailable(f"local storage cannot stat {key!r}: {exc.strerror or exc}") from exc
        if not path.is_file():
            raise ObjectNotFound(f"no object {key!r}")
        return self._info(key, st.st_size)

    def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file if present (empty folders are left in place)."""
        path = self._path(key)
        try:
            path.unlink()
        except _NOT_THERE:
            return
        except OSError as exc:
            raise Unavailable(f"local storage cannot delete {key!r}: {exc.strerror or exc}") from exc
        _fsync_dir(path.parent)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, sorted; temp files of writes in progress are skipped."""
        return self._iter_keys(validate_prefix(prefix))

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        folder = prefix.rpartition("/")[0]
        start = self.root / folder if folder else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = os.path.relpath(dirpath, self.root)
            base = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            for name in filenames:
                key = base + name
                if not name.startswith(".") and key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)

    def list_objects(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Keys starting with `prefix`, with size and mtime (files gone since the listing are skipped)."""
        for key in self._iter_keys(validate_prefix(prefix)):
            try:
                st = (self.root / key).stat()
            except FileNotFoundError:
                continue
            yield ObjectInfo(
                key=key, size=st.st_size, content_type=None, modified=datetime.fromtimestamp(st.st_mtime, UTC)
            )

    def public_url(self, key: str) -> str | None:
        """None: the API serves local objects."""
        validate_key(key)
        return None

    def presigned_get_url(
        self, key: str, *, expires: int | None = None, filename: str | None = None
    ) -> str | None:
        """None: the API serves local objects."""
        validate_key(key)
        return None

    def local_path(self, key: str) -> Path | None:
        """The object's file under the root (it may not exist)."""
        return self._path(key)

    def check(self) -> None:
        """Create the root if needed and prove it is writable."""
        probe = self.root / f".check.{secrets.token_hex(8)}.tmp"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            with contextlib.suppress(OSError):
                probe.unlink()
            raise Unavailable(f"local storage root is not writable: {exc.strerror or exc}") from exc


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink durable; not every platform or filesystem supports it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
