"""From an untouched original to a loudness-normalized, silence-trimmed MP3, streamed frame by frame.

Pass 1 decodes the input once to measure it (ebur128) and find leading/trailing silence. Then the render
chain (trim, downmix, resample, gain, limiter) runs again as often as needed: first without encoding, to
find the gain that lands on target despite the limiter, then with the MP3 encoder, and the encoded file is
measured again; a miss adjusts the gain or the limiter ceiling and renders once more (bounded).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import itertools
import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import av
import lameenc
import numpy as np
from av.audio.resampler import AudioResampler

from media_pub.domain.values import Loudness
from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media._av import (
    Chain,
    DecodeStats,
    Meter,
    Uniform,
    best_audio_stream,
    decode_audio,
    open_input,
    to_float,
)
from media_pub.media.loudness import measure_file, measure_stream

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
Snap = Callable[[float, float], tuple[float, float]]

OUTPUT_RATE = 44100
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
SILENCE_BLOCK = 0.05  # seconds per level block when looking for silence
SILENCE_PAD = 0.2  # seconds of the silence kept before the first and after the last sound
FADE = 0.01  # seconds of fade where a cut falls inside sound, so it does not click
# Measured on speech at 128k stereo / 64k mono: the MP3 encoder takes about this much loudness away.
MP3_LOSS_LU = 0.45
LOUDNESS_TOLERANCE = 0.4  # LU; the contract is 0.5, the margin absorbs rounding in other meters
NORMALIZE_TOLERANCE = 0.2  # LU, for the un-encoded render passes (the encoder's share varies ~0.1)
MAX_NORMALIZE_PASSES = 5
SMALL_MISS = 1.0  # LU; a trial render missing by less is corrected by one computed step, not another trial
MAX_ENCODE_PASSES = 3
# The limiter works on sample peaks; inter-sample peaks and the MP3 encoder add some on top: 1.5 dB was
# enough for 30 minutes of speech, but over 3 hours one transient reached -0.8 dBTP.
CEILING_MARGIN_DB = 2.0
MAX_GAIN_DB = 40.0
QUIETEST_LUFS = -60.0  # quieter than this is silence or hiss: refused rather than amplified by 44 dB
SILENCE_BELOW_PROGRAMME_LU = 20.0  # the silence threshold is at most this far under the integrated loudness
HOP = 2 * SILENCE_BLOCK  # seconds: the leveler's grid, the step of BS.1770's 400 ms gating blocks
LEVEL_GATE_LU = 20.0  # blocks this far under the whole's loudness are pauses or noise: they hold the gain
LEVEL_WINDOW = 2.0  # seconds over which the leveler averages loudness
LEVEL_SMOOTH = 1.5  # seconds over which its gain is smoothed
LEVEL_STRENGTH = 0.8  # share of a passage's distance from the whole's loudness that the leveler removes
LEVEL_MAX_BOOST = 15.0  # dB
LEVEL_MAX_CUT = 10.0  # dB
MAX_CLIP_SECONDS = 120.0  # intros and outros are held in memory: keep them short
MAX_EXTRA_PASSES = 2  # encodes of an AAC or Opus rendition that missed, after the shared one
SAMPLE_MIN_SECONDS = 300.0  # trial renders of longer inputs look at a share of them
SAMPLE_WINDOW = 20.0  # seconds
SAMPLE_PERIOD = 3  # one window in so many
AAC_KBPS = {1: 64, 2: 128}
OPUS_KBPS = {1: 32, 2: 64}


@dataclass(frozen=True)
class ProcessOptions:
    """How to turn an original into the distributed MP3."""

    target_lufs: float = -16.0
    true_peak_db: float = -1.0
    trim_silence: bool = True
    silence_threshold_db: float = -50.0
    silence_min_seconds: float = 0.5
    start: float | None = None
    end: float | None = None
    channels: int | None = None
    bitrate_kbps: int | None = None
    sample_rate: int = OUTPUT_RATE
    level: bool = True  # bring quiet and loud speakers together (see level_curve)
    max_silence: float | None = None  # shorten inner silences longer than this many seconds to it
    intro: Path | None = None  # a clip played before the episode, crossfaded into it
    outro: Path | None = None  # a clip played after the episode, crossfaded from it
    crossfade: float = 1.0  # seconds


@dataclass(frozen=True)
class ProcessResult:
    """What processing did and measured."""

    offset: float
    duration_in: float
    duration_out: float
    loudness_in: Loudness
    loudness_out: Loudness
    gain_db: float
    sample_rate: int
    channels: int
    bitrate: int
    cuts: tuple[tuple[float, float], ...] = ()  # inner spans removed, seconds on the input timeline
    extra: dict[str, Loudness] = field(default_factory=dict)  # measured loudness of the aac/opus outputs
    lead: float = 0.0  # seconds of intro before the episode's own first moment
    renders: int = 0  # passes over the input after the analysis (trials, encodes, re-encodes): for tuning


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_timestamp(value: str | float) -> float:
    """Seconds from "90", "90.5", "01:30" or "1:02:03.250" (or a number); InvalidInput on anything else."""
    if isinstance(value, bool):
        raise InvalidInput("a timestamp must be seconds or [hh:]mm:ss[.fff]", code="invalid-timestamp")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        match = _CLOCK.match(text)
        if match:
            hours, minutes, secs = match.groups()
            if (int(minutes) >= 60 and hours is not None) or float(secs) >= 60:
                raise InvalidInput(f"{value!r} is not a valid timestamp", code="invalid-timestamp")
            seconds = int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
        elif re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            raise InvalidInput(
                f"{value[:40]!r} is not a timestamp; use seconds or [hh:]mm:ss[.fff]",
                code="invalid-timestamp",
            )
    else:
        raise InvalidInput("a timestamp must be seconds or [hh:]mm:ss[.fff]", code="invalid-timestamp")
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInput("a timestamp must be a finite number of seconds >= 0", code="invalid-timestamp")
    return seconds


class _Reporter:
    """Relays progress no more often than every `every` seconds per stage, always at stage start and end."""

    def __init__(self, callback: Progress | None, every: float = 0.25) -> None:
        self.callback = callback
        self.every = every
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, *, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if force or stage != self.stage or now - self.last >= self.every:
            self.stage, self.last = stage, now
            self.callback(stage, max(0.0, min(1.0, fraction)))


_END = object()


class _Pipe:
    """Runs `consume` on items from a bounded queue in its own thread.

    PyAV's filters and codecs and LAME release the GIL, so the two cores share the work: one thread decodes,
    shapes and limits while another measures and encodes. An error in the thread is raised by the next
    put() or by close(); the thread keeps draining so the producer never blocks on it.
    """

    def __init__(self, consume: Callable[[Any], None], depth: int = 64) -> None:
        self.consume = consume
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if self.error is None:
                try:
                    self.consume(item)
                except BaseException as error:  # handed to the producer
                    self.error = error

    def put(self, item: Any) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def close(self) -> None:
        self.queue.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _Verifier:
    """Measures the MP3 as it is written, from a pipe, in its own thread (the same meter as measure_file)."""

    def __init__(self) -> None:
        read, write = os.pipe()
        self.writer: BinaryIO = os.fdopen(write, "wb")
        self.reader: BinaryIO = os.fdopen(read, "rb", buffering=0)
        self.result: tuple[Loudness, float] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = measure_stream(self.reader, "mp3")
        except BaseException as error:
            self.error = error
        finally:
            self.reader.close()  # a writer still writing gets EPIPE rather than blocking

    def finish(self) -> tuple[Loudness, float]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass(frozen=True)
class _Plan:
    """What pass 1 found: the input's format and length, what to keep of it, and how loud it is."""

    rate: int
    fmt: str
    layout: str
    channels: int
    total: int  # decoded samples
    segments: tuple[tuple[int, int], ...]  # [first, stop) sample ranges kept, in order
    loudness: Loudness  # of the explicit region, as uploaded
    level: np.ndarray | None  # leveler gain in dB per hop (HOP seconds), or None
    loudness_leveled: float  # predicted integrated loudness of the kept audio after leveling
    peak_leveled: float  # predicted sample peak (dBFS) of the kept audio after leveling
    momentary: np.ndarray  # per hop: momentary loudness after leveling, NaN outside the kept audio
    hop: int  # samples per hop

    @property
    def first(self) -> int:
        return self.segments[0][0]

    @property
    def stop(self) -> int:
        return self.segments[-1][1]

    @property
    def kept(self) -> int:
        return sum(b - a for a, b in self.segments)

    def cuts(self) -> list[tuple[float, float]]:
        """Inner spans removed, (start, end) in seconds of the input."""
        return [
            (round(b / self.rate, 3), round(a2 / self.rate, 3))
            for (_, b), (a2, _) in itertools.pairwise(self.segments)
        ]


class _Blocks:
    """Per-block power and peak (SILENCE_BLOCK seconds, max over channels) of a whole file, streamed."""

    def __init__(self, size: int) -> None:
        self.size = size
        # Compact arrays, 4 bytes a block: a list of small numpy arrays costs ~100 bytes each and grew by
        # 55 MB over 3 hours.
        self.power = array.array("f")
        self.peak = array.array("f")
        self.carry: np.ndarray | None = None

    def push(self, samples: np.ndarray, final: bool = False) -> None:
        if self.carry is not None:
            samples = np.concatenate([self.carry, samples], axis=1)
        count = samples.shape[1] // self.size
        if final and samples.shape[1] % self.size:
            count += 1
            samples = np.pad(samples, ((0, 0), (0, count * self.size - samples.shape[1])))
        if count:
            used = samples[:, : count * self.size].reshape(samples.shape[0], count, self.size)
            # Variance, not mean square: a DC offset (a cheap interface's "silence") is not sound.
            mean = used.mean(axis=2)
            power = np.einsum("cnb,cnb->cn", used, used) / self.size - mean * mean
            self.power.frombytes(power.max(axis=0).astype(np.float32).tobytes())
            self.peak.frombytes(np.abs(used).max(axis=(0, 2)).astype(np.float32).tobytes())
        rest = samples[:, count * self.size :]
        self.carry = rest if rest.shape[1] else None

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        if self.carry is not None:
            carry, self.carry = self.carry, None
            self.push(carry, final=True)
        return np.frombuffer(self.power, dtype=np.float32), np.frombuffer(self.peak, dtype=np.float32)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where `flags` is True."""
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _segments(
    first: int, stop: int, quiet: np.ndarray, block: int, options: ProcessOptions, rate: int
) -> tuple[tuple[int, int], ...]:
    """The kept region minus the middle of inner silences longer than options.max_silence."""
    if options.max_silence is None:
        return ((first, stop),)
    keep = round(options.max_silence * rate)
    segments: list[tuple[int, int]] = []
    at = first
    for a, b in _runs(quiet):
        lo, hi = max(a * block, first), min(b * block, stop)
        if lo <= first or hi >= stop or hi - lo <= keep:
            continue  # not inner (leading and trailing silence are the trimmer's), or short enough
        cut_from, cut_to = lo + keep // 2, hi - (keep - keep // 2)
        segments.append((at, cut_from))
        at = cut_to
    segments.append((at, stop))
    return tuple(segments)


def _fill(values: np.ndarray) -> np.ndarray:
    """NaNs replaced by the nearest earlier value (the first ones by the first value); all NaN gives 0."""
    ok = np.isfinite(values)
    if not ok.any():
        return np.zeros_like(values)
    index = np.where(ok, np.arange(values.size), 0)
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    filled[: int(np.argmax(ok))] = values[int(np.argmax(ok))]
    return filled


def _gated_loudness(momentary: np.ndarray) -> float:
    """BS.1770 integrated loudness from 400 ms block loudness at 100 ms steps (both gates)."""
    blocks = momentary[np.isfinite(momentary) & (momentary > -70.0)]
    if not blocks.size:
        return -70.0
    energy = 10 ** (blocks / 10)
    relative = 10 * math.log10(float(energy.mean(dtype=np.float64))) - 10.0
    kept = energy[blocks > relative]
    return 10 * math.log10(float(kept.mean(dtype=np.float64))) if kept.size else -70.0


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    """Centered Hann-window moving average, edges extended."""
    if width < 3 or values.size < 2:
        return values
    window = np.hanning(width + 2)[1:-1].astype(values.dtype)
    window /= window.sum()
    padded = np.pad(values, (width, width), mode="edge")
    return np.convolve(padded, window, mode="same")[width:-width]


def level_curve(momentary: np.ndarray, integrated: float) -> np.ndarray:
    """Leveler gain (dB per hop) that brings quiet and loud passages (speakers) together without pumping.

    The local loudness is the energy mean of the speech blocks (momentary loudness above a gate) in a
    window of LEVEL_WINDOW seconds; pauses and noise below the gate hold the gain of the speech around them.
    The gain moves a share (LEVEL_STRENGTH) of the way from the local loudness to the whole's, within
    limits, and is smoothed over LEVEL_SMOOTH seconds: it never reacts to a single syllable or breath.
    """
    # float32 throughout: one value per 100 ms, and the arrays of a 3-hour file are what peak RSS sees.
    momentary = momentary.astype(np.float32, copy=False)
    gate = max(integrated - LEVEL_GATE_LU, -70.0)
    speech = np.isfinite(momentary) & (momentary > gate)
    energy = np.nan_to_num(momentary, nan=-70.0)
    energy /= 10
    np.power(np.float32(10), energy, out=energy)
    energy[~speech] = 0.0
    width = max(1, round(LEVEL_WINDOW / HOP))
    kernel = np.ones(width, dtype=np.float32)
    total = np.convolve(energy, kernel, mode="same")
    del energy
    count = np.convolve(speech.astype(np.float32), kernel, mode="same")
    enough = count >= max(2.0, 0.25 * width)
    local = np.full(momentary.size, np.nan, dtype=np.float32)
    local[enough] = 10 * np.log10(total[enough] / count[enough])
    del total, count, enough
    local = _fill(local)
    gain = np.clip(LEVEL_STRENGTH * (np.float32(integrated) - local), -LEVEL_MAX_CUT, LEVEL_MAX_BOOST)
    return _smooth(gain.astype(np.float32, copy=False), max(1, round(LEVEL_SMOOTH / HOP)))


def _analyze(src: Path, options: ProcessOptions, report: _Reporter, snap: Snap | None = None) -> _Plan:
    """Pass 1: decode everything once, measure loudness in the explicit region and find its silences."""
    size = max(1, src.stat().st_size)
    uniform = Uniform()
    stats = DecodeStats()
    meter: Meter | None = None
    blocks: _Blocks | None = None
    momentary = array.array("d")  # per hop (8 bytes each, not a Python float object)
    position = 0
    region: tuple[int, int | None] = (0, None)
    hop = 0

    def record(out: av.AudioFrame) -> None:
        value = out.metadata.get("lavfi.r128.M") if out.metadata else None
        if value is None or out.pts is None:
            return
        index = (out.pts + out.samples - 1) // hop
        if index >= len(momentary):
            momentary.extend([math.nan] * (index + 1 - len(momentary)))
        momentary[index] = float(value)

    metering: _Pipe | None = None
    try:
        with open_input(src) as container:
            stream = best_audio_stream(container)
            if stream is None:
                raise InvalidMedia("the file has no audio stream", code="media-no-audio")
            report("measure", 0.0, force=True)
            for decoded in decode_audio(container, stream, stats):
                for frame in uniform(decoded):
                    if meter is None:
                        start = round((options.start or 0.0) * uniform.rate)
                        end = None if options.end is None else round(options.end * uniform.rate)
                        region = (start, end)
                        meter = Meter(
                            rate=uniform.rate, fmt=uniform.format, layout=uniform.layout, trim=region
                        )
                        meter.observe = record
                        metering = _Pipe(meter.push)  # the true-peak meter runs on the other core
                        blocks = _Blocks(max(1, round(SILENCE_BLOCK * uniform.rate)))
                        hop = 2 * blocks.size
                    assert blocks is not None
                    assert metering is not None
                    frame.pts, frame.time_base = position, Fraction(1, uniform.rate)
                    position += frame.samples
                    samples = to_float(frame)  # read before the other thread gets the frame
                    metering.put(frame)
                    blocks.push(samples)
                report("measure", stats.last_pos / size)
        if metering is not None:
            metering.put(None)
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the audio could not be decoded ({error.strerror})", code="media-unreadable"
        ) from None
    finally:
        if metering is not None:
            metering.close()
    if meter is None or blocks is None or position == 0:
        raise InvalidMedia("the file has no decodable audio", code="media-unreadable")
    power, peaks = blocks.finish()
    report("measure", 1.0, force=True)

    rate, block = uniform.rate, blocks.size
    start, end = region
    if start >= position:
        raise InvalidInput(
            f"the in point {start / rate:.3f} s is past the end of the audio ({position / rate:.3f} s)",
            code="invalid-trim",
        )
    end = position if end is None else min(end, position)
    integrated, lra, peak = meter.result()
    if integrated <= -69.9:
        raise InvalidMedia(
            "the audio is silent (or too short to measure), so there is nothing to publish",
            code="media-silent",
        )
    if integrated < QUIETEST_LUFS:
        raise InvalidMedia(
            f"the audio measures {integrated:.1f} LUFS: that is silence or hiss, not a recording to publish "
            f"(anything from {QUIETEST_LUFS:g} LUFS up is brought to the target)",
            code="media-silent",
        )
    # A quiet recording's soft syllables sit under a fixed threshold: it follows the programme down.
    threshold_db = min(options.silence_threshold_db, integrated - SILENCE_BELOW_PROGRAMME_LU)
    quiet = power <= 10 ** (threshold_db / 10.0)  # mean square of a block at the threshold
    starts = np.arange(power.size) * block
    loud = np.flatnonzero(~quiet & (starts + block > start) & (starts < end))
    if not loud.size:
        raise InvalidMedia(
            "the audio is silent (or too short to measure), so there is nothing to publish",
            code="media-silent",
        )
    loud_first, loud_last = max(int(loud[0]) * block, start), min((int(loud[-1]) + 1) * block, end)
    first, stop = start, end
    if options.trim_silence:
        min_silence = round(options.silence_min_seconds * rate)
        pad = round(SILENCE_PAD * rate)
        if loud_first - start >= min_silence:
            first = max(start, loud_first - pad)
        if end - loud_last >= min_silence:
            stop = min(end, loud_last + pad)
    if snap is not None:
        want_first, want_stop = snap(first / rate, stop / rate)
        first = max(0, min(round(want_first * rate), position - 1))
        stop = max(first + 1, min(round(want_stop * rate), position))
    segments = _segments(first, stop, quiet, block, options, rate)

    # Hop grid (2 blocks = 100 ms): momentary loudness and sample peak of the kept audio.
    # float32: a 3-hour file has 108,000 hops, and these arrays are what peak RSS sees after decoding.
    hops = max(len(momentary), math.ceil(peaks.size / 2))
    m = np.full(hops, np.nan, dtype=np.float32)
    m[: len(momentary)] = np.frombuffer(momentary, dtype=np.float64)
    del momentary[:]
    hop_peak = np.pad(peaks, (0, 2 * hops - peaks.size)).reshape(hops, 2).max(axis=1)
    del power, peaks, quiet, starts, loud, blocks
    inside = np.zeros(hops, dtype=bool)
    for a, b in segments:
        inside[a // hop : max(a // hop + 1, b // hop)] = True
    m[~inside] = np.nan  # from here on only the kept audio counts
    level = level_curve(m, integrated) if options.level else None
    shift = level if level is not None else np.zeros(hops, dtype=np.float32)
    m += shift  # the momentary loudness after leveling (NaN outside the kept audio)
    leveled = _gated_loudness(m)
    with np.errstate(divide="ignore"):
        peak_db = 20 * np.log10(np.maximum(hop_peak[inside], 1e-9)) + shift[inside]
    del hop_peak
    return _Plan(
        rate=rate,
        fmt=uniform.format,
        layout=uniform.layout,
        channels=len(av.AudioLayout(uniform.layout).channels),
        total=position,
        segments=segments,
        loudness=Loudness(round(integrated, 2), round(lra, 2), round(peak, 2)),
        level=level,
        loudness_leveled=leveled,
        peak_leveled=float(peak_db.max()) if peak_db.size else -120.0,
        momentary=m,
        hop=hop,
    )


class _Writer(Protocol):
    def write(self, frame: av.AudioFrame) -> None: ...

    def close(self) -> None: ...


class _Mp3Writer:
    """lameenc CBR encoder writing into a file; takes packed s16 frames."""

    def __init__(self, path: Path, channels: int, kbps: int, rate: int, tee: BinaryIO | None = None) -> None:
        self.tee = tee  # a second copy of the bytes, for the verifier
        self.encoder = lameenc.Encoder()
        self.encoder.set_bit_rate(kbps)
        self.encoder.set_in_sample_rate(rate)
        self.encoder.set_out_sample_rate(rate)
        self.encoder.set_channels(channels)
        self.encoder.set_quality(3)  # LAME's own default: 2 is ~2x slower for no audible gain on speech
        self.file = path.open("wb")

    def _out(self, data: bytes) -> None:
        self.file.write(data)
        if self.tee is not None:
            try:
                self.tee.write(data)
            except BrokenPipeError:  # the verifier stopped; it reports why
                self.tee = None

    def write(self, frame: av.AudioFrame) -> None:
        self._out(bytes(self.encoder.encode(frame.to_ndarray().tobytes())))

    def close(self) -> None:
        try:
            self._out(bytes(self.encoder.flush()))
        finally:
            self.file.close()
            if self.tee is not None:
                with contextlib.suppress(BrokenPipeError):
                    self.tee.close()


# codec -> (container format, sample format the encoder takes, output rate or None for the render's,
# extra peak headroom in dB: measured here, Opus at 64 kbps overshoots a limiter's ceiling by about 2 dB)
_AV_CODECS = {"aac": ("ipod", "fltp", None, 0.5), "libopus": ("ogg", "flt", 48000, 1.5)}


class _AvWriter:
    """An FFmpeg encoder (AAC in M4A, Opus in Ogg) fed the same frames as the MP3.

    Its own short chain applies `gain_db` (the loudness the MP3 encoder takes away, which these keep) and
    a limiter with the codec's extra headroom, then converts to the encoder's format and rate.
    """

    def __init__(
        self, path: Path, codec: str, channels: int, kbps: int, rate: int, gain_db: float, ceiling_db: float
    ) -> None:
        fmt, sample_fmt, out_rate, headroom = _AV_CODECS[codec]
        layout = "mono" if channels == 1 else "stereo"
        self.rate = out_rate or rate
        limit = 10 ** ((ceiling_db - headroom) / 20)
        self.chain = Chain(
            rate=rate,
            fmt="s16",
            layout=layout,
            filters=[
                ("volume", f"volume={gain_db:.4f}dB:precision=float"),
                ("aformat", "sample_fmts=fltp"),
                ("alimiter", f"limit={limit:.6f}:level=0:latency=1:attack=5:release=50"),
                ("aresample", str(self.rate)),
                ("aformat", f"sample_fmts={sample_fmt}:channel_layouts={layout}:sample_rates={self.rate}"),
            ],
        )
        options = {"movflags": "+faststart"} if fmt == "ipod" else {}
        self.container = av.open(str(path), mode="w", format=fmt, options=options)
        # FFmpeg's AAC "fast" coder: about twice the speed of its default, no audible difference on speech.
        codec_options = {"aac_coder": "fast"} if codec == "aac" else None
        self.stream = self.container.add_stream(codec, rate=self.rate, options=codec_options)
        self.stream.codec_context.layout = layout
        self.stream.codec_context.bit_rate = kbps * 1000
        self.pts = 0

    def _encode(self, frames: list[av.AudioFrame] | None) -> None:
        for frame in frames or [None]:
            if frame is not None:
                frame.pts, frame.time_base = self.pts, Fraction(1, self.rate)
                self.pts += frame.samples
            for packet in self.stream.encode(frame):
                self.container.mux(packet)

    def write(self, frame: av.AudioFrame) -> None:
        frames = self.chain.push(frame)
        if frames:
            self._encode(frames)

    def close(self) -> None:
        frames = self.chain.push(None)
        if frames:
            self._encode(frames)
        self._encode(None)
        self.container.close()


@dataclass(frozen=True)
class _Clip:
    """An intro or outro, decoded into the episode's own rate and layout, with its loudness."""

    samples: np.ndarray  # (channels, n) float32
    loudness: float


def _load_clip(path: Path, rate: int, layout: str, what: str) -> _Clip:
    """Decode a (short) intro or outro clip whole, converted to `rate` and `layout`, and measure it."""
    limit = round(MAX_CLIP_SECONDS * rate)
    resampler = AudioResampler(format="fltp", layout=layout, rate=rate)
    meter = Meter(rate=rate, fmt="fltp", layout=layout)
    chunks: list[np.ndarray] = []
    count = 0
    try:
        with open_input(path) as container:
            stream = best_audio_stream(container)
            if stream is None:
                raise InvalidMedia(f"the {what} has no audio", code="clip-no-audio")
            for decoded in decode_audio(container, stream, DecodeStats()):
                decoded.pts = None
                for frame in resampler.resample(decoded):
                    frame.pts, frame.time_base = count, Fraction(1, rate)
                    count += frame.samples
                    if count > limit:
                        raise InvalidInput(
                            f"the {what} is longer than {MAX_CLIP_SECONDS:g} s", code="clip-too-long"
                        )
                    meter.push(frame)
                    chunks.append(to_float(frame))
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the {what} could not be decoded ({error.strerror})", code="clip-unreadable"
        ) from None
    meter.push(None)
    integrated, _, _ = meter.result()
    if not chunks or integrated <= -69.9:
        raise InvalidMedia(f"the {what} is silent", code="clip-silent")
    return _Clip(np.concatenate(chunks, axis=1), integrated)


@dataclass(frozen=True)
class _Bumpers:
    """Intro and outro of the show, and the length of their crossfades in samples."""

    intro: _Clip | None
    outro: _Clip | None
    overlap: int

    @property
    def lead(self) -> int:
        """Samples of output before the episode's first sample."""
        return self.intro.samples.shape[1] - self.overlap if self.intro is not None else 0

    def extra(self) -> int:
        """Samples the bumpers add to the output in all."""
        tail = self.outro.samples.shape[1] - self.overlap if self.outro is not None else 0
        return self.lead + tail


def _bumpers(options: ProcessOptions, plan: _Plan) -> _Bumpers:
    intro = _load_clip(options.intro, plan.rate, plan.layout, "intro") if options.intro else None
    outro = _load_clip(options.outro, plan.rate, plan.layout, "outro") if options.outro else None
    lengths = [c.samples.shape[1] for c in (intro, outro) if c is not None]
    overlap = min([round(max(0.0, options.crossfade) * plan.rate), plan.kept // 2, *lengths])
    return _Bumpers(intro, outro, overlap)


class _Shaper:
    """Keeps the planned segments of decoded audio and applies the gain: leveler curve times a constant.

    Works in numpy on the input's own layout and rate; cut edges get a short fade so they never click.
    """

    def __init__(self, plan: _Plan, gain_db: float, bumpers: _Bumpers, goal: float) -> None:
        self.plan = plan
        self.gain = 10 ** (gain_db / 20)
        self.fade = max(1, round(FADE * plan.rate))
        self.hop = 2 * max(1, round(SILENCE_BLOCK * plan.rate))
        if plan.level is not None:
            self.curve_at = (np.arange(plan.level.size) + 0.5) * self.hop
            self.curve = 10 ** (plan.level / 20)  # float64, as np.interp wants it (no copy per call)
        self.done = 0  # episode samples emitted
        self.segment = 0  # the first segment that may still hold samples to come
        self.kept = plan.kept
        # Bumpers play at the loudness the episode is brought to; equal-power crossfades join them.
        self.overlap = bumpers.overlap
        ramp = np.sin(0.5 * np.pi * (np.arange(self.overlap) + 0.5) / max(1, self.overlap)).astype(np.float32)
        self.rise, self.fall = ramp, ramp[::-1].copy()
        self.intro = self.outro = None
        if bumpers.intro is not None:
            self.intro = bumpers.intro.samples * np.float32(10 ** ((goal - bumpers.intro.loudness) / 20))
        if bumpers.outro is not None:
            self.outro = bumpers.outro.samples * np.float32(10 ** ((goal - bumpers.outro.loudness) / 20))

    def _bump(self, episode: np.ndarray) -> np.ndarray:
        """Crossfade the intro's tail and the outro's head into this run of episode samples."""
        first, last = self.done, self.done + episode.shape[1]
        self.done = last
        if self.intro is not None and first < self.overlap:
            lo, hi = first, min(last, self.overlap)
            lead = self.intro.shape[1] - self.overlap
            episode[:, lo - first : hi - first] *= self.rise[lo:hi]
            episode[:, lo - first : hi - first] += self.intro[:, lead + lo : lead + hi] * self.fall[lo:hi]
        start = self.kept - self.overlap
        if self.outro is not None and last > start:
            lo, hi = max(first, start), last
            episode[:, lo - first : hi - first] *= self.fall[lo - start : hi - start]
            episode[:, lo - first : hi - first] += (
                self.outro[:, lo - start : hi - start] * self.rise[lo - start : hi - start]
            )
        if first == 0 and self.intro is not None:
            return np.concatenate([self.intro[:, : self.intro.shape[1] - self.overlap], episode], axis=1)
        return episode

    def finish(self) -> np.ndarray | None:
        """What follows the episode: the rest of the outro."""
        if self.outro is None or self.outro.shape[1] <= self.overlap:
            return None
        return np.ascontiguousarray(self.outro[:, self.overlap :])

    def __call__(self, samples: np.ndarray, at: int) -> np.ndarray | None:
        """The kept, shaped part of `samples` (which starts at input sample `at`), or None."""
        end = at + samples.shape[1]
        pieces: list[np.ndarray] = []
        segments = self.plan.segments
        while self.segment < len(segments) - 1 and segments[self.segment][1] <= at:
            self.segment += 1  # frames come in order: segments behind us are done with
        for index in range(self.segment, len(segments)):
            a, b = segments[index]
            if a >= end:
                break
            lo, hi = max(a, at), min(b, end)
            if lo >= hi:
                continue
            piece = samples[:, lo - at : hi - at]
            positions = np.arange(lo, hi)
            envelope = np.full(hi - lo, self.gain, dtype=np.float32)
            if self.plan.level is not None:
                # Only the few hops around this piece: interpolating against the whole curve costs
                # time in proportion to the file's length, for every frame.
                first_hop = max(0, lo // self.hop - 1)
                last_hop = hi // self.hop + 2
                envelope *= np.interp(
                    positions, self.curve_at[first_hop:last_hop], self.curve[first_hop:last_hop]
                ).astype(np.float32)
            if a > 0 and lo < a + self.fade:  # a cut (or trim) before this segment: fade in
                envelope *= np.clip((positions - a + 1) / self.fade, 0.0, 1.0).astype(np.float32)
            last = index == len(segments) - 1
            if (b < self.plan.total or not last) and hi > b - self.fade:  # fade out into a cut or trim
                envelope *= np.clip((b - positions) / self.fade, 0.0, 1.0).astype(np.float32)
            pieces.append(piece * envelope)
        if not pieces:
            return None
        episode = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
        return self._bump(episode) if self.intro is not None or self.outro is not None else episode


@dataclass(frozen=True)
class _Sample:
    """A share of the input, in windows (the first of every `period`), for a cheaper trial render.

    The trial's loudness on the share, corrected by the difference between the predicted loudness of the
    whole and of the share, stands for the whole: the limiter's effect is about the same everywhere in
    speech, and what differs (which passage is louder) the prediction already knows.
    """

    window: int  # input samples
    period: int

    def takes(self, position: int) -> bool:
        return (position // self.window) % self.period == 0

    def correction(self, plan: _Plan) -> float:
        starts = np.arange(plan.momentary.size) * plan.hop
        chosen = np.where((starts // self.window) % self.period == 0, plan.momentary, np.nan)
        return plan.loudness_leveled - _gated_loudness(chosen)


def _sample_for(plan: _Plan, bumpers: _Bumpers) -> _Sample | None:
    """A third of the input in 20 s windows, for inputs long enough that a third still says it all."""
    if bumpers.intro is not None or bumpers.outro is not None or plan.kept < SAMPLE_MIN_SECONDS * plan.rate:
        return None
    return _Sample(window=round(SAMPLE_WINDOW * plan.rate), period=SAMPLE_PERIOD)


def _render(
    src: Path,
    plan: _Plan,
    out_layout: str,
    rate: int,
    gain_db: float,
    ceiling_db: float,
    writers: Sequence[_Writer],
    report: Callable[[float], None],
    bumpers: _Bumpers,
    goal: float,
    sample: _Sample | None = None,
) -> tuple[float, float]:
    """Decode, keep the planned segments, level, apply gain, downmix, resample, limit; measure and encode.

    Returns the integrated loudness and the sample peak (dBFS) of the limiter's output.
    """
    filters: list[tuple[str, str]] = [
        ("aformat", f"sample_fmts=fltp:channel_layouts={out_layout}"),
        ("aresample", str(rate)),
        # level=0: no automatic make-up gain; latency=1: no lookahead delay shifting chapter marks.
        ("alimiter", f"limit={10 ** (ceiling_db / 20):.6f}:level=0:latency=1:attack=5:release=50"),
        ("aformat", f"sample_fmts=s16:channel_layouts={out_layout}:sample_rates={rate}"),
    ]
    chain = Chain(rate=plan.rate, fmt="fltp", layout=plan.layout, filters=filters)
    meter = Meter(rate=rate, fmt="s16", layout=out_layout, true_peak=False)
    shaper = _Shaper(plan, gain_db, bumpers, goal)
    uniform = Uniform()
    kept = plan.kept + bumpers.extra()
    position = 0
    produced = 0
    done = 0

    def emit(samples: np.ndarray) -> av.AudioFrame:
        nonlocal produced
        out = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=plan.layout)
        out.sample_rate, out.pts, out.time_base = plan.rate, produced, Fraction(1, plan.rate)
        produced += samples.shape[1]
        return out

    # The slowest stage gets a thread of its own: the encoders when there are any (LAME is the largest cost
    # of the pipeline), else the meter.
    meter_here = bool(writers)

    def sink(frames: list[av.AudioFrame]) -> None:
        for out in frames:
            if not meter_here:
                meter.push(out)
            for writer in writers:
                writer.write(out)

    pipe = _Pipe(sink)

    def consume(frames: list[av.AudioFrame]) -> None:
        nonlocal done
        if frames:
            if meter_here:
                for out in frames:
                    meter.push(out)
            pipe.put(frames)
            done += sum(out.samples for out in frames)

    try:
        with open_input(src) as container:
            stream = best_audio_stream(container)
            if stream is None:  # pass 1 saw one; the file changed under us
                raise InvalidMedia("the file has no audio stream", code="media-no-audio")
            for decoded in decode_audio(container, stream, DecodeStats()):
                for frame in uniform(decoded):
                    at = position
                    position += frame.samples
                    if position <= plan.first:
                        continue
                    if at >= plan.stop:
                        break
                    if sample is not None and not sample.takes(at):
                        continue
                    shaped = shaper(to_float(frame), at)
                    if shaped is None:
                        continue
                    consume(chain.push(emit(shaped)))
                if position >= plan.stop:
                    break
                report(done / max(1.0, kept * rate / plan.rate))
        tail = shaper.finish()
        if tail is not None:
            consume(chain.push(emit(tail)))
        consume(chain.push(None))
    finally:
        pipe.close()
    meter.push(None)
    integrated, _, peak = meter.result()
    return integrated, peak


def _next_gain(points: list[tuple[float, float]], goal: float, limited: bool) -> float:
    """The gain to try next, from the (gain, loudness) pairs seen: a secant, or a first guess at the slope."""
    gain, loud = points[-1]
    if len(points) >= 2:
        (g0, l0), (g1, l1) = points[-2], points[-1]
        slope = (l1 - l0) / (g1 - g0) if g1 != g0 else 0.0
        if not 0.05 <= slope <= 1.5:
            slope = 0.5
    else:
        # Under a limiter a dB of gain buys less than a dB of loudness.
        slope = 0.7 if limited else 1.0
    step = (goal - loud) / slope
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, gain + max(-20.0, min(20.0, step))))


def _steady_heap() -> None:
    """Fix glibc's mmap threshold (128 KiB), so the analysis arrays (one value per 100 ms: a few MB for
    3 hours) go back to the system when freed. Left dynamic, the threshold rises to the largest array freed
    and later ones land in the heap, where they stay: peak RSS then grew by ~9 MB from 30 minutes to 3 hours.
    """
    global _HEAP_SET
    if _HEAP_SET or not sys.platform.startswith("linux"):
        return
    _HEAP_SET = True
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)


M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_HEAP_SET = False


def process_audio(
    src: Path,
    dst: Path,
    options: ProcessOptions,
    progress: Progress | None = None,
    *,
    aac: Path | None = None,
    opus: Path | None = None,
    snap: Snap | None = None,
) -> ProcessResult:
    """Write a loudness-normalized, trimmed MP3 of `src` to `dst` (atomically); `src` is only read.

    `aac` and `opus` also write the same master as AAC-LC in M4A and as Opus in Ogg, each on target.
    `snap` is shown the region chosen to keep, (first, stop) in seconds of the input, and returns the
    region to render instead (a video's keyframes); the result's offset and duration follow it.
    """
    if (options.start is not None and options.start < 0) or (options.end is not None and options.end <= 0):
        raise InvalidInput("in and out points must be positive", code="invalid-trim")
    if options.start is not None and options.end is not None and options.end <= options.start:
        raise InvalidInput("the out point must come after the in point", code="invalid-trim")
    if options.channels not in (None, 1, 2):
        raise InvalidInput("the output has 1 or 2 channels", code="invalid-options")
    if options.sample_rate not in MP3_RATES:
        raise InvalidInput(
            f"MP3 cannot have a sample rate of {options.sample_rate} Hz", code="invalid-options"
        )
    if options.max_silence is not None and not 0.2 <= options.max_silence <= 60:
        raise InvalidInput("inner silences can be shortened to 0.2 to 60 seconds", code="invalid-options")
    src, dst = Path(src), Path(dst)
    _steady_heap()
    report = _Reporter(progress)
    started = time.monotonic(), time.process_time()
    plan = _analyze(src, options, report, snap)
    log.debug(
        "analysis: %.2f LUFS (leveled %.2f), %.1f s wall, %.1f s CPU",
        plan.loudness.integrated, plan.loudness_leveled,
        time.monotonic() - started[0], time.process_time() - started[1],
    )  # fmt: skip
    renders = 0

    def render(*args: Any) -> tuple[float, float]:
        nonlocal renders
        renders += 1
        wall, cpu = time.monotonic(), time.process_time()
        loud, peak = _render(*args)
        log.debug(
            "render %d (%s): gain %.2f dB -> %.2f LUFS, peak %.2f dBFS in %.1f s wall, %.1f s CPU",
            renders, "trial" if not args[6] else "encode", args[4], loud, peak,
            time.monotonic() - wall, time.process_time() - cpu,
        )  # fmt: skip
        return loud, peak

    bumpers = _bumpers(options, plan)

    channels = options.channels or (1 if plan.channels == 1 else 2)
    out_layout = "mono" if channels == 1 else "stereo"
    rate = options.sample_rate
    kbps = options.bitrate_kbps or (64 if channels == 1 else 128)
    target = options.target_lufs
    goal = target + MP3_LOSS_LU  # loudness wanted before encoding
    ceiling = max(-20.0, options.true_peak_db - CEILING_MARGIN_DB)  # alimiter goes down to -24 dB
    gain = goal - plan.loudness_leveled
    # When the limiter will not touch the audio, loudness follows the gain (and the leveler's predicted
    # effect) closely enough that no trial render is needed.
    trial_needed = (
        plan.channels > 2
        or plan.channels != channels
        or plan.peak_leveled + gain > ceiling - 1.0
        or bumpers.intro is not None
        or bumpers.outro is not None
    )
    points: list[tuple[float, float]] = []

    sample = _sample_for(plan, bumpers)
    correction = sample.correction(plan) if sample is not None else 0.0
    log.debug("trial needed: %s; sample correction %.2f LU", trial_needed, correction)

    def normalize(gain: float) -> float:
        for attempt in range(MAX_NORMALIZE_PASSES):
            loud, peak = render(
                src, plan, out_layout, rate, gain, ceiling, (),
                lambda f, a=attempt: report("normalize", (a + f) / MAX_NORMALIZE_PASSES), bumpers, goal,
                sample,
            )  # fmt: skip
            loud += correction
            points.append((gain, loud))
            if abs(loud - goal) <= NORMALIZE_TOLERANCE:
                break
            gain = _next_gain(points, goal, limited=peak >= ceiling - 0.1)
            if abs(loud - goal) <= SMALL_MISS:
                break  # a small step lands close enough; the encode pass measures it anyway
        return gain

    outputs = {"mp3": dst, "aac": aac, "opus": opus}
    parts = {name: path.with_name(path.name + ".part") for name, path in outputs.items() if path is not None}
    for path in parts.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    loudness_out = Loudness(0.0, 0.0, 0.0)
    duration_out = 0.0
    try:
        for attempt in range(MAX_ENCODE_PASSES):
            if trial_needed:
                gain = normalize(gain)
            # AAC and Opus keep the loudness the MP3 encoder takes away: they get that much less gain.
            verifier = _Verifier()
            writers: list[_Writer] = [_Mp3Writer(parts["mp3"], channels, kbps, rate, tee=verifier.writer)]
            if "aac" in parts:
                writers.append(
                    _AvWriter(parts["aac"], "aac", channels, AAC_KBPS[channels], rate, target - goal, ceiling)
                )
            if "opus" in parts:
                writers.append(
                    _AvWriter(
                        parts["opus"], "libopus", channels, OPUS_KBPS[channels], rate, target - goal, ceiling
                    )
                )
            try:
                loud_pre, _ = render(
                    src, plan, out_layout, rate, gain, ceiling, writers, lambda f: report("encode", f),
                    bumpers, goal,
                )  # fmt: skip
            finally:
                for writer in writers:
                    writer.close()
                with contextlib.suppress(OSError):
                    verifier.writer.close()  # when the MP3 writer never got to
            points.append((gain, loud_pre))
            report("verify", 0.0, force=True)
            loudness_out, duration_out = verifier.finish()
            log.debug(
                "encode %d: %.2f LUFS before the encoder, MP3 %.2f LUFS %.2f dBTP (goal %.2f, target %.2f)",
                attempt + 1, loud_pre, loudness_out.integrated, loudness_out.true_peak, goal, target,
            )  # fmt: skip
            report("verify", 1.0, force=True)
            loud_ok = abs(loudness_out.integrated - target) <= LOUDNESS_TOLERANCE
            peak_ok = loudness_out.true_peak <= options.true_peak_db
            if loud_ok and peak_ok:
                break
            if attempt == MAX_ENCODE_PASSES - 1:
                if abs(loudness_out.integrated - target) <= 0.5 and peak_ok:
                    break  # within the contract, if not within our own margin
                raise InvalidMedia(
                    f"the audio could not be brought to {target:g} LUFS, {options.true_peak_db:g} dBTP "
                    f"(it ended at {loudness_out.integrated:.1f} LUFS, {loudness_out.true_peak:.1f} dBTP): "
                    "it is mostly silence with a few loud moments",
                    code="media-loudness-unreachable",
                )
            # Learn what the encoder really took, and lower the ceiling by the overshoot seen.
            goal = target + (loud_pre - loudness_out.integrated)
            if not peak_ok:
                ceiling = max(-20.0, ceiling - (loudness_out.true_peak - options.true_peak_db + 0.2))
                points.clear()
            # A peak-only miss is mended by the lower ceiling alone (it costs a tenth of a LU or so, which
            # the next verification still checks): no trial render for it.
            trial_needed = not loud_ok
            if points and not loud_ok:
                gain = _next_gain(points, goal, limited=True)
        with ThreadPoolExecutor(max_workers=2) as pool:
            measured = {
                name: pool.submit(measure_file, parts[name]) for name in ("aac", "opus") if name in parts
            }
            extra = {name: future.result()[0] for name, future in measured.items()}
        # An AAC or Opus encode can overshoot its limiter now and then (a transient the codec rings on):
        # such a rendition is encoded again, alone, with that much more headroom.
        for name, codec, rates in (("aac", "aac", AAC_KBPS), ("opus", "libopus", OPUS_KBPS)):
            shift, headroom = 0.0, 0.0
            for _ in range(MAX_EXTRA_PASSES):
                got = extra.get(name)
                if got is None or (
                    got.true_peak <= options.true_peak_db
                    and abs(got.integrated - target) <= LOUDNESS_TOLERANCE
                ):
                    break
                headroom += max(0.0, got.true_peak - options.true_peak_db) + 0.3
                shift += target - got.integrated
                writer = _AvWriter(
                    parts[name],
                    codec,
                    channels,
                    rates[channels],
                    rate,
                    target - goal + shift,
                    ceiling - headroom,
                )
                try:
                    render(
                        src, plan, out_layout, rate, gain, ceiling, [writer],
                        lambda f: report("encode", f), bumpers, goal,
                    )  # fmt: skip
                finally:
                    writer.close()
                extra[name] = measure_file(parts[name])[0]
        for name, part in parts.items():
            final = outputs[name]
            assert final is not None
            os.replace(part, final)
    finally:
        for part in parts.values():
            part.unlink(missing_ok=True)
    return ProcessResult(
        offset=round(plan.first / plan.rate, 3),
        duration_in=round(plan.total / plan.rate, 3),
        duration_out=round(duration_out, 3),
        loudness_in=plan.loudness,
        loudness_out=loudness_out,
        gain_db=round(gain, 2),
        sample_rate=rate,
        channels=channels,
        bitrate=kbps * 1000,
        cuts=tuple(plan.cuts()),
        extra=extra,
        lead=round(bumpers.lead / plan.rate, 3),
        renders=renders,
    )
