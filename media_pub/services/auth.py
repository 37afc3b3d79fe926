"""Users, API tokens (stored as SHA-256 only) and per-show roles."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from media_pub.db import repositories as repo
from media_pub.db.models import ApiToken, Show, ShowMember, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import Role
from media_pub.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated

TOKEN_PREFIX = "mp_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(uow: UnitOfWork, name: str, *, admin: bool = False) -> tuple[User, str]:
    """Create a user and return it with a new API token (shown once, stored hashed)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInput("a user name is 1 to 100 characters", code="invalid-user-name")
    if repo.user_by_name(uow.session, name) is not None:
        raise Conflict(f"a user named {name!r} exists already", code="user-exists")
    user = User(name=name, is_admin=admin)
    uow.session.add(user)
    uow.session.flush()
    token = issue_token(uow, user)
    return user, token


def issue_token(uow: UnitOfWork, user: User) -> str:
    """A new 256-bit token for `user`; only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    uow.session.add(ApiToken(user_id=user.id, prefix=token[:10], token_hash=hash_token(token)))
    return token


def authenticate(uow: UnitOfWork, token: str | None) -> User:
    """The user owning `token`; Unauthenticated when missing, unknown or revoked."""
    if not token:
        raise Unauthenticated("send an API token as 'Authorization: Bearer <token>'", code="token-missing")
    row = repo.token_by_hash(uow.session, hash_token(token))
    if (
        row is None
        or row.revoked_at is not None
        or not hmac.compare_digest(row.token_hash, hash_token(token))
    ):
        raise Unauthenticated("the API token is not valid", code="token-invalid")
    return row.user


def grant(uow: UnitOfWork, show: Show, user: User, role: Role) -> None:
    """Give `user` a role on `show` (replacing any role it had)."""
    member = repo.membership(uow.session, show.id, user.id)
    if member is None:
        uow.session.add(ShowMember(show_id=show.id, user_id=user.id, role=role.value))
    else:
        member.role = role.value


def require_role(uow: UnitOfWork, user: User, show: Show, *roles: Role) -> None:
    """Raise unless `user` is an admin or has one of `roles` on `show`.

    A user with no role at all is told the show does not exist, so ids of other shows leak nothing.
    """
    if user.is_admin:
        return
    member = repo.membership(uow.session, show.id, user.id)
    if member is None:
        raise NotFound(f"no show with slug {show.slug!r}", code="show-not-found")
    allowed = roles or (Role.OWNER, Role.EDITOR)
    if member.role not in {r.value for r in allowed}:
        raise Forbidden(f"this needs the role {' or '.join(r.value for r in allowed)} on the show")


SYSTEM_USER = "media-pub-cli"


def system_user(uow: UnitOfWork) -> User:
    """The admin identity of local CLI commands (whoever runs them has the database already). No token."""
    user = repo.user_by_name(uow.session, SYSTEM_USER)
    if user is None:
        user = User(name=SYSTEM_USER, is_admin=True)
        uow.session.add(user)
        uow.session.flush()
    return user
