"""synth.write_two_speakers: a two-talker conversation over room noise, for the processing benchmark."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.frame import AudioFrame

from media_pub.media._av import Meter
from media_pub.media.loudness import measure_loudness
from media_pub.media.synth import _turn_plan, write_two_speakers

RATE = 48000
LEAD = 3.0


def _samples(path: Path) -> np.ndarray:
    """(channels, samples) float32 of a 16-bit WAV."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray().reshape(-1, 2).T for f in container.decode(audio=0)]
    return np.concatenate(frames, axis=1).astype(np.float32) / 32768.0


def _loudness(samples: np.ndarray) -> float:
    meter = Meter(rate=RATE, fmt="fltp", layout="stereo", true_peak=False)
    frame = AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="stereo")
    frame.sample_rate, frame.pts, frame.time_base = RATE, 0, Fraction(1, RATE)
    meter.push(frame)
    meter.push(None)
    return meter.result()[0]


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("speakers") / "talk.wav"
    return write_two_speakers(path, 75.0, lead_silence=LEAD, tail_silence=LEAD, seed=3)


def test_loudness_and_range(conversation: Path) -> None:
    measured = measure_loudness(conversation)
    assert measured.integrated == pytest.approx(-24.0, abs=1.0)
    assert 12.0 <= measured.lra <= 20.0
    assert measured.true_peak < -1.0


def test_second_speaker_is_quieter_by_the_gap(conversation: Path) -> None:
    samples = _samples(conversation)[:, round(LEAD * RATE) :]
    turns = _turn_plan(75 * RATE, RATE, 3)
    speakers = [np.concatenate([samples[:, a:b] for a, b, s, _ in turns if s == i], axis=1) for i in (0, 1)]
    assert _loudness(speakers[0]) - _loudness(speakers[1]) == pytest.approx(12.0, abs=1.5)


def test_room_noise_fills_the_lead_and_tail(conversation: Path) -> None:
    samples = _samples(conversation)
    lead, tail = samples[:, : round(LEAD * RATE)], samples[:, -round(LEAD * RATE) :]
    for part in (lead, tail):
        rms_db = 20 * np.log10(np.sqrt(np.mean(np.square(part), axis=1)))
        assert rms_db == pytest.approx([-60.0, -60.0], abs=1.5)
        assert np.abs(part).max() < 10 ** (-40 / 20)  # room only: no speech in the lead or tail
    assert not np.array_equal(lead[0], lead[1])  # two microphones, two noises


def test_deterministic(tmp_path: Path) -> None:
    a = write_two_speakers(tmp_path / "a.wav", 12.0, lead_silence=1.0, tail_silence=1.0, seed=5)
    b = write_two_speakers(tmp_path / "b.wav", 12.0, lead_silence=1.0, tail_silence=1.0, seed=5)
    c = write_two_speakers(tmp_path / "c.wav", 12.0, lead_silence=1.0, tail_silence=1.0, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_length_and_other_formats(tmp_path: Path) -> None:
    path = write_two_speakers(
        tmp_path / "talk.flac", 5.5, lead_silence=0.5, tail_silence=1.0, sample_rate=44100
    )
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert (stream.sample_rate, stream.channels) == (44100, 2)
        assert sum(f.samples for f in container.decode(stream)) == round(7.0 * 44100)
    with pytest.raises(ValueError, match="unsupported"):
        write_two_speakers(tmp_path / "talk.xyz", 1.0)
