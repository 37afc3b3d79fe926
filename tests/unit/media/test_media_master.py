"""The master: leveler, inner-silence cuts, AAC and Opus renditions from the same render, region snapping."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from media_pub.domain.values import Chapter, map_time, shift_chapters
from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media.loudness import measure_file, measure_loudness
from media_pub.media.probe import probe_file
from media_pub.media.process import ProcessOptions, level_curve, process_audio
from media_pub.media.synth import _mono_chunks
from tests.unit.media.helpers import write_pcm

RATE = 48000


def _write(path: Path, mono: np.ndarray, rate: int = RATE) -> Path:
    return write_pcm(path, np.vstack([mono, mono]).astype(np.float32), rate)


def _speech(seconds: int, seed: int) -> np.ndarray:
    chunks = _mono_chunks(seconds + 2, RATE, seed)
    return np.concatenate([next(chunks) for _ in range(seconds)]) * 0.1


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of two talkers taking turns of 5 to 9 s, the second 12 dB quieter, over faint room noise."""
    rng = np.random.default_rng(3)
    a, b = _speech(60, 1), _speech(60, 2) * 10 ** (-12 / 20)
    turns, at, loud = [], 0, True
    while at < 60 * RATE:
        length = int(rng.integers(5, 10)) * RATE
        turns.append((a if loud else b)[at : at + length])
        at, loud = at + length, not loud
    signal = np.concatenate(turns)
    signal = signal + rng.standard_normal(signal.size).astype(np.float32) * 10 ** (-65 / 20)
    return _write(tmp_path_factory.mktemp("two") / "two.wav", signal)


def test_leveler_brings_two_speakers_together_and_lands_on_target(two_speakers: Path, tmp_path: Path) -> None:
    flat = process_audio(two_speakers, tmp_path / "flat.mp3", ProcessOptions(level=False))
    leveled = process_audio(two_speakers, tmp_path / "level.mp3", ProcessOptions(level=True))
    measured = measure_loudness(tmp_path / "level.mp3")
    assert flat.loudness_in.lra >= 12.0, "the input really has two levels"
    assert measured.lra <= 8.0, measured
    assert measured.lra < measure_loudness(tmp_path / "flat.mp3").lra - 4.0
    assert measured.integrated == pytest.approx(-16.0, abs=0.5)
    assert measured.true_peak <= -1.0
    assert leveled.duration_out == pytest.approx(flat.duration_out, abs=0.01), "leveling cuts nothing"


def test_level_curve_holds_through_pauses_and_moves_slowly() -> None:
    # 10 s loud, 2 s pause, 10 s quiet (100 ms hops)
    momentary = np.concatenate([np.full(100, -20.0), np.full(20, -80.0), np.full(100, -32.0)])
    gain = level_curve(momentary, -23.0)
    assert gain[:70].max() < 0 < gain[150:].min(), "the loud part is cut, the quiet part boosted"
    assert gain[150:].mean() - gain[:70].mean() == pytest.approx(0.8 * 12.0, abs=1.0)
    assert np.abs(np.diff(gain)).max() < 1.5, "no jump of more than 1.5 dB in 100 ms"
    assert np.isfinite(gain).all()


def test_inner_silences_are_shortened_and_chapters_follow(tmp_path: Path) -> None:
    speech = _speech(12, 5)
    gap_long, gap_short = np.zeros(5 * RATE, np.float32), np.zeros(RATE, np.float32)
    parts = [speech[: 4 * RATE], gap_long, speech[4 * RATE : 8 * RATE], gap_short, speech[8 * RATE :]]
    src = _write(tmp_path / "gaps.wav", np.concatenate(parts))
    kept = process_audio(src, tmp_path / "kept.mp3", ProcessOptions())
    cut = process_audio(src, tmp_path / "cut.mp3", ProcessOptions(max_silence=1.5))
    assert kept.cuts == ()
    assert len(cut.cuts) == 1, cut.cuts
    start, end = cut.cuts[0]
    assert 4.0 < start < end < 9.0
    assert end - start == pytest.approx(3.5, abs=0.1), "5 s of silence shortened to 1.5 s"
    assert kept.duration_out - cut.duration_out == pytest.approx(3.5, abs=0.1)
    assert measure_loudness(tmp_path / "cut.mp3").integrated == pytest.approx(-16.0, abs=0.5)
    # A chapter at the second phrase (9 s in the original) moves up by the cut.
    moved = shift_chapters([Chapter(0.0, "one"), Chapter(9.0, "two")], cut.offset, cut.duration_out, cut.cuts)
    assert moved[1].start == pytest.approx(9.0 - 3.5, abs=0.1)
    assert map_time(start + 1.0, 0.0, cut.cuts) == pytest.approx(start, abs=1e-6), "inside a cut -> its start"


def test_aac_and_opus_renditions_are_on_target(two_speakers: Path, tmp_path: Path) -> None:
    aac, opus = tmp_path / "out.m4a", tmp_path / "out.opus"
    result = process_audio(two_speakers, tmp_path / "out.mp3", ProcessOptions(), aac=aac, opus=opus)
    for path, codec, mime in ((aac, "aac", "audio/x-m4a"), (opus, "opus", "audio/ogg")):
        loudness, seconds = measure_file(path)
        assert loudness.integrated == pytest.approx(-16.0, abs=0.5), (path, loudness)
        assert loudness.true_peak <= -1.0, (path, loudness)
        assert seconds == pytest.approx(result.duration_out, abs=0.1)
        probe = probe_file(path)
        assert (probe.audio_codec, probe.mime_type, probe.channels) == (codec, mime, 2)
    assert set(result.extra) == {"aac", "opus"}
    assert result.extra["aac"] == measure_loudness(aac)
    assert not list(tmp_path.glob("*.part"))
    head = aac.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head, "M4A is faststart"


def test_snap_moves_the_region(two_speakers: Path, tmp_path: Path) -> None:
    seen: list[tuple[float, float]] = []

    def snap(first: float, stop: float) -> tuple[float, float]:
        seen.append((first, stop))
        return 10.0, 20.0

    result = process_audio(two_speakers, tmp_path / "snap.mp3", ProcessOptions(), snap=snap)
    assert len(seen) == 1
    assert result.offset == 10.0
    assert result.duration_out == pytest.approx(10.0, abs=0.06)


def test_bad_max_silence_is_refused(two_speakers: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        process_audio(two_speakers, tmp_path / "x.mp3", ProcessOptions(max_silence=0.0))
    assert caught.value.code == "invalid-options"


def _rms_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1e-12))


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]
    return np.concatenate(frames).astype(np.float32) / (32768.0 if frames[0].dtype == np.int16 else 1.0)


def test_intro_and_outro_are_crossfaded_at_the_episode_loudness(tmp_path: Path) -> None:
    intro = _write(tmp_path / "intro.wav", _speech(4, 8) * 10 ** (-14 / 20))  # about 14 dB quieter
    outro = _write(tmp_path / "outro.wav", _speech(5, 9) * 10 ** (8 / 20))  # louder
    episode = _write(tmp_path / "episode.wav", _speech(20, 10))
    options = ProcessOptions(intro=intro, outro=outro, crossfade=1.0, level=False)
    result = process_audio(episode, tmp_path / "out.mp3", options)
    plain = process_audio(episode, tmp_path / "plain.mp3", ProcessOptions(level=False))
    assert result.lead == pytest.approx(3.0, abs=0.01), "4 s intro, 1 s of it under the episode"
    assert result.duration_out - plain.duration_out == pytest.approx(3.0 + 4.0, abs=0.1)
    measured = measure_loudness(tmp_path / "out.mp3")
    assert measured.integrated == pytest.approx(-16.0, abs=0.5)
    assert measured.true_peak <= -1.0
    mono = _decode(tmp_path / "out.mp3")[::2]  # left channel of interleaved stereo
    rate = 44100
    intro_part = _rms_db(mono[: round(2.5 * rate)])
    episode_part = _rms_db(mono[round(6 * rate) : round(18 * rate)])
    outro_part = _rms_db(mono[-round(3.5 * rate) :])
    assert abs(intro_part - episode_part) < 2.5, (intro_part, episode_part)
    assert abs(outro_part - episode_part) < 2.5, (outro_part, episode_part)
    chapters = shift_chapters(
        [Chapter(0.0, "Start"), Chapter(10.0, "Middle")], result.offset, result.duration_out, result.cuts,
        result.lead,
    )  # fmt: skip
    assert [c.start for c in chapters] == [0.0, pytest.approx(13.0, abs=0.05)]


def test_a_long_or_silent_intro_is_refused(tmp_path: Path) -> None:
    episode = _write(tmp_path / "episode.wav", _speech(3, 11))
    silent = _write(tmp_path / "silent.wav", np.zeros(2 * RATE, np.float32))
    with pytest.raises(InvalidMedia) as caught:
        process_audio(episode, tmp_path / "x.mp3", ProcessOptions(intro=silent))
    assert caught.value.code == "clip-silent"


def test_a_rendition_that_misses_is_encoded_again(
    two_speakers: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: AAC comes out 1 dB hot (every time) and the first encode has no limiter, so it
    misses both loudness and true peak; one more encode, shifted and with more headroom, lands."""
    import media_pub.media.process as process

    made: list[float] = []
    real = process._AvWriter.__init__

    def hot_first(self: object, path: Path, codec: str, channels: int, kbps: int, rate: int,
                  gain_db: float, ceiling_db: float) -> None:  # fmt: skip
        made.append(gain_db)
        if len(made) == 1:
            ceiling_db = 0.5  # the AAC limiter at full scale: it does nothing
        real(self, path, codec, channels, kbps, rate, gain_db + 1.0, ceiling_db)  # type: ignore[arg-type]

    monkeypatch.setattr(process._AvWriter, "__init__", hot_first)
    result = process_audio(two_speakers, tmp_path / "out.mp3", ProcessOptions(), aac=tmp_path / "out.m4a")
    assert len(made) == 2, "one more AAC encode"
    assert result.renders >= 2, "the shared render and the AAC one"
    measured = measure_loudness(tmp_path / "out.m4a")
    assert measured.integrated == pytest.approx(-16.0, abs=0.5)
    assert measured.true_peak <= -1.0
    assert result.extra["aac"] == measured
