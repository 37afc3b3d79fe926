"""Deterministic speech-like test audio, written chunk by chunk with PyAV (demo show, tests, benchmarks)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream

from media_pub.media._av import Meter

CHUNK_SECONDS = 1.0
HARMONICS = 16
CALIBRATION_SECONDS = 60.0

# fmt -> (codec, container format, bit rate); "ogg" uses FFmpeg's own Vorbis encoder (no libvorbis in PyAV).
_FORMATS: dict[str, tuple[str, str, int | None]] = {
    "wav": ("pcm_s16le", "wav", None),
    "flac": ("flac", "flac", None),
    "mp3": ("libmp3lame", "mp3", 128_000),
    "m4a": ("aac", "ipod", 128_000),
    "ogg": ("vorbis", "ogg", 128_000),
    "opus": ("libopus", "ogg", 96_000),
}

# Speed over quality: this audio only has to be realistic enough to measure and process.
_ENCODER_OPTIONS = {
    "vorbis": {"strict": "experimental"},
    "aac": {"aac_coder": "fast"},
    "libmp3lame": {"compression_level": "7"},
}

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
# 5.1 mix (FL, FR, FC, LFE, BL, BR): the voice sits in the centre, a little of it in the fronts and backs.
_SURROUND_GAINS = np.array([0.5, 0.5, 1.0, 0.0, 0.1, 0.1], dtype=np.float32)


class _Voice:
    """A talker: phrases of syllables (voiced harmonics through formants, some noise bursts) and pauses."""

    def __init__(self, seconds: float, sample_rate: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.rate = sample_rate
        self.seed = seed
        starts, durs, amps, pitches, glides, f1s, f2s, frics = [], [], [], [], [], [], [], []
        base = float(rng.uniform(100.0, 220.0))
        t = 0.0
        while t < seconds:
            count = int(rng.integers(4, 13))
            for i in range(count):
                dur = float(rng.uniform(0.12, 0.3))
                starts.append(t)
                durs.append(dur)
                amps.append(float(rng.uniform(0.35, 1.0)))
                # Pitch falls across a phrase (declination), as in read speech.
                pitches.append(base * (1.15 - 0.3 * i / count) * float(rng.uniform(0.9, 1.1)))
                glides.append(float(rng.uniform(-0.15, 0.15)))
                f1s.append(float(rng.uniform(300.0, 850.0)))
                f2s.append(float(rng.uniform(900.0, 2400.0)))
                frics.append(bool(rng.random() < 0.3))
                t += dur + float(rng.uniform(0.02, 0.09))
            t += float(rng.uniform(0.25, 0.75))
        self.start = np.array(starts)
        self.dur = np.array(durs)
        self.amp = np.array(amps, dtype=np.float32)
        self.pitch = np.array(pitches)
        self.glide = np.array(glides)
        self.fric = np.array(frics)
        # Harmonic weights per syllable: 1/k tilt times resonances at F1, F2 and a fixed F3.
        k = np.arange(1, HARMONICS + 1)[None, :]
        freq = self.pitch[:, None] * k
        f1, f2 = np.array(f1s)[:, None], np.array(f2s)[:, None]
        res = (
            1.0 / (1.0 + ((freq - f1) / 120.0) ** 2)
            + 0.6 / (1.0 + ((freq - f2) / 150.0) ** 2)
            + 0.3 / (1.0 + ((freq - 2800.0) / 200.0) ** 2)
            + 0.04
        )
        # Harmonics that the glide could push past Nyquist get no weight (no aliasing, no per-sample test).
        audible = freq * (1.0 + np.abs(self.glide)[:, None]) < sample_rate / 2.2
        self.weights = np.ascontiguousarray((res / k * audible).T.astype(np.float32))  # (harmonic, syllable)
        self.phase = 0.0

    def chunk(self, index: int, first: int, count: int) -> np.ndarray:
        """Samples [first, first + count) as float32 mono; chunks must be asked for in order."""
        t = (first + np.arange(count)) / self.rate
        syl = np.searchsorted(self.start, t, side="right") - 1
        dur = self.dur.take(syl)
        pos = ((t - self.start.take(syl)) / dur).astype(np.float32)
        inside = pos < 1.0
        np.minimum(pos, 1.0, out=pos)
        env = self.amp.take(syl) * np.sin(np.float32(np.pi) * pos) ** 2 * inside
        f0 = self.pitch.take(syl) * (1.0 + self.glide.take(syl) * pos)
        phase = np.cumsum(f0) * (2.0 * np.pi / self.rate) + self.phase
        self.phase = float(phase[-1] % (2.0 * np.pi))
        # sin(k*phi) by the Chebyshev recurrence: two multiply-adds per harmonic instead of a sin() call.
        s1 = np.sin(phase).astype(np.float32)
        c2 = 2.0 * np.cos(phase).astype(np.float32)
        prev, cur = np.zeros_like(s1), s1
        voiced = np.zeros_like(s1)
        for k in range(HARMONICS):
            voiced += self.weights[k].take(syl) * cur
            prev, cur = cur, c2 * cur - prev
        rng = np.random.default_rng([self.seed, index])
        hiss = np.diff(rng.standard_normal(count + 1, dtype=np.float32))  # tilted up, like a fricative
        fric = env * (self.fric.take(syl) & (pos < 0.35)) * np.float32(0.12)
        return voiced * env + hiss * fric


def _channels(mono: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1:
        return mono[None, :]
    if channels == 6:
        return _SURROUND_GAINS[:, None] * mono[None, :]
    return np.repeat(mono[None, :], channels, axis=0)


def _mono_chunks(seconds: float, rate: int, seed: int) -> Iterator[np.ndarray]:
    voice = _Voice(seconds, rate, seed)
    total = round(seconds * rate)
    step = round(CHUNK_SECONDS * rate)
    for index, first in enumerate(range(0, total, step)):
        yield voice.chunk(index, first, min(step, total - first))


def _scaled(mono: np.ndarray, gain: float, channels: int) -> np.ndarray:
    # Hard clipping: a very loud request should sound like a clipping recording, not wrap around.
    return np.clip(_channels(mono * np.float32(gain), channels), -1.0, 1.0)


def _measure(chunks: list[np.ndarray], rate: int, channels: int, gain: float) -> float:
    layout = _LAYOUTS[channels]
    meter = Meter(rate=rate, fmt="fltp", layout=layout, true_peak=False)
    position = 0
    for mono in chunks:
        frame = AudioFrame.from_ndarray(_scaled(mono, gain, channels), format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, position, Fraction(1, rate)
        position += mono.shape[0]
        meter.push(frame)
    meter.push(None)
    return meter.result()[0]


def _calibrate(chunks: list[np.ndarray], rate: int, channels: int, lufs: float) -> float:
    """The gain that makes `chunks` measure `lufs`; more than one try only when clipping bends the curve."""
    gain = 1.0
    for _ in range(4):
        error = lufs - _measure(chunks, rate, channels, gain)
        gain *= 10 ** (error / 20.0)
        peak = max(float(np.abs(c).max(initial=0.0)) for c in chunks) * gain * float(_channels_peak(channels))
        if abs(error) < 0.05 or (peak < 1.0 and abs(error) < 1.0):
            break
    return gain


def _channels_peak(channels: int) -> float:
    return float(_SURROUND_GAINS.max()) if channels == 6 else 1.0


def write_speech_like(
    path: Path,
    seconds: float,
    *,
    lufs: float = -23.0,
    lead_silence: float = 0.0,
    tail_silence: float = 0.0,
    sample_rate: int = 48000,
    channels: int = 2,
    seed: int = 0,
    fmt: str | None = None,
) -> Path:
    """Write `seconds` of speech-like audio measuring about `lufs`, between runs of digital silence."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in _FORMATS:
        raise ValueError(f"unsupported synth format {fmt!r}; use one of {sorted(_FORMATS)}")
    if channels not in _LAYOUTS:
        raise ValueError("channels must be 1, 2 or 6")
    codec, _, bit_rate = _FORMATS[fmt]
    if codec == "libopus":
        sample_rate = 48000  # the only rate Opus takes at full band
    layout = _LAYOUTS[channels]
    speech = _mono_chunks(max(seconds, 0.0), sample_rate, seed)
    # The level is calibrated on (up to) the first minute, kept in memory and written as is afterwards.
    count = math.ceil(CALIBRATION_SECONDS / CHUNK_SECONDS)
    head = [chunk for _, chunk in zip(range(count), speech, strict=False)]
    gain = _calibrate(head, sample_rate, channels, lufs) if head else 0.0

    def blocks() -> Iterator[np.ndarray]:
        step = round(CHUNK_SECONDS * sample_rate)
        total = round(lead_silence * sample_rate)
        for first in range(0, total, step):
            yield np.zeros((channels, min(step, total - first)), dtype=np.float32)
        for mono in itertools.chain(head, speech):
            yield _scaled(mono, gain, channels)
        total = round(tail_silence * sample_rate)
        for first in range(0, total, step):
            yield np.zeros((channels, min(step, total - first)), dtype=np.float32)

    rate_bits = bit_rate // 2 if bit_rate and channels == 1 else bit_rate
    return _write_blocks(path, sample_rate, layout, blocks(), fmt, bit_rate=rate_bits)


def silence_seconds(path: Path, seconds: float, *, sample_rate: int = 48000, channels: int = 2) -> Path:
    """Write `seconds` of digital silence (a file with nothing to publish)."""
    return write_speech_like(path, 0.0, tail_silence=seconds, sample_rate=sample_rate, channels=channels)


TURN_SECONDS = (4.0, 25.0)  # shortest and longest speaker turn
TURN_FADE = 0.02  # seconds of fade where a turn cuts a talker off or brings them in
TURN_LEVEL_DB = 3.0  # a talker's level varies by up to this much from turn to turn (they move, lean in)
NOISE_WIDTHS = (1, 4, 16, 64, 256)  # moving averages two octaves apart: about -3 dB per octave (pink-ish)


class _Talker:
    """One speaker's voice on its own timeline: it talks only in its turns and resumes where it left off."""

    def __init__(self, seconds: float, rate: int, seed: int) -> None:
        self.voice = _Voice(seconds + 1.0, rate, seed)
        self.position = 0
        self.index = 0
        self.pending: list[np.ndarray] = []  # generated ahead (the calibration head), not read yet

    def generate(self, count: int) -> np.ndarray:
        samples = self.voice.chunk(self.index, self.position, count)
        self.index += 1
        self.position += count
        return samples

    def head(self, seconds: float) -> list[np.ndarray]:
        """The first `seconds` of this voice, kept to be read again."""
        step = round(CHUNK_SECONDS * self.voice.rate)
        total = round(seconds * self.voice.rate)
        self.pending = [self.generate(min(step, total - first)) for first in range(0, total, step)]
        return list(self.pending)

    def read(self, count: int) -> np.ndarray:
        pieces: list[np.ndarray] = []
        while count and self.pending:
            first = self.pending[0]
            take = min(count, first.shape[0])
            pieces.append(first[:take])
            if take == first.shape[0]:
                self.pending.pop(0)
            else:
                self.pending[0] = first[take:]
            count -= take
        if count:
            pieces.append(self.generate(count))
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


class _RoomNoise:
    """Decorrelated pink-ish noise per channel at a given RMS, continuous from one chunk to the next."""

    def __init__(self, channels: int, rms_db: float, seed: int) -> None:
        self.rng = np.random.default_rng([seed, 0x6E6F697365])
        self.history = self.rng.standard_normal((channels, max(NOISE_WIDTHS) - 1))
        # The kernel is the sum of boxes of width w, each weighted 1/sqrt(w) (equal power per band).
        kernel = sum(np.pad(np.full(w, w**-0.5), (0, max(NOISE_WIDTHS) - w)) for w in NOISE_WIDTHS)
        self.scale = 10 ** (rms_db / 20) / float(np.sqrt(np.sum(np.square(kernel))))

    def chunk(self, count: int) -> np.ndarray:
        white = self.rng.standard_normal((self.history.shape[0], count))
        signal = np.concatenate([self.history, white], axis=1)
        sums = np.zeros((signal.shape[0], signal.shape[1] + 1))
        np.cumsum(signal, axis=1, out=sums[:, 1:])
        end = self.history.shape[1] + 1
        out = np.zeros((signal.shape[0], count))
        for w in NOISE_WIDTHS:
            out += (sums[:, end : end + count] - sums[:, end - w : end - w + count]) * w**-0.5
        self.history = signal[:, -self.history.shape[1] :]
        return (out * self.scale).astype(np.float32)


def _turn_plan(samples: int, rate: int, seed: int) -> list[tuple[int, int, int, float]]:
    """Alternating speaker turns (first sample, stop, speaker 0 or 1, gain) covering `samples`."""
    rng = np.random.default_rng([seed, 0x7475726E])
    turns: list[tuple[int, int, int, float]] = []
    at = 0
    while at < samples:
        stop = min(samples, at + round(float(rng.uniform(*TURN_SECONDS)) * rate))
        level = float(rng.uniform(-TURN_LEVEL_DB, TURN_LEVEL_DB))
        turns.append((at, stop, len(turns) % 2, 10 ** (level / 20)))
        at = stop
    # Each talker's power over all its turns stays what the calibration measured on its unvaried voice.
    for speaker in (0, 1):
        mine = [(b - a, gain) for a, b, s, gain in turns if s == speaker]
        if mine:
            power = sum(length * gain**2 for length, gain in mine) / sum(length for length, _ in mine)
            turns = [(a, b, s, gain / math.sqrt(power) if s == speaker else gain) for a, b, s, gain in turns]
    return turns


def _mix_gains(talkers: list[_Talker], talk: list[int], rate: int, lufs: float, gap_lu: float) -> list[float]:
    """Per-speaker gains: each voice calibrated on its first minute, the second `gap_lu` quieter, and
    both moved together so that the mix (each voice in its share of the talking time) measures `lufs`."""
    present = [i for i in (0, 1) if talk[i] > 0]
    heads = {i: talkers[i].head(min(talk[i] / rate, CALIBRATION_SECONDS)) for i in present}
    gains = [0.0, 0.0]
    for i in present:
        gains[i] = _calibrate(heads[i], rate, 2, lufs - (gap_lu if i else 0.0))
    # Loudness gating depends on how the two levels share the time: measure a minute shared the same way.
    mix: list[np.ndarray] = []
    for i in present:
        head = np.concatenate(heads[i]) * np.float32(gains[i])
        length = round(CALIBRATION_SECONDS * rate * talk[i] / sum(talk))
        mix.extend(np.array_split(np.resize(head, max(1, length)), max(1, length // rate)))
    both = _calibrate(mix, rate, 2, lufs)
    return [gain * both for gain in gains]


def _block_format(path: Path, fmt: str | None) -> str:
    """The format to write `path` in (from its suffix unless given); Opus is left out (48 kHz only)."""
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in _FORMATS or fmt == "opus":
        raise ValueError(f"unsupported synth format {fmt!r}; use one of {sorted(set(_FORMATS) - {'opus'})}")
    return fmt


def _write_blocks(
    path: Path,
    rate: int,
    layout: str,
    blocks: Iterator[np.ndarray],
    fmt: str,
    *,
    bit_rate: int | None = None,
) -> Path:
    """Encode (channels, samples) float32 blocks into `path`, one frame per block."""
    codec, container_format, default_bit_rate = _FORMATS[fmt]
    bit_rate = bit_rate or default_bit_rate
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate, options=_ENCODER_OPTIONS.get(codec))
        assert isinstance(stream, AudioStream)
        stream.codec_context.layout = layout
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        position = 0
        for block in blocks:
            frame = AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, position, Fraction(1, rate)
            position += block.shape[1]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def write_two_speakers(
    path: Path,
    seconds: float,
    *,
    lufs: float = -24.0,
    gap_lu: float = 12.0,
    lead_silence: float = 30.0,
    tail_silence: float = 30.0,
    noise_db: float = -60.0,
    sample_rate: int = 48000,
    seed: int = 0,
    fmt: str | None = None,
) -> Path:
    """Write a stereo conversation: `seconds` of two talkers taking turns of 4 to 25 s, the second `gap_lu`
    quieter, measuring about `lufs` together, over room noise (pink-ish, `noise_db` dBFS RMS per channel)
    that also fills the `lead_silence` and `tail_silence` around it (no speech there, only the room).

    Streamed a second at a time (hours take little memory) and deterministic for a given seed.
    """
    fmt = _block_format(path, fmt)
    rate = sample_rate
    total = round(max(seconds, 0.0) * rate)
    turns = _turn_plan(total, rate, seed)
    talk = [sum(b - a for a, b, s, _ in turns if s == speaker) for speaker in (0, 1)]
    talkers = [_Talker(talk[i] / rate, rate, 2 * seed + 1 + i) for i in (0, 1)]
    gains = _mix_gains(talkers, talk, rate, lufs, gap_lu) if total else [0.0, 0.0]
    noise = _RoomNoise(2, noise_db, seed)
    step = round(CHUNK_SECONDS * rate)
    fade = max(1, round(TURN_FADE * rate))

    def room(seconds: float) -> Iterator[np.ndarray]:
        count = round(seconds * rate)
        for first in range(0, count, step):
            yield noise.chunk(min(step, count - first))

    def speech() -> Iterator[np.ndarray]:
        turn = 0
        for first in range(0, total, step):
            stop = min(total, first + step)
            mono = np.zeros(stop - first, dtype=np.float32)
            while turn < len(turns) and turns[turn][0] < stop:
                a, b, speaker, level = turns[turn]
                lo, hi = max(a, first), min(b, stop)
                positions = np.arange(lo, hi)
                edges = np.clip(np.minimum(positions - a + 1, b - positions) / fade, 0.0, 1.0)
                voice = talkers[speaker].read(hi - lo) * np.float32(gains[speaker] * level)
                mono[lo - first : hi - first] = voice * edges.astype(np.float32)
                if b > stop:
                    break
                turn += 1
            yield np.clip(mono[None, :] + noise.chunk(stop - first), -1.0, 1.0)

    blocks = itertools.chain(room(lead_silence), speech(), room(tail_silence))
    return _write_blocks(path, rate, "stereo", blocks, fmt)
