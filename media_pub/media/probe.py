"""What an upload really is: format, streams and duration from decoding, tags, artwork and chapters.

Uploads are untrusted, so the parsing runs in a child process with time and memory limits (isolation.py).
The type is decided from the content only: the file name never reaches FFmpeg or the answer.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.stream import VideoStream

from media_pub.domain.values import Chapter
from media_pub.errors import InvalidMedia, UnsupportedMedia
from media_pub.media._av import DecodeStats, best_audio_stream, decode_audio, open_input
from media_pub.media.isolation import run_isolated
from media_pub.media.tags import id3_chapters

MAX_ARTWORK = 10 * 1024 * 1024  # bytes; a bigger embedded picture is ignored
MAX_TAG = 4000  # characters kept of a title, artist, album or date
MAX_COMMENT = 64 * 1024  # characters kept of a comment (it may become show notes)
MAX_CHAPTERS = 500
TAG_KEYS = ("title", "artist", "album", "comment", "date")


@dataclass(frozen=True)
class ProbeResult:
    """The facts about an upload, all decided from its content."""

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
        UnsupportedMedia: not audio or video at all (text, an image, random bytes, no audio/video stream).
        InvalidMedia: empty (media-empty), truncated (media-truncated), undecodable or crashing the decoder
            (media-unreadable), or too slow (media-probe-timeout).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise InvalidMedia("the file is empty (0 bytes)", code="media-empty")
    try:
        return run_isolated(probe_in_process, path, timeout=timeout, memory_mb=memory_mb)
    except InvalidMedia as error:
        if error.code == "media-timeout":
            raise InvalidMedia(
                f"reading the file took longer than {timeout:g} s; it may be damaged or hostile",
                code="media-probe-timeout",
            ) from None
        if error.code in ("media-crashed", "media-processing-failed"):
            raise InvalidMedia(
                f"the file could not be read: {error.detail}", code="media-unreadable"
            ) from None
        raise


# ---------------------------------------------------------------------------------------------------------
# Everything below runs in the child.


def probe_in_process(path: Path) -> ProbeResult:
    """The probe itself, in the current process: only for use inside an isolated child (or trusted files)."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidMedia("the file is empty (0 bytes)", code="media-empty")
    with path.open("rb") as fh:
        head = fh.read(64)
    try:
        with open_input(path) as container:
            facts = _read_container(container, path, size)
    except av.error.FFmpegError as error:
        raise _open_failure(path, head, size, error) from None
    tags, artwork, artwork_mime, chapters = _read_tags(path)
    for key in TAG_KEYS:
        value = facts.pop(f"meta_{key}", None)
        if key not in tags and value:
            tags[key] = value
    if not chapters:
        chapters = facts.pop("av_chapters")
    facts.pop("av_chapters", None)
    return ProbeResult(**facts, tags=tags, artwork=artwork, artwork_mime=artwork_mime, chapters=chapters)


def _read_container(container: InputContainer, path: Path, size: int) -> dict[str, Any]:
    fmt = container.format.name
    videos = [
        s
        for s in container.streams.video
        if not (s.disposition & av.stream.Disposition.attached_pic)  # cover art, not a video
    ]
    audio = best_audio_stream(container)
    if audio is None and not videos:
        raise UnsupportedMedia("the file holds neither an audio nor a video stream")
    video: VideoStream | None = videos[0] if videos else None
    kind: Literal["audio", "video"] = "video" if video is not None else "audio"
    codecs = {_codec_name(s) for s in (audio, video) if s is not None}
    brand = str(container.metadata.get("major_brand", "")).strip().lower()
    meta = _av_metadata(container, audio)
    av_chapters = _av_chapters(container)
    facts: dict[str, Any] = {"kind": kind, "container": fmt, "video_codec": None}
    if audio is not None:
        declared = _declared_seconds(container, audio)
        samples, rate, channels = _decode_all(container, audio, path, size)
        duration = samples / rate
        if _trusts_declared(fmt, path) and declared and declared - duration > max(1.0, 0.02 * declared):
            raise InvalidMedia(
                f"the file ends after {duration:.1f} s of audio but declares {declared:.1f} s: "
                "it looks truncated (an incomplete upload?)",
                code="media-truncated",
            )
        if _structure_truncated(path, size):
            raise InvalidMedia(
                f"the file is cut short: it holds {duration:.1f} s of audio but its header promises more "
                "(it looks truncated; an incomplete upload?)",
                code="media-truncated",
            )
        facts.update(sample_rate=rate, channels=channels, audio_codec=_codec_name(audio))
    else:
        assert video is not None
        duration = _video_seconds(container, video)
        facts.update(sample_rate=None, channels=None, audio_codec=None)
    if video is not None:
        rate_q = video.average_rate or video.guessed_rate
        facts.update(
            video_codec=_codec_name(video),
            width=video.codec_context.width or None,
            height=video.codec_context.height or None,
            frame_rate=round(float(rate_q), 3) if rate_q else None,
        )
    mime, extension = _type_of(fmt, kind, codecs, brand)
    bitrate = (audio.bit_rate if audio is not None and video is None else None) or container.bit_rate
    if not bitrate and duration > 0:
        bitrate = round(size * 8 / duration)
    facts.update(
        mime_type=mime,
        extension=extension,
        duration=round(duration, 3),
        bitrate=int(bitrate) if bitrate else None,
        av_chapters=av_chapters,
        **{f"meta_{k}": v for k, v in meta.items()},
    )
    return facts


def _codec_name(stream: Any) -> str:
    # The codec's own name ("mp3"), not the decoder's ("mp3float").
    return str(stream.codec_context.codec.canonical_name)


def _decode_all(
    container: InputContainer, stream: AudioStream, path: Path, size: int
) -> tuple[int, int, int]:
    """(samples, sample rate, channels) by decoding every audio frame: declared durations are not trusted."""
    stats = DecodeStats()
    samples = rate = channels = 0
    for frame in decode_audio(container, stream, stats):
        if not rate:
            rate, channels = frame.sample_rate, frame.layout.nb_channels
        # A stream that changes rate mid-way is counted in the first rate's samples.
        samples += (
            frame.samples if frame.sample_rate == rate else round(frame.samples * rate / frame.sample_rate)
        )
    if samples == 0 or rate == 0:
        truncated = stats.read_error is not None or _structure_truncated(path, size)
        raise InvalidMedia(
            "the file has an audio stream but no audio could be decoded"
            + ("; it looks truncated" if truncated else ""),
            code="media-truncated" if truncated else "media-unreadable",
        )
    if stats.packets > 10 and stats.errors > stats.packets // 2:
        raise InvalidMedia(
            f"the audio is damaged: {stats.errors} of {stats.packets} packets could not be decoded",
            code="media-unreadable",
        )
    return samples, rate, channels


def _declared_seconds(container: InputContainer, stream: AudioStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _trusts_declared(fmt: str, path: Path) -> bool:
    """Whether the container states its length exactly (so falling short of it means truncation)."""
    names = set(fmt.split(","))
    if names & {"mov", "mp4", "wav", "w64", "flac"}:
        return True
    # An MP3 states its length only in a Xing/Info/VBRI header; without one FFmpeg guesses from the bit rate.
    return "mp3" in names and _mp3_has_length_header(path)


def _mp3_has_length_header(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:
            offset = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
        fh.seek(offset)
        data = fh.read(4096)
    sync = next((i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    frame = data[sync : sync + 200]
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def _syncsafe(data: bytes) -> int:
    return (data[0] & 0x7F) << 21 | (data[1] & 0x7F) << 14 | (data[2] & 0x7F) << 7 | (data[3] & 0x7F)


def _video_seconds(container: InputContainer, stream: VideoStream) -> float:
    """Duration of a video without audio, from its packets' timestamps."""
    first: float | None = None
    end = 0.0
    count = 0
    for packet in container.demux(stream):
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None or packet.time_base is None:
            continue
        count += 1
        start = float(stamp * packet.time_base)
        first = start if first is None else min(first, start)
        end = max(end, float((stamp + (packet.duration or 0)) * packet.time_base))
    if count < 2 or first is None:
        # One picture (or none) is an image, not a video.
        raise UnsupportedMedia("the file holds a still picture, not audio or video")
    return max(0.0, end - first)


def _open_failure(path: Path, head: bytes, size: int, error: av.error.FFmpegError) -> InvalidMedia:
    """Classify a file FFmpeg refused: damaged media of a known kind, or not media at all."""
    if not _media_magic(head):
        return UnsupportedMedia("the file is not audio or video in a supported format")
    if _structure_truncated(path, size):
        return InvalidMedia("the file is cut short (truncated) and cannot be read", code="media-truncated")
    return InvalidMedia(f"the file is damaged and cannot be read ({error.strerror})", code="media-unreadable")


def _media_magic(head: bytes) -> bool:
    """Whether the first bytes look like a container we accept (even if the rest is broken)."""
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
        or head[:3] == b"ID3"
        or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
        or (head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE")
        or head[:4] in (b"OggS", b"fLaC", b"\x1aE\xdf\xa3", b"FORM", b"caff")
        or head[:3] == b"FLV"
    )


def _structure_truncated(path: Path, size: int) -> bool:
    """True when the file's own structure says it continues past its end (ISO BMFF boxes, RIFF, ID3)."""
    with path.open("rb") as fh:
        head = fh.read(12)
        if head[:3] == b"ID3" and len(head) >= 10 and 10 + _syncsafe(head[6:10]) > size:
            return True
        if head[:4] == b"RIFF" and len(head) >= 8:
            declared = int.from_bytes(head[4:8], "little")
            return declared not in (0, 0xFFFFFFFF) and declared + 8 > size
        if head[4:8] != b"ftyp":
            return _mpeg_first_frame_cut(fh, head, size)
        offset = 0
        for _ in range(10_000):  # top-level boxes only; a real file has a handful
            if offset >= size:
                return offset > size  # the last box claims bytes the file does not have
            fh.seek(offset)
            box = fh.read(16)
            if len(box) < 8:
                return True
            length = int.from_bytes(box[:4], "big")
            if length == 1:
                if len(box) < 16:
                    return True
                length = int.from_bytes(box[8:16], "big")
            elif length == 0:
                return False  # "to the end of the file"
            if length < 8:
                return False  # garbage, not truncation
            offset += length
        return offset > size


_MPEG_BITRATES = {  # kbit/s by (MPEG-1?, layer) and index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_first_frame_cut(fh: Any, head: bytes, size: int) -> bool:
    """True when an MPEG audio file (after its ID3 tag) ends inside its first frame."""
    offset = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0) if head[:3] == b"ID3" else 0
    fh.seek(offset)
    frame = fh.read(4)
    if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:
        return False
    version, layer_bits = (frame[1] >> 3) & 3, (frame[1] >> 1) & 3
    rate_index, bitrate_index = (frame[2] >> 2) & 3, frame[2] >> 4
    if version == 1 or layer_bits == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return False  # reserved or free-format values: no length to check
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _MPEG_BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _MPEG_RATES[version][rate_index]
    padding = (frame[2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    else:
        length = (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding
    return offset + length > size


def _type_of(fmt: str, kind: str, codecs: set[str], brand: str) -> tuple[str, str]:
    """(MIME type, extension) from the demuxer that recognised the content, never from the file name."""
    names = set(fmt.split(","))
    if "mp3" in names:
        return ("video/mpeg", "mp3") if kind == "video" else ("audio/mpeg", "mp3")
    if names & {"mov", "mp4"}:
        if kind == "video":
            return ("video/quicktime", "mov") if brand.startswith("qt") else ("video/mp4", "mp4")
        return "audio/x-m4a", "m4a"
    if names & {"matroska", "webm"}:
        webm = codecs <= {"vp8", "vp9", "av1", "opus", "vorbis"}
        if kind == "video":
            return ("video/webm", "webm") if webm else ("video/x-matroska", "mkv")
        return ("audio/webm", "webm") if webm else ("audio/x-matroska", "mka")
    if "ogg" in names:
        if kind == "video":
            return "video/ogg", "ogv"
        return ("audio/ogg", "opus") if "opus" in codecs else ("audio/ogg", "ogg")
    table = {
        "wav": ("audio/wav", "wav"), "w64": ("audio/wav", "w64"), "rf64": ("audio/wav", "wav"),
        "flac": ("audio/flac", "flac"), "aac": ("audio/aac", "aac"), "flv": ("video/x-flv", "flv"),
        "avi": ("video/x-msvideo", "avi"), "mpegts": ("video/mp2t", "ts"), "mpeg": ("video/mpeg", "mpg"),
        "aiff": ("audio/aiff", "aiff"), "amr": ("audio/amr", "amr"), "caf": ("audio/x-caf", "caf"),
        "wv": ("audio/x-wavpack", "wv"), "ac3": ("audio/ac3", "ac3"), "eac3": ("audio/eac3", "eac3"),
        "au": ("audio/basic", "au"), "ape": ("audio/x-ape", "ape"), "tta": ("audio/x-tta", "tta"),
        "mpc": ("audio/x-musepack", "mpc"), "mpc8": ("audio/x-musepack", "mpc"), "mp2": ("audio/mpeg", "mp2"),
        "voc": ("audio/x-voc", "voc"), "dts": ("audio/vnd.dts", "dts"), "truehd": ("audio/x-truehd", "thd"),
        "loas": ("audio/aac", "aac"),
    }  # fmt: skip
    if "asf" in names:
        return ("video/x-ms-wmv", "wmv") if kind == "video" else ("audio/x-ms-wma", "wma")
    for name in fmt.split(","):
        if name in table:
            return table[name]
    ext = re.sub(r"[^a-z0-9]", "", fmt.split(",")[0].lower())[:4]
    return f"{kind}/x-{ext or 'unknown'}", ext if len(ext) >= 2 else "bin"


def _clean(value: Any, limit: int = MAX_TAG) -> str:
    text = str(value).replace("\x00", " ").strip()
    return text[:limit]


def _av_metadata(container: InputContainer, audio: AudioStream | None) -> dict[str, str]:
    """Tags as FFmpeg sees them: container metadata, then (Ogg keeps them there) the audio stream's."""
    sources = [container.metadata] + ([audio.metadata] if audio is not None else [])
    aliases = {"description": "comment", "year": "date", "album_artist": "artist"}
    out: dict[str, str] = {}
    for source in sources:
        for raw_key, value in source.items():
            key = aliases.get(raw_key.lower(), raw_key.lower())
            if key in TAG_KEYS and key not in out and str(value).strip():
                out[key] = _clean(value, MAX_COMMENT if key == "comment" else MAX_TAG)
    return out


def _av_chapters(container: InputContainer) -> list[Chapter]:
    """Chapters FFmpeg found (MP4 chapter tracks, Nero chpl, Vorbis CHAPTERxxx, Matroska)."""
    out: list[Chapter] = []
    for item in container.chapters()[:MAX_CHAPTERS]:
        base = item["time_base"]
        start = float(item["start"] * base)
        end = float(item["end"] * base) if item["end"] and item["end"] > item["start"] else None
        title = _clean(item["metadata"].get("title", ""), 500)
        out.append(
            Chapter(start=round(max(0.0, start), 3), title=title, end=None if end is None else round(end, 3))
        )
    return sorted(out, key=lambda c: c.start)


def _sniff_image(data: bytes, declared: str | None) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return (declared or "").lower() or None


def _read_tags(path: Path) -> tuple[dict[str, str], bytes | None, str | None, list[Chapter]]:
    """Tags, cover art and chapters with mutagen (ID3, MP4, Vorbis comments); unreadable tags are absent."""
    import mutagen

    try:
        parsed = mutagen.File(path)
    except Exception:
        return {}, None, None, []
    if parsed is None or parsed.tags is None:
        return {}, None, None, []
    try:
        return _from_mutagen(parsed)
    except Exception:
        return {}, None, None, []


def _from_mutagen(parsed: Any) -> tuple[dict[str, str], bytes | None, str | None, list[Chapter]]:
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags

    tags: dict[str, str] = {}
    artwork: bytes | None = None
    artwork_mime: str | None = None
    chapters: list[Chapter] = []
    found = parsed.tags
    if isinstance(found, ID3):
        for key, frame_id in (("title", "TIT2"), ("artist", "TPE1"), ("album", "TALB"), ("date", "TDRC")):
            frame = found.get(frame_id)
            if frame is not None and frame.text:
                tags[key] = _clean(frame.text[0])
        if "date" not in tags and found.get("TYER") is not None:
            tags["date"] = _clean(found["TYER"].text[0])
        comments = sorted(found.getall("COMM"), key=lambda c: c.desc != "")  # the plain comment first
        if comments and comments[0].text:
            tags["comment"] = _clean(comments[0].text[0], MAX_COMMENT)
        pictures = sorted(found.getall("APIC"), key=lambda p: p.type != 3)  # the front cover first
        for picture in pictures:
            if 0 < len(picture.data) <= MAX_ARTWORK:
                artwork, artwork_mime = bytes(picture.data), _sniff_image(picture.data, picture.mime)
                break
        chapters = id3_chapters(found)
    elif isinstance(found, MP4Tags):
        for key, atom in (("title", "\xa9nam"), ("artist", "\xa9ART"), ("album", "\xa9alb"),
                          ("comment", "\xa9cmt"), ("date", "\xa9day")):  # fmt: skip
            values = found.get(atom)
            if values:
                tags[key] = _clean(values[0], MAX_COMMENT if key == "comment" else MAX_TAG)
        for cover in found.get("covr") or []:
            if 0 < len(cover) <= MAX_ARTWORK:
                declared = "image/png" if cover.imageformat == cover.FORMAT_PNG else "image/jpeg"
                artwork, artwork_mime = bytes(cover), _sniff_image(bytes(cover), declared)
                break
        length = float(getattr(parsed.info, "length", 0.0) or 0.0)
        marks = sorted(getattr(parsed, "chapters", None) or [], key=lambda c: c.start)[:MAX_CHAPTERS]
        for index, mark in enumerate(marks):
            end = marks[index + 1].start if index + 1 < len(marks) else (length or None)
            chapters.append(Chapter(start=round(float(mark.start), 3), title=_clean(mark.title, 500),
                                    end=None if end is None else round(float(end), 3)))  # fmt: skip
    elif hasattr(found, "keys"):  # Vorbis comments (FLAC, Ogg Vorbis/Opus)
        aliases = {"title": "title", "artist": "artist", "album": "album", "comment": "comment",
                   "description": "comment", "date": "date", "year": "date"}  # fmt: skip
        for raw, key in aliases.items():
            values = found.get(raw)
            if values and key not in tags:
                tags[key] = _clean(values[0], MAX_COMMENT if key == "comment" else MAX_TAG)
        artwork, artwork_mime = _vorbis_picture(parsed, found)
    return tags, artwork, artwork_mime, chapters


def _vorbis_picture(parsed: Any, found: Any) -> tuple[bytes | None, str | None]:
    from mutagen.flac import Picture

    pictures = list(getattr(parsed, "pictures", None) or [])
    for encoded in (found.get("metadata_block_picture") or [])[:4]:
        if len(encoded) <= MAX_ARTWORK * 4 // 3 + 64:
            pictures.append(Picture(base64.b64decode(encoded)))
    for picture in sorted(pictures, key=lambda p: p.type != 3):
        if 0 < len(picture.data) <= MAX_ARTWORK:
            return bytes(picture.data), _sniff_image(picture.data, picture.mime)
    return None, None
