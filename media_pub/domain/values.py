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


Cuts = tuple[tuple[float, float], ...] | list[tuple[float, float]]


def map_time(seconds: float, offset: float, cuts: Cuts = ()) -> float:
    """Where a moment of the original lands in the output: less the lead cut and every inner cut before it.

    A moment inside a cut lands where the cut is (its start); one before the offset lands at 0 or below.
    """
    removed = 0.0
    for start, end in cuts:
        if seconds >= end:
            removed += end - start
        elif seconds > start:
            removed += seconds - start
    return seconds - offset - removed


def shift_chapters(
    chapters: list[Chapter], offset: float, duration: float, cuts: Cuts = (), lead: float = 0.0
) -> list[Chapter]:
    """Move chapters to the output timeline (see map_time), dropping or clamping those outside it.

    `lead` is what plays before the episode's own start (an intro): later chapters move by it, and one
    that began at the episode's start still begins at 0, so the intro belongs to the first chapter.
    """
    out: list[Chapter] = []
    for ch in sorted(chapters, key=lambda c: c.start):
        mapped = map_time(ch.start, offset, cuts)
        start = mapped + lead if mapped > 0 else mapped
        end = None if ch.end is None else min(map_time(ch.end, offset, cuts) + lead, duration)
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
