"""measure_loudness: FFmpeg's ebur128 on decoded audio, against signals whose loudness is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_pub.errors import InvalidMedia
from media_pub.media.loudness import measure_loudness
from tests.unit.media.helpers import tone_wav


def test_sine_reference(tmp_path: Path) -> None:
    # A 1 kHz sine at -20 dBFS peak in both channels of a stereo file measures -20 LUFS (EBU Tech 3341).
    result = measure_loudness(tone_wav(tmp_path / "tone.wav", 0.1))
    assert result.integrated == pytest.approx(-20.0, abs=0.1)
    assert result.true_peak == pytest.approx(-20.0, abs=0.2)
    assert result.lra == pytest.approx(0.0, abs=0.1)


def test_speech_in_every_format(speech: dict[str, Path]) -> None:
    for fmt, path in speech.items():
        # Lossy codecs cut some of the top end, which the K-weighting counts: allow them 0.7 LU.
        assert measure_loudness(path).integrated == pytest.approx(
            -23.0, abs=0.2 if fmt in ("wav", "flac") else 0.7
        )


def test_file_without_audio(video_without_audio: Path) -> None:
    with pytest.raises(InvalidMedia) as caught:
        measure_loudness(video_without_audio)
    assert caught.value.code == "media-no-audio"
