"""Video episodes: an MP4 for apps (video copied when it can be, else H.264), an MP3, and a poster frame.

The audio goes through the audio pipeline (process.py), which also writes it as AAC; its region is snapped
to a video keyframe when the video is copied, so nothing the host kept is lost. Packets and frames are
streamed from the file and interleaved by time, so memory stays flat on multi-hour recordings.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
from av.audio.frame import AudioFrame
from av.container import InputContainer
from av.packet import Packet
from av.stream import Stream
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media._av import best_audio_stream, open_input
from media_pub.media.process import ProcessOptions, ProcessResult, Progress, process_audio

# Pixel formats apps can play, per codec that MP4 holds as it is; anything else is transcoded.
COPY_FORMATS = {"h264": {"yuv420p", "yuvj420p"}, "hevc": {"yuv420p", "yuvj420p", "yuv420p10le"}}
POSTER_WIDTH = 1280
POSTER_CANDIDATES = (0.1, 0.2, 0.3, 0.45, 0.6, 0.75, 0.9)  # shares of the duration tried for a poster
POSTER_MIN_LUMA = 40.0  # mean luma (0-255, full range) under which a frame is too dark for a poster
POSTER_MIN_SPREAD = 12.0  # luma standard deviation under which a frame is flat (a fade, a plain card)
JPEG_QUALITY = 3  # mjpeg qscale: 2 (best) to 31
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)  # fmt: skip
REPORT_EVERY = 0.5  # seconds between progress calls within a stage
REORDER_LOOKAHEAD = 16  # packets past the out point searched for pictures shown before it


@dataclass(frozen=True)
class VideoOptions:
    """How to render the MP4 of a video episode."""

    height: int = 720  # the p of 720p: the short side of a transcode (its height when landscape); no upscale
    frame_accurate: bool = False  # re-encode so the cuts fall exactly on the chosen times
    poster_at: float | None = None  # seconds into the output; None: a picture neither dark nor flat
    crf: int = 23
    preset: str = "veryfast"


@dataclass(frozen=True)
class VideoResult:
    """What process_video wrote."""

    audio: ProcessResult | None  # None when the video has no (audible) audio: no MP3 was written
    copied: bool  # the video stream was copied, not re-encoded
    width: int
    height: int
    duration: float  # seconds of the output
    video_codec: str
    poster: bytes  # JPEG
    offset: float  # where the output starts on the input's timeline (seconds)


@dataclass(frozen=True)
class _Source:
    """The facts about the input that the rendering needs."""

    index: int
    time_base: Fraction
    codec: str
    pix_fmt: str
    width: int
    height: int
    aspect: Fraction  # pixel (sample) aspect ratio
    rotation: int  # degrees clockwise a player turns the picture
    rate: Fraction | None
    start: float  # container time of the first video frame
    duration: float  # of the video stream, or the file; 0 when unknown
    origin: float  # container time of the input timeline's zero (the first audio sample, if any)
    audio: bool


def _video_stream(container: InputContainer) -> VideoStream | None:
    """The first video stream that is not an attached (cover) picture."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _unreadable(error: Exception) -> InvalidMedia:
    reason = getattr(error, "strerror", None) or str(error)
    return InvalidMedia(f"the video could not be read ({reason})", code="video-unreadable")


def _need_video(container: InputContainer) -> VideoStream:
    stream = _video_stream(container)
    if stream is None or stream.time_base is None:
        raise InvalidMedia("the file has no video stream", code="media-no-video")
    return stream


def _tb(stream: Stream) -> Fraction:
    if stream.time_base is None:
        raise InvalidMedia("a stream of the file has no time base", code="video-unreadable")
    return stream.time_base


def _seconds(value: int | None, time_base: Fraction) -> float | None:
    return None if value is None else float(value * time_base)


def keyframe_times(src: Path, progress: Callable[[float], None] | None = None) -> list[float]:
    """Presentation times (seconds, container timeline) of the video's keyframes, from demuxing only."""
    src = Path(src)
    size = max(1, src.stat().st_size)
    times: list[float] = []
    try:
        with open_input(src) as container:
            stream = _need_video(container)
            tb = _tb(stream)
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    times.append(float(packet.pts * tb))
                if progress is not None and packet.pos is not None:
                    progress(packet.pos / size)
    except av.error.FFmpegError as error:
        raise _unreadable(error) from None
    return sorted(set(times))


def can_copy(src: Path) -> bool:
    """Whether the video is H.264 or H.265 in a pixel format apps play, so MP4 can hold it as it is."""
    try:
        with open_input(Path(src)) as container:
            ctx = _need_video(container).codec_context
            return (ctx.pix_fmt or "") in COPY_FORMATS.get(ctx.name, ())
    except av.error.FFmpegError as error:
        raise _unreadable(error) from None


class _Reporter:
    """Relays progress at most every REPORT_EVERY seconds per stage, always at a stage's start."""

    def __init__(self, callback: Progress | None) -> None:
        self.callback, self.stage, self.last = callback, "", 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if self.callback is not None and (stage != self.stage or now - self.last >= REPORT_EVERY):
            self.stage, self.last = stage, now
            self.callback(stage, max(0.0, min(1.0, fraction)))


def _frame_time(frame: VideoFrame, tb: Fraction) -> float | None:
    return None if frame.pts is None else float(frame.pts * tb)


def _demux_from(container: InputContainer, stream: VideoStream, at: float) -> Iterator[Packet]:
    """Packets in decode order from the keyframe at or before container time `at` (or from the start)."""
    tb = _tb(stream)
    if at > (_seconds(stream.start_time, tb) or 0.0):
        try:
            container.seek(max(0, math.floor(at / tb + 1e-6)), stream=stream, backward=True)
            sought = True
        except av.error.FFmpegError:
            sought = False
        if sought:
            found = False
            for packet in container.demux(stream):
                if not found:
                    if packet.size == 0 or not packet.is_keyframe or packet.pts is None:
                        continue
                    if packet.pts * tb > at + 1e-6:
                        break  # the seek overshot (a container without an index): read from the start
                    found = True
                yield packet
            if found:
                return
    # A file that cannot seek is read from where it is: its start, when freshly opened.
    with suppress(av.error.FFmpegError):
        container.seek(0)
    yield from container.demux(stream)


def _frames_from(container: InputContainer, stream: VideoStream, at: float) -> Iterator[VideoFrame]:
    """Decoded frames from the keyframe at or before container time `at` on; damaged packets are skipped."""
    for packet in _demux_from(container, stream, at):
        try:
            yield from packet.decode()  # type: ignore[misc]
        except (av.error.InvalidDataError, av.error.UndefinedError, ValueError):
            continue  # livestream archives have the odd broken packet: lose a picture, not the episode


def _inspect(src: Path) -> _Source:
    """Decode the first video frame (size, aspect, rotation) and the first audio frame (timeline zero)."""
    with open_input(src) as container:
        stream = _need_video(container)
        audio = best_audio_stream(container)
        tb = _tb(stream)
        video_frame: VideoFrame | None = None
        audio_time: float | None = None
        wanted = [stream] if audio is None else [stream, audio]
        for packet in container.demux(wanted):
            if packet.stream is stream and video_frame is not None:
                continue
            try:
                frames = packet.decode()
            except (av.error.InvalidDataError, av.error.UndefinedError, ValueError):
                continue
            for frame in frames:
                if isinstance(frame, VideoFrame):
                    video_frame = video_frame or frame
                elif isinstance(frame, AudioFrame) and audio_time is None and frame.pts is not None:
                    assert frame.time_base is not None
                    audio_time = float(frame.pts * frame.time_base)
            if video_frame is not None and (audio is None or audio_time is not None):
                break
        if video_frame is None:
            raise InvalidMedia("the video stream has no decodable picture", code="video-unreadable")
        ctx = stream.codec_context
        start = _frame_time(video_frame, tb) or 0.0
        if audio is not None and audio_time is None:
            audio_time = _seconds(audio.start_time, _tb(audio))
        sar = ctx.sample_aspect_ratio or stream.sample_aspect_ratio
        return _Source(
            index=stream.index,
            time_base=tb,
            codec=ctx.name,
            pix_fmt=ctx.pix_fmt or video_frame.format.name,
            width=video_frame.width,
            height=video_frame.height,
            aspect=Fraction(sar) if sar and sar > 0 else Fraction(1),
            rotation=round(-(video_frame.rotation or 0) / 90) % 4 * 90,
            rate=Fraction(stream.average_rate) if stream.average_rate else None,
            start=start,
            duration=_seconds(stream.duration, tb) or float(container.duration or 0) / 1e6,
            origin=audio_time if audio_time is not None else start,
            audio=audio is not None,
        )


def _even(value: float) -> int:
    return max(2, round(value) // 2 * 2)


def output_size(width: int, height: int, aspect: Fraction, rotation: int, short_side: int) -> tuple[int, int]:
    """Square-pixel size of a transcode: display aspect kept, short side at most `short_side`, even."""
    shown_w, shown_h = width * float(aspect), float(height)
    if rotation in (90, 270):
        shown_w, shown_h = shown_h, shown_w
    scale = min(1.0, short_side / min(shown_w, shown_h))
    return _even(shown_w * scale), _even(shown_h * scale)


class _Scaler:
    """A filter graph: turn the picture as the player would, scale it to square pixels, convert its format.

    The graph is rebuilt when the input's size or format changes (it does in some livestream archives).
    """

    def __init__(self, width: int, height: int, rotation: int, pix_fmt: str) -> None:
        self.size, self.rotation, self.pix_fmt = (width, height), rotation, pix_fmt
        self.key: tuple[int, int, str, Fraction | None] | None = None
        self.graph: av.filter.Graph | None = None

    def _build(self, frame: VideoFrame, tb: Fraction) -> None:
        graph = av.filter.Graph()
        node = graph.add(
            "buffer",
            f"video_size={frame.width}x{frame.height}:pix_fmt={frame.format.name}"
            f":time_base={tb.numerator}/{tb.denominator}:pixel_aspect=1/1",
        )
        turns = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}
        steps = [*turns.get(self.rotation, []), "scale={}:{}:flags=bicubic".format(*self.size), "setsar=1"]
        steps.append(f"format={self.pix_fmt}")
        for step in steps:
            name, _, args = step.partition("=")
            nxt = graph.add(name, args or None)
            node.link_to(nxt)
            node = nxt
        sink = graph.add("buffersink")
        node.link_to(sink)
        graph.configure()
        self.graph = graph

    def __call__(self, frame: VideoFrame) -> list[VideoFrame]:
        key = (frame.width, frame.height, frame.format.name, frame.time_base)
        if key != self.key or self.graph is None:
            self._build(frame, frame.time_base or Fraction(1, 1000))
            self.key = key
        assert self.graph is not None
        self.graph.vpush(frame)
        out: list[VideoFrame] = []
        while True:
            try:
                out.append(self.graph.vpull())
            except (av.error.BlockingIOError, av.error.EOFError):
                return out


class _Region:
    """The region kept: the audio pipeline's `snap`, or called directly when there is no audio.

    It is shown (first, stop) in seconds of the input timeline and answers the region the audio should
    cover: when copying, the start snaps back to the keyframe at or before it and the stop moves to where
    the last video frame the copy must keep ends, so audio and video start and end together.
    """

    def __init__(self, src: Path, source: _Source, keyframes: list[float] | None) -> None:
        self.src, self.source, self.keyframes = src, source, keyframes
        self.video_start = 0.0  # container time where the video of the output starts
        self.cut = math.inf  # container time: video shown from it on is not wanted

    def __call__(self, first: float, stop: float) -> tuple[float, float]:
        origin = self.source.origin
        self.cut = stop + origin
        if self.keyframes is None:  # a transcode cuts anywhere
            self.video_start = first + origin
            return first, stop
        keys = self.keyframes
        at = bisect.bisect_right(keys, first + origin + 1e-6) - 1
        self.video_start = keys[max(at, 0)]
        last = max(self.video_start, keys[max(bisect.bisect_left(keys, self.cut) - 1, 0)])
        end = _copy_end(self.src, self.source, last, self.cut)
        # Only ever widened: audio past the end of the video (or before its first keyframe) is kept too.
        return min(first, self.video_start - origin), max(stop, stop if end is None else end - origin)


class _Dts:
    """Decode timestamps for a copy: the demuxer's, or made from the pts where it has none (Matroska).

    Made ones are the (delay + 1)-th largest pts seen so far, as FFmpeg's demuxer does: never above the
    packet's own pts, strictly increasing while pictures are reordered by at most `delay`.
    """

    def __init__(self, delay: int, key_pts: int, step: int) -> None:
        self.buffer = [key_pts - (delay + 1 - i) * step for i in range(delay + 1)]
        self.made = False
        self.last: int | None = None

    def __call__(self, packet: Packet) -> Packet:
        assert packet.pts is not None
        buffer = self.buffer
        buffer[0] = packet.pts
        for i in range(len(buffer) - 1):
            if buffer[i] <= buffer[i + 1]:
                break
            buffer[i], buffer[i + 1] = buffer[i + 1], buffer[i]
        self.made = self.made or packet.dts is None
        dts = buffer[0] if self.made or packet.dts is None else packet.dts
        if self.last is not None and dts <= self.last:
            dts = self.last + 1
        packet.dts = self.last = dts
        return packet


def _copy_packets(container: InputContainer, stream: VideoStream, key: float, cut: float) -> Iterator[Packet]:
    """In decode order, the packets a copy keeps: from the keyframe at container time `key` to the last one
    (in decode order) shown before `cut`, and after it those filling gaps among the kept pictures.

    Every picture a kept picture refers to comes before it in decode order, so it is kept too; the output
    ends at most a few frames after `cut`. Leading pictures of an open GOP (shown before `key`) are left out.
    """
    tb = _tb(stream)
    key_pts = round(key / tb)
    step = max(1, round(1 / (stream.average_rate * tb))) if stream.average_rate else 1
    dts = _Dts(stream.codec_context.has_b_frames + 2, key_pts, step)
    started = False
    shown = key_pts  # the latest picture kept so far
    pending: list[Packet] = []  # shown at or after `cut`: kept only if a picture shown before follows
    for packet in _demux_from(container, stream, key):
        pts = packet.pts if packet.pts is not None else packet.dts
        if packet.size == 0 or pts is None:
            continue
        if not started:
            if not (packet.is_keyframe and pts >= key_pts):
                continue
            started = True
        if pts < key_pts:
            continue
        packet.pts = pts
        if float(pts * tb) < cut or pts < shown:
            for kept in (*pending, packet):
                shown = max(shown, kept.pts or 0)
                yield dts(kept)
            pending.clear()
        elif packet.is_keyframe or len(pending) >= REORDER_LOOKAHEAD:
            return
        else:
            pending.append(packet)


def _copy_end(src: Path, source: _Source, last: float, cut: float) -> float | None:
    """Container time where the last picture a copy keeps ends, scanning from `last`, the last keyframe
    before `cut` that the copy includes (earlier pictures all end before it)."""
    end: float | None = None
    with open_input(src) as container:
        stream = container.streams[source.index]
        assert isinstance(stream, VideoStream)
        tb = _tb(stream)
        frame = 1 / float(source.rate) if source.rate else 0.0
        for packet in _copy_packets(container, stream, last, cut):
            length = float(packet.duration * tb) if packet.duration else frame
            end = max(end or 0.0, float((packet.pts or 0) * tb) + length)
    return end


Timed = tuple[float, Packet, Stream]  # (decode time in the output, packet, output stream)


def _timed(packets: Iterator[Packet], ostream: Stream, shift: int = 0) -> Iterator[Timed]:
    """Packets moved by `shift` (in their time base) and paired with their output decode time."""
    for packet in packets:
        if packet.size == 0 or packet.time_base is None:
            continue
        if packet.pts is not None:
            packet.pts -= shift
        if packet.dts is not None:
            packet.dts -= shift
        stamp = packet.dts if packet.dts is not None else packet.pts
        yield (float(stamp * packet.time_base) if stamp is not None else 0.0), packet, ostream


def _transcode(
    container: InputContainer,
    stream: VideoStream,
    ostream: VideoStream,
    region: _Region,
    zero: float,
    scaler: _Scaler,
) -> Iterator[Packet]:
    """Decode, cut exactly at the region's edges, scale and encode; frame timestamps are kept (VFR stays VFR).

    The picture on screen at the in point becomes the first frame, at time 0 of the output.
    """
    tb, out_tb = _tb(stream), ostream.codec_context.time_base
    assert out_tb is not None
    start = region.video_start
    step = 1 / float(region.source.rate) if region.source.rate else 1 / 30
    last_pts: int | None = None
    previous: float | None = None

    def encode(frame: VideoFrame, at: float) -> Iterator[Packet]:
        nonlocal last_pts
        pts = round((at - zero) / out_tb)
        if last_pts is not None and pts <= last_pts:
            pts = last_pts + 1  # x264 wants strictly increasing timestamps
        last_pts = pts
        frame.pts, frame.time_base, frame.pict_type = pts, out_tb, PictureType.NONE
        for scaled in scaler(frame):
            yield from ostream.encode(scaled)

    held: VideoFrame | None = None
    for frame in _frames_from(container, stream, start):
        t = _frame_time(frame, tb)
        t = t if t is not None else (previous + step if previous is not None else start)
        previous = t
        if t >= region.cut:
            break
        if t <= start:
            held = frame  # the latest picture at or before the in point
            continue
        if held is not None:
            yield from encode(held, start)
            held = None
        yield from encode(frame, t)
    if held is not None:
        yield from encode(held, start)
    yield from ostream.encode(None)


@dataclass(frozen=True)
class _Written:
    width: int
    height: int
    duration: float
    codec: str


def _write_mp4(
    src: Path,
    part: Path,
    region: _Region,
    audio: tuple[Path, float] | None,
    zero: float,
    copy: bool,
    options: VideoOptions,
    report: _Reporter,
) -> _Written:
    """Mux the region's video (copied or transcoded) with the AAC audio at `audio` = (m4a, its container
    start time in the input), interleaved by decode time, into a faststart MP4 that starts at container
    time `zero`."""
    source = region.source
    video_start = region.video_start
    stage = "remux" if copy else "transcode"
    with ExitStack() as stack:
        container = stack.enter_context(open_input(src))
        stream = container.streams[source.index]
        assert isinstance(stream, VideoStream)
        out = stack.enter_context(av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}))
        if copy:
            ostream = out.add_stream_from_template(stream)  # with its display matrix (rotation, flips)
            ostream.codec_context.codec_tag = "hvc1" if source.codec == "hevc" else "avc1"
            ostream.time_base = stream.time_base
            width, height, codec = source.width, source.height, source.codec
            shift = round(zero / _tb(stream))
            video = _timed(_copy_packets(container, stream, video_start, region.cut), ostream, shift)
        else:
            width, height = output_size(
                source.width, source.height, source.aspect, source.rotation, options.height
            )
            rate = source.rate or Fraction(30)
            ostream = out.add_stream(
                "libx264", rate=rate, options={"preset": options.preset, "crf": str(options.crf)}
            )
            ostream.width, ostream.height, ostream.pix_fmt = width, height, "yuv420p"
            ostream.codec_context.time_base = ostream.time_base = _tb(stream)
            stream.codec_context.thread_type = "AUTO"
            scaler = _Scaler(width, height, source.rotation, "yuv420p")
            codec = "h264"
            video = _timed(_transcode(container, stream, ostream, region, zero, scaler), ostream)
        sources = [video]
        if audio is not None:
            m4a = stack.enter_context(open_input(audio[0]))
            astream = m4a.streams.audio[0]
            aout = out.add_stream_from_template(astream)
            aout.time_base = astream.time_base
            shift = -round((audio[1] - zero) / _tb(astream))
            sources.append(_timed(m4a.demux(astream), aout, shift))
        expected = (
            region.cut - video_start if math.isfinite(region.cut) else float(container.duration or 0) / 1e6
        )
        end = 0.0
        report(stage, 0.0)
        for at, packet, ostr in heapq.merge(*sources, key=lambda item: item[0]):
            packet.stream = ostr
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
            out.mux(packet)
            report(stage, at / expected if expected > 0 else 0.0)
        if end <= 0.0:
            raise InvalidInput("the region to keep holds no video", code="invalid-trim")
    return _Written(width, height, round(end, 3), codec)


def _check(audio_options: ProcessOptions, options: VideoOptions) -> None:
    if not 64 <= options.height <= 4320 or not 0 <= options.crf <= 51:
        raise InvalidInput("height must be 64 to 4320 and crf 0 to 51", code="invalid-options")
    if options.preset not in X264_PRESETS:
        raise InvalidInput(f"preset must be one of {', '.join(X264_PRESETS)}", code="invalid-options")
    if options.poster_at is not None and not options.poster_at >= 0:
        raise InvalidInput("the poster time must be seconds >= 0", code="invalid-options")
    start, end = audio_options.start, audio_options.end
    if (start is not None and start < 0) or (end is not None and end <= 0):
        raise InvalidInput("in and out points must be positive", code="invalid-trim")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("the out point must come after the in point", code="invalid-trim")


def process_video(
    src: Path,
    dst_mp4: Path,
    dst_mp3: Path,
    audio_options: ProcessOptions,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
) -> VideoResult:
    """Write the MP4 (video copied or H.264, AAC on target), the MP3 (if the video has audio) and a poster.

    Both outputs are written atomically; `src` is only read. The audio keeps the picture's timeline, so
    `max_silence`, `intro` and `outro` of `audio_options` are ignored (the MP3 has none of them either).

    Raises:
        InvalidInput: bad options, or in/out points outside the video (invalid-trim).
        InvalidMedia: no video stream (media-no-video), undecodable video (video-unreadable), or what
            the audio pipeline raises for undecodable audio.
    """
    src, dst_mp4, dst_mp3 = Path(src), Path(dst_mp4), Path(dst_mp3)
    options = options or VideoOptions()
    _check(audio_options, options)
    report = _Reporter(progress)
    dst_mp4.parent.mkdir(parents=True, exist_ok=True)
    part = dst_mp4.with_name(dst_mp4.name + ".part")
    work = Path(tempfile.mkdtemp(prefix=".video-", dir=dst_mp4.parent))
    try:
        report("scan", 0.0)
        source = _inspect(src)
        copy = not options.frame_accurate and source.pix_fmt in COPY_FORMATS.get(source.codec, ())
        keyframes = keyframe_times(src, lambda f: report("scan", f)) if copy else None
        region = _Region(src, source, keyframes)
        result: ProcessResult | None = None
        m4a = work / "audio.m4a"
        if source.audio:
            same_timeline = dataclasses.replace(audio_options, max_silence=None, intro=None, outro=None)
            try:
                result = process_audio(src, dst_mp3, same_timeline, progress, aac=m4a, snap=region)
            except InvalidMedia as error:
                if error.code != "media-silent":
                    raise
                # A silent track (a screen recording with the microphone off) is no audio, not an error.
        if result is None:
            start = audio_options.start or 0.0
            if source.duration and start >= source.duration:
                raise InvalidInput(
                    f"the in point {start:.3f} s is past the end of the video ({source.duration:.3f} s)",
                    code="invalid-trim",
                )
            region(start, math.inf if audio_options.end is None else audio_options.end)
        audio = None if result is None else (m4a, result.offset + source.origin)
        zero = region.video_start if audio is None else min(region.video_start, audio[1])
        written = _write_mp4(src, part, region, audio, zero, copy, options, report)
        report("poster", 0.0)
        poster = poster_frame(part, options.poster_at)
        report("poster", 1.0)
        os.replace(part, dst_mp4)
    except av.error.FFmpegError as error:
        raise _unreadable(error) from None
    finally:
        part.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    return VideoResult(
        audio=result,
        copied=copy,
        width=written.width,
        height=written.height,
        duration=written.duration,
        video_codec=written.codec,
        poster=poster,
        offset=round(max(0.0, zero - source.origin), 3),
    )


def _frame_at(container: InputContainer, stream: VideoStream, at: float) -> VideoFrame | None:
    """The picture on screen at container time `at` (the last one, past the end)."""
    shown: VideoFrame | None = None
    for frame in _frames_from(container, stream, at):
        t = _frame_time(frame, _tb(stream))
        if t is not None and t > at + 1e-6:
            return shown or frame
        shown = frame
    return shown


def _luma(frame: VideoFrame) -> tuple[float, float]:
    """Mean and standard deviation of the picture's luma (0-255), on a small copy."""
    small = frame.reformat(width=160, height=max(2, round(160 * frame.height / frame.width)), format="gray")
    values = small.to_ndarray().astype(np.float32)
    return float(values.mean()), float(values.std())


def _jpeg(frame: VideoFrame, aspect: Fraction, max_width: int) -> bytes:
    rotation = round(-(frame.rotation or 0) / 90) % 4 * 90
    width, height = output_size(frame.width, frame.height, aspect, rotation, 1 << 16)
    if width > max_width:
        width, height = _even(max_width), _even(height * max_width / width)
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    pictures = _Scaler(width, height, rotation, "yuvj420p")(frame)
    encoder = av.CodecContext.create("mjpeg", "w")
    assert isinstance(encoder, VideoCodecContext)
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = True  # a fixed quantizer: mjpeg's default bit rate is meant for video
    encoder.global_quality = JPEG_QUALITY * 118  # FF_QP2LAMBDA
    return b"".join(bytes(p) for p in [*encoder.encode(pictures[0]), *encoder.encode(None)])


def poster_frame(src: Path, at: float | None = None, max_width: int = POSTER_WIDTH) -> bytes:
    """A JPEG of the picture at `at` seconds into the video, or of one chosen to be neither dark nor flat.

    The automatic choice tries a handful of times across the video and takes the first picture whose mean
    luma and spread are above POSTER_MIN_LUMA and POSTER_MIN_SPREAD, else the brightest one tried.
    """
    try:
        with open_input(Path(src)) as container:
            stream = _need_video(container)
            stream.codec_context.thread_type = "AUTO"
            tb = _tb(stream)
            start = _seconds(stream.start_time, tb) or 0.0
            aspect = stream.codec_context.sample_aspect_ratio or Fraction(1)
            if at is not None:
                frame = _frame_at(container, stream, start + at)
            else:
                length = _seconds(stream.duration, tb) or float(container.duration or 0) / 1e6
                frame, brightest = None, -1.0
                for share in POSTER_CANDIDATES:
                    candidate = _frame_at(container, stream, start + share * length)
                    if candidate is None:
                        continue
                    mean, spread = _luma(candidate)
                    if mean >= POSTER_MIN_LUMA and spread >= POSTER_MIN_SPREAD:
                        frame = candidate
                        break
                    if mean > brightest:
                        frame, brightest = candidate, mean
            if frame is None:
                raise InvalidMedia("the video has no decodable picture", code="video-unreadable")
            return _jpeg(frame, Fraction(aspect), max_width)
    except av.error.FFmpegError as error:
        raise _unreadable(error) from None
