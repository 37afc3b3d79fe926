"""Transcripts: WebVTT, SRT and JSON uploads, the public forms apps fetch, and following the audio's edits."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from media_pub.bootstrap import Container
from media_pub.db.models import Episode, Transcript
from media_pub.db.uow import UnitOfWork
from media_pub.feeds.transcripts import parse_transcript
from media_pub.media.synth import write_speech_like
from media_pub.services.transcripts import feed_transcripts
from tests.conftest import SHOW, new_user
from tests.e2e.conftest import wait_job

VTT = b"""WEBVTT

00:00:04.500 --> 00:00:06.000
<v Ada>Hello there

00:00:07.000 --> 00:00:08.250
General Kenobi
"""
SRT = b"""1
00:00:01,000 --> 00:00:02,500
Eins

2
00:00:03,000 --> 00:00:04,000
Zwei
"""
JSON = json.dumps(
    {"version": "1.0.0", "segments": [{"speaker": "Ada", "startTime": 4.5, "endTime": 6, "body": "Bonjour"}]}
).encode()


def _episode(client: TestClient, host: dict[str, str], **fields: object) -> dict:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    created = client.post("/api/v1/shows/test-show/episodes", json={"title": "T", **fields}, headers=host)
    assert created.status_code == 201, created.text
    return created.json()


def _process(
    client: TestClient, container: Container, host: dict[str, str], ep: dict, tmp_path: Path
) -> float:
    """Upload 4 s of silence then 6 s of speech; returns the offset processing trimmed from the start."""
    clip = write_speech_like(tmp_path / "lead.wav", 6.0, lufs=-20, lead_silence=4.0, seed=11)
    job = client.put(f"/api/v1/episodes/{ep['id']}/media", content=clip.read_bytes(), headers=host)
    assert wait_job(client, job.json(), host)["status"] == "succeeded"
    assert container.queue.wait_idle(60)  # type: ignore[attr-defined]  # the handler's follow-up (re-shift)
    media = client.get(f"/api/v1/episodes/{ep['id']}", headers=host).json()["media"]
    offset = float(media["processing"]["offset"])
    assert offset == pytest.approx(3.75, abs=0.5), "the leading silence was trimmed"
    assert media["processing"]["cuts"] == []
    return offset


def ep_show_id(uow: UnitOfWork, ep: dict) -> str:
    return uow.session.get_one(Episode, ep["id"]).show_id


def _starts(body: bytes) -> list[float]:
    return [cue.start for cue in parse_transcript(body).cues]


def _put(
    client: TestClient,
    host: dict[str, str],
    ep: dict,
    language: str,
    body: bytes,
    *,
    params: dict[str, str] | None = None,
    content_type: str | None = None,
) -> httpx.Response:
    headers = {**host, **({"Content-Type": content_type} if content_type else {})}
    url = f"/api/v1/episodes/{ep['id']}/transcripts/{language}"
    return client.put(url, content=body, headers=headers, params=params)


def test_original_timeline_follows_the_trim_and_is_served_to_apps(
    client: TestClient, container: Container, host: dict[str, str], tmp_path: Path
) -> None:
    ep = _episode(client, host)
    # Made from the recording before it was processed: moved once processing has trimmed the start.
    early = _put(client, host, ep, "en", VTT, params={"timeline": "original", "captions": "true"},
                 content_type="text/vtt")  # fmt: skip
    assert early.status_code == 200, early.text
    assert early.json()["timeline"] == "original"
    assert client.get(f"/transcripts/{ep['id']}/en.vtt").status_code == 404, "not published yet"

    offset = _process(client, container, host, ep, tmp_path)
    assert client.post(f"/api/v1/episodes/{ep['id']}/publish", json={}, headers=host).status_code == 200

    vtt = client.get(f"/transcripts/{ep['id']}/en.vtt")
    assert vtt.status_code == 200
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8"
    assert vtt.headers["access-control-allow-origin"] == "*"
    assert vtt.content.startswith(b"WEBVTT")
    assert b"<v Ada>Hello there" in vtt.content
    assert _starts(vtt.content) == [
        pytest.approx(4.5 - offset, abs=0.0011),
        pytest.approx(7.0 - offset, abs=0.0011),
    ]
    as_json = client.get(f"/transcripts/{ep['id']}/en.json")
    assert as_json.headers["content-type"] == "application/json"
    assert as_json.headers["access-control-allow-origin"] == "*"
    segments = as_json.json()["segments"]
    assert segments[0]["speaker"] == "Ada"
    assert segments[0]["startTime"] == pytest.approx(4.5 - offset, abs=0.0011)

    # After processing, an original-timeline upload is moved at once; the default timeline is left as is.
    moved = _put(client, host, ep, "fr", JSON, params={"timeline": "original"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["format"] == "json"
    fr = client.get(f"/transcripts/{ep['id']}/fr.vtt")
    assert _starts(fr.content) == [pytest.approx(4.5 - offset, abs=0.0011)]
    assert _put(client, host, ep, "fr", JSON).json()["timeline"] == "published"
    assert client.get(f"/transcripts/{ep['id']}/fr.json").json()["segments"][0]["startTime"] == 4.5

    # What was uploaded is kept byte for byte, under the episode's keys, beside the two forms.
    with container.uow() as uow:
        row = uow.session.scalar(select(Transcript).where(Transcript.language == "en"))
        assert row is not None
        for key in (row.source_key, row.vtt_key, row.json_key):
            assert key.startswith(f"shows/{ep_show_id(uow, ep)}/episodes/{ep['id']}/transcript-en-"), key
        assert row.source_key.endswith(".vtt")
        assert "-upload-original-" in row.source_key
        assert container.storage.read_bytes(row.source_key) == VTT
        assert (row.source_format, row.captions, row.cues) == ("vtt", True, 2)
        en_keys = (row.source_key, row.vtt_key, row.json_key)
        links = feed_transcripts(uow, uow.session.get_one(Episode, ep["id"]))
    assert [(link.path, link.mime, link.language, link.captions) for link in links] == [
        (f"/transcripts/{ep['id']}/en.vtt", "text/vtt", "en", True),
        (f"/transcripts/{ep['id']}/en.json", "application/json", "en", False),
        (f"/transcripts/{ep['id']}/fr.vtt", "text/vtt", "fr", False),
        (f"/transcripts/{ep['id']}/fr.json", "application/json", "fr", False),
    ]

    # Supporters' episodes are not public, nor their transcripts; a removed transcript is gone.
    client.patch(f"/api/v1/episodes/{ep['id']}", json={"supporter_only": True}, headers=host)
    assert client.get(f"/transcripts/{ep['id']}/en.vtt").status_code == 404
    client.patch(f"/api/v1/episodes/{ep['id']}", json={"supporter_only": False}, headers=host)
    assert client.get(f"/transcripts/{ep['id']}/en.vtt").status_code == 200
    assert client.delete(f"/api/v1/episodes/{ep['id']}/transcripts/en", headers=host).status_code == 204
    assert client.get(f"/transcripts/{ep['id']}/en.vtt").status_code == 404
    assert not any(container.storage.exists(key) for key in en_keys)
    listed = client.get(f"/api/v1/episodes/{ep['id']}/transcripts", headers=host).json()
    assert [t["language"] for t in listed] == ["fr"]


def test_vtt_srt_and_json_uploads_raw_and_multipart(backend: Container, backend_client: TestClient) -> None:
    """On every backend (S3 storage, PostgreSQL): stored, listed, replaced, deleted."""
    client, host = backend_client, new_user(backend, "host")
    ep = _episode(client, host)
    raw = _put(client, host, ep, "en-US", VTT, content_type="text/vtt")
    assert raw.status_code == 200, raw.text
    form = client.put(
        f"/api/v1/episodes/{ep['id']}/transcripts/de",
        files={"file": ("untertitel.srt", SRT, "application/x-subrip")},
        headers=host,
    )
    assert form.status_code == 200, form.text
    as_json = _put(client, host, ep, "fr", JSON, content_type="application/json")
    assert as_json.status_code == 200, as_json.text
    listed = client.get(f"/api/v1/episodes/{ep['id']}/transcripts", headers=host).json()
    assert [(t["language"], t["format"], t["cues"], t["timeline"]) for t in listed] == [
        ("de", "srt", 2, "published"),
        ("en-us", "vtt", 2, "published"),
        ("fr", "json", 1, "published"),
    ]
    assert listed[0]["vtt_url"] == f"http://testserver/transcripts/{ep['id']}/de.vtt"
    with backend.uow() as uow:
        row = uow.session.scalar(select(Transcript).where(Transcript.language == "de"))
        assert row is not None
        assert backend.storage.read_bytes(row.source_key) == SRT
        assert parse_transcript(backend.storage.read_bytes(row.vtt_key)).cues[1].text == "Zwei"
        keys = (row.source_key, row.vtt_key, row.json_key)
    assert client.delete(f"/api/v1/episodes/{ep['id']}/transcripts/de", headers=host).status_code == 204
    assert not any(backend.storage.exists(key) for key in keys)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"WEBVTT\n\n00:00:01.000 --> 00:00:02,000\nHi\n", "line 3 (cue 1)"),
        (b"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:00,500 --> 00:00:03,000\nB\n", "line 6 (cue 2)"),
        (b'{"segments": [{"startTime": 1, "body": "a"}, {"body": "b"}]}', "segment 2"),
        (b"<html><body>not a transcript</body></html>", "line 1"),
    ],
)
def test_invalid_transcripts_name_the_place_at_fault(
    client: TestClient, host: dict[str, str], body: bytes, where: str
) -> None:
    ep = _episode(client, host)
    response = _put(client, host, ep, "en", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid-transcript"
    assert response.json()["detail"].startswith(where)
    assert client.get(f"/api/v1/episodes/{ep['id']}/transcripts", headers=host).json() == []


def test_bad_language_timeline_and_missing_transcripts(client: TestClient, host: dict[str, str]) -> None:
    ep = _episode(client, host)
    bad = _put(client, host, ep, "english!", VTT)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid-language")
    timeline = _put(client, host, ep, "en", VTT, params={"timeline": "later"})
    assert (timeline.status_code, timeline.json()["code"]) == (422, "validation-error")
    gone = client.delete(f"/api/v1/episodes/{ep['id']}/transcripts/en", headers=host)
    assert (gone.status_code, gone.json()["code"]) == (404, "transcript-not-found")
    assert client.get("/transcripts/nope/en.vtt").status_code == 404
    assert client.put(f"/api/v1/episodes/{ep['id']}/transcripts/en", content=VTT).status_code == 401
