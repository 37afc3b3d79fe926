"""Every error becomes an RFC 9457 problem+json response: one table from error kind to status."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from media_pub.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    InvalidMedia,
    MediaPubError,
    NotFound,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMedia,
)
from media_pub.services.supporters import redact

log = logging.getLogger(__name__)

# Most specific first.
STATUS: list[tuple[type[MediaPubError], int]] = [
    (UnsupportedMedia, 415),
    (TooLarge, 413),
    (Gone, 410),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidMedia, 422),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (Unavailable, 503),
]
PROBLEM_JSON = "application/problem+json"


def status_for(error: MediaPubError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problem(status: int, code: str, title: str, detail: str, instance: str, **extra: Any) -> JSONResponse:
    body = {
        "type": f"urn:media-pub:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that render every error as problem+json."""

    @app.exception_handler(MediaPubError)
    async def _domain(request: Request, exc: MediaPubError) -> JSONResponse:
        status = status_for(exc)
        return problem(status, exc.code, exc.title, redact(exc.detail), redact(request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        where = redact(request.url.path)
        return problem(422, "validation-error", "Invalid request", detail, where, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        phrase = HTTPStatus(exc.status_code).phrase
        code = phrase.lower().replace(" ", "-").replace("'", "")
        return problem(exc.status_code, code, phrase, str(exc.detail), redact(request.url.path))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.failed path=%s", redact(request.url.path))
        return problem(
            500,
            "internal-error",
            "Internal error",
            "an unexpected error occurred; it was logged",
            redact(request.url.path),
        )
