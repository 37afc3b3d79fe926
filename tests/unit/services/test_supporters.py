"""Supporter tokens: entropy, hashed storage, revocation, expiry, show scoping, roles, log redaction."""

from __future__ import annotations

import base64
import hashlib
import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from media_pub.bootstrap import Container
from media_pub.db.models import Show, Supporter, User
from media_pub.domain.rules import Role
from media_pub.errors import Conflict, Gone, InvalidInput, NotFound
from media_pub.services import auth
from media_pub.services import shows as show_svc
from media_pub.services import supporters as svc

SHOW_FIELDS = {"title": "A Show", "category": "Technology"}


def _user(c: Container, name: str) -> User:
    with c.uow() as uow:
        user, _ = auth.create_user(uow, name)
        uow.commit()
    return user


@pytest.fixture
def owner(container: Container) -> User:
    user = _user(container, "owner")
    with container.uow() as uow:
        for slug in ("show-a", "show-b"):
            show_svc.create_show(uow, user, slug, dict(SHOW_FIELDS))
        uow.commit()
    return user


def _add(c: Container, user: User, slug: str = "show-a", **kwargs: object) -> tuple[str, str]:
    with c.uow() as uow:
        supporter, token = svc.add_supporter(uow, user, slug, "Ana", **kwargs)  # type: ignore[arg-type]
        uow.commit()
        return supporter.id, token


def _auth(c: Container, slug: str, token: str, now: datetime | None = None) -> str:
    """The id of the supporter `token` authenticates (read before the unit of work closes)."""
    with c.uow() as uow:
        return svc.authenticate_supporter(uow, slug, token, now=now).id


def test_tokens_carry_at_least_128_random_bits(container: Container, owner: User) -> None:
    tokens = [_add(container, owner)[1] for _ in range(20)]
    assert len(set(tokens)) == 20
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128
        assert len(raw) == svc.TOKEN_BYTES
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # The clear prefix leaves at least 128 secret bits.
    assert (len(tokens[0]) - svc.PREFIX_CHARS) * 6 >= 128


def test_only_the_hash_is_stored(container: Container, owner: User) -> None:
    supporter_id, token = _add(container, owner, email="ana@example.org")
    with container.uow() as uow:
        row = uow.session.get(Supporter, supporter_id)
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.prefix == token[: svc.PREFIX_CHARS]
    # Every value of every table, as the database holds it: the token appears nowhere.
    with container.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for values in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump = " ".join(str(v) for v in values)
                assert token not in dump, table
                assert token[svc.PREFIX_CHARS :] not in dump, table


def test_authenticate_then_revoke_gives_gone_at_once(container: Container, owner: User) -> None:
    supporter_id, token = _add(container, owner)
    assert _auth(container, "show-a", token) == supporter_id
    with container.uow() as uow:
        svc.revoke_supporter(uow, owner, supporter_id)
        uow.commit()
    with pytest.raises(Gone) as caught:
        _auth(container, "show-a", token)
    assert token not in str(caught.value)


def test_revoking_twice_keeps_the_first_time(container: Container, owner: User) -> None:
    supporter_id, _ = _add(container, owner)
    with container.uow() as uow:
        first = svc.revoke_supporter(uow, owner, supporter_id).revoked_at
        uow.commit()
    with container.uow() as uow:
        again = svc.revoke_supporter(uow, owner, supporter_id)
        uow.commit()
        assert again.revoked_at == first
        assert svc.supporter_status(again) == "revoked"


def _expired(caught: pytest.ExceptionInfo[NotFound]) -> None:
    """Expired is 404, not 410: apps drop a feed that answers 410, and an expiry may be lifted."""
    assert not isinstance(caught.value, Gone)
    assert caught.value.code == "private-feed-expired"


def test_expired_token_is_not_found(container: Container, owner: User) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    supporter_id, token = _add(container, owner, expires_at=expires)
    assert _auth(container, "show-a", token, now=expires - timedelta(seconds=1)) == supporter_id
    with pytest.raises(NotFound) as caught:
        _auth(container, "show-a", token, now=expires)
    _expired(caught)
    with pytest.raises(NotFound) as caught:
        _auth(container, "show-a", token, now=expires + timedelta(days=1))
    _expired(caught)


def test_expiry_can_suspend_and_restore_but_not_undo_a_revocation(container: Container, owner: User) -> None:
    supporter_id, token = _add(container, owner)
    with container.uow() as uow:
        svc.set_supporter_expiry(uow, owner, supporter_id, datetime.now(UTC) - timedelta(minutes=1))
        uow.commit()
    with pytest.raises(NotFound) as caught:
        _auth(container, "show-a", token)
    _expired(caught)
    with container.uow() as uow:
        svc.set_supporter_expiry(uow, owner, supporter_id, None)
        uow.commit()
    assert _auth(container, "show-a", token) == supporter_id
    with container.uow() as uow:
        svc.revoke_supporter(uow, owner, supporter_id)
        uow.commit()
    with container.uow() as uow, pytest.raises(Conflict):
        svc.set_supporter_expiry(uow, owner, supporter_id, None)


def test_other_shows_and_unknown_tokens_are_not_found(container: Container, owner: User) -> None:
    _, token = _add(container, owner, slug="show-a")
    for slug, candidate in [
        ("show-b", token),  # a token of another show
        ("show-a", token[:-1] + ("A" if token[-1] != "A" else "B")),  # one character off
        ("show-a", ""),
        ("show-a", "x" * 5000),
        ("no-such-show", token),
    ]:
        with pytest.raises(NotFound) as caught:
            _auth(container, slug, candidate)
        assert not isinstance(caught.value, Gone), (slug, candidate[:10])
        assert token not in str(caught.value)


def test_roles(container: Container, owner: User) -> None:
    stranger = _user(container, "stranger")
    editor = _user(container, "editor")
    with container.uow() as uow:
        show = uow.session.scalars(select(Show).where(Show.slug == "show-a")).one()
        auth.grant(uow, show, editor, Role.EDITOR)
        uow.commit()
    supporter_id, _ = _add(container, owner)
    with container.uow() as uow:
        assert [s.id for s in svc.list_supporters(uow, editor, "show-a")] == [supporter_id]
        svc.add_supporter(uow, editor, "show-a", "Bo")
        with pytest.raises(NotFound):
            svc.add_supporter(uow, stranger, "show-a", "Cy")
        with pytest.raises(NotFound):
            svc.list_supporters(uow, stranger, "show-a")
        with pytest.raises(NotFound, match="no supporter"):
            svc.revoke_supporter(uow, stranger, supporter_id)
        with pytest.raises(NotFound, match="no supporter"):
            svc.revoke_supporter(uow, owner, "nope")
        with pytest.raises(NotFound):
            svc.list_supporters(uow, editor, "show-b")


@pytest.mark.parametrize(
    ("name", "kwargs", "code"),
    [
        ("  ", {}, "invalid-supporter-name"),
        ("x" * 201, {}, "invalid-supporter-name"),
        ("Ana", {"email": "not an email"}, "invalid-email"),
        ("Ana", {"expires_at": datetime(2030, 1, 1)}, "invalid-expiry"),  # naive on purpose
        ("Ana", {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "invalid-expiry"),
    ],
)
def test_bad_input_is_refused(
    container: Container, owner: User, name: str, kwargs: dict[str, object], code: str
) -> None:
    with container.uow() as uow, pytest.raises(InvalidInput) as caught:
        svc.add_supporter(uow, owner, "show-a", name, **kwargs)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_supporters_leave_the_public_feed_alone(container: Container, owner: User) -> None:
    with container.uow() as uow:
        before = show_svc.get_show(uow, owner, "show-a").feed_version
    supporter_id, _ = _add(container, owner)
    with container.uow() as uow:
        svc.revoke_supporter(uow, owner, supporter_id)
        uow.commit()
    with container.uow() as uow:
        assert show_svc.get_show(uow, owner, "show-a").feed_version == before


def test_private_urls() -> None:
    assert (
        svc.private_feed_url("https://x.org/", "my-show", "TOK")
        == "https://x.org/feeds/my-show/private/TOK.xml"
    )
    assert (
        svc.private_media_url("https://x.org", "TOK", "shows/1/a.mp3")
        == "https://x.org/private/TOK/media/shows/1/a.mp3"
    )


TOKEN = "ppV7Wh99H0wjmoUqE7GdeYd45f8Jpp5w0yYlDhE2j6I"


@pytest.mark.parametrize(
    "line",
    [
        f"GET /feeds/show-a/private/{TOKEN}.xml",
        f"/private/{TOKEN}/media/shows/abc/episodes/def/mp3.mp3",
        f"http://testserver/feeds/show-a/private/{TOKEN}.xml?x=1",
        f'"/private/{TOKEN}"',
        f"/private/{TOKEN}.x.y/media",
    ],
)
def test_redact_removes_the_token(line: str) -> None:
    out = svc.redact(line)
    assert TOKEN not in out
    assert TOKEN[:4] not in out
    assert "/private/<redacted>" in out


def test_log_filter_redacts_messages_and_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.supporters.access")
    logger.addFilter(svc.RedactTokens())
    url = svc.private_feed_url("http://testserver", "show-a", TOKEN)
    with caplog.at_level(logging.INFO, logger=logger.name):
        # The shape of uvicorn's access log line: the path is a %-argument.
        logger.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", url, "1.1", 200)
        logger.info(f"fetched {url}")
        logger.info("%(path)s", {"path": url})
        logger.info("no token here: /feeds/show-a.xml %d", 3)
    assert len(caplog.records) == 4
    assert TOKEN not in caplog.text
    assert caplog.text.count("/private/<redacted>.xml") == 3
    assert "no token here: /feeds/show-a.xml 3" in caplog.text
    assert (
        caplog.records[0]
        .getMessage()
        .endswith('"GET http://testserver/feeds/show-a/private/<redacted>.xml HTTP/1.1" 200')
    )


def test_install_log_redaction_is_idempotent() -> None:
    name = "tests.supporters.install"
    svc.install_log_redaction(name)
    svc.install_log_redaction(name)
    assert sum(isinstance(f, svc.RedactTokens) for f in logging.getLogger(name).filters) == 1
