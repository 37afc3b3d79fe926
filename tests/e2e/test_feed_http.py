"""Feed serving: validators, 304s, gzip, scheduled publishing, well-formedness under hostile text."""

from __future__ import annotations

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import podcastparser
import pytest
from fastapi.testclient import TestClient
from lxml import etree

from media_pub.bootstrap import Container
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW
from tests.e2e.conftest import wait_job

HOSTILE = "Q&A <script>alert(1)</script> ]]> \x00\x01\x07\x1b end & more <b>bold</b> \u2028 ok \U0001f399"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_speech_like(tmp_path_factory.mktemp("clip") / "clip.wav", 3.0, lufs=-20).read_bytes()


def _ready_episode(
    client: TestClient, host: dict[str, str], clip: bytes, title: str, notes: str = ""
) -> dict:
    ep = client.post("/api/v1/shows/test-show/episodes", json={"title": title, "notes": notes}, headers=host)
    assert ep.status_code == 201, ep.text
    upload = client.put(f"/api/v1/episodes/{ep.json()['id']}/media", content=clip, headers=host)
    assert wait_job(client, upload.json(), host)["status"] == "succeeded"
    return ep.json()


@pytest.fixture
def show(client: TestClient, host: dict[str, str]) -> None:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201


def test_conditional_get_and_gzip(client: TestClient, host: dict[str, str], show: None, clip: bytes) -> None:
    first = client.get("/feeds/test-show.xml")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"')
    assert modified.endswith("GMT")
    assert client.get("/feeds/test-show.xml", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/feeds/test-show.xml", headers={"If-Modified-Since": modified}).status_code == 304
    not_mod = client.get("/feeds/test-show.xml", headers={"If-None-Match": etag})
    assert not_mod.content == b""
    assert not_mod.headers["etag"] == etag

    raw = client.get("/feeds/test-show.xml", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == first.content  # httpx decodes it
    plain = client.get("/feeds/test-show.xml", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers

    ep = _ready_episode(client, host, clip, "News")
    client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    changed = client.get("/feeds/test-show.xml", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    # Unchanged content keeps the same validators across requests.
    assert client.get("/feeds/test-show.xml").headers["etag"] == changed.headers["etag"]


def test_hostile_text_keeps_the_feed_well_formed(
    client: TestClient, host: dict[str, str], show: None, clip: bytes
) -> None:
    # A lone surrogate is not text: refused with a clear error rather than stored.
    surrogate = json.dumps({"title": "bad \ud800"})
    refused = client.patch(
        "/api/v1/shows/test-show", content=surrogate, headers={**host, "Content-Type": "application/json"}
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "validation-error"
    patched = client.patch(
        "/api/v1/shows/test-show", json={"title": HOSTILE, "description": HOSTILE}, headers=host
    )
    assert patched.status_code == 200, patched.text
    ep = _ready_episode(client, host, clip, HOSTILE, notes=f"<p>{HOSTILE}</p><a href='javascript:x'>x</a>")
    client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    body = client.get("/feeds/test-show.xml").content
    etree.fromstring(body, etree.XMLParser(recover=False))
    assert b"<script>" not in body
    assert b"javascript:" not in body
    parsed = podcastparser.parse("x", io.BytesIO(body))
    assert parsed["episodes"][0]["title"].startswith("Q&A")
    assert not feedparser.parse(body).bozo


def test_scheduled_episode_goes_out_by_itself(
    container: Container, client: TestClient, host: dict[str, str], show: None, clip: bytes
) -> None:
    ep = _ready_episode(client, host, clip, "Later")
    at = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    scheduled = client.post(f"/api/v1/episodes/{ep['id']}/publish", json={"at": at}, headers=host).json()
    assert scheduled["status"] == "ready"
    assert scheduled["publish_at"]
    assert podcastparser.parse("x", io.BytesIO(client.get("/feeds/test-show.xml").content))["episodes"] == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # no request: the scheduler thread publishes it
        if client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()["status"] == "published":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the scheduled episode was not published")
    assert (
        len(podcastparser.parse("x", io.BytesIO(client.get("/feeds/test-show.xml").content))["episodes"]) == 1
    )


def test_media_head_and_ranges(client: TestClient, host: dict[str, str], show: None, clip: bytes) -> None:
    ep = _ready_episode(client, host, clip, "Ranges")
    url = client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()["media"]["url"]
    path = url.removeprefix("http://testserver")
    assert client.get(path).status_code == 404, "unpublished media is not public"
    client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    full = client.get(path)
    size = len(full.content)
    assert full.headers["content-type"] == "audio/mpeg"
    assert full.headers["accept-ranges"] == "bytes"
    assert full.headers["x-content-type-options"] == "nosniff"
    head = client.head(path)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == size
    part = client.get(path, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == full.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    suffix = client.get(path, headers={"Range": "bytes=-5"})
    assert suffix.status_code == 206
    assert suffix.content == full.content[-5:]
    past = client.get(path, headers={"Range": f"bytes={size + 10}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"


def test_tokens_are_stored_hashed(container: Container, host: dict[str, str]) -> None:
    token = host["Authorization"].split()[1]
    with container.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT prefix, token_hash FROM api_tokens")).all()
    assert rows
    assert all(token not in f"{p}{h}" for p, h in rows)
    dump = (Path(container.settings.data_dir) / "media_pub.db").read_bytes()
    assert token.encode() not in dump


def test_waveform_for_editors_and_players(
    client: TestClient, host: dict[str, str], show: None, clip: bytes
) -> None:
    ep = _ready_episode(client, host, clip, "Peaks")
    private = client.get(f"/api/v1/episodes/{ep['id']}/waveform", headers=host)
    assert private.status_code == 200
    peaks = private.json()
    assert peaks["version"] == 2
    assert peaks["channels"] == 1
    assert peaks["length"] * 2 == len(peaks["data"])
    assert max(peaks["data"]) > 20, "speech shows in the peaks"
    assert client.get(f"/waveforms/{ep['id']}.json").status_code == 404, "not public before publishing"
    client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host)
    public = client.get(f"/waveforms/{ep['id']}.json")
    assert public.status_code == 200
    assert public.headers["access-control-allow-origin"] == "*"
    assert public.json() == peaks
