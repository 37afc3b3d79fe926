"""Bad input gets a problem+json answer with a stable code, loses nothing and never a 500."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import wait_job


def _problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert {"type", "title", "detail", "instance"} <= set(body)
    assert "Traceback" not in response.text
    return body


@pytest.fixture
def episode(client: TestClient, host: dict[str, str]) -> dict:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    return client.post("/api/v1/shows/test-show/episodes", json={"title": "Ep"}, headers=host).json()


@pytest.fixture(scope="module")
def short_mp3(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("bad") / "short.mp3"
    return write_speech_like(path, 4.0, lufs=-20.0).read_bytes()


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"this is a text file, not audio\n" * 50, 415, "unsupported-media-type"),
        (os.urandom(64 * 1024), 415, "unsupported-media-type"),
        (b"", 422, "media-empty"),
        (b"\x89PNG\r\n\x1a\n" + os.urandom(2000), 415, "unsupported-media-type"),
    ],
    ids=["text-named-mp3", "random-bytes", "zero-bytes", "png"],
)
def test_not_media_is_refused(
    client: TestClient, host: dict[str, str], episode: dict, content: bytes, status: int, code: str
) -> None:
    response = client.put(
        f"/api/v1/episodes/{episode['id']}/media?filename=x.mp3", content=content, headers=host
    )
    _problem(response, status, code)
    after = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert after["status"] == "draft"
    assert after["original"] is None


def test_truncated_file_is_refused(
    client: TestClient, host: dict[str, str], episode: dict, short_mp3: bytes
) -> None:
    response = client.put(f"/api/v1/episodes/{episode['id']}/media", content=short_mp3[:300], headers=host)
    assert response.status_code in (415, 422), response.text
    assert response.json()["code"].startswith(("media-", "unsupported"))


def test_over_the_size_limit_is_413(tmp_path: Path, short_mp3: bytes) -> None:
    c = bootstrap(make_settings(tmp_path, max_upload_bytes=1000))
    try:
        with TestClient(create_app(c), raise_server_exceptions=False) as client:
            headers = new_user(c)
            client.post("/api/v1/shows", json=SHOW, headers=headers)
            ep = client.post("/api/v1/shows/test-show/episodes", json={"title": "x"}, headers=headers).json()
            _problem(
                client.put(f"/api/v1/episodes/{ep['id']}/media", content=short_mp3, headers=headers),
                413,
                "upload-too-large",
            )

            def chunked():  # type: ignore[no-untyped-def]
                yield short_mp3  # no Content-Length: the limit is enforced while streaming

            _problem(
                client.put(f"/api/v1/episodes/{ep['id']}/media", content=chunked(), headers=headers),
                413,
                "upload-too-large",
            )
            assert not any((tmp_path / "data" / "tmp").glob("upload-*")), "spool files must be removed"
    finally:
        c.close()


def test_unknown_things_are_404(client: TestClient, host: dict[str, str]) -> None:
    _problem(client.get("/api/v1/shows/nope", headers=host), 404, "show-not-found")
    _problem(client.get("/api/v1/episodes/nope", headers=host), 404, "episode-not-found")
    _problem(client.put("/api/v1/episodes/nope/media", content=b"x", headers=host), 404, "episode-not-found")
    _problem(client.get("/api/v1/jobs/nope", headers=host), 404, "job-not-found")
    _problem(client.get("/feeds/nope.xml"), 404, "show-not-found")
    _problem(client.get("/media/shows/x/episodes/y/mp3-1.mp3"), 404, "media-not-found")
    _problem(client.get("/no/such/route"), 404, "not-found")


def test_writes_need_a_token(client: TestClient, episode: dict) -> None:
    _problem(client.post("/api/v1/shows", json=SHOW), 401, "token-missing")
    _problem(client.put(f"/api/v1/episodes/{episode['id']}/media", content=b"x"), 401, "token-missing")
    bad = {"Authorization": "Bearer mp_not-a-real-token"}
    body = _problem(
        client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=bad), 401, "token-invalid"
    )
    assert "mp_not-a-real-token" not in str(body)


def test_invalid_fields_are_422(client: TestClient, host: dict[str, str], episode: dict) -> None:
    _problem(
        client.post("/api/v1/shows", json={**SHOW, "slug": "Bad Slug!"}, headers=host), 422, "invalid-slug"
    )
    _problem(
        client.post("/api/v1/shows", json={**SHOW, "slug": "other", "category": "Cooking"}, headers=host),
        422,
        "invalid-category",
    )
    _problem(client.post("/api/v1/shows", json={**SHOW, "id": "x"}, headers=host), 422, "validation-error")
    _problem(client.post("/api/v1/shows", json=SHOW, headers=host), 409, "show-exists")
    _problem(
        client.patch(f"/api/v1/episodes/{episode['id']}", json={"season": 0}, headers=host),
        422,
        "validation-error",
    )
    _problem(
        client.post(f"/api/v1/episodes/{episode['id']}/publish", json={}, headers=host),
        409,
        "episode-not-ready",
    )


def test_bad_trim_points_are_422(
    client: TestClient, host: dict[str, str], episode: dict, short_mp3: bytes
) -> None:
    url = f"/api/v1/episodes/{episode['id']}/media"
    _problem(client.put(url + "?start=banana", content=short_mp3, headers=host), 422, "invalid-timestamp")
    _problem(client.put(url + "?start=00:10:00", content=short_mp3, headers=host), 422, "invalid-trim")
    _problem(client.put(url + "?start=3&end=2", content=short_mp3, headers=host), 422, "invalid-trim")


def test_silent_upload_fails_the_job_and_keeps_the_original(
    client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path
) -> None:
    silent = write_speech_like(tmp_path / "silent.wav", 0.0, lead_silence=3.0)
    upload = client.put(f"/api/v1/episodes/{episode['id']}/media", content=silent.read_bytes(), headers=host)
    assert upload.status_code == 202, upload.text
    job = wait_job(client, upload.json(), host)
    assert job["status"] == "failed"
    assert job["error_code"] == "media-silent"
    assert job["error"]
    after = client.get(f"/api/v1/episodes/{episode['id']}", headers=host).json()
    assert after["status"] == "failed"
    assert after["media"] is None
    assert after["last_error"]


def test_nul_in_text_is_dropped_on_every_database(backend_client: TestClient, backend: Container) -> None:
    """PostgreSQL refuses NUL in text: a title with one is stored without it, not answered with a 500."""
    owner = new_user(backend, "owner")
    assert backend_client.post("/api/v1/shows", json=SHOW, headers=owner).status_code == 201
    patched = backend_client.patch("/api/v1/shows/test-show", json={"title": "a\x00b"}, headers=owner)
    assert patched.status_code == 200, patched.text
    assert patched.json()["title"] == "ab"
    episode = backend_client.post(
        "/api/v1/shows/test-show/episodes", json={"title": "x\x00y", "notes": "<p>\x00</p>"}, headers=owner
    )
    assert episode.status_code == 201, episode.text
    assert episode.json()["title"] == "xy"
