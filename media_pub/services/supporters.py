"""Supporters: listeners with a private feed URL carrying an unguessable, revocable, expiring token.

The token (256 bits from `secrets`) is handed out once, at creation, inside the private feed URL; only
its SHA-256 is stored, with its first characters (`prefix`) to tell supporters apart. Supporters are
not part of the public feed: adding or revoking one leaves the show's feed version alone.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select

from media_pub.db import repositories as repo
from media_pub.db.models import Show, Supporter, User
from media_pub.db.uow import UnitOfWork
from media_pub.errors import Conflict, Gone, InvalidInput, NotFound
from media_pub.services.auth import hash_token, require_role

TOKEN_BYTES = 32  # 256 bits; the anchor (castopod) has 48, A4 asks for at least 128
PREFIX_CHARS = 8  # 48 of the 256 bits, kept in clear to tell tokens apart; 208 bits stay secret
MAX_NAME = 200
MAX_EMAIL = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SupporterStatus = Literal["active", "expired", "revoked"]

# Queries live here rather than in db/repositories.py while that module belongs to another change.


def _by_hash(uow: UnitOfWork, token_hash: str) -> Supporter | None:
    return uow.session.scalar(select(Supporter).where(Supporter.token_hash == token_hash))


def _of_show(uow: UnitOfWork, show_id: str) -> Sequence[Supporter]:
    query = select(Supporter).where(Supporter.show_id == show_id)
    return uow.session.scalars(query.order_by(Supporter.created_at, Supporter.id)).all()


def new_token() -> str:
    """A fresh supporter token: 43 URL-safe characters (256 random bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def private_feed_url(base_url: str, show_slug: str, token: str) -> str:
    """The supporter's private feed URL (it holds the token: show it once, never log it)."""
    return f"{base_url.rstrip('/')}/feeds/{show_slug}/private/{token}.xml"


def private_media_url(base_url: str, token: str, key: str) -> str:
    """An enclosure URL of a private feed: the media `key` behind the supporter's token."""
    return f"{base_url.rstrip('/')}/private/{token}/media/{key}"


def supporter_status(supporter: Supporter, now: datetime | None = None) -> SupporterStatus:
    """'revoked', 'expired' or 'active'."""
    if supporter.revoked_at is not None:
        return "revoked"
    if supporter.expires_at is not None and supporter.expires_at <= (now or datetime.now(UTC)):
        return "expired"
    return "active"


def _clean(name: str, email: str | None) -> tuple[str, str | None]:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a supporter's name is 1 to {MAX_NAME} characters", code="invalid-supporter-name")
    email = (email or "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL or not _EMAIL.match(email)):
        raise InvalidInput("email is not an e-mail address", code="invalid-email")
    return name, email


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput("expires_at needs a time zone (or Z for UTC)", code="invalid-expiry")
    return value.astimezone(UTC) if value is not None else None


def add_supporter(
    uow: UnitOfWork,
    user: User,
    show_slug: str,
    name: str,
    email: str | None = None,
    expires_at: datetime | None = None,
) -> tuple[Supporter, str]:
    """Add a supporter to a show (owner or editor); returns it with its token, which is never kept.

    Raises:
        InvalidInput: an empty or long name, a malformed email, or an expiry without zone or in the past.
    """
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    name, email = _clean(name, email)
    expires_at = _aware(expires_at)
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise InvalidInput("expires_at is in the past", code="invalid-expiry")
    token = new_token()
    supporter = Supporter(
        show_id=show.id,
        name=name,
        email=email,
        prefix=token[:PREFIX_CHARS],
        token_hash=hash_token(token),
        expires_at=expires_at,
    )
    uow.session.add(supporter)
    uow.session.flush()
    return supporter, token


def list_supporters(uow: UnitOfWork, user: User, show_slug: str) -> Sequence[Supporter]:
    """The show's supporters, oldest first, revoked ones included (owner or editor)."""
    show = repo.show_by_slug(uow.session, show_slug)
    require_role(uow, user, show)
    return _of_show(uow, show.id)


def get_supporter(uow: UnitOfWork, user: User, supporter_id: str) -> Supporter:
    """One supporter, by id, for an owner or editor of its show.

    Someone with no role on the show is told the supporter does not exist.
    """
    supporter = uow.session.get(Supporter, supporter_id)
    if supporter is None:
        raise NotFound(f"no supporter with id {supporter_id!r}", code="supporter-not-found")
    show = repo.show_by_id(uow.session, supporter.show_id)
    try:
        require_role(uow, user, show)
    except NotFound:
        raise NotFound(f"no supporter with id {supporter_id!r}", code="supporter-not-found") from None
    return supporter


def show_of(uow: UnitOfWork, supporter: Supporter) -> Show:
    return repo.show_by_id(uow.session, supporter.show_id)


def revoke_supporter(uow: UnitOfWork, user: User, supporter_id: str) -> Supporter:
    """Revoke a supporter's token for good: its feed and media answer 410 from the next request.

    Revoking twice is allowed and keeps the first revocation time.
    """
    supporter = get_supporter(uow, user, supporter_id)
    if supporter.revoked_at is None:
        supporter.revoked_at = datetime.now(UTC)
    return supporter


def set_supporter_expiry(
    uow: UnitOfWork, user: User, supporter_id: str, expires_at: datetime | None
) -> Supporter:
    """Change (or clear, with None) when a supporter's token expires.

    A time in the past suspends the feed; a later one, or None, restores it. A revoked token stays revoked.
    """
    supporter = get_supporter(uow, user, supporter_id)
    if supporter.revoked_at is not None:
        raise Conflict("the supporter is revoked; add them again for a new URL", code="supporter-revoked")
    supporter.expires_at = _aware(expires_at)
    return supporter


def authenticate_supporter(
    uow: UnitOfWork, show_slug: str, token: str, *, now: datetime | None = None
) -> Supporter:
    """The supporter holding `token` for the show `show_slug`.

    The token is looked up by its SHA-256, so the secret itself is never compared byte by byte.

    Raises:
        NotFound: unknown show, unknown token, or a token of another show.
        Gone: a revoked token.
        NotFound: also an expired one (it may be renewed; apps drop a feed that answers 410).
    """
    show = repo.show_by_slug_or_alias(uow.session, show_slug)  # a moved show keeps its private feeds
    digest = hash_token(token)
    supporter = _by_hash(uow, digest)
    if (
        supporter is None
        or supporter.show_id != show.id
        or not hmac.compare_digest(supporter.token_hash, digest)
    ):
        raise NotFound("no such private feed", code="private-feed-not-found")
    status = supporter_status(supporter, now)
    if status == "expired":
        # 404, not 410: apps unsubscribe on 410, and an expired supporter may be renewed.
        raise NotFound("this private feed has expired", code="private-feed-expired")
    if status != "active":
        raise Gone(f"this private feed was {status}", code=f"private-feed-{status}")
    return supporter


# The whole path segment after /private/, keeping a trailing ".xml" (the private feed's own name).
_PRIVATE_SEGMENT = re.compile(r"(/private/)[^/?#\s\"']+?(?=\.xml\b|[/?#\s\"']|$)")


def redact(text: str) -> str:
    """`text` with every `/private/<token>` path segment replaced by `/private/<redacted>`."""
    return _PRIVATE_SEGMENT.sub(r"\1<redacted>", text)


class RedactTokens(logging.Filter):
    """Rewrite `/private/<token>` path segments in log records so supporter tokens never reach a log.

    Works on the message and on its %-arguments (uvicorn's access log passes the path as an argument).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        elif isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        return True


def _redact_arg(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


REDACTED_LOGGERS = ("uvicorn.access", "uvicorn.error", "media_pub.api.problems")


def install_log_redaction(*names: str) -> None:
    """Put one RedactTokens on each named logger (uvicorn's and the API's by default). Idempotent."""
    for name in names or REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
