"""PyAV plumbing shared by probe, loudness, process, synth: safe opening, tolerant decoding, filter chains."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import InputContainer

# Demuxers an upload may use. Anything else (playlists such as HLS or concat that open other files or URLs,
# image and subtitle formats, exotic raw formats) is refused before its header is read.
FORMAT_WHITELIST = ",".join(
    [
        "mp3", "mov", "mp4", "m4a", "wav", "w64", "rf64", "ogg", "flac", "matroska", "webm", "flv", "aac",
        "avi", "mpegts", "mpeg", "asf", "aiff", "amr", "caf", "wv", "ac3", "eac3", "au", "ape", "tta", "mpc",
        "mpc8", "dts", "truehd", "loas", "mp2", "voc", "3gp",
    ]
)  # fmt: skip

INPUT_OPTIONS = {
    "format_whitelist": FORMAT_WHITELIST,
    "protocol_whitelist": "file",
    # Stop the probe from scanning hundreds of MB of junk looking for a frame sync.
    "probesize": str(8 * 1024 * 1024),
}


class DecodeStats:
    """Counts what went wrong while decoding, so callers can tell damaged input from clean input."""

    def __init__(self) -> None:
        self.packets = 0
        self.errors = 0
        self.read_error: str | None = None
        self.last_pos = 0


@contextmanager
def open_input(path: Path) -> Iterator[InputContainer]:
    """Open `path` for demuxing, detecting the format from its content only (never from its name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # Through /proc the name has no extension, so FFmpeg cannot let ".txt" pick the tty demuxer.
        proc = f"/proc/self/fd/{fd}"
        url = proc if os.path.exists(proc) else str(path)
        container = av.open(url, mode="r", metadata_errors="replace", container_options=dict(INPUT_OPTIONS))
        try:
            yield container
        finally:
            container.close()
    finally:
        os.close(fd)


def best_audio_stream(container: InputContainer) -> AudioStream | None:
    """The stream FFmpeg itself would pick as the audio of this file, if any."""
    if not container.streams.audio:
        return None
    try:
        stream = container.streams.best("audio")
    except (ValueError, av.error.FFmpegError):
        stream = None
    return stream if isinstance(stream, AudioStream) else container.streams.audio[0]


def decode_audio(container: InputContainer, stream: AudioStream, stats: DecodeStats) -> Iterator[AudioFrame]:
    """Decoded frames of `stream`; undecodable packets are skipped and counted, a read error ends it."""
    stream.codec_context.thread_count = 1
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, OSError) as error:
            stats.read_error = str(error)
            return
        stats.packets += 1
        if packet.pos is not None and packet.pos > 0:
            stats.last_pos = packet.pos
        try:
            frames = packet.decode()
        except (av.error.FFmpegError, ValueError):
            stats.errors += 1
            continue
        yield from frames  # type: ignore[misc]


class Uniform:
    """Converts frames to the format, layout and rate of the first: decoders may change them mid-stream."""

    def __init__(self) -> None:
        self.key: tuple[str, str, int] | None = None
        self.format = ""
        self.layout = ""
        self.rate = 0
        self._resamplers: dict[tuple[str, str, int], AudioResampler] = {}

    def __call__(self, frame: AudioFrame) -> list[AudioFrame]:
        key = (frame.format.name, frame.layout.name, frame.sample_rate)
        if self.key is None:
            self.key, self.format, self.layout, self.rate = key, *key
        if key == self.key:
            return [frame]
        resampler = self._resamplers.get(key)
        if resampler is None:
            resampler = AudioResampler(format=self.format, layout=self.layout, rate=self.rate)
            self._resamplers[key] = resampler
        frame.pts = None
        return list(resampler.resample(frame))


_INT_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def to_float(frame: AudioFrame) -> np.ndarray:
    """Samples of `frame` as float32, shape (channels, samples), full scale 1.0."""
    data = frame.to_ndarray()
    name = frame.format.name.rstrip("p")
    if not frame.format.is_planar:
        data = data.reshape(-1, frame.layout.nb_channels).T
    if name in ("flt", "dbl"):
        return data.astype(np.float32, copy=False)
    scale = _INT_SCALE[name]
    if name == "u8":
        return (data.astype(np.float32) - 128.0) / scale
    return data.astype(np.float32) / np.float32(scale)


def drain(sink: av.filter.context.FilterContext) -> list[AudioFrame]:
    """Every frame the sink has ready now."""
    out: list[AudioFrame] = []
    while True:
        try:
            out.append(sink.pull())
        except (av.error.BlockingIOError, av.error.EOFError):
            return out


class Chain:
    """A linear audio filter graph: abuffer -> filters -> abuffersink, fed frame by frame."""

    def __init__(self, *, rate: int, fmt: str, layout: str, filters: Sequence[tuple[str, str]]) -> None:
        self.graph = av.filter.Graph()
        # One thread: the filters used here gain nothing from threads, and each one reserves memory.
        self.graph.threads = 1
        self.rate = rate
        self.source = self.graph.add_abuffer(
            sample_rate=rate, format=fmt, layout=layout, time_base=Fraction(1, rate)
        )
        node = self.source
        for name, args in filters:
            nxt = self.graph.add(name, args)
            node.link_to(nxt)
            node = nxt
        self.sink = self.graph.add("abuffersink")
        node.link_to(self.sink)
        self.graph.configure()
        self.closed = False

    def push(self, frame: AudioFrame | None) -> list[AudioFrame]:
        """Feed one frame (None at the end) and return what comes out."""
        if not self.closed:
            try:
                self.source.push(frame)
            except av.error.EOFError:
                # A filter (atrim past its end) has finished: later input is simply not wanted.
                self.closed = True
        return drain(self.sink)


def db(value: float, floor: float = -120.0) -> float:
    """Linear amplitude to decibels, with a floor instead of -inf."""
    return 20.0 * math.log10(value) if value > 10 ** (floor / 20.0) else floor


class Meter:
    """FFmpeg's ebur128 filter on a stream of frames: integrated loudness, loudness range and true peak."""

    def __init__(
        self,
        *,
        rate: int,
        fmt: str,
        layout: str,
        true_peak: bool = True,
        trim: tuple[int, int | None] = (0, None),
    ) -> None:
        filters: list[tuple[str, str]] = []
        start, end = trim
        if start > 0 or end is not None:
            # Callers stamp pts in samples: pts-based trimming is sample exact and tolerates skipped frames.
            args = f"start_pts={start}" + ("" if end is None else f":end_pts={end}")
            filters.append(("atrim", args))
        filters.append(("ebur128", f"peak={'true' if true_peak else 'sample'}:metadata=1"))
        self.chain = Chain(rate=rate, fmt=fmt, layout=layout, filters=filters)
        self.meta: dict[str, str] = {}
        self.samples = 0
        self.observe: Callable[[AudioFrame], None] | None = None  # sees every measured frame

    def push(self, frame: AudioFrame | None) -> None:
        """Measure one more frame (None at the end)."""
        for out in self.chain.push(frame):
            self.samples += out.samples
            if self.observe is not None:
                self.observe(out)
            if out.metadata:  # frames flushed at the end may carry none; keep the last measurement
                self.meta = dict(out.metadata)

    def peak_db(self) -> float:
        """The highest (true or sample) peak so far, dBFS."""
        key = "lavfi.r128.true_peak" if "lavfi.r128.true_peak" in self.meta else "lavfi.r128.sample_peak"
        return db(float(self.meta.get(key, "0")))

    def result(self) -> tuple[float, float, float]:
        """(integrated LUFS, LRA LU, peak dB); -70 LUFS when nothing passed the gates."""
        integrated = float(self.meta.get("lavfi.r128.I", "-70"))
        lra = float(self.meta.get("lavfi.r128.LRA", "0"))
        if not math.isfinite(integrated):
            integrated = -70.0
        return integrated, lra, self.peak_db()
