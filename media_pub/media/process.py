"""From an untouched original to a loudness-normalized, silence-trimmed MP3, streamed frame by frame.

Pass 1 decodes the input once to measure it (ebur128) and find leading/trailing silence. Then the render
chain (trim, downmix, resample, gain, limiter) runs again as often as needed: first without encoding, to
find the gain that lands on target despite the limiter, then with the MP3 encoder, and the encoded file is
measured again; a miss adjusts the gain or the limiter ceiling and renders once more (bounded).
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import lameenc
import numpy as np

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
from media_pub.media.loudness import measure_file

Progress = Callable[[str, float], None]

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
# The limiter works on sample peaks; inter-sample peaks and the MP3 encoder add some on top.
CEILING_MARGIN_DB = 1.5
MAX_GAIN_DB = 40.0


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


@dataclass(frozen=True)
class _Plan:
    """What pass 1 found: the input's format, its length, the region to keep and its loudness."""

    rate: int
    fmt: str
    layout: str
    channels: int
    total: int  # decoded samples
    first: int  # first sample kept
    stop: int  # one past the last sample kept
    loudness: Loudness


def _analyze(src: Path, options: ProcessOptions, report: _Reporter) -> _Plan:
    """Pass 1: decode everything once, measure loudness in the explicit region and find its silence."""
    size = max(1, src.stat().st_size)
    uniform = Uniform()
    stats = DecodeStats()
    meter: Meter | None = None
    position = 0
    block = 0
    carry: np.ndarray | None = None
    carry_at = 0
    loud_first: int | None = None
    loud_last: int | None = None
    region = (0, None)
    threshold = 10 ** (options.silence_threshold_db / 10.0)  # mean square of a block at the threshold

    def scan(samples: np.ndarray, at: int, final: bool) -> tuple[np.ndarray | None, int]:
        """Mark loud blocks in `samples` (starting at sample `at`); return the incomplete tail."""
        nonlocal loud_first, loud_last
        count = samples.shape[1] // block
        if final and samples.shape[1] % block:
            count += 1
            samples = np.pad(samples, ((0, 0), (0, count * block - samples.shape[1])))
        if count:
            used = samples[:, : count * block].reshape(samples.shape[0], count, block)
            power = np.einsum("cnb,cnb->cn", used, used).max(axis=0) / block
            loud = np.flatnonzero(power > threshold)
            if loud.size:
                lo, hi = region[0], region[1] if region[1] is not None else math.inf
                starts = at + loud * block
                inside = starts[(starts + block > lo) & (starts < hi)]
                if inside.size:
                    first, last = max(int(inside[0]), lo), int(inside[-1]) + block
                    loud_first = first if loud_first is None else loud_first
                    loud_last = last
        rest = samples[:, count * block :]
        return (rest if rest.shape[1] else None), at + count * block

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
                        block = max(1, round(SILENCE_BLOCK * uniform.rate))
                        carry_at = 0
                    frame.pts, frame.time_base = position, Fraction(1, uniform.rate)
                    position += frame.samples
                    meter.push(frame)
                    samples = to_float(frame)
                    if carry is not None:
                        samples = np.concatenate([carry, samples], axis=1)
                    carry, carry_at = scan(samples, carry_at, final=False)
                report("measure", stats.last_pos / size)
    except av.error.FFmpegError as error:
        raise InvalidMedia(
            f"the audio could not be decoded ({error.strerror})", code="media-unreadable"
        ) from None
    if meter is None or position == 0:
        raise InvalidMedia("the file has no decodable audio", code="media-unreadable")
    if carry is not None:
        scan(carry, carry_at, final=True)
    meter.push(None)
    report("measure", 1.0, force=True)

    rate = uniform.rate
    start, end = region
    if start >= position:
        raise InvalidInput(
            f"the in point {start / rate:.3f} s is past the end of the audio ({position / rate:.3f} s)",
            code="invalid-trim",
        )
    end = position if end is None else min(end, position)
    integrated, lra, peak = meter.result()
    if loud_first is None or loud_last is None or integrated <= -69.9:
        raise InvalidMedia(
            "the audio is silent (or too short to measure), so there is nothing to publish",
            code="media-silent",
        )
    first, stop = start, end
    if options.trim_silence:
        min_silence = round(options.silence_min_seconds * rate)
        pad = round(SILENCE_PAD * rate)
        if loud_first - start >= min_silence:
            first = max(start, loud_first - pad)
        if end - loud_last >= min_silence:
            stop = min(end, loud_last + pad)
    return _Plan(
        rate=rate,
        fmt=uniform.format,
        layout=uniform.layout,
        channels=len(av.AudioLayout(uniform.layout).channels),
        total=position,
        first=first,
        stop=stop,
        loudness=Loudness(round(integrated, 2), round(lra, 2), round(peak, 2)),
    )


class _Mp3Writer:
    """lameenc CBR encoder writing into a file."""

    def __init__(self, path: Path, channels: int, kbps: int, rate: int) -> None:
        self.encoder = lameenc.Encoder()
        self.encoder.set_bit_rate(kbps)
        self.encoder.set_in_sample_rate(rate)
        self.encoder.set_out_sample_rate(rate)
        self.encoder.set_channels(channels)
        self.encoder.set_quality(3)  # LAME's own default: 2 is ~2x slower for no audible gain on speech
        self.file = path.open("wb")

    def write(self, pcm: bytes) -> None:
        self.file.write(self.encoder.encode(pcm))

    def close(self) -> None:
        self.file.write(self.encoder.flush())
        self.file.close()


def _render(
    src: Path,
    plan: _Plan,
    out_layout: str,
    rate: int,
    gain_db: float,
    ceiling_db: float,
    writer: _Mp3Writer | None,
    report: Callable[[float], None],
) -> tuple[float, float]:
    """Decode, cut, downmix, resample, apply gain and limiter; measure (and encode) the result.

    Returns the integrated loudness and the sample peak (dBFS) of the limiter's output.
    """
    kept = plan.stop - plan.first
    fade = max(1, round(FADE * plan.rate))
    filters: list[tuple[str, str]] = [
        # Timestamps count samples (set below), so pts-based trimming is sample exact.
        ("atrim", f"start_pts={plan.first}:end_pts={plan.stop}"),
        ("asetpts", "N/SR/TB"),
        ("aformat", f"sample_fmts=fltp:channel_layouts={out_layout}"),
    ]
    if plan.first > 0:
        filters.append(("afade", f"t=in:ss=0:ns={fade}"))
    if plan.stop < plan.total:
        filters.append(("afade", f"t=out:ss={max(0, kept - fade)}:ns={fade}"))
    filters += [
        ("aresample", str(rate)),
        ("volume", f"volume={gain_db:.4f}dB:precision=float"),
        # level=0: no automatic make-up gain; latency=1: no lookahead delay shifting chapter marks.
        ("alimiter", f"limit={10 ** (ceiling_db / 20):.6f}:level=0:latency=1:attack=5:release=50"),
        ("aformat", f"sample_fmts=s16:channel_layouts={out_layout}:sample_rates={rate}"),
    ]
    chain = Chain(rate=plan.rate, fmt=plan.fmt, layout=plan.layout, filters=filters)
    meter = Meter(rate=rate, fmt="s16", layout=out_layout, true_peak=False)
    uniform = Uniform()
    position = 0
    done = 0

    def consume(frames: list[av.AudioFrame]) -> None:
        nonlocal done
        for out in frames:
            meter.push(out)
            if writer is not None:
                writer.write(out.to_ndarray().tobytes())
            done += out.samples

    with open_input(src) as container:
        stream = best_audio_stream(container)
        if stream is None:  # pass 1 saw one; the file changed under us
            raise InvalidMedia("the file has no audio stream", code="media-no-audio")
        for decoded in decode_audio(container, stream, DecodeStats()):
            for frame in uniform(decoded):
                if position >= plan.stop:
                    break
                frame.pts, frame.time_base = position, Fraction(1, plan.rate)
                position += frame.samples
                if position <= plan.first:
                    continue
                consume(chain.push(frame))
            if position >= plan.stop:
                break
            report(done / max(1.0, kept * rate / plan.rate))
    consume(chain.push(None))
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


def process_audio(
    src: Path, dst: Path, options: ProcessOptions, progress: Progress | None = None
) -> ProcessResult:
    """Write a loudness-normalized, trimmed MP3 of `src` to `dst` (atomically); `src` is only read."""
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
    src, dst = Path(src), Path(dst)
    report = _Reporter(progress)
    plan = _analyze(src, options, report)

    channels = options.channels or (1 if plan.channels == 1 else 2)
    out_layout = "mono" if channels == 1 else "stereo"
    rate = options.sample_rate
    kbps = options.bitrate_kbps or (64 if channels == 1 else 128)
    target = options.target_lufs
    goal = target + MP3_LOSS_LU  # loudness wanted before encoding
    ceiling = max(-20.0, options.true_peak_db - CEILING_MARGIN_DB)  # alimiter goes down to -24 dB
    gain = goal - plan.loudness.integrated
    # When the limiter will not touch the audio, loudness follows the gain exactly and needs no trial render.
    trial_needed = (
        plan.channels > 2 or plan.channels != channels or plan.loudness.true_peak + gain > ceiling - 0.5
    )
    points: list[tuple[float, float]] = []

    def normalize(gain: float) -> float:
        for attempt in range(MAX_NORMALIZE_PASSES):
            loud, peak = _render(
                src, plan, out_layout, rate, gain, ceiling, None,
                lambda f, a=attempt: report("normalize", (a + f) / MAX_NORMALIZE_PASSES),
            )  # fmt: skip
            points.append((gain, loud))
            if abs(loud - goal) <= NORMALIZE_TOLERANCE:
                break
            gain = _next_gain(points, goal, limited=peak >= ceiling - 0.1)
            if abs(loud - goal) <= SMALL_MISS:
                break  # a small step lands close enough; the encode pass measures it anyway
        return gain

    part = dst.with_suffix(".part")
    dst.parent.mkdir(parents=True, exist_ok=True)
    loudness_out = Loudness(0.0, 0.0, 0.0)
    duration_out = 0.0
    try:
        for attempt in range(MAX_ENCODE_PASSES):
            if trial_needed:
                gain = normalize(gain)
            writer = _Mp3Writer(part, channels, kbps, rate)
            try:
                loud_pre, _ = _render(
                    src, plan, out_layout, rate, gain, ceiling, writer, lambda f: report("encode", f)
                )
            finally:
                writer.close()
            points.append((gain, loud_pre))
            expected = (plan.stop - plan.first) / plan.rate
            loudness_out, duration_out = measure_file(
                part, lambda f: report("verify", f), expected_seconds=expected
            )
            report("verify", 1.0, force=True)
            loud_ok = abs(loudness_out.integrated - target) <= LOUDNESS_TOLERANCE
            peak_ok = loudness_out.true_peak <= options.true_peak_db
            if (loud_ok and peak_ok) or attempt == MAX_ENCODE_PASSES - 1:
                break
            # Learn what the encoder really took, and lower the ceiling by the overshoot seen.
            goal = target + (loud_pre - loudness_out.integrated)
            if not peak_ok:
                ceiling = max(-20.0, ceiling - (loudness_out.true_peak - options.true_peak_db + 0.2))
                points.clear()
            trial_needed = True
            if points:
                gain = _next_gain(points, goal, limited=True)
        os.replace(part, dst)
    finally:
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
    )
