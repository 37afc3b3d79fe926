"""chapters_json: Podcasting 2.0 JSON chapters 1.2."""

from __future__ import annotations

import json

import pytest

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidInput
from media_pub.feeds import CHAPTERS_MIME, chapters_json


def test_structure_and_ascending_order():
    chapters = [
        Chapter(410.25, "Namespace", url="https://example.com/ns", image_url="https://example.com/ns.jpg"),
        Chapter(0.0, "Intro", end=168.0),
        Chapter(168, "Hearing Aids"),
    ]
    doc = json.loads(chapters_json(chapters, title="Episode 7", podcast_name="John's Podcast"))
    assert doc == {
        "version": "1.2.0",
        "title": "Episode 7",
        "podcastName": "John's Podcast",
        "chapters": [
            {"startTime": 0, "title": "Intro", "endTime": 168},
            {"startTime": 168, "title": "Hearing Aids"},
            {
                "startTime": 410.25,
                "title": "Namespace",
                "url": "https://example.com/ns",
                "img": "https://example.com/ns.jpg",
            },
        ],
    }
    starts = [c["startTime"] for c in doc["chapters"]]
    assert starts == sorted(starts)


def test_minimal_document_and_mime():
    assert CHAPTERS_MIME == "application/json+chapters"
    doc = json.loads(chapters_json([]))
    assert doc == {"version": "1.2.0", "chapters": []}


def test_output_is_utf8_and_text_is_cleaned():
    data = chapters_json([Chapter(1.5, "Café 😀 \x00\ud800ok")])
    assert "Café 😀 ok".encode() in data
    assert json.loads(data.decode("utf-8"))["chapters"][0] == {"startTime": 1.5, "title": "Café 😀 ok"}


def test_end_before_start_is_omitted():
    doc = json.loads(chapters_json([Chapter(10, "a", end=5)]))
    assert doc["chapters"] == [{"startTime": 10, "title": "a"}]


@pytest.mark.parametrize("start", [-1.0, float("nan"), float("inf")])
def test_invalid_start_is_rejected(start):
    with pytest.raises(InvalidInput) as exc:
        chapters_json([Chapter(start, "bad")])
    assert exc.value.code == "invalid-chapters"


def test_deterministic():
    chapters = [Chapter(5, "b"), Chapter(0, "a")]
    assert chapters_json(chapters) == chapters_json(list(reversed(chapters)))
