"""Idempotency-Key on create calls (IETF draft-ietf-httpapi-idempotency-key-header; reliability.md U9)."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Episode, IdempotencyRecord, User, utcnow
from media_pub.domain.rules import Role
from media_pub.services import auth
from media_pub.services import episodes as episode_service
from tests.conftest import SHOW, new_user

PROBLEM = "application/problem+json"
EPISODES = "/api/v1/shows/test-show/episodes"


@pytest.fixture
def owner(backend: Container, backend_client: TestClient) -> dict[str, str]:
    """The show's owner, on each backend."""
    headers = new_user(backend, "host")
    assert backend_client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    return headers


def _key() -> str:
    return str(uuid.uuid4())


def _post(client: TestClient, headers: dict[str, str], key: str | None, **body: Any) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.post(EPISODES, json=body, headers={**headers, **extra})


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == code, body
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    return body


def _episodes(c: Container) -> int:
    with c.uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(Episode)) or 0)


def _records(c: Container) -> list[tuple[str, str, int | None]]:
    """(owner, key, status) of every idempotency record."""
    with c.uow() as uow:
        rows = uow.session.execute(
            select(IdempotencyRecord.owner, IdempotencyRecord.key, IdempotencyRecord.status)
        )
        return [(o, k, s) for o, k, s in rows]


def test_retry_replays_the_first_answer(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    first = _post(backend_client, owner, key, title="Pilot")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = _post(backend_client, owner, key, title="Pilot")
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.json() == first.json()
    listed = backend_client.get(EPISODES, headers=owner).json()
    assert [e["id"] for e in listed] == [first.json()["id"]]
    assert _episodes(backend) == 1
    [(owner_hash, stored_key, status)] = _records(backend)
    assert (stored_key, status) == (key, 201)
    assert len(owner_hash) == 64  # a SHA-256: the token itself is never stored
    assert owner["Authorization"] not in owner_hash


def test_same_key_other_body_is_refused(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    assert _post(backend_client, owner, key, title="Pilot").status_code == 201
    _problem(_post(backend_client, owner, key, title="Another"), 422, "idempotency-key-reused")
    # ...and on another path, even with the same body.
    other = backend_client.post(
        "/api/v1/shows", json={**SHOW, "slug": "other"}, headers={**owner, "Idempotency-Key": key}
    )
    _problem(other, 422, "idempotency-key-reused")
    assert _episodes(backend) == 1


def test_without_a_key_every_post_creates(
    backend_client: TestClient, backend: Container, owner: dict
) -> None:
    a, b = (
        _post(backend_client, owner, None, title="Pilot"),
        _post(backend_client, owner, None, title="Pilot"),
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert _episodes(backend) == 2
    assert _records(backend) == []


def test_keys_belong_to_their_caller(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    mine = _post(backend_client, owner, key, title="Pilot")
    assert mine.status_code == 201
    # A stranger with the same key and body runs the call (refused: no role), nothing is replayed to them.
    stranger = _post(backend_client, new_user(backend, "stranger"), key, title="Pilot")
    assert stranger.status_code == 404, stranger.text
    assert "idempotent-replayed" not in stranger.headers
    # A co-host's call with the same key creates their own episode.
    cohost = new_user(backend, "cohost")
    with backend.uow() as uow:
        show = repo.show_by_slug(uow.session, "test-show")
        auth.grant(
            uow, show, uow.session.scalars(select(User).where(User.name == "cohost")).one(), Role.EDITOR
        )
        uow.commit()
    other = _post(backend_client, cohost, key, title="Pilot")
    assert other.status_code == 201, other.text
    assert "idempotent-replayed" not in other.headers
    assert other.json()["id"] != mine.json()["id"]
    assert _episodes(backend) == 2
    assert len(_records(backend)) == 3


def test_concurrent_retries_create_one_episode(
    backend_client: TestClient, backend: Container, owner: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key sent 40 times, 8 at once, while the handler is slow: one episode, one row, one body."""
    create = episode_service.create_episode

    def slow(*args: Any, **kwargs: Any) -> Episode:
        time.sleep(0.3)
        return create(*args, **kwargs)

    monkeypatch.setattr(episode_service, "create_episode", slow)
    key = _key()
    barrier = threading.Barrier(8)

    def send(i: int) -> httpx.Response:
        if i < 8:
            barrier.wait(5)
        return _post(backend_client, owner, key, title="Pilot")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(40)))
    created = [r for r in answers if r.status_code == 201]
    in_flight = [r for r in answers if r.status_code == 409]
    assert len(created) + len(in_flight) == 40, [r.text for r in answers if r.status_code not in (201, 409)]
    assert in_flight, "the racing requests saw no placeholder"
    for r in in_flight:
        _problem(r, 409, "idempotency-in-flight")
        assert r.headers["retry-after"] == "1"
    assert len([r for r in created if "idempotent-replayed" not in r.headers]) == 1
    assert {r.content for r in created} == {created[0].content}
    assert _episodes(backend) == 1
    assert len(_records(backend)) == 1
    last = _post(backend_client, owner, key, title="Pilot")
    assert last.status_code == 201
    assert last.headers["idempotent-replayed"] == "true"
    assert last.content == created[0].content


def test_a_4xx_is_replayed(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    first = _post(backend_client, owner, key, title="x" * 501)
    _problem(first, 422, "validation-error")
    second = _post(backend_client, owner, key, title="x" * 501)
    _problem(second, 422, "validation-error")
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert _episodes(backend) == 0


def test_a_500_is_not_stored(
    backend_client: TestClient, backend: Container, owner: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = episode_service.create_episode

    def broken(*args: Any, **kwargs: Any) -> Episode:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(episode_service, "create_episode", broken)
    key = _key()
    _problem(_post(backend_client, owner, key, title="Pilot"), 500, "internal-error")
    assert _records(backend) == []
    monkeypatch.setattr(episode_service, "create_episode", create)
    retry = _post(backend_client, owner, key, title="Pilot")
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers
    assert _episodes(backend) == 1


def test_records_expire_after_a_day(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    first = _post(backend_client, owner, key, title="Pilot")
    with backend.uow() as uow:
        uow.session.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=25)))
        uow.commit()
    again = _post(backend_client, owner, key, title="Pilot")
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    # A new key purges what has expired.
    assert _post(backend_client, owner, _key(), title="Other").status_code == 201
    assert len(_records(backend)) == 2


def test_a_dead_placeholder_is_replaced(backend_client: TestClient, backend: Container, owner: dict) -> None:
    key = _key()
    first = _post(backend_client, owner, key, title="Pilot")
    with backend.uow() as uow:  # as if its process had died mid-request
        uow.session.execute(
            update(IdempotencyRecord).values(status=None, created_at=utcnow() - timedelta(minutes=5))
        )
        uow.commit()
    _problem(_post(backend_client, owner, key, title="Pilot"), 409, "idempotency-in-flight")
    with backend.uow() as uow:
        uow.session.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(minutes=20)))
        uow.commit()
    again = _post(backend_client, owner, key, title="Pilot")
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "caf\u00e9", "a\tb"],
    ids=["empty", "too-long", "non-ascii", "control"],
)
def test_invalid_keys_are_refused(client: TestClient, host: dict, key: str) -> None:
    headers = {**host, "Idempotency-Key": key.encode("utf-8")}
    _problem(client.post("/api/v1/shows", json=SHOW, headers=headers), 400, "idempotency-key-invalid")
    assert client.get("/api/v1/shows/test-show", headers=host).status_code == 404


def test_non_json_or_large_bodies_are_refused(client: TestClient, host: dict) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    keyed = {**host, "Idempotency-Key": _key()}
    form = client.post(EPISODES, data={"title": "Pilot"}, headers=keyed)
    _problem(form, 422, "idempotency-unsupported")
    big = client.post(EPISODES, json={"title": "x", "notes_html": "y" * 1_100_000}, headers=keyed)
    _problem(big, 422, "idempotency-unsupported")
    assert client.get(EPISODES, headers=host).json() == []


def test_other_routes_ignore_the_key(client: TestClient, host: dict) -> None:
    """PATCH is idempotent by nature, and uploads are not covered: the header changes nothing there."""
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    key = _key()
    for title in ("One", "Two"):
        r = client.patch(
            "/api/v1/shows/test-show", json={"title": title}, headers={**host, "Idempotency-Key": key}
        )
        assert r.status_code == 200
        assert r.json()["title"] == title
        assert "idempotent-replayed" not in r.headers


def test_publish_and_empty_bodies(client: TestClient, host: dict) -> None:
    """A keyed POST without a body (publish) is fingerprinted too: its 4xx answer replays."""
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    episode = client.post(EPISODES, json={"title": "Pilot"}, headers=host).json()
    keyed = {**host, "Idempotency-Key": _key()}
    first = client.post(f"/api/v1/episodes/{episode['id']}/publish", headers=keyed)
    assert 400 <= first.status_code < 500, first.text  # a draft without media cannot be published
    second = client.post(f"/api/v1/episodes/{episode['id']}/publish", headers=keyed)
    assert second.status_code == first.status_code
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()


def test_openapi_documents_the_header(client: TestClient) -> None:
    assert "Idempotency-Key" in client.get("/openapi.json").json()["info"]["description"]
