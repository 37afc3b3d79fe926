"""probe_file: what a file is, decided from its content in a child process; what is refused and how."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.mp4 import MP4, MP4Cover

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidMedia, UnsupportedMedia
from media_pub.media.artwork import placeholder_artwork
from media_pub.media.probe import probe_file
from media_pub.media.tags import TagInfo, write_id3
from tests.unit.media.helpers import empty_mp4

EXPECTED = {
    # fmt: (container, mime type, extension, audio codec)
    "wav": ("wav", "audio/wav", "wav", "pcm_s16le"),
    "mp3": ("mp3", "audio/mpeg", "mp3", "mp3"),
    "m4a": ("mov,mp4,m4a,3gp,3g2,mj2", "audio/x-m4a", "m4a", "aac"),
    "ogg": ("ogg", "audio/ogg", "ogg", "vorbis"),
    "opus": ("ogg", "audio/ogg", "opus", "opus"),
    "flac": ("flac", "audio/flac", "flac", "flac"),
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_audio_formats(speech: dict[str, Path], fmt: str) -> None:
    result = probe_file(speech[fmt])
    container, mime, extension, codec = EXPECTED[fmt]
    assert result.kind == "audio"
    assert (result.container, result.mime_type, result.extension, result.audio_codec) == (
        container, mime, extension, codec,
    )  # fmt: skip
    assert result.duration == pytest.approx(6.0, abs=0.1)
    assert (result.sample_rate, result.channels) == (48000, 2)
    assert result.bitrate
    assert result.bitrate > 0
    assert result.video_codec is None
    assert result.chapters == []
    assert result.artwork is None


@pytest.mark.parametrize(("fmt", "wrong_name"), [("mp3", "episode.wav"), ("m4a", "episode.mp3")])
def test_type_comes_from_content_not_name(
    speech: dict[str, Path], tmp_path: Path, fmt: str, wrong_name: str
) -> None:
    misnamed = shutil.copy(speech[fmt], tmp_path / wrong_name)
    result = probe_file(Path(misnamed))
    assert (result.mime_type, result.extension) == EXPECTED[fmt][1:3]


def test_video_with_audio(video_mp4: Path) -> None:
    result = probe_file(video_mp4)
    assert (result.kind, result.mime_type, result.extension) == ("video", "video/mp4", "mp4")
    assert (result.video_codec, result.width, result.height, result.frame_rate) == ("h264", 64, 48, 25.0)
    assert (result.audio_codec, result.sample_rate, result.channels) == ("aac", 48000, 2)
    assert result.duration == pytest.approx(2.0, abs=0.1)


def test_video_without_audio_is_still_video(video_without_audio: Path) -> None:
    result = probe_file(video_without_audio)
    assert result.kind == "video"
    assert result.audio_codec is None
    assert result.sample_rate is None
    assert result.duration == pytest.approx(2.0, abs=0.1)


def test_id3_tags_artwork_and_chapters_are_read(speech: dict[str, Path], tmp_path: Path) -> None:
    mp3 = Path(shutil.copy(speech["mp3"], tmp_path / "tagged.mp3"))
    art = placeholder_artwork("probe", 1400)
    chapters = [Chapter(0.0, "Intro"), Chapter(2.5, "Main", url="https://example.com/a"), Chapter(5.0, "End")]
    write_id3(
        mp3,
        TagInfo(title="Pilot", show_title="The Show", artist="Host", comment="Notes", date="2024-05-01",
                artwork=art, artwork_mime="image/jpeg", chapters=chapters),
        6.0,
    )  # fmt: skip
    result = probe_file(mp3)
    assert result.tags == {
        "title": "Pilot", "album": "The Show", "artist": "Host", "comment": "Notes", "date": "2024-05-01",
    }  # fmt: skip
    assert result.artwork == art
    assert result.artwork_mime == "image/jpeg"
    assert [(c.start, c.title, c.end, c.url) for c in result.chapters] == [
        (0.0, "Intro", 2.5, None), (2.5, "Main", 5.0, "https://example.com/a"), (5.0, "End", 6.0, None),
    ]  # fmt: skip
    assert result.duration == pytest.approx(6.0, abs=0.1), "the tag must not change the decoded duration"


def test_mp4_tags_cover_and_chapters(speech: dict[str, Path], tmp_path: Path) -> None:
    m4a = Path(shutil.copy(speech["m4a"], tmp_path / "tagged.m4a"))
    tagged = MP4(m4a)
    tagged["\xa9nam"], tagged["\xa9ART"], tagged["\xa9day"] = ["M4A title"], ["Someone"], ["2023"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    tagged["covr"] = [MP4Cover(png, imageformat=MP4Cover.FORMAT_PNG)]
    tagged.save()
    result = probe_file(m4a)
    assert result.tags == {"title": "M4A title", "artist": "Someone", "date": "2023"}
    assert (result.artwork, result.artwork_mime) == (png, "image/png")


def test_vorbis_comment_chapters_come_from_ffmpeg(speech: dict[str, Path], tmp_path: Path) -> None:
    flac = Path(shutil.copy(speech["flac"], tmp_path / "chapters.flac"))
    tagged = FLAC(flac)
    tagged["TITLE"] = "Flac title"
    tagged["CHAPTER001"], tagged["CHAPTER001NAME"] = "00:00:00.000", "One"
    tagged["CHAPTER002"], tagged["CHAPTER002NAME"] = "00:00:03.500", "Two"
    tagged.save()
    result = probe_file(flac)
    assert result.tags["title"] == "Flac title"
    assert [(c.start, c.title) for c in result.chapters] == [(0.0, "One"), (3.5, "Two")]


def test_text_file_is_unsupported(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("this is a text file, not audio\n" * 50)
    with pytest.raises(UnsupportedMedia) as caught:
        probe_file(text)
    assert caught.value.code == "unsupported-media-type"


@pytest.mark.parametrize(
    "content",
    [os.urandom(64 * 1024), b"\x89PNG\r\n\x1a\n" + os.urandom(2000), b"<html><body>hi</body></html>\n" * 20],
    ids=["random-bytes", "png", "html"],
)
def test_not_media_named_mp3_is_unsupported(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "upload.mp3"
    path.write_bytes(content)
    with pytest.raises(UnsupportedMedia) as caught:
        probe_file(path)
    assert caught.value.code == "unsupported-media-type"
    assert caught.value.detail


def test_container_without_streams_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedMedia, match="neither an audio nor a video"):
        probe_file(empty_mp4(tmp_path / "empty.mp4"))


def test_zero_bytes(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    with pytest.raises(InvalidMedia) as caught:
        probe_file(empty)
    assert caught.value.code == "media-empty"


@pytest.mark.parametrize(
    ("fmt", "keep"),
    [("mp3", 0.5), ("mp3", 300), ("m4a", 0.5), ("wav", 0.5)],
    ids=["mp3-half", "mp3-header", "m4a-half", "wav-half"],
)
def test_truncated_files(speech: dict[str, Path], tmp_path: Path, fmt: str, keep: float) -> None:
    data = speech[fmt].read_bytes()
    cut = tmp_path / f"cut.{fmt}"
    cut.write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    with pytest.raises(InvalidMedia) as caught:
        probe_file(cut)
    assert not isinstance(caught.value, UnsupportedMedia)
    assert caught.value.code == "media-truncated", caught.value.detail
    assert "truncated" in caught.value.detail


def test_probe_timeout(speech: dict[str, Path]) -> None:
    with pytest.raises(InvalidMedia) as caught:
        probe_file(speech["wav"], timeout=0.05)
    assert caught.value.code == "media-probe-timeout"
