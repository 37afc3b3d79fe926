"""ID3 tags of the distribution MP3, written with mutagen: title, show, artwork, CHAP/CTOC chapters."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from mutagen.id3 import APIC, CHAP, COMM, CTOC, ID3, TALB, TDRC, TIT2, TPE1, WXXX, CTOCFlags, ID3NoHeaderError

from media_pub.domain.values import Chapter


@dataclass(frozen=True)
class TagInfo:
    title: str
    show_title: str | None = None
    artist: str | None = None
    comment: str | None = None
    date: str | None = None
    artwork: bytes | None = None
    artwork_mime: str | None = None
    chapters: list[Chapter] = field(default_factory=list)


def write_id3(path: Path, tags: TagInfo, duration: float) -> None:
    """Replace the ID3 tag of `path` with `tags`; chapter ends default to the next start or `duration`."""
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
        id3.add(
            APIC(encoding=3, mime=tags.artwork_mime or "image/jpeg", type=3, desc="Cover", data=tags.artwork)
        )
    chapters = sorted(tags.chapters, key=lambda c: c.start)
    ids = []
    for index, chapter in enumerate(chapters):
        end = chapter.end if chapter.end is not None else (
            chapters[index + 1].start if index + 1 < len(chapters) else duration
        )  # fmt: skip
        sub = [TIT2(encoding=3, text=chapter.title)]
        if chapter.url:
            sub.append(WXXX(encoding=3, desc="", url=chapter.url))
        element_id = f"chp{index}"
        ids.append(element_id)
        id3.add(CHAP(element_id=element_id, start_time=round(chapter.start * 1000),
                     end_time=round(min(end, duration) * 1000), sub_frames=sub))  # fmt: skip
    if ids:
        id3.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids,
                     sub_frames=[TIT2(encoding=3, text="Chapters")]))  # fmt: skip
    with contextlib.suppress(ID3NoHeaderError):
        ID3(path).delete()
    id3.save(path, v2_version=3)


def read_chapters(path: Path) -> list[Chapter]:
    """The ID3 CHAP chapters of `path`, in order."""
    try:
        id3 = ID3(path)
    except ID3NoHeaderError:
        return []
    out = []
    for chap in sorted(id3.getall("CHAP"), key=lambda c: c.start_time):
        title = str(chap.sub_frames["TIT2"]) if "TIT2" in chap.sub_frames else ""
        url = chap.sub_frames["WXXX"].url if "WXXX" in chap.sub_frames else None
        out.append(Chapter(start=chap.start_time / 1000, title=title, end=chap.end_time / 1000, url=url))
    return out
