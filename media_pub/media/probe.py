"""What an upload really is: format, streams and duration from decoding, tags, artwork and chapters.

The parsing runs in a child process (see isolation.py): uploads are untrusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidMedia, UnsupportedMedia
from media_pub.media._av import DecodeStats, best_audio_stream, decode_audio, open_input
from media_pub.media.isolation import run_isolated

MAX_ARTWORK = 10 * 1024 * 1024
MAX_TAG = 4000


@dataclass(frozen=True)
class ProbeResult:
    kind: Literal["audio", "video"]
    container: str
    mime_type: str
    extension: str
    duration: float
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    audio_codec: str | None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    frame_rate: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    artwork: bytes | None = None
    artwork_mime: str | None = None
    chapters: list[Chapter] = field(default_factory=list)


def probe_file(path: Path, *, timeout: float = 120.0, memory_mb: int = 1024) -> ProbeResult:
    """Probe `path` in a child process with time and memory limits.

    Raises:
        UnsupportedMedia: not audio or video at all.
        InvalidMedia: empty, truncated, undecodable, or the probe crashed or timed out.
    """
    if path.stat().st_size == 0:
        raise InvalidMedia("the file is empty (0 bytes)", code="media-empty")
    return run_isolated(_probe, str(path), timeout=timeout, memory_mb=memory_mb)


def _type_of(fmt: str, kind: str, codecs: set[str], brand: str) -> tuple[str, str]:
    """(MIME type, extension) from the demuxer that recognised the content, never from the file name."""
    names = set(fmt.split(","))
    if "mp3" in names:
        return "audio/mpeg", "mp3"
    if "mp4" in names or "mov" in names:
        if kind == "video":
            return ("video/quicktime", "mov") if brand.startswith("qt") else ("video/mp4", "mp4")
        return "audio/x-m4a", "m4a"
    if "webm" in names or "matroska" in names:
        webm = codecs <= {"vp8", "vp9", "av1", "opus", "vorbis"}
        if kind == "video":
            return ("video/webm", "webm") if webm else ("video/x-matroska", "mkv")
        return ("audio/webm", "weba") if webm else ("audio/x-matroska", "mka")
    if "ogg" in names:
        return ("audio/ogg", "opus") if "opus" in codecs else ("audio/ogg", "ogg")
    table = {
        "wav": ("audio/wav", "wav"), "w64": ("audio/wav", "w64"), "rf64": ("audio/wav", "wav"),
        "flac": ("audio/flac", "flac"), "aac": ("audio/aac", "aac"), "flv": ("video/x-flv", "flv"),
        "avi": ("video/x-msvideo", "avi"), "mpegts": ("video/mp2t", "ts"), "mpeg": ("video/mpeg", "mpg"),
        "asf": ("video/x-ms-asf", "asf"), "aiff": ("audio/aiff", "aiff"), "amr": ("audio/amr", "amr"),
        "caf": ("audio/x-caf", "caf"), "wv": ("audio/x-wavpack", "wv"), "ac3": ("audio/ac3", "ac3"),
        "eac3": ("audio/eac3", "eac3"), "au": ("audio/basic", "au"),
    }  # fmt: skip
    for name in names:
        if name in table:
            return table[name]
    ext = re.sub(r"[^a-z0-9]", "", fmt.split(",")[0])[:4] or "bin"
    return (f"{kind}/x-{ext}", ext if len(ext) >= 2 else "bin")


def _probe(path_str: str) -> ProbeResult:
    path = Path(path_str)
    opened = [False]
    try:
        return _probe_container(path, opened)
    except av.error.FFmpegError as exc:
        # No allowed demuxer recognising the content (text, images, random bytes) fails at open time.
        if not opened[0] or isinstance(exc, av.error.InvalidDataError):
            raise UnsupportedMedia("the file is not audio or video in a known format") from None
        raise InvalidMedia(f"the file could not be read ({exc.strerror})", code="media-unreadable") from None


def _probe_container(path: Path, opened: list[bool]) -> ProbeResult:
    with open_input(path) as container:
        opened[0] = True
        fmt = container.format.name
        videos = [
            s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)
        ]
        audio = best_audio_stream(container)
        if audio is None and not videos:
            raise UnsupportedMedia("the file has neither an audio nor a video stream")
        kind: Literal["audio", "video"] = "video" if videos else "audio"
        video = videos[0] if videos else None
        codecs = {s.codec_context.name for s in container.streams if s.type in ("audio", "video")}
        brand = str(container.metadata.get("major_brand", "")).lower()
        bitrate = container.bit_rate or None
        meta = {k.lower(): str(v) for k, v in container.metadata.items()}
        if audio is not None:
            sample_rate, channels, codec = (
                audio.codec_context.sample_rate,
                audio.codec_context.channels,
                audio.codec_context.name,
            )
            duration = _decoded_seconds(container, audio)
        else:
            sample_rate = channels = None
            codec = None
            duration = _video_seconds(container, video)
        width = video.codec_context.width if video else None
        height = video.codec_context.height if video else None
        rate = float(video.average_rate) if video is not None and video.average_rate else None
        video_codec = video.codec_context.name if video else None
    mime, ext = _type_of(fmt, kind, codecs, brand)
    tags, artwork, artwork_mime, chapters = _read_tags(path)
    for key in ("title", "artist", "album", "comment", "date"):
        if key not in tags and meta.get(key):
            tags[key] = meta[key][:MAX_TAG]
    return ProbeResult(
        kind=kind, container=fmt, mime_type=mime, extension=ext, duration=round(duration, 3),
        bitrate=bitrate, sample_rate=sample_rate, channels=channels, audio_codec=codec,
        video_codec=video_codec, width=width, height=height, frame_rate=rate, tags=tags, artwork=artwork,
        artwork_mime=artwork_mime, chapters=chapters,
    )  # fmt: skip


def _decoded_seconds(container: Any, stream: Any) -> float:
    """Duration by decoding every audio frame: declared durations are not trusted."""
    stats = DecodeStats()
    samples = 0
    rate = 0
    for frame in decode_audio(container, stream, stats):
        samples += frame.samples
        rate = frame.sample_rate or rate
    if samples == 0 or rate == 0:
        if stats.read_error or stats.errors:
            raise InvalidMedia(
                "the file is truncated or damaged: no audio could be decoded", code="media-truncated"
            )
        raise InvalidMedia("the file has no decodable audio", code="media-unreadable")
    if stats.packets and stats.errors > max(2, stats.packets // 2):
        raise UnsupportedMedia("the file is not audio or video in a known format (most frames are invalid)")
    return samples / rate


def _video_seconds(container: Any, stream: Any) -> float:
    """Duration of a video without audio, from the packets' timestamps."""
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    if end <= 0:
        raise InvalidMedia("the video has no readable frames", code="media-unreadable")
    return end


def _read_tags(path: Path) -> tuple[dict[str, str], bytes | None, str | None, list[Chapter]]:
    """Tags, cover art and chapters with mutagen (ID3 and MP4); unreadable tags are just absent."""
    import mutagen
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4

    try:
        audio = mutagen.File(path)
    except Exception:  # mutagen raises many kinds on hostile input; tags are optional
        return {}, None, None, []
    tags: dict[str, str] = {}
    artwork: bytes | None = None
    artwork_mime: str | None = None
    chapters: list[Chapter] = []
    id3 = getattr(audio, "tags", None)
    if isinstance(id3, ID3):
        for key, frame_id in (("title", "TIT2"), ("artist", "TPE1"), ("album", "TALB"), ("date", "TDRC")):
            if frame_id in id3:
                tags[key] = str(id3[frame_id])[:MAX_TAG]
        comments = id3.getall("COMM")
        if comments:
            tags["comment"] = str(comments[0])[:MAX_TAG]
        pictures = id3.getall("APIC")
        if pictures and len(pictures[0].data) <= MAX_ARTWORK:
            artwork, artwork_mime = pictures[0].data, pictures[0].mime or "image/jpeg"
        for chap in sorted(id3.getall("CHAP"), key=lambda c: c.start_time):
            title = str(chap.sub_frames["TIT2"]) if "TIT2" in chap.sub_frames else ""
            url = chap.sub_frames["WXXX"].url if "WXXX" in chap.sub_frames else None
            end = chap.end_time / 1000 if chap.end_time and chap.end_time != 0xFFFFFFFF else None
            chapters.append(Chapter(start=chap.start_time / 1000, title=title[:500], end=end, url=url))
    elif isinstance(audio, MP4) and audio.tags is not None:
        for key, atom in (("title", "\xa9nam"), ("artist", "\xa9ART"), ("album", "\xa9alb"),
                          ("comment", "\xa9cmt"), ("date", "\xa9day")):  # fmt: skip
            if audio.tags.get(atom):
                tags[key] = str(audio.tags[atom][0])[:MAX_TAG]
        covers = audio.tags.get("covr") or []
        if covers and len(covers[0]) <= MAX_ARTWORK:
            artwork = bytes(covers[0])
            artwork_mime = "image/png" if covers[0].imageformat == covers[0].FORMAT_PNG else "image/jpeg"
        for chap in getattr(audio, "chapters", None) or []:
            chapters.append(Chapter(start=float(chap.start), title=str(chap.title)[:500]))
    return tags, artwork, artwork_mime, chapters
