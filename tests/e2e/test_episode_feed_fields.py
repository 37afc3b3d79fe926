"""The Podcasting 2.0 fields of an episode through the API: set, read back, refused with a clear code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from media_pub.bootstrap import Container
from media_pub.db.models import Show
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job

FIELDS: dict[str, Any] = {
    "title": "With everything",
    "season": 2,
    "number": 7,
    "persons": [
        {"name": "Ada Host", "img": "https://example.org/ada.jpg", "href": "https://example.org/ada"},
        {"name": "Grace Guest", "role": "Guest", "group": "cast"},
    ],
    "funding": [{"url": "https://example.org/tip", "text": "Tip jar"}, {"url": "https://example.org/m"}],
    "location": {"text": "Berlin", "geo": "52.52,13.405", "osm": "r62422", "rel": "creator", "country": "de"},
    "license": {"slug": "cc-by-4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
    "txt": [{"text": "S6lpp-7ZCn8-dZfGc-OoyVG", "purpose": "applepodcastsverify"}, {"text": "plain"}],
    "soundbites": [
        {"start": "00:01:05", "duration": 30, "title": "The bit"},
        {"start": 12.5, "duration": 60},
    ],
    "season_name": "Second winds",
    "episode_display": "Ep. 7",
    "supporter_only": True,
    "audio_feed": False,
}


def _show(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201


def test_every_field_is_stored_tidied_and_read_back(client: TestClient, host: dict[str, str]) -> None:
    _show(client, host)
    created = client.post("/api/v1/shows/test-show/episodes", json=FIELDS, headers=host)
    assert created.status_code == 201, created.text
    ep = created.json()
    assert ep["persons"] == [
        {
            "name": "Ada Host",
            "role": "host",
            "group": "cast",
            "img": "https://example.org/ada.jpg",
            "href": "https://example.org/ada",
        },
        {"name": "Grace Guest", "role": "guest", "group": "cast"},
    ]
    assert ep["funding"] == [
        {"url": "https://example.org/tip", "text": "Tip jar"},
        {"url": "https://example.org/m", "text": "Support the show"},
    ]
    assert ep["location"] == {
        "text": "Berlin", "geo": "geo:52.52,13.405", "osm": "R62422", "rel": "creator", "country": "DE",
    }  # fmt: skip
    assert ep["license"] == FIELDS["license"]
    assert ep["txt"] == [
        {"text": "S6lpp-7ZCn8-dZfGc-OoyVG", "purpose": "applepodcastsverify"},
        {"text": "plain"},
    ]
    # Sorted by start; HH:MM:SS becomes seconds.
    assert ep["soundbites"] == [
        {"start": 12.5, "duration": 60.0},
        {"start": 65.0, "duration": 30.0, "title": "The bit"},
    ]
    assert (ep["season_name"], ep["episode_display"]) == ("Second winds", "Ep. 7")
    assert ep["supporter_only"] is True
    assert ep["audio_feed"] is False
    assert ep["warnings"] == []

    # PATCH changes only what it names; null persons inherit the show's again, null audio_feed is automatic.
    patched = client.patch(
        f"/api/v1/episodes/{ep['id']}",
        json={"persons": None, "audio_feed": None, "supporter_only": False, "soundbites": [{"start": 0,
              "duration": 5}], "location": None},
        headers=host,
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    again = client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()
    assert again["persons"] is None
    assert again["audio_feed"] is None
    assert again["supporter_only"] is False
    assert again["location"] is None
    assert again["funding"] == ep["funding"]
    assert again["soundbites"] == [{"start": 0.0, "duration": 5.0}]
    assert again["warnings"] == ["soundbites[0]: 5 s; apps advise 15 to 120 s"]
    # An empty list is kept as such: no persons for this episode, rather than the show's.
    emptied = client.patch(f"/api/v1/episodes/{ep['id']}", json={"persons": []}, headers=host).json()
    assert emptied["persons"] == []


REFUSED: list[tuple[dict[str, Any], str, str]] = [
    (
        {"funding": [{"url": "http://example.org/tip"}]},
        "invalid-funding",
        "funding[0].url must be an https URL",
    ),
    ({"funding": [{"url": "https://example.org", "text": "x" * 129}]}, "invalid-funding", "funding[0].text"),
    ({"persons": [{"name": ""}]}, "invalid-persons", "persons[0].name must not be empty"),
    ({"persons": [{"name": "A", "img": "ftp://example.org/a.jpg"}]}, "invalid-persons", "persons[0].img"),
    ({"persons": [{"name": "A", "href": "https://exa mple.org"}]}, "invalid-persons", "persons[0].href"),
    ({"persons": [{"name": "n" * 129}]}, "invalid-persons", "128"),
    ({"location": {"text": "Here", "geo": "geo:95,10"}}, "invalid-location", "location.geo"),
    ({"location": {"text": "Here", "country": "Germany"}}, "invalid-location", "location.country"),
    ({"location": {"text": "Here", "osm": "62422"}}, "invalid-location", "location.osm"),
    ({"license": {"slug": "not a slug"}}, "invalid-license", "license.slug"),
    ({"license": {"slug": "custom", "url": "http://example.org/l"}}, "invalid-license", "license.url"),
    ({"txt": [{"text": "t" * 4001}]}, "invalid-txt", "4000"),
    ({"soundbites": [{"start": -1, "duration": 30}]}, "invalid-soundbites", "soundbites[0].start"),
    ({"soundbites": [{"start": "1:2:3:4", "duration": 30}]}, "invalid-soundbites", "soundbites[0].start"),
    ({"soundbites": [{"start": 0, "duration": 0.5}]}, "invalid-soundbites", "1 to 300 s"),
    ({"soundbites": [{"start": 0, "duration": 301}]}, "invalid-soundbites", "1 to 300 s"),
    ({"season_name": "Named"}, "invalid-season-name", "needs a season"),
    ({"number": 3, "episode_display": "d" * 33}, "invalid-episode-display", "32"),
    ({"episode_display": "Bonus"}, "invalid-episode-display", "needs an episode number"),
    ({"supporter_only": None}, "invalid-supporter-only", "true or false"),
]


@pytest.mark.parametrize(("body", "code", "detail"), REFUSED)
def test_bad_values_are_refused_as_problems(
    client: TestClient, host: dict[str, str], body: dict[str, Any], code: str, detail: str
) -> None:
    _show(client, host)
    ep = client.post("/api/v1/shows/test-show/episodes", json={"title": "T"}, headers=host).json()
    for response in (
        client.patch(f"/api/v1/episodes/{ep['id']}", json=body, headers=host),
        client.post("/api/v1/shows/test-show/episodes", json=body, headers=host),
    ):
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == code
        assert detail in problem["detail"]
        assert problem["status"] == 422
    # Nothing of a refused edit was kept.
    assert client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()["funding"] == []


def test_wrong_shapes_are_request_validation_problems(client: TestClient, host: dict[str, str]) -> None:
    _show(client, host)
    for body in ({"persons": [{"name": "A", "nickname": "x"}]}, {"soundbites": [{"start": 0}]},
                 {"location": {"text": "x", "rel": "object"}}):  # fmt: skip
        response = client.post("/api/v1/shows/test-show/episodes", json=body, headers=host)
        assert response.status_code == 422
        assert response.json()["code"] == "validation-error"


def _feed_version(container: Container) -> int:
    with container.uow() as uow:
        show = uow.session.query(Show).one()
        return show.feed_version


def test_published_episode_checks_soundbites_against_its_duration_and_touches_the_feed(
    client: TestClient, container: Container, host: dict[str, str], tmp_path: Path
) -> None:
    _show(client, host)
    clip = write_speech_like(tmp_path / "clip.wav", 6.0, lufs=-20, seed=4)
    ep = client.post("/api/v1/shows/test-show/episodes", json={"title": "Short"}, headers=host).json()
    job = client.put(f"/api/v1/episodes/{ep['id']}/media", content=clip.read_bytes(), headers=host)
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    assert client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host).status_code == 200
    duration = client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()["media"]["duration"]
    assert duration == pytest.approx(6.0, abs=0.3)

    past = client.patch(
        f"/api/v1/episodes/{ep['id']}", json={"soundbites": [{"start": 2, "duration": 10}]}, headers=host
    )
    assert past.status_code == 422
    assert past.json()["code"] == "invalid-soundbites"
    assert "past the end of the episode" in past.json()["detail"]

    for change in (
        {"soundbites": [{"start": 1, "duration": 4}]},
        {"persons": [{"name": "Ada"}]},
        {"funding": [{"url": "https://example.org/f"}]},
        {"location": {"text": "Paris"}},
        {"license": {"slug": "cc0-1.0"}},
        {"txt": [{"text": "hello"}]},
        {"season": 1, "season_name": "One"},
        {"number": 1, "episode_display": "First"},
        {"supporter_only": True},
        {"audio_feed": True},
    ):
        before = _feed_version(container)
        response = client.patch(f"/api/v1/episodes/{ep['id']}", json=change, headers=host)
        assert response.status_code == 200, (change, response.text)
        assert _feed_version(container) == before + 1, change
