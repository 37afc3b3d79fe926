"""waveform_peaks / waveform_json: audiowaveform's JSON format, checked on signals whose peaks are known."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media.synth import silence_seconds, write_speech_like
from media_pub.media.waveform import waveform_json, waveform_peaks
from tests.unit.media.helpers import tone_wav


def pcm_wav(path: Path, samples: np.ndarray, rate: int = 48000) -> Path:
    """A 16-bit WAV of exactly `samples` (int16, shape (channels, count)), written in uneven chunks."""
    layout = {1: "mono", 2: "stereo"}[samples.shape[0]]
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=rate)
        stream.codec_context.layout = layout
        first = 0
        for size in [777, 3001, 65536] * (samples.shape[1] // 777 + 1):
            chunk = samples[:, first : first + size]
            if chunk.shape[1] == 0:
                break
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16p", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
            first += size
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def pairs(peaks: dict[str, object]) -> np.ndarray:
    """The data as an array shaped (length, 2): min, max per pixel."""
    data = peaks["data"]
    assert isinstance(data, list)
    return np.array(data, dtype=np.int64).reshape(-1, 2)


def test_header_and_length(speech: dict[str, Path]) -> None:
    for fmt, path in speech.items():
        peaks = waveform_peaks(path)
        assert {k: v for k, v in peaks.items() if k not in ("length", "data")} == {
            "version": 2,
            "channels": 1,
            "sample_rate": 48000,
            "samples_per_pixel": 2400,
            "bits": 8,
        }, fmt
        # Six seconds at 20 px/s; lossy codecs may add a little priming or padding.
        assert peaks["length"] == pytest.approx(120, abs=0 if fmt in ("wav", "flac") else 1), fmt
        assert len(pairs(peaks)) == peaks["length"]


def test_length_rounds_up_a_partial_pixel(tmp_path: Path) -> None:
    path = pcm_wav(tmp_path / "odd.wav", np.ones((1, 44100 * 2 + 5), dtype=np.int16), rate=44100)
    peaks = waveform_peaks(path, pixels_per_second=30)
    assert peaks["sample_rate"] == 44100
    assert peaks["samples_per_pixel"] == 1470
    assert peaks["length"] == math.ceil((44100 * 2 + 5) / 1470) == 61


def test_matches_a_direct_computation_across_frames(tmp_path: Path) -> None:
    # Noise written in uneven chunks: pixel blocks straddle frames, and the two channels differ.
    rng = np.random.default_rng(7)
    samples = rng.integers(-32768, 32768, size=(2, 48000 * 3 + 123), dtype=np.int16)
    path = pcm_wav(tmp_path / "noise.wav", samples)
    mixed_lo, mixed_hi = samples.min(axis=0), samples.max(axis=0)
    for pps in (1, 7, 20, 1000):
        spp = 48000 // pps
        expected = [
            (int(mixed_lo[i : i + spp].min()), int(mixed_hi[i : i + spp].max()))
            for i in range(0, samples.shape[1], spp)
        ]
        got16 = pairs(waveform_peaks(path, pixels_per_second=pps, bits=16))
        assert got16.tolist() == [list(p) for p in expected], pps
        got8 = pairs(waveform_peaks(path, pixels_per_second=pps, bits=8))
        assert got8.tolist() == [[lo >> 8, hi >> 8] for lo, hi in expected], pps


def test_digital_silence_is_all_zeros(tmp_path: Path) -> None:
    path = silence_seconds(tmp_path / "silence.wav", 2.0)
    for bits in (8, 16):
        peaks = waveform_peaks(path, bits=bits)
        assert peaks["length"] == 40
        assert not pairs(peaks).any()


def test_full_scale_tone(tmp_path: Path) -> None:
    path = tone_wav(tmp_path / "full.wav", 1.0, seconds=1.0)
    eight = pairs(waveform_peaks(path, bits=8))
    assert eight[:, 1].min() == 127
    assert eight[:, 0].max() <= -127
    assert eight.min() >= -128
    sixteen = pairs(waveform_peaks(path, bits=16))
    assert sixteen[:, 1].min() >= 32760
    assert sixteen[:, 0].max() <= -32760
    assert sixteen.max() <= 32767
    assert sixteen.min() >= -32768


def test_half_scale_tone_scales_linearly(tmp_path: Path) -> None:
    peaks = pairs(waveform_peaks(tone_wav(tmp_path / "half.wav", 0.5, seconds=1.0), bits=16))
    assert peaks[:, 1] == pytest.approx(16384, abs=3)
    assert peaks[:, 0] == pytest.approx(-16384, abs=3)


def test_min_never_exceeds_max(speech: dict[str, Path]) -> None:
    for fmt, path in speech.items():
        for bits, limit in ((8, 128), (16, 32768)):
            data = pairs(waveform_peaks(path, pixels_per_second=100, bits=bits))
            assert (data[:, 0] <= data[:, 1]).all(), fmt
            assert data.min() >= -limit
            assert data.max() <= limit - 1
            assert data[:, 1].max() > 0 > data[:, 0].min(), fmt


def test_speech_between_silences(padded_speech: Path) -> None:
    # 20 s of silence, 20 s of speech, 20 s of silence, at 20 px/s.
    data = pairs(waveform_peaks(padded_speech))
    assert len(data) == 1200
    assert not data[:400].any()
    assert not data[800:].any()
    speech = data[400:800]
    assert speech[:, 1].max() >= 10
    assert speech[:, 0].min() <= -10
    # Speech has pauses, but most of its pixels show something.
    assert (speech[:, 1] - speech[:, 0] > 1).mean() > 0.6


def test_channels_are_mixed_by_min_and_max(tmp_path: Path) -> None:
    # Left only ever positive, right only ever negative: the pixel spans both (an average would not).
    count = 48000
    samples = np.vstack([np.full(count, 8192), np.full(count, -16384)]).astype(np.int16)
    data = pairs(waveform_peaks(pcm_wav(tmp_path / "split.wav", samples), bits=16))
    assert data.tolist() == [[-16384, 8192]] * 20


def test_mono_and_stereo(tmp_path: Path) -> None:
    mono = write_speech_like(tmp_path / "mono44.wav", 3.0, channels=1, sample_rate=44100, seed=3)
    stereo = write_speech_like(tmp_path / "stereo44.wav", 3.0, channels=2, sample_rate=44100, seed=3)
    one, two = waveform_peaks(mono), waveform_peaks(stereo)
    for peaks in (one, two):
        assert peaks["channels"] == 1
        assert peaks["sample_rate"] == 44100
        assert peaks["samples_per_pixel"] == 2205
        assert peaks["length"] == 60
    # The same voice: calibrated to the same loudness, so both channels of the stereo copy are quieter.
    a, b = pairs(one), pairs(two)
    loud = np.abs(a).max(axis=1) > 4
    assert loud.mean() > 0.5
    assert (np.abs(b[loud]).max(axis=1) < np.abs(a[loud]).max(axis=1) + 1).all()
    assert np.corrcoef(a[:, 1], b[:, 1])[0, 1] > 0.95


def test_video_with_audio(video_mp4: Path) -> None:
    peaks = waveform_peaks(video_mp4, pixels_per_second=10)
    assert peaks["length"] == pytest.approx(20, abs=1)
    # The helper's tone is 0.1 of full scale: about 13 in 8 bits.
    assert pairs(peaks)[2:-2, 1].max() == pytest.approx(12, abs=1)


def test_json_round_trip(speech: dict[str, Path]) -> None:
    for bits in (8, 16):
        raw = waveform_json(speech["mp3"], pixels_per_second=50, bits=bits)
        assert isinstance(raw, bytes)
        assert json.loads(raw) == waveform_peaks(speech["mp3"], pixels_per_second=50, bits=bits)


@pytest.mark.parametrize(
    ("pixels_per_second", "bits"),
    [(20, 0), (20, 7), (20, 24), (20, True), (0, 8), (-5, 8), (1001, 8), (2.5, 8), (True, 8), ("20", 8)],
)
def test_bad_arguments(tmp_path: Path, pixels_per_second: object, bits: object) -> None:
    # Checked before the file is opened: this one does not exist.
    with pytest.raises(InvalidInput):
        waveform_peaks(tmp_path / "missing.wav", pixels_per_second=pixels_per_second, bits=bits)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        waveform_json(tmp_path / "missing.wav", pixels_per_second=pixels_per_second, bits=bits)  # type: ignore[arg-type]


def test_extreme_but_valid_arguments(speech: dict[str, Path]) -> None:
    assert waveform_peaks(speech["wav"], pixels_per_second=1)["length"] == 6
    assert waveform_peaks(speech["wav"], pixels_per_second=1000)["length"] == 6000


def test_file_without_audio(video_without_audio: Path) -> None:
    with pytest.raises(InvalidMedia) as caught:
        waveform_peaks(video_without_audio)
    assert caught.value.code == "media-no-audio"


@pytest.mark.parametrize("content", [b"", b"hello, this is not audio\n" * 100, bytes(range(256)) * 64])
def test_unreadable_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.mp3"
    path.write_bytes(content)
    with pytest.raises(InvalidMedia) as caught:
        waveform_peaks(path)
    assert caught.value.code == "media-unreadable"
