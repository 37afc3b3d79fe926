"""ID3 tags of the distribution MP3, written with mutagen: title, show, artwork, CHAP/CTOC chapters."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mutagen.id3 import (
    APIC,
    CHAP,
    COMM,
    CTOC,
    ID3,
    TALB,
    TDRC,
    TIT2,
    TPE1,
    WXXX,
    CTOCFlags,
    ID3NoHeaderError,
)

from media_pub.domain.values import Chapter

MAX_CHAPTERS = 500


@dataclass(frozen=True)
class TagInfo:
    """What goes into the ID3 tag of a rendition."""

    title: str
    show_title: str | None = None
    artist: str | None = None
    comment: str | None = None
    date: str | None = None
    artwork: bytes | None = None
    artwork_mime: str | None = None
    chapters: list[Chapter] = field(default_factory=list)


def _image_mime(data: bytes, declared: str | None) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    return declared or "image/jpeg"


def _chapter_spans(chapters: list[Chapter], duration: float) -> list[tuple[int, int, Chapter]]:
    """(start ms, end ms, chapter) in order; a missing end is the next start or the end of the audio."""
    ordered: list[Chapter] = []
    for chapter in sorted(chapters, key=lambda c: c.start):
        if chapter.start >= duration:
            continue  # past the end: nothing of it is in the file
        if ordered and round(ordered[-1].start * 1000) == round(chapter.start * 1000):
            ordered[-1] = chapter  # two marks on the same millisecond: the later one wins
            continue
        ordered.append(chapter)
    ordered = ordered[:MAX_CHAPTERS]
    end_ms = round(duration * 1000)
    spans = []
    for index, chapter in enumerate(ordered):
        start = max(0, round(chapter.start * 1000))
        following = round(ordered[index + 1].start * 1000) if index + 1 < len(ordered) else end_ms
        end = following if chapter.end is None else min(round(chapter.end * 1000), end_ms)
        spans.append((start, max(start, end), chapter))
    return spans


def write_id3(path: Path, tags: TagInfo, duration: float) -> None:
    """Replace the ID3v2.3 tag of `path`; a chapter without an end ends at the next one or `duration`."""
    id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    if tags.show_title:
        id3.add(TALB(encoding=3, text=tags.show_title))
    if tags.artist:
        id3.add(TPE1(encoding=3, text=tags.artist))
    if tags.comment:
        id3.add(COMM(encoding=3, lang="eng", desc="", text=tags.comment))
    if tags.date:
        id3.add(TDRC(encoding=3, text=tags.date))
    if tags.artwork:
        mime = _image_mime(tags.artwork, tags.artwork_mime)
        id3.add(APIC(encoding=3, mime=mime, type=3, desc="Cover", data=tags.artwork))
    ids = []
    for index, (start, end, chapter) in enumerate(_chapter_spans(tags.chapters, duration)):
        sub: list[Any] = [TIT2(encoding=3, text=chapter.title)]
        if chapter.url:
            sub.append(WXXX(encoding=3, desc="", url=chapter.url))
        element_id = f"chp{index}"
        ids.append(element_id)
        # Byte offsets 0xFFFFFFFF mean "unused": players seek by the millisecond times.
        id3.add(CHAP(element_id=element_id, start_time=start, end_time=end,
                     start_offset=0xFFFFFFFF, end_offset=0xFFFFFFFF, sub_frames=sub))  # fmt: skip
    if ids:
        id3.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids,
                     sub_frames=[TIT2(encoding=3, text="Chapters")]))  # fmt: skip
    with contextlib.suppress(ID3NoHeaderError):
        ID3(path).delete()
    # v2.3 rather than 2.4: some podcast apps and car stereos still read only 2.3 (CHAP/CTOC work in both).
    id3.save(path, v2_version=3)


def id3_chapters(found: ID3) -> list[Chapter]:
    """CHAP frames of a parsed tag, in the order of the top-level CTOC when there is one, else by start."""
    by_id = {chap.element_id: chap for chap in found.getall("CHAP")}
    order: list[str] = []
    for toc in found.getall("CTOC"):
        if toc.flags & CTOCFlags.TOP_LEVEL or not order:
            order = [i for i in toc.child_element_ids if i in by_id]
    frames = [by_id[i] for i in order] or list(by_id.values())
    frames = sorted(frames, key=lambda c: c.start_time)[:MAX_CHAPTERS]
    out: list[Chapter] = []
    for chap in frames:
        titles = chap.sub_frames.getall("TIT2")
        urls = chap.sub_frames.getall("WXXX")
        end = (
            chap.end_time
            if chap.end_time not in (None, 0xFFFFFFFF) and chap.end_time > chap.start_time
            else None
        )
        out.append(
            Chapter(
                start=chap.start_time / 1000,
                title=str(titles[0].text[0]).replace("\x00", " ")[:500] if titles and titles[0].text else "",
                end=None if end is None else end / 1000,
                url=str(urls[0].url)[:2000] if urls and urls[0].url else None,
            )
        )
    return out


def read_chapters(path: Path) -> list[Chapter]:
    """The ID3 CHAP chapters of `path`, in order (empty when it has no ID3 tag)."""
    try:
        return id3_chapters(ID3(path))
    except ID3NoHeaderError:
        return []
