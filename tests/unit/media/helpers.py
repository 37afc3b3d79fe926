"""Media builders for the media tests, and module-level functions for run_isolated (children import them)."""

from __future__ import annotations

import os
import signal
import struct
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from media_pub.errors import InvalidInput, NotFound


def make_video(path: Path, seconds: float = 2.0, *, audio: bool = True, fmt: str = "mp4") -> Path:
    """A tiny H.264 video (64x48, 25 fps) with an optional AAC tone, written with PyAV."""
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = container.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.codec_context.layout = "stereo"
        for i in range(round(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 5) % 255, np.uint8), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None:
            total = round(seconds * 48000)
            tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(total) / 48000)).astype(np.float32)
            mux_stereo(container, sound, tone)
    return path


def mux_stereo(container: Any, stream: Any, mono: np.ndarray, rate: int = 48000) -> None:
    """Encode `mono` (float32, full scale 1.0) on both channels of `stream` in 0.1 s frames, and flush."""
    step = rate // 10
    for first in range(0, mono.size, step):
        chunk = np.ascontiguousarray(np.vstack([mono[first : first + step]] * 2))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def empty_mp4(path: Path) -> Path:
    """A valid MP4 (ftyp + moov with a movie header) that holds no track at all."""
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    header = bytes(4) + struct.pack(">IIII", 0, 0, 1000, 0) + struct.pack(">IH", 0x10000, 0x100)
    mvhd = _box(b"mvhd", header + bytes(10) + matrix + bytes(24) + struct.pack(">I", 1))
    path.write_bytes(_box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41") + _box(b"moov", mvhd))
    return path


def tone_wav(path: Path, amplitude: float, seconds: float = 5.0, rate: int = 48000) -> Path:
    """A 1 kHz stereo sine of the given peak amplitude (full scale 1.0), 16-bit WAV."""
    total = round(seconds * rate)
    tone = (amplitude * np.sin(2 * np.pi * 1000 * np.arange(total) / rate)).astype(np.float32)
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.codec_context.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.vstack([tone, tone])), "fltp", "stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


# Functions run by run_isolated in the tests: module level, so the child can import them.


def add(a: int, b: int) -> int:
    return a + b


def with_progress(steps: int, progress: Callable[[str, float], None] | None = None) -> str:
    for i in range(steps + 1):
        if progress is not None:
            progress("work", i / steps)
        time.sleep(0.02)
    return "done"


def raise_not_found() -> None:
    raise NotFound("no such thing", code="thing-not-found")


def raise_invalid_input() -> None:
    raise InvalidInput("bad value", code="bad-value")


def raise_value_error() -> None:
    raise ValueError("boom")


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep_forever(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(600)


def allocate(megabytes: int) -> int:
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def returns_unpicklable() -> object:
    return lambda: None


def returns_a_function() -> object:
    return os.system  # pickled by reference: a taken-over child could make the parent call it


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo", 6: "5.1"}[channels]


def write_pcm(path: Path, samples: np.ndarray, rate: int, codec: str = "pcm_s16le", fmt: str = "wav") -> Path:
    """Write float samples (channels, n), full scale 1.0, as PCM (or FLAC) with PyAV."""
    layout = _layout(samples.shape[0])
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.codec_context.layout = layout
        step = rate  # one second per frame
        for first in range(0, samples.shape[1], step):
            block = np.ascontiguousarray(samples[:, first : first + step], dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
