"""Direct-to-S3 uploads: the client sends parts to presigned URLs, the server completes and verifies them.

Creating one picks the key (server-made), the part size and presigned UploadPart URLs bound to that key and
upload id. Completing joins the parts, streams the object to check its size and SHA-256, probes it and
attaches it to the episode like any upload; until then the episode is untouched. A row is written before
the multipart upload is started, so the sweeper of unknown multipart uploads never races a new one.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from media_pub.db.models import DirectUpload, Job, ResumableUpload, User
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.errors import Conflict, Gone, InvalidInput, MediaPubError, NotFound, TooLarge
from media_pub.media.process import parse_timestamp
from media_pub.services.jobs import JobQueue
from media_pub.services.uploads import (
    TrimRequest,
    attach_stored,
    content_error,
    episode_for_upload,
    spool_object,
)
from media_pub.storage.base import MultipartStorage, Storage

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3: every part but the last is at least 5 MiB...
MAX_PART = 5 * 1024 * MIB  # ...and at most 5 GiB,
MAX_PARTS = 10_000  # in at most 10,000 parts,
MAX_OBJECT = MAX_PARTS * MAX_PART  # so an object is at most 48.8 TiB.
UPLOADS_PREFIX = "uploads/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def part_size(total: int, minimum: int = MIN_PART) -> int:
    """The part size for an object of `total` bytes: at least `minimum` (>= 5 MiB), a whole number of MiB,
    at most 5 GiB, and small enough that `total` fits in 10,000 parts.

    Raises:
        InvalidInput: `total` is negative or larger than S3's 48.8 TiB.
    """
    if total < 0 or total > MAX_OBJECT:
        raise InvalidInput(f"an upload must be 0..{MAX_OBJECT} bytes, not {total}", code="invalid-size")
    needed = math.ceil(math.ceil(total / MAX_PARTS) / MIB) * MIB
    return min(max(needed, minimum, MIN_PART), MAX_PART)


def require_multipart(storage: Storage) -> MultipartStorage:
    """The storage's multipart capability; a Conflict on backends without one (local files)."""
    if not isinstance(storage, MultipartStorage):
        raise Conflict(
            "direct uploads need the S3 storage backend; use PUT .../media or tus at /api/v1/uploads",
            code="direct-upload-unavailable",
        )
    return storage


@dataclass(frozen=True)
class DirectUploadRequest:
    size: int
    sha256: str
    filename: str | None = None
    content_type: str | None = None
    start: str | None = None
    end: str | None = None


@dataclass(frozen=True)
class DirectUploadOptions:
    max_bytes: int
    url_seconds: int
    expires_seconds: float
    tmp_dir: Path
    probe_timeout: float
    probe_memory_mb: int


@dataclass(frozen=True)
class PresignedUpload:
    upload: DirectUpload
    urls: list[tuple[int, str]]
    urls_expire_at: datetime


def _check(request: DirectUploadRequest, max_bytes: int) -> None:
    if request.size < 1:
        raise InvalidInput("the upload is empty (0 bytes)", code="media-empty")
    if request.size > max_bytes:
        raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes", code="upload-too-large")
    if not _SHA256.match(request.sha256):
        raise InvalidInput("sha256 must be 64 lowercase hex digits", code="invalid-sha256")
    for value in (request.start, request.end):
        if value:
            parse_timestamp(value)


def create_direct_upload(
    uow_factory: UowFactory,
    storage: Storage,
    user: User,
    episode_id: str,
    request: DirectUploadRequest,
    options: DirectUploadOptions,
    now: datetime,
) -> PresignedUpload:
    """Start a multipart upload for the episode and presign one URL per part."""
    store = require_multipart(storage)
    _check(request, options.max_bytes)
    size = part_size(request.size)
    with uow_factory() as uow:
        episode_for_upload(uow, user, episode_id)
        upload = DirectUpload(
            episode_id=episode_id,
            user_id=user.id,
            storage_key="",
            s3_upload_id="",
            size=request.size,
            sha256=request.sha256,
            part_size=size,
            filename=request.filename,
            content_type=request.content_type,
            trim_start=request.start or None,
            trim_end=request.end or None,
            created_at=now,
            expires_at=now + timedelta(seconds=options.expires_seconds),
        )
        uow.session.add(upload)
        uow.session.flush()
        upload.storage_key = f"{UPLOADS_PREFIX}direct/{upload.id}"
        uow.commit()  # the row first: the orphan sweeper leaves a known key alone
        try:
            upload.s3_upload_id = store.create_multipart(upload.storage_key)
            uow.commit()
        except Exception:
            uow.session.delete(upload)  # the store refused: no upload
            uow.commit()
            raise
        uow.session.expunge(upload)
    log.info("direct_upload.created id=%s episode=%s size=%d", upload.id, episode_id, request.size)
    return _presign(store, upload, options.url_seconds, now)


def _presign(store: MultipartStorage, upload: DirectUpload, seconds: int, now: datetime) -> PresignedUpload:
    count = max(1, math.ceil(upload.size / upload.part_size))
    urls = [
        (n, store.presign_part(upload.storage_key, upload.s3_upload_id, n, expires=seconds))
        for n in range(1, count + 1)
    ]
    return PresignedUpload(upload, urls, now + timedelta(seconds=seconds))


def presign_direct_upload(
    uow_factory: UowFactory,
    storage: Storage,
    user: User,
    episode_id: str,
    upload_id: str,
    options: DirectUploadOptions,
    now: datetime,
) -> PresignedUpload:
    """Fresh part URLs for an upload in progress (the first ones expire before the upload does)."""
    store = require_multipart(storage)
    with uow_factory() as uow:
        upload = _get(uow, user, episode_id, upload_id, now)
        if upload.status != "pending" or not upload.s3_upload_id:
            raise Conflict("the upload is being completed", code="direct-upload-busy")
        uow.session.expunge(upload)
    return _presign(store, upload, options.url_seconds, now)


def _get(uow: UnitOfWork, user: User, episode_id: str, upload_id: str, now: datetime) -> DirectUpload:
    upload = uow.session.get(DirectUpload, upload_id)
    if upload is None or upload.user_id != user.id or upload.episode_id != episode_id:
        raise NotFound("no such direct upload", code="direct-upload-not-found")
    if upload.expires_at <= now:
        raise Gone("the direct upload expired", code="direct-upload-expired")
    return upload


def _claim(uow_factory: UowFactory, user: User, episode_id: str, upload_id: str, now: datetime,
           extend: timedelta) -> DirectUpload:  # fmt: skip
    """Mark the upload as being completed (one request only), extending its expiry for the checks."""
    with uow_factory() as uow:
        upload = _get(uow, user, episode_id, upload_id, now)
        claimed = uow.session.execute(
            update(DirectUpload)
            .where(DirectUpload.id == upload_id, DirectUpload.status == "pending")
            .values(status="completing", expires_at=now + extend)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("the upload is being completed by another request", code="direct-upload-busy")
        uow.commit()
        uow.session.refresh(upload)
        uow.session.expunge(upload)
        return upload


def _release(uow_factory: UowFactory, upload_id: str) -> None:
    with uow_factory() as uow:
        uow.session.execute(update(DirectUpload).where(DirectUpload.id == upload_id).values(status="pending"))
        uow.commit()


def _forget(uow_factory: UowFactory, store: MultipartStorage, storage: Storage, upload: DirectUpload) -> None:
    """Abort the multipart upload, delete its object (if completed) and its row."""
    if upload.s3_upload_id:
        store.abort_multipart(upload.storage_key, upload.s3_upload_id)
    storage.delete(upload.storage_key)
    with uow_factory() as uow:
        uow.session.execute(delete(DirectUpload).where(DirectUpload.id == upload.id))
        uow.commit()


def complete_direct_upload(
    uow_factory: UowFactory,
    storage: Storage,
    queue: JobQueue,
    user: User,
    episode_id: str,
    upload_id: str,
    parts: list[tuple[int, str]],
    options: DirectUploadOptions,
    now: datetime,
) -> Job:
    """Join the parts, verify size and SHA-256, probe, attach to the episode; returns its processing job.

    Parts the store does not hold leave the upload pending (the client may send the right list). A size
    or SHA-256 mismatch, or media that does not probe, deletes the object and the upload; the episode is
    unchanged.
    """
    store = require_multipart(storage)
    if not parts or len({n for n, _ in parts}) != len(parts):
        raise InvalidInput("list each uploaded part once (number and ETag)", code="invalid-parts")
    upload = _claim(uow_factory, user, episode_id, upload_id, now, timedelta(seconds=options.expires_seconds))
    try:
        if not storage.exists(upload.storage_key):  # a retry after a transient failure finds it joined
            store.complete_multipart(upload.storage_key, upload.s3_upload_id, parts)
        return _verify_and_attach(uow_factory, store, storage, queue, user, upload, options)
    except MediaPubError as exc:
        if content_error(exc) and exc.code != "invalid-parts":
            _forget(uow_factory, store, storage, upload)  # the bytes are wrong: nothing of them is kept
        else:  # a blip, a busy episode, or a wrong part list: the client may complete again
            _release(uow_factory, upload_id)
        raise
    except BaseException:
        _release(uow_factory, upload_id)
        raise


def _verify_and_attach(
    uow_factory: UowFactory,
    store: MultipartStorage,
    storage: Storage,
    queue: JobQueue,
    user: User,
    upload: DirectUpload,
    options: DirectUploadOptions,
) -> Job:
    stored = storage.stat(upload.storage_key)
    if stored.size != upload.size:
        raise InvalidInput(
            f"the parts hold {stored.size} bytes, not the announced {upload.size}", code="size-mismatch"
        )
    spooled = spool_object(storage, upload.storage_key, options.tmp_dir, upload.size)
    if spooled.sha256 != upload.sha256:
        spooled.path.unlink(missing_ok=True)
        raise InvalidInput(
            f"the stored bytes have SHA-256 {spooled.sha256}, not the announced {upload.sha256}",
            code="checksum-mismatch",
        )
    with uow_factory() as uow:
        job = attach_stored(
            uow,
            store,
            queue,
            user,
            upload.episode_id,
            upload.storage_key,
            spooled,
            TrimRequest(upload.trim_start, upload.trim_end),
            probe_timeout=options.probe_timeout,
            probe_memory_mb=options.probe_memory_mb,
        )
        uow.session.execute(delete(DirectUpload).where(DirectUpload.id == upload.id))
        uow.commit()
        uow.session.refresh(job)
        uow.session.expunge(job)
    storage.delete(upload.storage_key)  # the original is a copy: the staging object goes
    log.info("direct_upload.completed id=%s episode=%s job=%s", upload.id, upload.episode_id, job.id)
    return job


def abort_direct_upload(
    uow_factory: UowFactory, storage: Storage, user: User, episode_id: str, upload_id: str, now: datetime
) -> None:
    """Abort the upload and free its parts."""
    store = require_multipart(storage)
    with uow_factory() as uow:
        upload = _get(uow, user, episode_id, upload_id, now)
        if upload.status != "pending":
            raise Conflict("the upload is being completed", code="direct-upload-busy")
        uow.session.expunge(upload)
    _forget(uow_factory, store, storage, upload)


def expire_direct_uploads(uow_factory: UowFactory, storage: Storage, now: datetime) -> int:
    """Abort direct uploads past their expiry (abandoned); returns how many."""
    if not isinstance(storage, MultipartStorage):
        return 0
    with uow_factory() as uow:
        expired = list(uow.session.scalars(select(DirectUpload).where(DirectUpload.expires_at <= now)))
        for upload in expired:
            uow.session.expunge(upload)
    for upload in expired:
        _forget(uow_factory, storage, storage, upload)
    return len(expired)


def _known_keys(uow_factory: UowFactory) -> set[str]:
    with uow_factory() as uow:
        known = set(uow.session.scalars(select(DirectUpload.storage_key)))
        known.update(uow.session.scalars(select(ResumableUpload.storage_key)))
    return known


def abort_orphan_multipart_uploads(
    uow_factory: UowFactory, storage: Storage, now: datetime, older_than: timedelta
) -> int:
    """Abort multipart uploads under `uploads/` that no row knows, once older than `older_than`."""
    if not isinstance(storage, MultipartStorage):
        return 0
    found = list(storage.list_multipart_uploads(UPLOADS_PREFIX))
    if not found:
        return 0
    known = _known_keys(uow_factory)  # read after listing: a row is written before its multipart upload
    aborted = 0
    for item in found:
        if item.key in known or (item.initiated is not None and item.initiated > now - older_than):
            continue
        storage.abort_multipart(item.key, item.upload_id)
        aborted += 1
    if aborted:
        log.info("direct_upload.orphans_aborted count=%d", aborted)
    return aborted


def delete_orphan_upload_objects(
    uow_factory: UowFactory, storage: Storage, now: datetime, older_than: timedelta
) -> int:
    """Delete objects under `uploads/` (finished uploads, tails) that no row knows, once older than
    `older_than`: what a process that died between its commit and its clean-up left behind."""
    if not isinstance(storage, MultipartStorage):
        return 0
    found = list(storage.list_objects(UPLOADS_PREFIX))
    if not found:
        return 0
    known = _known_keys(uow_factory)
    deleted = 0
    for item in found:
        if item.key in known or item.key.split(".tail-", 1)[0] in known:
            continue
        if item.modified is not None and item.modified > now - older_than:
            continue
        storage.delete(item.key)
        deleted += 1
    if deleted:
        log.info("uploads.orphan_objects_deleted count=%d", deleted)
    return deleted
