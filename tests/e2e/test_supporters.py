"""Supporters end to end: the API, the CLI, private feeds and media, and tokens kept out of access logs."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from lxml import etree
from typer.testing import CliRunner

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.cli import app
from media_pub.config import get_settings
from media_pub.db.models import Episode, Show, Supporter
from media_pub.errors import Gone, NotFound
from media_pub.media.synth import write_speech_like
from media_pub.services import supporters as svc
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import _free_port, wait_job

PROBLEM = "application/problem+json"
PRIVATE_FEED = re.compile(r"^http://testserver/feeds/test-show/private/([A-Za-z0-9_-]{43})\.xml$")
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"


@pytest.fixture
def show(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201


def _add(client: TestClient, host: dict[str, str], **body: object) -> tuple[dict, str]:
    response = client.post("/api/v1/shows/test-show/supporters", json={"name": "Ana", **body}, headers=host)
    assert response.status_code == 201, response.text
    created = response.json()
    match = PRIVATE_FEED.match(created["feed_url"])
    assert match, created["feed_url"]
    return created, match.group(1)


def _problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body


def _feed_version(c: Container) -> int:
    with c.uow() as uow:
        return uow.session.query(Show).filter_by(slug="test-show").one().feed_version


# --- API --------------------------------------------------------------------------------------------


def test_add_list_revoke(client: TestClient, host: dict[str, str], show: None, container: Container) -> None:
    feed_before = _feed_version(container)
    created, token = _add(client, host, email="ana@example.org", expires_at="2099-01-01T00:00:00Z")
    assert created["name"] == "Ana"
    assert created["email"] == "ana@example.org"
    assert created["prefix"] == token[: svc.PREFIX_CHARS]
    assert created["status"] == "active"
    assert created["expires_at"].startswith("2099-01-01T00:00:00")
    assert created["revoked_at"] is None
    assert not ({"token", "token_hash"} & set(created))

    other, other_token = _add(client, host, name="Bo")
    assert other_token != token

    listed = client.get("/api/v1/shows/test-show/supporters", headers=host)
    assert listed.status_code == 200
    assert [s["id"] for s in listed.json()] == [created["id"], other["id"]]
    with container.uow() as uow:
        hashes = [s.token_hash for s in uow.session.query(Supporter).all()]
    for secret in (token, other_token, *hashes):
        assert secret not in listed.text
        assert secret not in client.get(f"/api/v1/supporters/{created['id']}", headers=host).text
    assert all("feed_url" not in s and "token_hash" not in s for s in listed.json())

    assert client.delete(f"/api/v1/supporters/{created['id']}", headers=host).status_code == 204
    assert client.delete(f"/api/v1/supporters/{created['id']}", headers=host).status_code == 204
    with container.uow() as uow, pytest.raises(Gone):
        svc.authenticate_supporter(uow, "test-show", token)
    states = {
        s["id"]: s["status"] for s in client.get("/api/v1/shows/test-show/supporters", headers=host).json()
    }
    assert states == {created["id"]: "revoked", other["id"]: "active"}
    assert _feed_version(container) == feed_before, "supporters are not part of the public feed"


def test_patch_expiry(client: TestClient, host: dict[str, str], show: None, container: Container) -> None:
    created, token = _add(client, host)
    url = f"/api/v1/supporters/{created['id']}"
    past = client.patch(url, json={"expires_at": "2020-01-01T00:00:00+00:00"}, headers=host)
    assert past.status_code == 200, past.text
    assert past.json()["status"] == "expired"
    with container.uow() as uow, pytest.raises(NotFound) as caught:
        svc.authenticate_supporter(uow, "test-show", token)
    assert caught.value.code == "private-feed-expired"  # 404: the app keeps the feed for a renewal
    _problem(client.get(f"/feeds/test-show/private/{token}.xml"), 404)
    cleared = client.patch(url, json={"expires_at": None}, headers=host)
    assert cleared.json()["status"] == "active"
    assert cleared.json()["expires_at"] is None
    _problem(client.patch(url, json={}, headers=host), 422, "validation-error")
    _problem(client.patch(url, json={"expires_at": "2030-01-01T00:00:00"}, headers=host), 422)  # no zone
    client.delete(url, headers=host)
    _problem(client.patch(url, json={"expires_at": None}, headers=host), 409, "supporter-revoked")


def test_errors_are_problems(
    client: TestClient, host: dict[str, str], show: None, container: Container
) -> None:
    created, _ = _add(client, host)
    sid = created["id"]
    calls = [
        ("POST", "/api/v1/shows/test-show/supporters", {"name": "X"}),
        ("GET", "/api/v1/shows/test-show/supporters", None),
        ("GET", f"/api/v1/supporters/{sid}", None),
        ("PATCH", f"/api/v1/supporters/{sid}", {"expires_at": None}),
        ("DELETE", f"/api/v1/supporters/{sid}", None),
    ]
    stranger = new_user(container, "stranger")
    for method, url, body in calls:
        _problem(client.request(method, url, json=body), 401, "token-missing")
        bad = {"Authorization": "Bearer mp_nope"}
        _problem(client.request(method, url, json=body, headers=bad), 401, "token-invalid")
        # Someone with no role on the show learns nothing, not even that it exists (the project's rule).
        _problem(client.request(method, url, json=body, headers=stranger), 404)
    assert client.get(f"/api/v1/supporters/{sid}", headers=host).json()["status"] == "active"

    _problem(client.get("/api/v1/shows/nope/supporters", headers=host), 404, "show-not-found")
    _problem(client.post("/api/v1/shows/nope/supporters", json={"name": "X"}, headers=host), 404)
    for method in ("GET", "DELETE"):
        _problem(client.request(method, "/api/v1/supporters/nope", headers=host), 404, "supporter-not-found")
    post = "/api/v1/shows/test-show/supporters"
    for body in (
        {"name": "X", "token_hash": "0" * 64},
        {"name": "X", "show_id": "x"},
        {"name": ""},
        {"name": "X", "expires_at": "2030-01-01T00:00:00"},
        {},
    ):
        _problem(client.post(post, json=body, headers=host), 422, "validation-error")
    _problem(client.post(post, json={"name": "X", "email": "nope"}, headers=host), 422, "invalid-email")
    past = {"name": "X", "expires_at": "2020-01-01T00:00:00Z"}
    _problem(client.post(post, json=past, headers=host), 422, "invalid-expiry")
    assert len(client.get(post, headers=host).json()) == 1


# --- CLI --------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MEDIA_PUB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MEDIA_PUB_BASE_URL", "https://pod.example.org")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_add_list_revoke(cli_env: None) -> None:
    assert runner.invoke(app, ["show", "create", "my-show", "--title", "My Show"]).exit_code == 0
    added = runner.invoke(app, ["supporter", "add", "my-show", "Ana B", "--email", "a@example.org",
                                "--expires", "2099-01-01"])  # fmt: skip
    assert added.exit_code == 0, added.output
    lines = added.stdout.strip().splitlines()
    assert len(lines) == 1
    match = re.fullmatch(
        r"https://pod\.example\.org/feeds/my-show/private/([A-Za-z0-9_-]{43})\.xml", lines[0]
    )
    assert match, lines
    token = match.group(1)
    assert "shown once" in added.stderr

    listed = runner.invoke(app, ["supporter", "list", "my-show"])
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output
    header, row = listed.stdout.strip().splitlines()
    assert header.split("\t") == ["id", "name", "email", "prefix", "status", "created", "expires"]
    sid, name, email, prefix, status, _, expires = row.split("\t")
    assert (name, email, prefix, status, expires) == (
        "Ana B",
        "a@example.org",
        token[:8],
        "active",
        "2099-01-01 00:00",
    )

    c = bootstrap(get_settings())
    try:
        with c.uow() as uow:
            assert svc.authenticate_supporter(uow, "my-show", token).id == sid
        revoked = runner.invoke(app, ["supporter", "revoke", sid])
        assert revoked.exit_code == 0, revoked.output
        assert revoked.stdout.startswith("revoked:")
        with c.uow() as uow, pytest.raises(Gone):
            svc.authenticate_supporter(uow, "my-show", token)
    finally:
        c.close()
    again = runner.invoke(app, ["supporter", "revoke", sid])
    assert again.exit_code == 0
    assert again.stdout.startswith("already revoked:")
    assert "\trevoked\t" in runner.invoke(app, ["supporter", "list", "my-show"]).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["supporter", "revoke", "nope"], "error: Not found: no supporter with id 'nope'"),
        (["supporter", "add", "no-show", "Ana"], "error: Not found: no show with slug 'no-show'"),
        (["supporter", "list", "no-show"], "error: Not found: no show with slug 'no-show'"),
        (["supporter", "add", "my-show", "Ana", "--expires", "soon"], "error: Invalid input: --expires"),
        (
            ["supporter", "add", "my-show", "Ana", "--expires", "2001-01-01"],
            "error: Invalid input: expires_at",
        ),
        (["supporter", "add", "my-show", "Ana", "--email", "x"], "error: Invalid input: email"),
        (["supporter", "add", "my-show", " "], "error: Invalid input: a supporter's name"),
    ],
)
def test_cli_errors_are_one_line(cli_env: None, args: list[str], message: str) -> None:
    assert runner.invoke(app, ["show", "create", "my-show", "--title", "My Show"]).exit_code == 0
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(message)
    assert result.stdout == ""


def test_cli_usage_errors_exit_2(cli_env: None) -> None:
    assert runner.invoke(app, ["supporter", "add", "my-show"]).exit_code == 2
    assert runner.invoke(app, ["supporter", "revoke"]).exit_code == 2


# --- Access logs ------------------------------------------------------------------------------------


def test_access_logs_never_hold_tokens(container: Container, caplog: pytest.LogCaptureFixture) -> None:
    """A real uvicorn with access logs on: private paths are logged with the token redacted."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(container), host="127.0.0.1", port=port, log_config=None, access_log=True
    )
    server = uvicorn.Server(config)
    access = logging.getLogger("uvicorn.access")
    # Another test's uvicorn may have left its logging config (propagate=False): caplog listens at the root.
    propagate, access.propagate, access.disabled = access.propagate, True, False
    level = access.level
    access.setLevel(logging.INFO)  # and a level of WARNING (the e2e live server's log_level)
    svc.install_log_redaction()
    thread = threading.Thread(target=server.run, daemon=True)
    tokens = [svc.new_token() for _ in range(100)]
    try:
        with caplog.at_level(logging.INFO):
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                for i, token in enumerate(tokens):
                    path = (
                        f"/feeds/test-show/private/{token}.xml"
                        if i % 2
                        else f"/private/{token}/media/shows/x/episodes/y/mp3.mp3"
                    )
                    http.get(path + ("?x=1" if i % 3 == 0 else ""))
    finally:
        server.should_exit = True
        thread.join(10)
        for f in [f for f in access.filters if isinstance(f, svc.RedactTokens)]:
            access.removeFilter(f)
        access.propagate = propagate
        access.setLevel(level)
    access_lines = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    # At least one line per request (a handler left by another test's uvicorn config may double them).
    assert len(access_lines) >= len(tokens)
    assert all("/private/<redacted>" in line for line in access_lines)
    # Everything the server logged (the test's own httpx client logs its URLs, as any client would).
    server_logs = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert not [t for t in tokens if t in server_logs]


# --- Private feeds and media (the routes and the private rendering come with the feed service) ------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_speech_like(tmp_path_factory.mktemp("clip") / "clip.wav", 3.0, lufs=-20).read_bytes()


def _published(
    client: TestClient, host: dict[str, str], container: Container, clip: bytes, title: str, *, bonus: bool
) -> str:
    ep = client.post("/api/v1/shows/test-show/episodes", json={"title": title}, headers=host)
    assert ep.status_code == 201, ep.text
    episode_id = ep.json()["id"]
    upload = client.put(f"/api/v1/episodes/{episode_id}/media", content=clip, headers=host)
    assert wait_job(client, upload.json(), host)["status"] == "succeeded"
    if bonus:  # no API field for it yet: set it in the database before publishing
        with container.uow() as uow:
            episode = uow.session.get(Episode, episode_id)
            assert episode is not None
            episode.supporter_only = True
            uow.commit()
    published = client.post(f"/api/v1/episodes/{episode_id}/publish", json={}, headers=host)
    assert published.status_code == 200, published.text
    return episode_id


def _titles_and_enclosures(body: bytes) -> tuple[list[str], list[str]]:
    root = etree.fromstring(body, etree.XMLParser(recover=False, resolve_entities=False))
    return root.xpath("//item/title/text()"), root.xpath("//item/enclosure/@url")


@pytest.mark.slow
def test_private_feed_and_media(
    client: TestClient, host: dict[str, str], show: None, container: Container, clip: bytes
) -> None:
    _published(client, host, container, clip, "Public episode", bonus=False)
    _published(client, host, container, clip, "Bonus episode", bonus=True)
    created, token = _add(client, host)
    other_created, other_token = _add(client, host, name="Bo")

    public = client.get("/feeds/test-show.xml")
    assert public.status_code == 200
    titles, _ = _titles_and_enclosures(public.content)
    assert titles == ["Public episode"], "supporter-only episodes stay out of the public feed"

    feed_path = f"/feeds/test-show/private/{token}.xml"
    private = client.get(feed_path)
    assert private.status_code == 200, private.text[:500]
    assert "<itunes:block>Yes</itunes:block>" in private.text
    assert etree.fromstring(private.content).findtext(f"channel/{{{ITUNES}}}block") == "Yes"
    assert "private" in private.headers.get("cache-control", "")
    titles, enclosures = _titles_and_enclosures(private.content)
    assert sorted(titles) == ["Bonus episode", "Public episode"]
    assert len(enclosures) == 2
    prefix = f"http://testserver/private/{token}/media/"
    assert all(u.startswith(prefix) for u in enclosures), enclosures
    bonus_url = enclosures[titles.index("Bonus episode")]
    media_path = bonus_url.removeprefix("http://testserver")
    assert client.get(media_path).status_code in (200, 302)
    # The bonus episode's media is not public without a token.
    assert client.get("/media/" + bonus_url.removeprefix(prefix)).status_code in (404, 410)

    # A token works for its own show only, and an unknown token is simply not there.
    _problem(client.get(f"/feeds/another-show/private/{token}.xml"), 404)
    _problem(client.get(f"/feeds/test-show/private/{token[:-2]}xx.xml"), 404)

    assert client.delete(f"/api/v1/supporters/{created['id']}", headers=host).status_code == 204
    for path in (feed_path, media_path):
        _problem(client.get(path), 410)
    # Another supporter's feed keeps working.
    assert client.get(f"/feeds/test-show/private/{other_token}.xml").status_code == 200
    assert other_created["id"] != created["id"]


def test_problems_never_echo_a_token(client: TestClient, host: dict[str, str], show: None) -> None:
    """Error answers of the private routes leave the token out (A4: no raw tokens in logs or errors)."""
    created, token = _add(client, host)
    unknown = svc.new_token()
    client.delete(f"/api/v1/supporters/{created['id']}", headers=host)
    for path, status in [
        (f"/feeds/test-show/private/{unknown}.xml", 404),
        (f"/private/{unknown}/media/shows/x/episodes/y/a.mp3", 404),
        (f"/feeds/test-show/private/{token}.xml", 410),
    ]:
        body = _problem(client.get(path), status)
        secret = unknown if status == 404 else token
        assert secret not in json.dumps(body), body


def test_every_backend(backend: Container, backend_client: TestClient) -> None:
    """Add, expire, restore and revoke on SQLite and PostgreSQL (time zones and the unique hash)."""
    host = new_user(backend, "host")
    assert backend_client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    created, token = _add(backend_client, host, expires_at="2099-01-01T00:00:00+02:00")
    assert created["expires_at"].startswith("2098-12-31T22:00:00")
    with backend.uow() as uow:
        assert svc.authenticate_supporter(uow, "test-show", token).id == created["id"]
    url = f"/api/v1/supporters/{created['id']}"
    assert (
        backend_client.patch(url, json={"expires_at": "2020-01-01T00:00:00Z"}, headers=host).status_code
        == 200
    )
    with backend.uow() as uow, pytest.raises(NotFound):
        svc.authenticate_supporter(uow, "test-show", token)
    assert backend_client.patch(url, json={"expires_at": None}, headers=host).json()["status"] == "active"
    assert backend_client.delete(url, headers=host).status_code == 204
    with backend.uow() as uow, pytest.raises(Gone):
        svc.authenticate_supporter(uow, "test-show", token)
