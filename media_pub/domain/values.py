"""Small immutable values shared by media, feeds and services."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chapter:
    """A chapter mark in seconds from the start of the episode."""

    start: float
    title: str
    end: float | None = None
    url: str | None = None
    image_url: str | None = None


@dataclass(frozen=True)
class Loudness:
    """EBU R128 measurement: integrated loudness (LUFS), loudness range (LU), true peak (dBTP)."""

    integrated: float
    lra: float
    true_peak: float


def shift_chapters(chapters: list[Chapter], offset: float, duration: float) -> list[Chapter]:
    """Move chapters by -offset (seconds cut at the start) and drop or clamp those outside [0, duration]."""
    out: list[Chapter] = []
    for ch in sorted(chapters, key=lambda c: c.start):
        start = ch.start - offset
        end = None if ch.end is None else min(ch.end - offset, duration)
        if start >= duration or (end is not None and end <= 0):
            continue
        start = max(0.0, start)
        if out and out[-1].start == start:
            out[-1] = Chapter(start, ch.title, end, ch.url, ch.image_url)  # later mark wins the same instant
            continue
        out.append(
            Chapter(round(start, 3), ch.title, None if end is None else round(end, 3), ch.url, ch.image_url)
        )
    return out
