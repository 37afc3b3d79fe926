"""Tags of every rendition, with mutagen: ID3 in the MP3, iTunes atoms in the M4A, Vorbis comments in Opus.

Each writer replaces the whole tag: title, show, artist, date, comment, artwork and chapters. Only the tag
changes, never the audio packets (the tests decode before and after).
"""

from __future__ import annotations

import base64
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import av
from mutagen import MutagenError
from mutagen.flac import Picture
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
from mutagen.mp4 import MP4, MP4Cover
from mutagen.oggopus import OggOpus

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media._av import open_input

if TYPE_CHECKING:
    from av.container.core import Chapter as AvChapter  # a TypedDict of PyAV's stubs only

MAX_CHAPTERS = 500
# Nero `chpl` (what mutagen reads) stores the chapter count and each title's length in one byte.
MP4_MAX_CHAPTERS = 255
MP4_MAX_TITLE_BYTES = 255

RenditionKind = Literal["mp3", "m4a", "opus"]
SUFFIX_KINDS: dict[str, RenditionKind] = {
    ".mp3": "mp3", ".m4a": "m4a", ".m4b": "m4a", ".mp4": "m4a", ".opus": "opus", ".ogg": "opus",
}  # fmt: skip


@dataclass(frozen=True)
class TagInfo:
    """What goes into the tag of a rendition (ID3, MP4 atoms or Vorbis comments)."""

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


@contextlib.contextmanager
def _media_errors(path: Path) -> Iterator[None]:
    """Translate mutagen's and FFmpeg's errors into InvalidMedia (a damaged file or one of another format)."""
    try:
        yield
    except (MutagenError, av.error.FFmpegError) as error:
        raise InvalidMedia(f"cannot tag {path.name}: {error}", code="tags-unwritable") from error


def _utf8_prefix(text: str, limit: int) -> str:
    """The longest prefix of `text` that is at most `limit` bytes of UTF-8, never cut inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


def mp4_chapters(chapters: list[Chapter], duration: float) -> list[AvChapter]:
    """Chapters for FFmpeg's MP4 muxer (`OutputContainer.set_chapters`), within what `chpl` can hold."""
    spans = _chapter_spans(chapters, duration)[:MP4_MAX_CHAPTERS]
    return [
        {
            "id": index + 1,
            "start": start,
            "end": end,
            "time_base": Fraction(1, 1000),
            "metadata": {"title": _utf8_prefix(chapter.title, MP4_MAX_TITLE_BYTES)},
        }
        for index, (start, end, chapter) in enumerate(spans)
    ]


def _remux_mp4_chapters(path: Path, chapters: list[AvChapter]) -> None:
    """Copy the audio (and video) packets of `path` into a new MP4 that has `chapters` (none: no chapters).

    FFmpeg's muxer writes the chapters twice: as a QuickTime chapter text track (what Apple's players
    read) and as a Nero `chpl` atom (mutagen, FFmpeg and most others). Packets are copied, not re-encoded,
    and the encoder delay survives as the edit list, so the decoded audio is the same sample for sample.
    The old chapter track and cover-art streams are not copied: the new chapters and mutagen's `covr`
    replace them.
    """
    part = path.with_name(path.name + ".chapters.part")
    try:
        with open_input(path) as source:
            audio = list(source.streams.audio)
            if not audio:
                raise InvalidMedia(f"{path.name} has no audio stream", code="tags-unwritable")
            cover = av.stream.Disposition.attached_pic
            video = [stream for stream in source.streams.video if not stream.disposition & cover]
            fmt = "mp4" if video else "ipod"  # ipod: the M4A brand that Apple's players expect of audio
            # faststart: moov before mdat, so players can start before the whole file has arrived.
            with av.open(str(part), "w", format=fmt, options={"movflags": "+faststart"}) as output:
                copied = [*video, *audio]
                streams = {stream.index: output.add_stream_from_template(stream) for stream in copied}
                output.set_chapters(chapters)
                for packet in source.demux(copied):
                    if packet.dts is None:
                        continue  # the demuxer's empty end-of-stream packet
                    packet.stream = streams[packet.stream.index]
                    output.mux(packet)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _has_mp4_chapters(path: Path) -> bool:
    with open_input(path) as container:
        return bool(container.chapters())


def write_mp4_tags(path: Path, tags: TagInfo, duration: float) -> None:
    """Replace the iTunes metadata (`moov.udta.meta.ilst`) of the M4A `path`, and its chapters.

    Atoms: ©nam title, ©alb show, ©ART and aART artist, ©day date, ©cmt comment, covr artwork. No `stik`:
    none of its known values (Movie, Normal, Audiobook, TV Show...) means a podcast episode, and iTunes
    marked episodes it downloaded with `pcst` and the feed URL, which are the podcast app's to set.

    mutagen reads MP4 chapters but cannot write them, so when there are chapters to write (or old ones to
    remove) the packets are first remuxed by FFmpeg, which writes a QuickTime chapter track and a Nero
    `chpl` atom; mutagen then writes the atoms. MP4 chapters carry a start and a title only: no URLs or
    images (the feed's chapters JSON has those), at most 255 of them and titles cut to 255 bytes of UTF-8.

    Raises:
        InvalidMedia: `path` is not an MP4 file with an audio stream.
    """
    path = Path(path)
    with _media_errors(path):
        MP4(path)  # not an MP4 at all: fail before remuxing anything
        chapters = mp4_chapters(tags.chapters, duration)
        if chapters or _has_mp4_chapters(path):
            _remux_mp4_chapters(path, chapters)
        mp4 = MP4(path)
        if mp4.tags is None:
            mp4.add_tags()
        assert mp4.tags is not None
        mp4.tags.clear()
        fields = {
            "\xa9nam": tags.title,
            "\xa9alb": tags.show_title,
            "\xa9ART": tags.artist,
            "aART": tags.artist,
            "\xa9day": tags.date,
            "\xa9cmt": tags.comment,
        }
        for key, value in fields.items():
            if value:
                mp4.tags[key] = [value]
        if tags.artwork:
            png = _image_mime(tags.artwork, tags.artwork_mime) == "image/png"
            imageformat = MP4Cover.FORMAT_PNG if png else MP4Cover.FORMAT_JPEG
            mp4.tags["covr"] = [MP4Cover(tags.artwork, imageformat=imageformat)]
        mp4.save()


def _vorbis_time(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _vorbis_picture(data: bytes, declared: str | None) -> str:
    """A FLAC picture block (front cover), base64: the METADATA_BLOCK_PICTURE value of Ogg files."""
    picture = Picture()
    picture.type = 3
    picture.mime = _image_mime(data, declared)
    picture.desc = "Cover"
    picture.data = data
    # Width, height and depth stay 0 ("unknown"): players decode the image itself to show it.
    return base64.b64encode(picture.write()).decode("ascii")


def write_opus_tags(path: Path, tags: TagInfo, duration: float) -> None:
    """Replace the Vorbis comments of the Ogg Opus file `path`.

    TITLE, ALBUM (show), ARTIST, DATE, COMMENT, METADATA_BLOCK_PICTURE (front cover) and chapters in the
    Vorbis chapter extension: CHAPTER000=HH:MM:SS.mmm, CHAPTER000NAME, CHAPTER000URL. That extension has
    no chapter ends: a chapter ends where the next one starts.

    Raises:
        InvalidMedia: `path` is not an Ogg Opus file.
    """
    path = Path(path)
    with _media_errors(path):
        opus = OggOpus(path)
        assert opus.tags is not None  # an Opus stream always has its comment header
        opus.tags.clear()
        fields = {
            "TITLE": tags.title,
            "ALBUM": tags.show_title,
            "ARTIST": tags.artist,
            "DATE": tags.date,
            "COMMENT": tags.comment,
        }
        for key, value in fields.items():
            if value:
                opus.tags[key] = [value]
        if tags.artwork:
            opus.tags["METADATA_BLOCK_PICTURE"] = [_vorbis_picture(tags.artwork, tags.artwork_mime)]
        for index, (start, _end, chapter) in enumerate(_chapter_spans(tags.chapters, duration)):
            key = f"CHAPTER{index:03d}"
            opus.tags[key] = [_vorbis_time(start)]
            if chapter.title:
                opus.tags[key + "NAME"] = [chapter.title]
            if chapter.url:
                opus.tags[key + "URL"] = [chapter.url]
        opus.save()


def write_tags(path: Path, tags: TagInfo, duration: float, *, kind: RenditionKind | None = None) -> None:
    """Write the tag of one rendition: ID3 for "mp3", iTunes atoms for "m4a", Vorbis comments for "opus".

    Without `kind`, the file's suffix decides (.mp3; .m4a, .m4b, .mp4; .opus, .ogg).

    Raises:
        InvalidInput: no `kind` and an unknown suffix, or an unknown `kind`.
        InvalidMedia: the file is not of that kind, or is damaged.
    """
    path = Path(path)
    chosen = kind or SUFFIX_KINDS.get(path.suffix.lower())
    if chosen == "mp3":
        with _media_errors(path):
            write_id3(path, tags, duration)
    elif chosen == "m4a":
        write_mp4_tags(path, tags, duration)
    elif chosen == "opus":
        write_opus_tags(path, tags, duration)
    else:
        what = f"kind {kind!r}" if kind else f"the suffix {path.suffix!r}"
        raise InvalidInput(f"cannot tag {path.name}: {what} is not mp3, m4a or opus", code="tags-kind")
