"""synth: deterministic speech-like audio at a requested loudness, with digital silence around it."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from media_pub.media.loudness import measure_loudness
from media_pub.media.synth import write_speech_like


def test_deterministic(tmp_path: Path) -> None:
    a = write_speech_like(tmp_path / "a.wav", 3.0, seed=7)
    b = write_speech_like(tmp_path / "b.wav", 3.0, seed=7)
    c = write_speech_like(tmp_path / "c.wav", 3.0, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize(
    ("lufs", "channels", "rate"), [(-30.0, 2, 48000), (-16.0, 1, 44100), (-23.0, 6, 48000)]
)
def test_loudness_is_calibrated(tmp_path: Path, lufs: float, channels: int, rate: int) -> None:
    path = write_speech_like(tmp_path / "s.wav", 10.0, lufs=lufs, channels=channels, sample_rate=rate)
    assert measure_loudness(path).integrated == pytest.approx(lufs, abs=0.2)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.sample_rate, stream.channels) == (rate, channels)


def test_silence_around_is_digital_zero(tmp_path: Path) -> None:
    path = write_speech_like(tmp_path / "s.wav", 2.0, lead_silence=1.0, tail_silence=1.5, sample_rate=8000)
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1, 2) for f in container.decode(audio=0)])
    assert len(samples) == 4.5 * 8000
    assert not samples[:8000].any()
    assert not samples[-12000:].any()
    assert np.abs(samples[8000:24000]).max() > 1000


def test_silence_only(tmp_path: Path) -> None:
    path = write_speech_like(tmp_path / "silent.wav", 0.0, lead_silence=2.0)
    with av.open(str(path)) as container:
        assert not any(f.to_ndarray().any() for f in container.decode(audio=0))


def test_fast_enough(tmp_path: Path) -> None:
    started = time.monotonic()
    write_speech_like(tmp_path / "minute.wav", 60.0)
    assert time.monotonic() - started < 5.0  # about 0.6 s here; generous for a loaded CI runner
