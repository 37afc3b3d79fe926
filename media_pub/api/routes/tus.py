"""Resumable uploads (tus 1.0: core, creation, expiration, checksum, termination) at /api/v1/uploads.

With `episode_id` in the metadata, the last PATCH attaches the upload to that episode like a direct upload
and answers with its processing job's id in `Upload-Job`. If attaching fails (bad media, bad trim points),
that PATCH answers with the problem, the episode stays as it was, and the upload is deleted: the client
creates a new one. An upload without `episode_id` stays complete until it expires.

On the S3 storage backend the bytes go into an S3 multipart upload and the state into the database
(services.resumable.S3UploadStore), so a PATCH may land on any API process.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from media_pub.api.deps import ContainerDep, UserDep
from media_pub.api.problems import problem, status_for
from media_pub.api.uploading import attach
from media_pub.bootstrap import Container
from media_pub.db.models import User
from media_pub.errors import InvalidMedia, MediaPubError
from media_pub.services.resumable import (
    CHECKSUM_ALGORITHMS,
    UploadState,
    UploadStore,
    parse_checksum,
    parse_metadata,
)
from media_pub.services.resumable_s3 import S3UploadStore, S3Writer
from media_pub.services.uploads import (
    Spooled,
    TrimRequest,
    episode_for_upload,
)
from media_pub.storage.base import MultipartStorage

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

TUS_VERSION = "1.0.0"
OFFSET_STREAM = "application/offset+octet-stream"
BASE = {"Tus-Resumable": TUS_VERSION}


def _store(c: Container) -> UploadStore | S3UploadStore:
    if isinstance(c.storage, MultipartStorage):  # S3: the state must be shared by every API process
        return S3UploadStore(
            c.uow,
            c.storage,
            c.settings.data_dir / "tmp",
            lock_seconds=c.settings.upload_lock_seconds,
            min_part=c.settings.storage.multipart_chunk_mb * 1024 * 1024,
        )
    return UploadStore(c.settings.data_dir)


def _now() -> datetime:
    return datetime.now(UTC)


def _reply(status: int, code: str, title: str, detail: str, request: Request) -> JSONResponse:
    response = problem(status, code, title, detail, request.url.path)
    response.headers.update(BASE)
    if status == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response


def _error(exc: MediaPubError, request: Request) -> JSONResponse:
    return _reply(status_for(exc), exc.code, exc.title, exc.detail, request)


def _bad_version(request: Request) -> JSONResponse | None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        return _reply(
            412, "tus-version", "Precondition failed", f"send Tus-Resumable: {TUS_VERSION}", request
        )
    return None


def _integer(request: Request, name: str) -> int | None:
    value = request.headers.get(name, "")
    return int(value) if value.isdigit() else None


def _expires(state: UploadState) -> str:
    return format_datetime(state.expires_at, usegmt=True)


@router.options("", status_code=204)
def upload_options(c: ContainerDep) -> Response:
    """The tus version, extensions, size limit and checksum algorithms this server supports."""
    return Response(
        status_code=204,
        headers={
            **BASE,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": "creation,expiration,checksum,termination",
            "Tus-Max-Size": str(c.settings.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        },
    )


def _check_episode(c: Container, user: User, episode_id: str) -> None:
    with c.uow() as uow:
        episode_for_upload(uow, user, episode_id)


@router.post("", status_code=201)
async def create_upload(request: Request, user: UserDep, c: ContainerDep) -> Response:
    """Create an upload of `Upload-Length` bytes; `Upload-Metadata` may name `filename`, `episode_id`,
    and the trim points `start` and `end`. Answers 201 with its `Location`."""
    if bad := _bad_version(request):
        return bad
    length = _integer(request, "upload-length")
    if length is None:
        return _reply(400, "upload-length", "Bad request", "Upload-Length is required", request)
    limit = c.settings.max_upload_bytes
    if length > limit:
        detail = f"the upload is larger than the limit of {limit} bytes"
        return _reply(413, "upload-too-large", "Payload too large", detail, request)
    try:
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        if episode_id := metadata.get("episode_id"):
            if length == 0:
                raise InvalidMedia("the upload is empty (0 bytes)", code="media-empty")
            await run_in_threadpool(_check_episode, c, user, episode_id)
        state = await run_in_threadpool(_store(c).create, user.id, length, metadata, _now())
    except MediaPubError as exc:
        return _error(exc, request)
    headers = {**BASE, "Location": f"/api/v1/uploads/{state.id}", "Upload-Expires": _expires(state)}
    return Response(status_code=201, headers=headers)


# Left out of the OpenAPI document: a HEAD answer has no body, so it cannot carry the documented problem
# shape that every listed operation promises (tests/e2e/test_error_shape.py checks that).
@router.head("/{upload_id}", include_in_schema=False)
def upload_status(upload_id: str, request: Request, user: UserDep, c: ContainerDep) -> Response:
    """How many bytes of the upload the server holds (`Upload-Offset`)."""
    try:
        state = _store(c).get(upload_id, user.id, _now())
    except MediaPubError as exc:
        return Response(status_code=status_for(exc), headers={**BASE, "Cache-Control": "no-store"})
    headers = {
        **BASE,
        "Upload-Offset": str(state.offset),
        "Upload-Length": str(state.length),
        "Upload-Expires": _expires(state),
        "Cache-Control": "no-store",
    }
    return Response(status_code=200, headers=headers)


async def _receive(store: UploadStore, state: UploadState, request: Request, checksum: str | None) -> bool:
    """Write the body at the offset; returns whether the checksum (if any) matched.

    Without a checksum the bytes go straight to the data file and every byte that arrived is kept, even if
    the client disconnects; with one they go to a part file appended only once verified. Bytes past
    `Upload-Length` are ignored.
    """
    algorithm, expected = parse_checksum(checksum) if checksum else (None, b"")
    digest = hashlib.new(algorithm) if algorithm else None
    fh: BinaryIO = store.open_part(state.id) if digest else store.open_append(state)
    remaining = state.length - state.offset
    written = 0
    complete = False
    try:
        async for chunk in request.stream():
            if digest:
                digest.update(chunk)
            keep = chunk[: remaining - written]
            if keep:
                fh.write(keep)
                written += len(keep)
        complete = True
    except ClientDisconnect:
        pass
    finally:
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        if digest is None:
            state.offset += written
            store.save(state)
    if digest is None:
        return True
    if not complete or digest.digest() != expected:
        store.path(state.id, ".part").unlink(missing_ok=True)
        return not complete
    await run_in_threadpool(store.commit_part, state)
    return True


def _finish(c: Container, user: User, store: UploadStore, state: UploadState) -> str:
    """Hand the complete upload to the episode; returns the job id. The upload is gone afterwards."""
    sha256 = store.sha256(state.id)
    tmp = c.settings.data_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    spool = tmp / f"upload-tus-{state.id}"
    os.replace(store.path(state.id, ".bin"), spool)
    store.delete(state.id)
    meta = state.metadata
    trim = TrimRequest(meta.get("start") or None, meta.get("end") or None)
    return attach(c, user, meta["episode_id"], Spooled(spool, state.length, sha256), trim).id


@asynccontextmanager
async def _locked(store: UploadStore | S3UploadStore, upload_id: str) -> AsyncIterator[str | None]:
    """`store.locked` with its database or file-system calls off the event loop."""
    held = store.locked(upload_id)
    token = await run_in_threadpool(held.__enter__)
    try:
        yield token
    finally:
        await run_in_threadpool(held.__exit__, None, None, None)


async def _checked_body(
    c: Container, request: Request, checksum: str, limit: int
) -> tuple[bool, Path | None]:
    """Spool a PATCH body sent with `Upload-Checksum` (its first `limit` bytes) before any of it is kept.

    Returns (True, file) when it matched, (False, None) on a mismatch, and (True, None) when the client
    left before the end: nothing of an unverified chunk is kept.
    """
    algorithm, expected = parse_checksum(checksum)
    digest = hashlib.new(algorithm)
    tmp = c.settings.data_dir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="tus-checked-", dir=tmp)
    path = Path(name)
    written = 0
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.stream():
                digest.update(chunk)
                keep = chunk[: limit - written]
                fh.write(keep)
                written += len(keep)
    except ClientDisconnect:
        path.unlink(missing_ok=True)
        return True, None
    except BaseException:  # shutdown (cancelled), disk full...: nothing of the chunk stays behind
        path.unlink(missing_ok=True)
        raise
    if digest.digest() != expected:
        path.unlink(missing_ok=True)
        return False, None
    return True, path


async def _feed(writer: S3Writer, data: bytes, lease: float) -> None:
    """Add bytes to the writer's buffer, sending each whole part (bytes past `Upload-Length` ignored)."""
    data = data[: writer.remaining]
    while data:
        take = data[: writer.room]
        writer.write(take)
        data = data[len(take) :]
        if writer.room == 0:
            await run_in_threadpool(writer.flush_part)
        elif time.monotonic() - writer.renewed > lease / 3:
            await run_in_threadpool(writer.renew)


async def _receive_s3(
    c: Container, store: S3UploadStore, token: str, state: UploadState, request: Request, checksum: str | None
) -> bool:
    """Like _receive, into the upload's S3 multipart upload; the bytes short of a part become its tail."""
    lease = c.settings.upload_lock_seconds
    checked: Path | None = None
    if checksum:
        matched, checked = await _checked_body(c, request, checksum, state.length - state.offset)
        if checked is None:
            return matched
    try:
        writer = await run_in_threadpool(store.writer, state.id, token)
    except BaseException:
        if checked is not None:
            checked.unlink(missing_ok=True)
        raise
    try:
        if checked is not None:
            with checked.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    await _feed(writer, chunk, lease)
        else:
            try:
                async for chunk in request.stream():
                    await _feed(writer, chunk, lease)
            except ClientDisconnect:
                pass
        await run_in_threadpool(writer.finish)
        state.offset = writer.offset if not writer.row.completed else state.length
    finally:
        writer.close()
        if checked is not None:
            checked.unlink(missing_ok=True)
    return True


def _finish_s3(c: Container, user: User, store: S3UploadStore, state: UploadState, token: str) -> str:
    """Hand the complete upload (an object in the bucket) to the episode; returns the job id."""
    meta = state.metadata
    trim = TrimRequest(meta.get("start") or None, meta.get("end") or None)
    job = store.attach(
        c.queue,
        user,
        state,
        token,
        trim,
        probe_timeout=c.settings.probe_timeout_seconds,
        probe_memory_mb=c.settings.probe_memory_mb,
    )
    return job.id


@router.patch(
    "/{upload_id}", openapi_extra={"requestBody": {"content": {OFFSET_STREAM: {}}, "required": True}}
)
async def upload_chunk(upload_id: str, request: Request, user: UserDep, c: ContainerDep) -> Response:
    """Append the body at `Upload-Offset` (`Upload-Checksum` optional). Answers 204 with the new offset;
    the last chunk of an upload naming an `episode_id` answers with the processing job in `Upload-Job`.

    `HEAD /api/v1/uploads/{upload_id}` gives the offset to resume from (`Upload-Offset`, `Upload-Length`).
    """
    if bad := _bad_version(request):
        return bad
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != OFFSET_STREAM:
        return _reply(415, "tus-content-type", "Unsupported media type", f"send {OFFSET_STREAM}", request)
    offset = _integer(request, "upload-offset")
    if offset is None:
        return _reply(400, "upload-offset", "Bad request", "Upload-Offset is required", request)
    store = _store(c)
    try:
        await run_in_threadpool(store.get, upload_id, user.id, _now())
        async with _locked(store, upload_id) as lock:
            state = await run_in_threadpool(store.get, upload_id, user.id, _now())  # again, now it is ours
            if offset != state.offset:
                detail = f"the upload is at offset {state.offset}, not {offset}"
                return _reply(409, "upload-offset-mismatch", "Conflict", detail, request)
            checksum = request.headers.get("upload-checksum")
            token = lock or ""  # S3UploadStore.locked yields its lock token, UploadStore.locked None
            if isinstance(store, S3UploadStore):
                received = await _receive_s3(c, store, token, state, request, checksum)
            else:
                received = await _receive(store, state, request, checksum)
            if not received:
                return _reply(
                    460, "checksum-mismatch", "Checksum mismatch", "the chunk was discarded", request
                )
            headers = {**BASE, "Upload-Offset": str(state.offset), "Upload-Expires": _expires(state)}
            if state.complete and state.metadata.get("episode_id"):
                if isinstance(store, S3UploadStore):
                    job_id = await run_in_threadpool(_finish_s3, c, user, store, state, token)
                else:
                    job_id = await run_in_threadpool(_finish, c, user, store, state)
                headers["Upload-Job"] = job_id
    except MediaPubError as exc:
        return _error(exc, request)
    return Response(status_code=204, headers=headers)


@router.delete("/{upload_id}", status_code=204)
def delete_upload(upload_id: str, request: Request, user: UserDep, c: ContainerDep) -> Response:
    """Stop an upload and delete what was received."""
    if bad := _bad_version(request):
        return bad
    store = _store(c)
    try:
        store.get(upload_id, user.id, _now())
        with store.locked(upload_id):
            store.delete(upload_id)
    except MediaPubError as exc:
        return _error(exc, request)
    return Response(status_code=204, headers=BASE)
