"""Rendition tags: ID3v2.3 with CHAP/CTOC in the MP3, iTunes atoms in the M4A, Vorbis comments in Opus."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream
from mutagen.flac import Picture
from mutagen.id3 import ID3, CTOCFlags
from mutagen.mp4 import MP4, Atoms, MP4Cover
from mutagen.oggopus import OggOpus, OggOpusVComment

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media.tags import (
    MP4_MAX_CHAPTERS,
    RenditionKind,
    TagInfo,
    read_chapters,
    write_id3,
    write_mp4_tags,
    write_opus_tags,
    write_tags,
)
from tests.unit.media.helpers import mux_stereo


@pytest.fixture
def mp3(speech: dict[str, Path], tmp_path: Path) -> Path:
    return Path(shutil.copy(speech["mp3"], tmp_path / "episode.mp3"))


def test_frames_written(mp3: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    write_id3(
        mp3,
        TagInfo(title="Ep 1", show_title="Show", artist="Host", comment="About", date="2024",
                artwork=png, artwork_mime="image/jpeg"),
        6.0,
    )  # fmt: skip
    tag = ID3(mp3)
    assert tag.version[:2] == (2, 3)
    assert str(tag["TIT2"]) == "Ep 1"
    assert str(tag["TALB"]) == "Show"
    assert str(tag["TPE1"]) == "Host"
    assert str(tag["TDRC"]) == "2024"
    assert tag.getall("COMM")[0].text == ["About"]
    cover = tag.getall("APIC")[0]
    assert cover.type == 3
    assert cover.data == png
    assert cover.mime == "image/png", "the MIME type comes from the bytes, not the caller's guess"
    assert not tag.getall("CHAP")
    assert not tag.getall("CTOC")


def test_chapters_end_at_next_start_or_duration(mp3: Path) -> None:
    chapters = [
        Chapter(3.0, "Second", url="https://example.com/2"),
        Chapter(0.0, "First"),
        Chapter(4.5, "Third", end=5.0),
        Chapter(9.0, "After the end"),
    ]
    write_id3(mp3, TagInfo(title="t", chapters=chapters), 6.0)
    assert read_chapters(mp3) == [
        Chapter(0.0, "First", 3.0),
        Chapter(3.0, "Second", 4.5, "https://example.com/2"),
        Chapter(4.5, "Third", 5.0),
    ]
    tag = ID3(mp3)
    (toc,) = tag.getall("CTOC")
    assert toc.flags & CTOCFlags.TOP_LEVEL
    assert toc.flags & CTOCFlags.ORDERED
    assert toc.child_element_ids == ["chp0", "chp1", "chp2"]


def test_rewriting_replaces_the_old_tag(mp3: Path) -> None:
    write_id3(mp3, TagInfo(title="old", artist="gone", chapters=[Chapter(0, "a"), Chapter(1, "b")]), 6.0)
    size_before = mp3.stat().st_size
    write_id3(mp3, TagInfo(title="new"), 6.0)
    tag = ID3(mp3)
    assert str(tag["TIT2"]) == "new"
    assert "TPE1" not in tag
    assert read_chapters(mp3) == []
    assert mp3.stat().st_size <= size_before


def test_no_tag_means_no_chapters(speech: dict[str, Path]) -> None:
    assert read_chapters(speech["wav"]) == []


# --- every rendition: M4A (iTunes atoms) and Ogg Opus (Vorbis comments), through write_tags ---

SECONDS = 3.0
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
FULL = TagInfo(
    title="Épisode 12 — 🎙️ 播客",
    show_title="Show 中文 🎧",
    artist="Hôte & Guest",
    comment="Line one\nline two ✨",
    date="2024-05-01",
    artwork=PNG,
    artwork_mime="image/jpeg",
)
MANY = [Chapter(i * 0.07, f"Kapitel {i} 第{i}章 🎉", url=f"https://example.com/{i}" if i % 2 else None)
        for i in range(40)]  # fmt: skip
CHAPTER_LISTS = {"none": [], "one": [Chapter(0.0, "Only 🦄")], "many": MANY}


def _encode(path: Path, fmt: str, codec: str, options: dict[str, str] | None = None) -> Path:
    """SECONDS of a 440 Hz stereo tone at 48 kHz, encoded by FFmpeg through PyAV."""
    total = round(SECONDS * 48000)
    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(total) / 48000)).astype(np.float32)
    with av.open(str(path), "w", format=fmt, options=options or {}) as container:
        stream = container.add_stream(codec, rate=48000)
        assert isinstance(stream, AudioStream)
        stream.codec_context.layout = "stereo"
        mux_stereo(container, stream, tone)
    return path


@pytest.fixture(scope="module")
def renditions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three renditions; "m4a" has its moov first (faststart, as process.py writes), "m4a-tail" last."""
    folder = tmp_path_factory.mktemp("renditions")
    return {
        "mp3": _encode(folder / "tone.mp3", "mp3", "libmp3lame"),
        "m4a": _encode(folder / "tone.m4a", "ipod", "aac", {"movflags": "+faststart"}),
        "m4a-tail": _encode(folder / "tail.m4a", "ipod", "aac"),
        "opus": _encode(folder / "tone.opus", "ogg", "libopus"),
    }


@pytest.fixture
def copy_of(renditions: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def copy(name: str) -> Path:
        source = renditions[name]
        return Path(shutil.copy(source, tmp_path / f"{name}{source.suffix}"))

    return copy


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)


def _ffmpeg_tags(path: Path) -> dict[str, str]:
    """What FFmpeg shows players: container metadata, plus the audio stream's (where Ogg keeps it).

    Keys are lowercased: Ogg keeps the comment's case, and FFmpeg looks keys up ignoring case.
    """
    with av.open(str(path)) as container:
        found = {**container.metadata, **container.streams.audio[0].metadata}
    return {key.lower(): value for key, value in found.items()}


def _ffmpeg_chapters(path: Path) -> list[tuple[int, int, str]]:
    with av.open(str(path)) as container:
        chapters = container.chapters()
    out = []
    for ch in chapters:
        assert ch["time_base"] is not None
        ms = ch["time_base"] * 1000
        out.append((round(ch["start"] * ms), round(ch["end"] * ms), ch["metadata"].get("title", "")))
    return out


def _comments(path: Path) -> OggOpusVComment:
    comments = OggOpus(path).tags
    assert comments is not None
    return comments


def _has_quicktime_chapter_track(path: Path) -> bool:
    with path.open("rb") as fileobj:
        atoms = Atoms(fileobj)
        for trak in atoms[b"moov"].findall(b"trak"):
            for tref in trak.findall(b"tref"):
                ok, data = tref.read(fileobj)
                if ok and b"chap" in data:
                    return True
    return False


@pytest.mark.parametrize("name", ["mp3", "m4a", "m4a-tail", "opus"])
def test_tagging_leaves_the_audio_alone(name: str, copy_of: Callable[[str], Path]) -> None:
    path = copy_of(name)
    before = _decoded(path)
    long_title = "Ünïcödé 🎙️ 長い題名 " * 300
    tags = replace(FULL, title=long_title, comment="c" * 20_000, chapters=MANY)
    write_tags(path, tags, SECONDS)  # the kind comes from the suffix
    after = _decoded(path)
    assert after.shape == before.shape
    assert np.array_equal(after, before)
    assert _ffmpeg_tags(path)["title"] == long_title
    assert len(_ffmpeg_chapters(path)) == len(MANY)


def test_mp4_atoms(copy_of: Callable[[str], Path]) -> None:
    path = copy_of("m4a")
    write_mp4_tags(path, FULL, SECONDS)
    tags = MP4(path).tags
    assert tags is not None
    assert tags["\xa9nam"] == [FULL.title]
    assert tags["\xa9alb"] == [FULL.show_title]
    assert tags["\xa9ART"] == tags["aART"] == [FULL.artist]
    assert tags["\xa9day"] == ["2024-05-01"]
    assert tags["\xa9cmt"] == [FULL.comment]
    (cover,) = tags["covr"]
    assert bytes(cover) == PNG
    assert cover.imageformat == MP4Cover.FORMAT_PNG, "the format comes from the bytes, not the caller's guess"
    assert "stik" not in tags
    seen = _ffmpeg_tags(path)
    assert (seen["title"], seen["album"], seen["artist"], seen["album_artist"]) == (
        FULL.title, FULL.show_title, FULL.artist, FULL.artist,
    )  # fmt: skip
    assert (seen["date"], seen["comment"]) == ("2024-05-01", FULL.comment)
    assert seen["major_brand"].strip() == "M4A", "still an iPod/iTunes M4A"


def test_mp4_jpeg_cover(copy_of: Callable[[str], Path]) -> None:
    path = copy_of("m4a")
    write_mp4_tags(path, TagInfo(title="t", artwork=JPEG, artwork_mime="image/png"), SECONDS)
    tags = MP4(path).tags
    assert tags is not None
    (cover,) = tags["covr"]
    assert cover.imageformat == MP4Cover.FORMAT_JPEG
    assert bytes(cover) == JPEG


@pytest.mark.parametrize("layout", ["m4a", "m4a-tail"])
@pytest.mark.parametrize("count", CHAPTER_LISTS)
def test_mp4_chapters(count: str, layout: str, copy_of: Callable[[str], Path]) -> None:
    path = copy_of(layout)
    chapters = CHAPTER_LISTS[count]
    before = _decoded(path)
    write_mp4_tags(path, replace(FULL, chapters=chapters), SECONDS)
    starts = [round(c.start * 1000) for c in chapters]
    ends = [*starts[1:], round(SECONDS * 1000)][: len(starts)]
    titles = [c.title for c in chapters]
    found = MP4(path).chapters
    assert [(round(c.start * 1000), c.title) for c in found or []] == list(zip(starts, titles, strict=True))
    assert _ffmpeg_chapters(path) == list(zip(starts, ends, titles, strict=True))
    assert _has_quicktime_chapter_track(path) == bool(chapters), "Apple's players read the chapter track"
    assert np.array_equal(_decoded(path), before)
    tags = MP4(path).tags
    assert tags is not None
    assert tags["\xa9nam"] == [FULL.title]


def test_mp4_chapter_limits(copy_of: Callable[[str], Path]) -> None:
    path = copy_of("m4a")
    title = "🎙" * 100  # 400 bytes of UTF-8: more than chpl's 255
    chapters = [Chapter(i * 0.01, f"{i}{title}") for i in range(300)]
    write_mp4_tags(path, TagInfo(title="t", chapters=chapters), SECONDS)
    found = MP4(path).chapters  # a title cut inside a character would make mutagen refuse the file
    assert found is not None
    assert len(found) == MP4_MAX_CHAPTERS
    assert all(len(c.title.encode()) <= 255 for c in found)
    assert found[7].title == ("7" + title).encode()[:255].decode(errors="ignore")
    assert len(_ffmpeg_chapters(path)) == MP4_MAX_CHAPTERS


@pytest.mark.parametrize("name", ["m4a", "opus"])
def test_rewriting_replaces_every_tag(name: str, copy_of: Callable[[str], Path]) -> None:
    path = copy_of(name)
    write_tags(path, replace(FULL, chapters=MANY), SECONDS)
    write_tags(path, TagInfo(title="new", artist="", comment=None), SECONDS)
    assert _ffmpeg_chapters(path) == []
    if name == "m4a":
        assert MP4(path).chapters is None
        assert not _has_quicktime_chapter_track(path)
        tags = MP4(path).tags
        assert tags is not None
        assert dict(tags) == {"\xa9nam": ["new"]}
    else:
        assert _comments(path).as_dict() == {"title": ["new"]}


def test_opus_comments(copy_of: Callable[[str], Path]) -> None:
    path = copy_of("opus")
    write_opus_tags(path, FULL, SECONDS)
    comments = _comments(path)
    assert comments["TITLE"] == [FULL.title]
    assert comments["ALBUM"] == [FULL.show_title]
    assert comments["ARTIST"] == [FULL.artist]
    assert comments["DATE"] == ["2024-05-01"]
    assert comments["COMMENT"] == [FULL.comment]
    (block,) = comments["METADATA_BLOCK_PICTURE"]
    picture = Picture(base64.b64decode(block))
    assert (picture.type, picture.mime, picture.data) == (3, "image/png", PNG)
    assert not [key for key, _ in comments if key.upper().startswith("CHAPTER")]
    seen = _ffmpeg_tags(path)
    assert (seen["title"], seen["album"], seen["artist"]) == (FULL.title, FULL.show_title, FULL.artist)


@pytest.mark.parametrize("count", CHAPTER_LISTS)
def test_opus_chapters(count: str, copy_of: Callable[[str], Path]) -> None:
    path = copy_of("opus")
    chapters = CHAPTER_LISTS[count]
    write_opus_tags(path, TagInfo(title="t", chapters=chapters), SECONDS)
    comments = _comments(path).as_dict()
    expected: dict[str, list[str]] = {"title": ["t"]}
    for i, chapter in enumerate(chapters):
        ms = round(chapter.start * 1000)
        expected[f"chapter{i:03d}"] = [f"00:00:{ms // 1000:02d}.{ms % 1000:03d}"]
        expected[f"chapter{i:03d}name"] = [chapter.title]
        if chapter.url:
            expected[f"chapter{i:03d}url"] = [chapter.url]
    assert comments == expected
    found = _ffmpeg_chapters(path)
    assert [(start, title) for start, _, title in found] == [
        (round(c.start * 1000), c.title) for c in chapters
    ]


def test_opus_chapter_times_past_an_hour(copy_of: Callable[[str], Path]) -> None:
    path = copy_of("opus")
    chapters = [Chapter(0.0, ""), Chapter(3725.5, "Late"), Chapter(3725.5004, "Same ms: the later wins")]
    write_opus_tags(path, TagInfo(title="t", chapters=chapters), 4000.0)
    comments = _comments(path)
    assert comments["CHAPTER000"] == ["00:00:00.000"]
    assert "CHAPTER000NAME" not in comments, "an empty title is left out"
    assert comments["CHAPTER001"] == ["01:02:05.500"]
    assert comments["CHAPTER001NAME"] == ["Same ms: the later wins"]
    assert "CHAPTER002" not in comments


def test_write_tags_kinds(copy_of: Callable[[str], Path], tmp_path: Path) -> None:
    m4a = copy_of("m4a").rename(tmp_path / "rendition.bin")
    write_tags(m4a, TagInfo(title="by kind"), SECONDS, kind="m4a")
    assert _ffmpeg_tags(m4a)["title"] == "by kind"
    with pytest.raises(InvalidInput):
        write_tags(m4a, TagInfo(title="t"), SECONDS)  # no kind, and .bin says nothing
    opus = copy_of("opus")
    original = opus.read_bytes()
    kinds: tuple[RenditionKind, ...] = ("m4a", "mp3", "opus")
    for kind in kinds:
        with pytest.raises(InvalidMedia):
            write_tags(opus.with_name("missing.opus"), TagInfo(title="t"), SECONDS, kind=kind)
    with pytest.raises(InvalidMedia):
        write_tags(opus, TagInfo(title="t"), SECONDS, kind="m4a")
    assert opus.read_bytes() == original, "a refused file is left as it was"
    with pytest.raises(InvalidMedia):
        write_tags(copy_of("m4a"), TagInfo(title="t"), SECONDS, kind="opus")


def test_mp4_video_keeps_its_video(video_mp4: Path, tmp_path: Path) -> None:
    path = Path(shutil.copy(video_mp4, tmp_path / "episode.mp4"))
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    before = _decoded(path)
    write_tags(path, TagInfo(title="Video", chapters=[Chapter(0.0, "A"), Chapter(1.0, "B")]), 2.0)
    with av.open(str(path)) as container:
        assert container.metadata["major_brand"].strip() != "M4A"
        assert sum(1 for _ in container.decode(video=0)) == frames
    assert np.array_equal(_decoded(path), before)
    assert [(start, title) for start, _, title in _ffmpeg_chapters(path)] == [(0, "A"), (1000, "B")]
    assert _ffmpeg_tags(path)["title"] == "Video"
