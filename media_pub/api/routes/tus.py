"""Resumable uploads (tus 1.0: core, creation, expiration, checksum, termination) at /api/v1/uploads.

With `episode_id` in the metadata, the last PATCH attaches the upload to that episode like a direct upload
and answers with its processing job's id in `Upload-Job`. If attaching fails (bad media, bad trim points),
that PATCH answers with the problem, the episode stays as it was, and the upload is deleted: the client
creates a new one. An upload without `episode_id` stays complete until it expires.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import BinaryIO

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from media_pub.api.deps import ContainerDep, UserDep
from media_pub.api.problems import problem, status_for
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
from media_pub.services.uploads import Spooled, TrimRequest, attach_upload, episode_for_upload

router = APIRouter(prefix="/api/v1/uploads", tags=["uploads"])

TUS_VERSION = "1.0.0"
OFFSET_STREAM = "application/offset+octet-stream"
BASE = {"Tus-Resumable": TUS_VERSION}


def _store(c: Container) -> UploadStore:
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
        state = _store(c).create(user.id, length, metadata, _now())
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
    with c.uow() as uow:
        job = attach_upload(
            uow,
            c.storage,
            c.queue,
            user,
            meta["episode_id"],
            Spooled(spool, state.length, sha256),
            trim,
            probe_timeout=c.settings.probe_timeout_seconds,
            probe_memory_mb=c.settings.probe_memory_mb,
        )
        uow.commit()
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
        store.get(upload_id, user.id, _now())
        with store.locked(upload_id):
            state = store.get(upload_id, user.id, _now())  # again, now that no one else writes it
            if offset != state.offset:
                detail = f"the upload is at offset {state.offset}, not {offset}"
                return _reply(409, "upload-offset-mismatch", "Conflict", detail, request)
            if not await _receive(store, state, request, request.headers.get("upload-checksum")):
                return _reply(
                    460, "checksum-mismatch", "Checksum mismatch", "the chunk was discarded", request
                )
            headers = {**BASE, "Upload-Offset": str(state.offset), "Upload-Expires": _expires(state)}
            if state.complete and state.metadata.get("episode_id"):
                headers["Upload-Job"] = await run_in_threadpool(_finish, c, user, store, state)
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
