"""Podcasting 2.0 JSON chapters (version 1.2) rendering."""

from __future__ import annotations

import json
import math
from typing import Any

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidInput
from media_pub.feeds.sanitize import clean_text

CHAPTERS_MIME = "application/json+chapters"
CHAPTERS_VERSION = "1.2.0"


def _seconds(value: float) -> float | int:
    """A JSON-friendly time: millisecond precision, integral values written without a fraction."""
    rounded = round(float(value), 3)
    return int(rounded) if rounded.is_integer() else rounded


def chapters_json(
    chapters: list[Chapter], *, title: str | None = None, podcast_name: str | None = None
) -> bytes:
    """Render chapters as Podcasting 2.0 JSON chapters 1.2 (UTF-8), sorted by ascending startTime."""
    entries: list[dict[str, Any]] = []
    for ch in sorted(chapters, key=lambda c: c.start):  # stable: equal starts keep their input order
        if not math.isfinite(ch.start) or ch.start < 0:
            raise InvalidInput(
                f"chapter start must be a finite number of seconds >= 0, got {ch.start!r}",
                code="invalid-chapters",
            )
        entry: dict[str, Any] = {"startTime": _seconds(ch.start), "title": clean_text(ch.title)}
        if ch.end is not None and math.isfinite(ch.end) and ch.end > ch.start:
            entry["endTime"] = _seconds(ch.end)
        if ch.url:
            entry["url"] = clean_text(ch.url)
        if ch.image_url:
            entry["img"] = clean_text(ch.image_url)
        entries.append(entry)
    doc: dict[str, Any] = {"version": CHAPTERS_VERSION}
    if title:
        doc["title"] = clean_text(title)
    if podcast_name:
        doc["podcastName"] = clean_text(podcast_name)
    doc["chapters"] = entries
    return json.dumps(doc, ensure_ascii=False, allow_nan=False, indent=2).encode("utf-8")
