"""EBU R128 loudness of a file, measured by FFmpeg's ebur128 filter on the decoded audio."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
from av.container import InputContainer

from media_pub.domain.values import Loudness
from media_pub.errors import InvalidMedia
from media_pub.media._av import DecodeStats, Meter, Uniform, best_audio_stream, decode_audio, open_input


def measure_file(
    path: Path, progress: Callable[[float], None] | None = None, expected_seconds: float | None = None
) -> tuple[Loudness, float]:
    """Loudness of the first audio stream of `path` and its decoded duration in seconds."""
    try:
        with open_input(path) as container:
            return _measure(container, progress, expected_seconds)
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the audio could not be decoded ({error.strerror})", code="media-unreadable"
        ) from None


def measure_stream(stream: BinaryIO, fmt: str) -> tuple[Loudness, float]:
    """Like measure_file, on a stream being written (a pipe) in format `fmt`: for our own outputs only."""
    try:
        with av.open(stream, mode="r", format=fmt) as container:
            return _measure(container, None, None)
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the audio could not be decoded ({error.strerror})", code="media-unreadable"
        ) from None


def _measure(
    container: InputContainer, progress: Callable[[float], None] | None, expected_seconds: float | None
) -> tuple[Loudness, float]:
    stream = best_audio_stream(container)
    if stream is None:
        raise InvalidMedia("the file has no audio stream", code="media-no-audio")
    uniform = Uniform()
    meter: Meter | None = None
    position = 0
    for decoded in decode_audio(container, stream, DecodeStats()):
        for frame in uniform(decoded):
            if meter is None:
                meter = Meter(rate=uniform.rate, fmt=uniform.format, layout=uniform.layout)
            frame.pts, frame.time_base = position, Fraction(1, uniform.rate)
            position += frame.samples
            meter.push(frame)
            if progress is not None and expected_seconds:
                progress(min(1.0, position / uniform.rate / expected_seconds))
    if meter is None:
        raise InvalidMedia("the file has no decodable audio", code="media-unreadable")
    meter.push(None)
    integrated, lra, peak = meter.result()
    return Loudness(round(integrated, 2), round(lra, 2), round(peak, 2)), position / uniform.rate


def measure_loudness(path: Path) -> Loudness:
    """Integrated loudness (LUFS), loudness range (LU) and true peak (dBTP) of the audio in `path`."""
    return measure_file(path)[0]
