"""Idempotency keys on create calls (IETF draft-ietf-httpapi-idempotency-key-header; Stripe's behaviour).

A client that retries a POST after a timeout sends the same `Idempotency-Key` header and gets the first
answer again instead of a second episode. A pure ASGI middleware, so uploads elsewhere stream untouched:

- It acts only on POST to the create operations in `OPERATIONS`, only when the request has both an
  `Idempotency-Key` (1-255 printable ASCII characters, else 400 `idempotency-key-invalid`) and an
  `Authorization` header (without one the call fails with 401 anyway). Elsewhere the header is ignored.
- Keys belong to the caller: records are per (SHA-256 of the Authorization header, key).
- The body must be JSON or empty and at most the operation's limit (1 MiB; the import's own limit):
  else 422 `idempotency-unsupported`, because the body must be read whole to be compared.
- Before the handler runs, a placeholder row is committed; the unique (owner, key) constraint decides
  between concurrent requests, across API processes. A request finding the placeholder gets 409
  `idempotency-in-flight` (with Retry-After); the same key with another method, path, query or body
  gets 422 `idempotency-key-reused`; the same request gets the stored answer, marked
  `Idempotent-Replayed: true`, and the handler does not run.
- Answers below 500 are stored (a 4xx replays as the same 4xx), except 408 and 429 which ask for a retry.
  On a 5xx, an exception or a cancelled request the placeholder is removed, so a retry runs again.
- Records expire after 24 h (a few old ones are deleted on each new key). A placeholder older than
  `IN_FLIGHT_TIMEOUT` is taken to belong to a process that died and is replaced.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
from fastapi import FastAPI
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from media_pub.api.problems import problem, status_for
from media_pub.api.routes.imports import MAX_BODY_BYTES as IMPORT_BODY_BYTES
from media_pub.db.models import IdempotencyRecord, utcnow
from media_pub.db.uow import UowFactory
from media_pub.errors import MediaPubError

log = logging.getLogger(__name__)

HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
TTL = timedelta(hours=24)
IN_FLIGHT_TIMEOUT = timedelta(minutes=15)
PURGE_BATCH = 100
DEFAULT_BODY_BYTES = 1024 * 1024
STORED_HEADERS = ("content-type", "location")
NOT_STORED = frozenset({408, 429})  # they ask the client to try again
KEY = re.compile(r"[\x20-\x7e]{1,255}")

# (path pattern, body limit): the create operations under /api/v1/.
OPERATIONS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(p), limit)
    for p, limit in (
        (r"/api/v1/shows", DEFAULT_BODY_BYTES),
        (r"/api/v1/shows/import", IMPORT_BODY_BYTES),
        (r"/api/v1/shows/[^/]+/(episodes|livestreams|supporters)", DEFAULT_BODY_BYTES),
        (r"/api/v1/episodes/[^/]+/(publish|reprocess)", DEFAULT_BODY_BYTES),
        (r"/api/v1/livestreams/[^/]+/(live|end)", DEFAULT_BODY_BYTES),
    )
]

DOC = """

**Idempotency keys.** The create calls (`POST /api/v1/shows`, `/shows/import`,
`/shows/{show}/episodes`, `/livestreams` and `/supporters`, `/episodes/{id}/publish` and `/reprocess`,
`/livestreams/{id}/live` and `/end`) accept an `Idempotency-Key` header (1-255 printable ASCII
characters, e.g. a UUID). A retry with the same key and the same JSON body within 24 hours gets the
first answer again, with `Idempotent-Replayed: true`, and changes nothing. The same key with another
body: 422 `idempotency-key-reused`; while the first request runs: 409 `idempotency-in-flight`.
Answers of 500 and above are not kept, so such a call can be retried with its key.
"""


@dataclass(frozen=True)
class Stored:
    """A record as read: `status` None while its request is in flight."""

    fingerprint: str
    status: int | None
    headers: dict[str, Any]
    body: bytes


class IdempotencyStore:
    """The records, through the app's unit of work; synchronous (call it from a worker thread)."""

    def __init__(self, uow: UowFactory) -> None:
        self._uow = uow

    def claim(self, owner: str, key: str, fingerprint: str) -> int | Stored:
        """Insert the placeholder and return its id, or return the live record that holds the key."""
        for _ in range(5):
            now = utcnow()
            with self._uow() as uow:
                record = IdempotencyRecord(owner=owner, key=key, fingerprint=fingerprint, created_at=now)
                uow.session.add(record)
                try:
                    uow.commit()
                except IntegrityError:
                    pass
                else:
                    self._purge(now)
                    return record.id
            with self._uow() as uow:
                found = uow.session.scalars(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.owner == owner, IdempotencyRecord.key == key
                    )
                ).one_or_none()
                if found is None:
                    continue  # removed in between: try again
                dead = found.status is None and found.created_at < now - IN_FLIGHT_TIMEOUT
                if found.created_at < now - TTL or dead:
                    # Only this row: a newer claim by another request is left alone.
                    uow.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == found.id))
                    uow.commit()
                    continue
                return Stored(found.fingerprint, found.status, dict(found.headers), bytes(found.body))
        return Stored(fingerprint, None, {}, b"")  # still contended: report it as in flight

    def complete(self, record_id: int, status: int, headers: dict[str, str], body: bytes) -> None:
        with self._uow() as uow:
            uow.session.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.id == record_id)
                .values(status=status, headers=headers, body=body)
            )
            uow.commit()

    def release(self, record_id: int) -> None:
        with self._uow() as uow:
            uow.session.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.id == record_id, IdempotencyRecord.status.is_(None)
                )
            )
            uow.commit()

    def _purge(self, now: datetime) -> None:
        """Delete a bounded batch of expired records; best effort, in its own transaction."""
        try:
            with self._uow() as uow:
                old = (
                    select(IdempotencyRecord.id)
                    .where(IdempotencyRecord.created_at < now - TTL)
                    .order_by(IdempotencyRecord.id)
                    .limit(PURGE_BATCH)
                )
                ids = list(uow.session.scalars(old))
                if ids:
                    uow.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
                    uow.commit()
        except (DBAPIError, MediaPubError):
            log.warning("idempotency.purge_failed", exc_info=True)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _limit(path: str) -> int | None:
    for pattern, limit in OPERATIONS:
        if pattern.fullmatch(path):
            return limit
    return None


def _is_json(content_type: str) -> bool:
    mime = content_type.partition(";")[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


class _Unsupported(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(headers: Headers, receive: Receive, limit: int) -> bytes:
    """The whole body, if it is JSON (FastAPI reads a body without Content-Type as JSON too) and small."""
    too_large = f"an Idempotency-Key needs a body of at most {limit} bytes; send this one without it"
    length = headers.get("content-length", "")
    content_type = headers.get("content-type")
    if content_type and not _is_json(content_type) and length != "0":
        raise _Unsupported("an Idempotency-Key needs a JSON or empty body; send this one without it")
    if length.isdigit() and int(length) > limit:
        raise _Unsupported(too_large)
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        if len(body) > limit:
            raise _Unsupported(too_large)
        if not message.get("more_body", False):
            return bytes(body)


class IdempotencyMiddleware:
    """Replays the first answer to a keyed create call; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = _limit(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        headers = Headers(scope=scope) if limit is not None else Headers()
        keys = headers.getlist(HEADER)
        authorization = headers.get("authorization")
        if limit is None or not keys or not authorization:
            await self.app(scope, receive, send)
            return
        if len(keys) > 1 or not KEY.fullmatch(keys[0]):
            detail = "Idempotency-Key must be one header of 1 to 255 printable ASCII characters"
            await _problem(scope, receive, send, 400, "idempotency-key-invalid", detail)
            return
        try:
            body = await _read_body(headers, receive, limit)
        except _Unsupported as exc:
            await _problem(scope, receive, send, 422, "idempotency-unsupported", str(exc))
            return
        except _Disconnected:
            return  # the client left before sending its body: nothing ran, nothing to answer
        store = IdempotencyStore(scope["app"].state.container.uow)
        owner = hashlib.sha256(authorization.encode("latin-1")).hexdigest()
        mine = fingerprint("POST", scope["path"], scope.get("query_string", b""), body)
        try:
            claimed = await anyio.to_thread.run_sync(store.claim, owner, keys[0], mine)
        except MediaPubError as exc:  # Unavailable: the database is down or locked
            await _problem(scope, receive, send, status_for(exc), exc.code, exc.detail, title=exc.title)
            return
        if isinstance(claimed, Stored):
            await _answer_existing(scope, receive, send, claimed, mine)
            return
        await _run(self.app, scope, _replaying(body, receive), send, store, claimed)


async def _answer_existing(scope: Scope, receive: Receive, send: Send, found: Stored, mine: str) -> None:
    if found.fingerprint != mine:
        detail = "this Idempotency-Key was used with another request; use a new key for a new request"
        await _problem(scope, receive, send, 422, "idempotency-key-reused", detail)
    elif found.status is None:
        detail = "a request with this Idempotency-Key is still running; retry shortly"
        await _problem(
            scope, receive, send, 409, "idempotency-in-flight", detail, headers={"Retry-After": "1"}
        )
    else:
        replay = Response(found.body, status_code=found.status, headers={**found.headers, REPLAYED: "true"})
        await replay(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """The buffered body once, then the real channel (so disconnects still arrive)."""
    sent = False

    async def wrapped() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return wrapped


async def _run(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, store: IdempotencyStore, rid: int
) -> None:
    """Run the handler; keep its answer (held back until stored, so a retry never sees it half-done)."""
    start: Message | None = None
    chunks: list[bytes] = []
    settled = False

    async def capture(message: Message) -> None:
        nonlocal start, settled
        if settled:
            await send(message)
            return
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        settled = True
        status = int(start["status"])
        body = b"".join(chunks)
        if status < 500 and status not in NOT_STORED:
            kept = {k: v for k, v in Headers(raw=start.get("headers", [])).items() if k in STORED_HEADERS}
            try:
                await anyio.to_thread.run_sync(store.complete, rid, status, kept, body)
            except Exception:
                log.exception("idempotency.store_failed")
                await _release(store, rid)
        else:
            await _release(store, rid)
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    try:
        await app(scope, receive, capture)
    except BaseException:
        if not settled:
            await _release(store, rid)
        raise
    if not settled:
        await _release(store, rid)


async def _release(store: IdempotencyStore, rid: int) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await anyio.to_thread.run_sync(store.release, rid)
        except Exception:
            # The placeholder stays until IN_FLIGHT_TIMEOUT; retries get 409 until then.
            log.exception("idempotency.release_failed")


TITLES = {
    "idempotency-key-invalid": "Invalid idempotency key",
    "idempotency-unsupported": "Idempotency key not supported here",
    "idempotency-key-reused": "Idempotency key reused",
    "idempotency-in-flight": "Request in flight",
}


async def _problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    response = problem(status, code, title or TITLES[code], detail, scope["path"])
    response.headers.update(headers or {})
    await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Honour Idempotency-Key on the create calls and say so in the OpenAPI description."""
    app.add_middleware(IdempotencyMiddleware)
    app.description = (app.description or "") + DOC
