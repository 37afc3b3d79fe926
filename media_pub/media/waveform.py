"""Waveform peaks of a file in BBC audiowaveform's JSON format (version 2, one channel), decoded per frame.

Each pixel covers `samples_per_pixel` samples and holds the lowest and the highest sample value in it over all
channels. Values are scaled to signed 16-bit, and for 8-bit output shifted down (floor) to -128..127. The last
pixel covers what is left of the audio, so `length` is ceil(samples / samples_per_pixel).
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path

import av
import numpy as np

from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media._av import DecodeStats, Uniform, best_audio_stream, decode_audio, open_input, to_float

FORMAT_VERSION = 2
MAX_PIXELS_PER_SECOND = 1000


class _Peaks:
    """Min/max per block of `spp` samples, fed frame by frame; a partial block carries over to the next."""

    def __init__(self, spp: int, bits: int) -> None:
        self.spp = spp
        self.bits = bits
        # Interleaved min, max per pixel: 4 bytes a pixel (16-bit) whatever the length of the audio.
        self.data = array("h")
        self.samples = 0
        self._count = 0  # samples in the partial block
        self._lo = 0.0
        self._hi = 0.0

    def _emit(self, lo: np.ndarray, hi: np.ndarray) -> None:
        pairs = np.empty(2 * lo.shape[0], dtype=np.float32)
        pairs[0::2], pairs[1::2] = lo, hi
        np.nan_to_num(pairs, copy=False)  # a float decoder's NaN would not cast to int16
        values = np.clip(np.round(pairs * np.float32(32768.0)), -32768, 32767).astype(np.int16)
        if self.bits == 8:
            values >>= 8
        self.data.frombytes(values.tobytes())

    def push(self, samples: np.ndarray) -> None:
        """Add samples shaped (channels, count), float with full scale 1.0."""
        count = samples.shape[1]
        if count == 0:
            return
        self.samples += count
        # Channel by channel: a reduction over axis 0 is slow on the strided view of interleaved formats.
        lo, hi = samples[0].copy(), samples[0].copy()
        for channel in samples[1:]:
            np.minimum(lo, channel, out=lo)
            np.maximum(hi, channel, out=hi)
        start = 0
        if self._count:
            start = min(self.spp - self._count, count)
            self._lo = min(self._lo, float(lo[:start].min()))
            self._hi = max(self._hi, float(hi[:start].max()))
            self._count += start
            if self._count == self.spp:
                self._emit(np.array([self._lo]), np.array([self._hi]))
                self._count = 0
        whole = (count - start) // self.spp
        if whole:
            end = start + whole * self.spp
            self._emit(
                lo[start:end].reshape(whole, self.spp).min(axis=1),
                hi[start:end].reshape(whole, self.spp).max(axis=1),
            )
            start = end
        if start < count:
            self._lo, self._hi = float(lo[start:].min()), float(hi[start:].max())
            self._count = count - start

    def finish(self) -> list[int]:
        """The data array, with the last partial pixel if any."""
        if self._count:
            self._emit(np.array([self._lo]), np.array([self._hi]))
            self._count = 0
        return self.data.tolist()


def _check(pixels_per_second: object, bits: object) -> None:
    if bits not in (8, 16) or isinstance(bits, bool):
        raise InvalidInput("bits must be 8 or 16", code="waveform-bits")
    if (
        not isinstance(pixels_per_second, int)
        or isinstance(pixels_per_second, bool)
        or not 1 <= pixels_per_second <= MAX_PIXELS_PER_SECOND
    ):
        raise InvalidInput(
            f"pixels_per_second must be an integer from 1 to {MAX_PIXELS_PER_SECOND}",
            code="waveform-pixels-per-second",
        )


def waveform_peaks(path: Path, *, pixels_per_second: int = 20, bits: int = 8) -> dict[str, object]:
    """Min/max peaks of the audio of `path`, mixed down to one channel, as audiowaveform's JSON object."""
    _check(pixels_per_second, bits)
    peaks: _Peaks | None = None
    uniform = Uniform()
    try:
        with open_input(path) as container:
            stream = best_audio_stream(container)
            if stream is None:
                raise InvalidMedia("the file has no audio stream", code="media-no-audio")
            for decoded in decode_audio(container, stream, DecodeStats()):
                for frame in uniform(decoded):
                    if peaks is None:
                        peaks = _Peaks(max(1, uniform.rate // pixels_per_second), bits)
                    peaks.push(to_float(frame))
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the audio could not be decoded ({error.strerror})", code="media-unreadable"
        ) from None
    if peaks is None or peaks.samples == 0:
        raise InvalidMedia("the file has no decodable audio", code="media-unreadable")
    data = peaks.finish()
    return {
        "version": FORMAT_VERSION,
        "channels": 1,
        "sample_rate": uniform.rate,
        "samples_per_pixel": peaks.spp,
        "bits": bits,
        "length": len(data) // 2,
        "data": data,
    }


def waveform_json(path: Path, *, pixels_per_second: int = 20, bits: int = 8) -> bytes:
    """waveform_peaks as compact UTF-8 JSON, ready to serve to a player (peaks.js, waveform-data.js)."""
    peaks = waveform_peaks(path, pixels_per_second=pixels_per_second, bits=bits)
    return json.dumps(peaks, separators=(",", ":")).encode()
