"""The tus upload store of the S3 backend: state in the `resumable_uploads` table, bytes in S3 multipart.

Any API process can continue an upload another one started: the parts are in the bucket, the bytes short
of a part (the tail) in the object `{key}.tail-{start}-{size}`, the state and the writer's lock in the
database.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from media_pub.db import upload_repositories as uploads_repo
from media_pub.db.models import Job, ResumableUpload, User
from media_pub.db.uow import UowFactory
from media_pub.errors import Conflict, MediaPubError, NotFound
from media_pub.services.direct_uploads import MIN_PART, UPLOADS_PREFIX, part_size, require_multipart
from media_pub.services.jobs import JobQueue
from media_pub.services.resumable import COPY_CHUNK, DEFAULT_TTL, ID_PATTERN, UploadState, callers_upload
from media_pub.services.uploads import TrimRequest, attach_stored, content_error, spool_object
from media_pub.storage.base import MultipartStorage, ObjectNotFound, Storage, StorageError


def tail_key(row: ResumableUpload) -> str | None:
    """The object holding the upload's pending tail, named after the byte range it holds: a writer that
    lost its lock and writes late can only write the bytes of a range already decided, never replace
    another writer's tail."""
    if not row.tail_size:
        return None
    return f"{row.storage_key}.tail-{row.offset - row.tail_size}-{row.tail_size}"


def _state(row: ResumableUpload) -> UploadState:
    return UploadState(
        id=row.id,
        user_id=row.user_id,
        length=row.length,
        offset=row.offset,
        created=row.created_at.isoformat(),
        expires=row.expires_at.isoformat(),
        metadata=dict(row.upload_metadata),
    )


class S3UploadStore:
    """Uploads on the S3 backend: bytes in an S3 multipart upload, state and lock in the database.

    Bytes short of a whole part wait in the object `{key}.tail-{start}-{size}` (as tusd's s3store keeps
    them) and go in front of the next PATCH's. `offset` counts the parts plus that tail. One writer at a
    time across processes: a PATCH holds a lock row lease, renewed as it writes; a writer that lost it
    writes nothing.
    """

    def __init__(
        self,
        uow: UowFactory,
        storage: Storage,
        tmp_dir: Path,
        *,
        ttl: timedelta = DEFAULT_TTL,
        lock_seconds: float = 30.0,
        min_part: int = MIN_PART,
    ) -> None:
        self.uow = uow
        self.storage = storage
        self.multipart: MultipartStorage = require_multipart(storage)
        self.tmp_dir = tmp_dir
        self.ttl = ttl
        self.lease = timedelta(seconds=lock_seconds)
        self.min_part = min_part

    def create(self, user_id: str, length: int, metadata: dict[str, str], now: datetime) -> UploadState:
        """A new upload; its row is written before its multipart upload starts (see the orphan sweeper)."""
        upload_id = secrets.token_hex(16)
        row = ResumableUpload(
            id=upload_id,
            user_id=user_id,
            length=length,
            offset=0,
            part_size=part_size(length, self.min_part),
            upload_metadata=metadata,
            storage_key=f"{UPLOADS_PREFIX}tus/{upload_id}",
            parts=[],
            tail_size=0,
            completed=False,
            created_at=now,
            expires_at=now + self.ttl,
        )
        with self.uow() as uow:
            uow.session.add(row)
            uow.commit()
            try:
                if length == 0:
                    self.storage.put_bytes(row.storage_key, b"", content_type="application/octet-stream")
                    row.completed = True
                else:
                    row.s3_upload_id = self.multipart.create_multipart(row.storage_key)
                uow.commit()
            except Exception:
                uploads_repo.delete_upload(uow.session, upload_id)  # the store refused: no upload
                uow.commit()
                raise
        return _state(row)

    def row(self, upload_id: str) -> ResumableUpload | None:
        if not ID_PATTERN.match(upload_id):
            return None
        with self.uow() as uow:
            row = uow.session.get(ResumableUpload, upload_id)
            if row is not None:
                uow.session.expunge(row)
            return row

    def key(self, upload_id: str) -> str:
        return f"{UPLOADS_PREFIX}tus/{upload_id}"

    def get(self, upload_id: str, user_id: str, now: datetime) -> UploadState:
        """The caller's upload; someone else's is reported as missing, an expired one as gone."""
        row = self.row(upload_id)
        return callers_upload(_state(row) if row is not None else None, user_id, now)

    @contextmanager
    def locked(self, upload_id: str) -> Iterator[str]:
        """Hold the upload's lock (yields its token), or fail at once with a Conflict if another holds it."""
        token = secrets.token_hex(16)
        with self.uow() as uow:
            taken = uploads_repo.take_lock(uow.session, upload_id, token, datetime.now(UTC), self.lease)
            uow.commit()
        if not taken:
            raise Conflict("another request is writing this upload", code="upload-locked")
        try:
            yield token
        finally:
            with self.uow() as uow:
                uploads_repo.release_lock(uow.session, upload_id, token)
                uow.commit()

    def writer(self, upload_id: str, token: str) -> S3Writer:
        """A PATCH's writer, its buffer holding the pending tail."""
        row = self.row(upload_id)
        if row is None:
            raise NotFound("no such upload", code="upload-not-found")
        writer = S3Writer(self, row, token)
        try:
            writer.load_tail()
        except BaseException:
            writer.close()
            raise
        return writer

    def attach(
        self,
        queue: JobQueue,
        user: User,
        state: UploadState,
        token: str,
        trim: TrimRequest,
        *,
        probe_timeout: float,
        probe_memory_mb: int,
    ) -> Job:
        """Hand the complete upload (an object in the bucket) to its episode; returns the processing job.

        The object is read once (hashed into a local copy to probe), then copied to the episode's original
        key. The upload is gone afterwards, unless attaching failed for a reason that may pass (storage or
        database unavailable, the episode busy).
        """
        key = self.key(state.id)
        # Reading, probing and copying a large file outlasts the lease: hold the lock for all of it.
        hold = datetime.now(UTC) + self.lease + timedelta(seconds=probe_timeout + 3600)
        self.save(state.id, token, lock_expires_at=hold)
        try:
            spooled = spool_object(self.storage, key, self.tmp_dir, state.length)
            with self.uow() as uow:
                job = attach_stored(
                    uow,
                    self.multipart,
                    queue,
                    user,
                    state.metadata["episode_id"],
                    key,
                    spooled,
                    trim,
                    probe_timeout=probe_timeout,
                    probe_memory_mb=probe_memory_mb,
                )
                uploads_repo.delete_upload(uow.session, state.id)
                uow.commit()
        except MediaPubError as exc:
            if content_error(exc):  # bad media or trim points: the client starts a new upload
                self.delete(state.id)
            else:  # a blip or a busy episode: the complete upload stays, a final empty PATCH attaches it
                self.save(state.id, token)
            raise
        self.storage.delete(key)
        return job

    def save(self, upload_id: str, token: str, **values: object) -> None:
        """Write progress and renew the lease; Conflict if the lock was lost to another request."""
        with self.uow() as uow:
            values.setdefault("lock_expires_at", datetime.now(UTC) + self.lease)
            if not uploads_repo.save_locked(uow.session, upload_id, token, **values):
                raise Conflict("the upload's lock was lost to another request", code="upload-locked")
            uow.commit()

    def remove(self, row: ResumableUpload) -> None:
        """Abort the multipart upload, delete the tail, the object and the row."""
        if row.s3_upload_id and not row.completed:
            self.multipart.abort_multipart(row.storage_key, row.s3_upload_id)
        tail = tail_key(row)
        if tail:
            self.storage.delete(tail)
        self.storage.delete(row.storage_key)
        with self.uow() as uow:
            uploads_repo.delete_upload(uow.session, row.id)
            uow.commit()

    def delete(self, upload_id: str) -> None:
        row = self.row(upload_id)
        if row is not None:
            self.remove(row)

    def expire(self, now: datetime) -> int:
        """Remove uploads whose expiry has passed; returns how many. Uploads being written are left."""
        with self.uow() as uow:
            rows = uploads_repo.expired_uploads(uow.session, now)
            uow.session.expunge_all()
        removed = 0
        for row in rows:
            token = secrets.token_hex(16)
            with self.uow() as uow:
                taken = uploads_repo.take_lock(uow.session, row.id, token, now, self.lease)
                uow.commit()
            if taken:
                self.remove(row)
                removed += 1
        return removed


class S3Writer:
    """One PATCH's bytes: a local buffer, starting with the pending tail, sent to S3 part by part."""

    def __init__(self, store: S3UploadStore, row: ResumableUpload, token: str) -> None:
        self.store = store
        self.row = row
        self.token = token
        self.parts: list[dict[str, object]] = list(row.parts)
        self.stored = sum(int(p["size"]) for p in row.parts)  # type: ignore[call-overload]
        store.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"tus-{row.id}-", dir=store.tmp_dir)
        self.path = Path(name)
        self.buffer = os.fdopen(fd, "w+b")
        self.buffered = 0
        self.committed_tail = row.tail_size  # the tail the database records
        self.tail_key = tail_key(row)  # and its object
        self.renewed = time.monotonic()

    @property
    def offset(self) -> int:
        return self.stored + self.buffered

    @property
    def room(self) -> int:
        """Bytes the buffer takes before it is a whole part."""
        return self.row.part_size - self.buffered

    @property
    def remaining(self) -> int:
        """Bytes of the upload not received yet."""
        return self.row.length - self.offset

    def load_tail(self) -> None:
        size = self.row.tail_size
        if not size:
            return
        with self.store.storage.open(str(self.tail_key)) as stream:
            while self.buffered < size and (chunk := stream.read(min(COPY_CHUNK, size - self.buffered))):
                self.buffer.write(chunk)
                self.buffered += len(chunk)
        if self.buffered != size:
            raise StorageError(f"the pending tail of upload {self.row.id} is short", code="upload-tail-lost")

    def write(self, data: bytes) -> None:
        self.buffer.write(data)
        self.buffered += len(data)

    def renew(self) -> None:
        """Extend the lock's lease (Conflict if it was lost)."""
        self.store.save(self.row.id, self.token)
        self.renewed = time.monotonic()

    def flush_part(self) -> None:
        """Send the buffer as the next part and record it (the tail is then empty)."""
        self.renew()  # never write a part without holding the lock
        number = len(self.parts) + 1
        self.buffer.flush()
        self.buffer.seek(0)
        etag = self.store.multipart.upload_part(
            self.row.storage_key, str(self.row.s3_upload_id), number, self.buffer, self.buffered
        )
        self.parts.append({"number": number, "etag": etag, "size": self.buffered})
        self.stored += self.buffered
        self.buffer.seek(0)
        self.buffer.truncate()
        self.buffered = 0
        self.store.save(self.row.id, self.token, parts=list(self.parts), offset=self.stored, tail_size=0)
        self.committed_tail = 0
        self._drop_tail()

    def _drop_tail(self, keep: str | None = None) -> None:
        """Delete the tail object the database no longer names (called with the lock held)."""
        if self.tail_key and self.tail_key != keep:
            self.store.storage.delete(self.tail_key)
        self.tail_key = keep

    def finish(self) -> None:
        """After the body: complete the multipart upload if all bytes are in, else keep the tail."""
        if self.row.completed:
            return
        if self.offset == self.row.length:
            if self.buffered:
                self.flush_part()
            self._complete()
            self.store.save(self.row.id, self.token, completed=True, offset=self.row.length, tail_size=0)
            self._drop_tail()
        elif self.buffered != self.committed_tail:
            self.renew()  # a writer that lost its lock stops here
            self.buffer.flush()
            tail = f"{self.row.storage_key}.tail-{self.stored}-{self.buffered}"
            self.store.storage.put_file(tail, self.path, content_type="application/octet-stream")
            self.store.save(self.row.id, self.token, offset=self.offset, tail_size=self.buffered)
            self.committed_tail = self.buffered
            self._drop_tail(keep=tail)

    def _complete(self) -> None:
        """CompleteMultipartUpload; done already (a crash before it was recorded) if the object is whole."""
        numbered = [(int(p["number"]), str(p["etag"])) for p in self.parts]  # type: ignore[call-overload]
        try:
            self.store.multipart.complete_multipart(
                self.row.storage_key, str(self.row.s3_upload_id), numbered
            )
        except ObjectNotFound:
            if self.store.storage.stat(self.row.storage_key).size != self.row.length:
                raise

    def close(self) -> None:
        self.buffer.close()
        self.path.unlink(missing_ok=True)


def expire_s3_uploads(
    uow: UowFactory, storage: Storage, tmp_dir: Path, now: datetime, lock_seconds: float = 30.0
) -> int:
    """The S3 backend's expiry sweep: abort the multipart uploads of expired uploads, delete their rows."""
    if not isinstance(storage, MultipartStorage):
        return 0
    return S3UploadStore(uow, storage, tmp_dir, lock_seconds=lock_seconds).expire(now)
