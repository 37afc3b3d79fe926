"""process_audio: trimmed, loudness-normalized MP3 from any decodable input, measured independently."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media.isolation import run_isolated
from media_pub.media.loudness import measure_loudness
from media_pub.media.probe import probe_file
from media_pub.media.process import ProcessOptions, ProcessResult, parse_timestamp, process_audio
from media_pub.media.synth import write_speech_like


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_output(dst: Path, result: ProcessResult, target: float, channels: int) -> None:
    """The encoded file meets the target, measured here again (not trusting the result)."""
    measured = measure_loudness(dst)
    assert measured.integrated == pytest.approx(target, abs=0.5), measured
    assert measured.true_peak <= -1.0, measured
    assert result.loudness_out == measured
    assert (result.sample_rate, result.channels) == (44100, channels)
    assert result.bitrate == (128_000 if channels == 2 else 64_000)
    assert not dst.with_suffix(".part").exists()


def test_speech_with_silence(padded_speech: Path, tmp_path: Path) -> None:
    before = _sha(padded_speech)
    dst = tmp_path / "out.mp3"
    stages: list[str] = []
    result = process_audio(padded_speech, dst, ProcessOptions(), progress=lambda s, f: stages.append(s))
    _check_output(dst, result, -16.0, 2)
    assert _sha(padded_speech) == before, "the original must never change"
    assert result.duration_in == pytest.approx(60.0, abs=0.01)
    assert result.duration_in - result.duration_out == pytest.approx(40.0, abs=1.0)
    assert result.offset == pytest.approx(20.0, abs=0.5)
    assert result.loudness_in.integrated == pytest.approx(-30.0, abs=0.3)
    assert result.gain_db == pytest.approx(14.0, abs=1.5)
    assert {"measure", "encode", "verify"} <= set(stages)
    probe = probe_file(dst)
    assert (probe.mime_type, probe.sample_rate, probe.channels, probe.bitrate) == (
        "audio/mpeg",
        44100,
        2,
        128000,
    )
    assert probe.duration == pytest.approx(result.duration_out, abs=0.05)


def test_short_silence_is_kept_and_trimming_can_be_off(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "in.wav", 4.0, lead_silence=0.4, tail_silence=2.0, seed=4)
    trimmed = process_audio(src, tmp_path / "a.mp3", ProcessOptions())
    assert trimmed.offset == 0.0, "0.4 s is shorter than silence_min_seconds: kept"
    assert trimmed.duration_out == pytest.approx(4.65, abs=0.1)  # 0.4 + 4 s + 0.2 s pad + encoder delay
    kept = process_audio(src, tmp_path / "b.mp3", ProcessOptions(trim_silence=False))
    assert (kept.offset, kept.duration_out) == (0.0, pytest.approx(6.4, abs=0.06))


@pytest.mark.parametrize(
    ("name", "kwargs", "options", "channels"),
    [
        ("quiet", {"lufs": -40.0}, {}, 2),
        ("loud", {"lufs": -8.0}, {}, 2),
        ("mono", {"channels": 1}, {"target_lufs": -19.0}, 1),
        ("8k", {"sample_rate": 8000}, {}, 2),
        ("96k", {"sample_rate": 96000}, {}, 2),
        ("5.1", {"channels": 6}, {}, 2),
    ],
)
def test_inputs_land_on_target(
    tmp_path: Path, name: str, kwargs: dict[str, float], options: dict[str, float], channels: int
) -> None:
    src = write_speech_like(tmp_path / f"{name}.wav", 10.0, seed=3, **kwargs)  # type: ignore[arg-type]
    dst = tmp_path / "out.mp3"
    opts = ProcessOptions(**options)  # type: ignore[arg-type]
    result = process_audio(src, dst, opts)
    _check_output(dst, result, opts.target_lufs, channels)
    assert result.duration_out == pytest.approx(10.0, abs=0.8)  # a closing pause may be trimmed


@pytest.mark.parametrize("fmt", ["m4a", "opus"])
def test_compressed_inputs(speech: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    result = process_audio(speech[fmt], tmp_path / "out.mp3", ProcessOptions())
    _check_output(tmp_path / "out.mp3", result, -16.0, 2)


def test_other_output_rate(speech: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "out.mp3"
    result = process_audio(speech["wav"], dst, ProcessOptions(sample_rate=48000, channels=1, bitrate_kbps=96))
    assert (result.sample_rate, result.channels, result.bitrate) == (48000, 1, 96000)
    probe = probe_file(dst)
    assert (probe.sample_rate, probe.channels, probe.bitrate) == (48000, 1, 96000)
    assert measure_loudness(dst).integrated == pytest.approx(-16.0, abs=0.5)
    with pytest.raises(InvalidInput):
        process_audio(speech["wav"], dst, ProcessOptions(sample_rate=96000))


def test_video_input_uses_its_audio(video_mp4: Path, tmp_path: Path) -> None:
    result = process_audio(video_mp4, tmp_path / "out.mp3", ProcessOptions(trim_silence=False))
    _check_output(tmp_path / "out.mp3", result, -16.0, 2)
    assert result.duration_out == pytest.approx(2.0, abs=0.1)


def test_explicit_in_and_out_points(speech: dict[str, Path], tmp_path: Path) -> None:
    result = process_audio(
        speech["wav"], tmp_path / "out.mp3", ProcessOptions(start=1.5, end=4.5, trim_silence=False)
    )
    assert result.offset == pytest.approx(1.5, abs=0.001)
    assert result.duration_out == pytest.approx(3.0, abs=0.06)  # plus the MP3 encoder's delay
    assert measure_loudness(tmp_path / "out.mp3").integrated == pytest.approx(-16.0, abs=0.5)


def test_out_point_past_the_end_is_clamped(speech: dict[str, Path], tmp_path: Path) -> None:
    result = process_audio(speech["wav"], tmp_path / "out.mp3", ProcessOptions(start=3.0, end=600.0))
    assert result.duration_out == pytest.approx(3.0, abs=0.3)


@pytest.mark.parametrize(("start", "end"), [(4.0, 2.0), (3.0, 3.0), (10.0, None), (-1.0, None)])
def test_bad_trim(speech: dict[str, Path], tmp_path: Path, start: float, end: float | None) -> None:
    dst = tmp_path / "out.mp3"
    with pytest.raises(InvalidInput) as caught:
        process_audio(speech["wav"], dst, ProcessOptions(start=start, end=end))
    assert caught.value.code == "invalid-trim"
    assert not dst.exists()
    assert not dst.with_suffix(".part").exists()


def test_silence_only(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "silent.wav", 0.0, lead_silence=3.0)
    with pytest.raises(InvalidMedia) as caught:
        process_audio(src, tmp_path / "out.mp3", ProcessOptions())
    assert caught.value.code == "media-silent"
    assert "silent" in caught.value.detail


def test_no_audio_stream(video_without_audio: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia) as caught:
        process_audio(video_without_audio, tmp_path / "out.mp3", ProcessOptions())
    assert caught.value.code == "media-no-audio"


def test_through_run_isolated_with_progress(speech: dict[str, Path], tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    dst = tmp_path / "out.mp3"
    result = run_isolated(
        process_audio, speech["mp3"], dst, ProcessOptions(), timeout=120, memory_mb=None,
        progress=lambda s, f: seen.append((s, f)),
    )  # fmt: skip
    assert isinstance(result, ProcessResult)
    assert dst.exists()
    stages = [s for s, _ in seen]
    assert stages.index("measure") < stages.index("encode") < stages.index("verify")
    assert all(0.0 <= f <= 1.0 for _, f in seen)


def test_errors_cross_the_process_boundary(tmp_path: Path) -> None:
    src = write_speech_like(tmp_path / "silent.wav", 0.0, lead_silence=1.0)
    with pytest.raises(InvalidMedia) as caught:
        run_isolated(process_audio, src, tmp_path / "out.mp3", ProcessOptions(), timeout=60, memory_mb=None)
    assert caught.value.code == "media-silent"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("90", 90.0), ("90.5", 90.5), ("01:30", 90.0), ("1:02:03.250", 3723.25), (" 0:05 ", 5.0), (12, 12.0),
     (7.25, 7.25), ("00:00:00", 0.0)],
)  # fmt: skip
def test_parse_timestamp(value: str | float, seconds: float) -> None:
    assert parse_timestamp(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["banana", "", "1:2:3:4", "01:75", "-5", "1e3", "nan", float("inf"), -1.0, True, None]
)
def test_parse_timestamp_rejects_garbage(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_timestamp(value)  # type: ignore[arg-type]
    assert caught.value.code == "invalid-timestamp"
