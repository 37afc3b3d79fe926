"""The feed fast path: a fresh public feed answered before the framework, and everything it must not do."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from media_pub.bootstrap import Container
from media_pub.services import feeds as feed_service
from media_pub.services.feeds import FRESH_SECONDS, FeedService
from tests.conftest import SHOW

FEED = "/feeds/test-show.xml"
SAME = (
    "etag",
    "last-modified",
    "cache-control",
    "vary",
    "content-type",
    "content-length",
    "content-encoding",
)
PATIENT = 60.0  # the memo's freshness where checks are counted: no revalidation on a slow machine


@pytest.fixture
def show(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201


@pytest.fixture
def checks(container: Container, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The slugs the feed service checked against the database (the framework's route ran)."""
    monkeypatch.setattr(feed_service, "FRESH_SECONDS", PATIENT)
    seen: list[str] = []
    original: Callable = container.feeds.get

    def counted(uow, slug, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(slug)
        return original(uow, slug, *args, **kwargs)

    monkeypatch.setattr(container.feeds, "get", counted)
    return seen


def _age(feeds: FeedService, seconds: float) -> None:
    """Make the memo of the test show's audio feed (if any) look `seconds` older."""
    if memo := feeds._public.get(("test-show", "audio")):
        memo.at -= seconds


def test_fresh_feed_answers_like_the_route(
    container: Container, client: TestClient, show: None, checks: list[str]
) -> None:
    for headers in ({"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip"}):
        _age(container.feeds, PATIENT)  # no memo yet, or a stale one: the route answers
        checks.clear()
        slow = client.get(FEED, headers=headers)
        fast = client.get(FEED, headers=headers)
        assert checks == ["test-show"], "the second answer came from the fast path"
        assert fast.status_code == slow.status_code == 200
        assert fast.content == slow.content
        assert {h: fast.headers.get(h) for h in SAME} == {h: slow.headers.get(h) for h in SAME}
    assert fast.headers["content-encoding"] == "gzip"
    assert fast.headers["vary"] == "Accept-Encoding"
    assert fast.headers["cache-control"] == "public, max-age=300"

    etag, modified = fast.headers["etag"], fast.headers["last-modified"]
    for conditional in (
        {"If-None-Match": etag},
        {"If-None-Match": f"W/{etag}"},
        {"If-Modified-Since": modified},
    ):
        not_modified = client.get(FEED, headers=conditional)
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
    assert client.get(FEED, headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(FEED, headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(slow.content)
    assert checks == ["test-show"]


def test_an_edit_in_this_process_shows_at_once(
    client: TestClient, host: dict[str, str], show: None, checks: list[str]
) -> None:
    etag = client.get(FEED).headers["etag"]
    assert client.get(FEED).headers["etag"] == etag
    assert client.patch("/api/v1/shows/test-show", json={"title": "Renamed"}, headers=host).status_code == 200
    changed = client.get(FEED, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert b"Renamed" in changed.content
    assert checks == ["test-show", "test-show"]


def test_an_edit_elsewhere_shows_within_a_second(
    container: Container, client: TestClient, show: None
) -> None:
    etag = client.get(FEED).headers["etag"]
    # Another API process: the database changes without a commit in this one.
    with container.engine.begin() as conn:
        conn.execute(text("UPDATE shows SET title = 'Elsewhere', feed_version = feed_version + 1"))
    deadline = time.monotonic() + FRESH_SECONDS + 0.5
    while client.get(FEED).headers["etag"] == etag:
        assert time.monotonic() < deadline, "the edit did not show within a second"
        time.sleep(0.05)
    assert b"Elsewhere" in client.get(FEED).content


def test_one_request_revalidates_while_the_others_get_the_memo(
    container: Container, client: TestClient, show: None, checks: list[str]
) -> None:
    client.get(FEED)
    _age(container.feeds, PATIENT * 0.6)
    assert container.feeds.fresh("test-show") is None, "the first caller checks again"
    assert container.feeds.fresh("test-show") is not None, "the others still get the memo"
    _age(container.feeds, PATIENT * 0.5)
    assert container.feeds.fresh("test-show") is None, "past a second nobody gets it"
    client.get(FEED)
    assert container.feeds.fresh("test-show") is not None
    assert checks == ["test-show", "test-show"]


def test_what_the_fast_path_leaves_to_the_app(
    client: TestClient, host: dict[str, str], show: None, checks: list[str]
) -> None:
    client.get(FEED)
    client.get(FEED + "?page=1")  # a query string: the route
    client.get("/feeds/test-show/video.xml")
    client.get("/feeds/test-show/video.xml")  # the video feed has its own memo
    assert checks == ["test-show"] * 3
    assert client.post(FEED).status_code == 405
    assert client.get("/feeds/no-such-show.xml").status_code == 404

    created = client.post("/api/v1/shows/test-show/supporters", json={"name": "Ana"}, headers=host).json()
    private = created["feed_url"].removeprefix("http://testserver")
    answer = client.get(private)
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "private, max-age=60"
    assert b"(supporters)" in answer.content
    wrong = private.rsplit("/", 1)[0] + "/not-a-token.xml"
    assert client.get(wrong).status_code == 404, "a private feed never comes from the public memo"

    moved = client.post("/api/v1/shows/test-show/move", json={"slug": "new-show"}, headers=host)
    assert moved.status_code == 200, moved.text
    old = client.get(FEED, follow_redirects=False)
    assert old.status_code == 301
    assert old.headers["location"].endswith("/feeds/new-show.xml")
