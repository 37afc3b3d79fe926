"""Generated media for the media tests: seconds of synthetic speech, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_pub.media.synth import write_speech_like
from tests.unit.media.helpers import make_video


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech(media_dir: Path) -> dict[str, Path]:
    """Six seconds of speech-like stereo 48 kHz at -23 LUFS in each format synth writes."""
    return {
        fmt: write_speech_like(media_dir / f"speech.{fmt}", 6.0, seed=1)
        for fmt in ("wav", "mp3", "m4a", "ogg", "opus", "flac")
    }


@pytest.fixture(scope="session")
def padded_speech(media_dir: Path) -> Path:
    """20 s of speech at -30 LUFS between 20 s of digital silence on each side."""
    return write_speech_like(
        media_dir / "padded.wav", 20.0, lufs=-30.0, lead_silence=20.0, tail_silence=20.0, seed=2
    )


@pytest.fixture(scope="session")
def video_mp4(media_dir: Path) -> Path:
    return make_video(media_dir / "video.mp4", 2.0)


@pytest.fixture(scope="session")
def video_without_audio(media_dir: Path) -> Path:
    return make_video(media_dir / "mute.mp4", 2.0, audio=False)
