"""write_id3 / read_chapters: the rendition's ID3v2.3 tag, chapters as CHAP frames under a CTOC."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mutagen.id3 import ID3, CTOCFlags

from media_pub.domain.values import Chapter
from media_pub.media.tags import TagInfo, read_chapters, write_id3


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
