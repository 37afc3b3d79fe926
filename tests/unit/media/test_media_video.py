"""process_video, keyframe_times, can_copy, poster_frame: on seconds-long videos generated here with PyAV.

Every picture carries its frame number as eight black/white blocks along its top, so a test can read which
input picture an output picture is, after scaling and lossy encoding.
"""

from __future__ import annotations

import functools
import io
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from media_pub.errors import InvalidInput, InvalidMedia
from media_pub.media.loudness import measure_file
from media_pub.media.process import ProcessOptions
from media_pub.media.synth import silence_seconds, write_speech_like
from media_pub.media.video import (
    VideoOptions,
    can_copy,
    keyframe_times,
    output_size,
    poster_frame,
    process_video,
)
from tests.unit.media.helpers import make_video

FPS = 25
BITS = 8
X264 = {"preset": "veryfast", "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:log-level=error"}
ENCODER_OPTIONS = {
    "libx264": X264,
    "libx265": {
        "preset": "ultrafast",
        "x265-params": f"keyint={FPS}:min-keyint={FPS}:bframes=3:log-level=error",
    },
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


@functools.cache
def _checkerboard(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.where(((x // 16) + (y // 16)) % 2 == 0, 80, 170).astype(np.uint8)


def _picture(index: int, width: int, height: int, black: bool) -> np.ndarray:
    """A checkerboard (neither dark nor flat) with `index` written in binary as blocks along the top."""
    if black:
        return np.zeros((height, width, 3), np.uint8)
    image = _checkerboard(width, height).copy()
    band = height // 4
    for bit in range(BITS):
        left, right = bit * width // BITS, (bit + 1) * width // BITS
        image[:band, left:right] = 255 if index >> bit & 1 else 0
    return np.repeat(image[:, :, None], 3, axis=2)


def _read_index(frame: av.VideoFrame) -> int:
    gray = frame.reformat(format="gray").to_ndarray().astype(np.float32)
    height, width = gray.shape
    band = height // 4
    index = 0
    for bit in range(BITS):
        left, right = bit * width // BITS, (bit + 1) * width // BITS
        inner = gray[band // 4 : band * 3 // 4, left + (right - left) // 4 : right - (right - left) // 4]
        index |= int(inner.mean() > 128) << bit
    return index


def _write(
    path: Path,
    *,
    fmt: str = "mp4",
    codec: str = "libx264",
    seconds: float = 6.0,
    size: tuple[int, int] = (160, 96),
    audio: Path | None = None,
    times: list[float] | None = None,
    black_until: float = 0.0,
) -> Path:
    """A video of numbered pictures at `times` (default: FPS constant), with the audio of `audio` as AAC
    (Opus in WebM)."""
    times = times if times is not None else [i / FPS for i in range(round(seconds * FPS))]
    width, height = size
    options = ENCODER_OPTIONS.get(codec, {})
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream(codec, rate=FPS, options=options)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        if not codec.startswith("libx26"):
            video.codec_context.gop_size = FPS
            video.codec_context.bit_rate = 1_000_000
        sound = None
        if audio is not None:
            sound = container.add_stream("libopus" if fmt == "webm" else "aac", rate=48000)
            sound.codec_context.layout = "stereo"  # type: ignore[union-attr]
        for index, at in enumerate(times):
            frame = av.VideoFrame.from_ndarray(
                _picture(index, width, height, at < black_until), format="rgb24"
            )
            frame.pts, frame.time_base = round(at * 1000), Fraction(1, 1000)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if sound is not None and audio is not None:
            with av.open(str(audio)) as wav:
                for decoded in wav.decode(audio=0):
                    decoded.pts = None
                    for packet in sound.encode(decoded):  # type: ignore[union-attr]
                        container.mux(packet)
            for packet in sound.encode(None):  # type: ignore[union-attr]
                container.mux(packet)
    return path


def _frames(path: Path) -> list[tuple[float, int]]:
    """(time, frame number) of every picture of the first video stream."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.pts * stream.time_base), _read_index(f)) for f in container.decode(stream)]


def _first_audio_time(path: Path) -> float:
    with av.open(str(path)) as container:
        frame = next(container.decode(audio=0))
        return float(frame.pts * frame.time_base)


def _spans(path: Path) -> dict[str, tuple[float, float]]:
    """(first, end) in seconds of each stream's decoded frames."""
    out: dict[str, tuple[float, float]] = {}
    with av.open(str(path)) as container:
        for stream in (container.streams.video[0], *container.streams.audio[:1]):
            first, end = None, 0.0
            container.seek(0)
            for frame in container.decode(stream):
                at = float(frame.pts * frame.time_base)
                first = at if first is None else first
                length = frame.samples / frame.sample_rate if stream.type == "audio" else 1 / FPS
                end = max(end, at + length)
            assert first is not None
            out[stream.type] = (first, end)
    return out


def _top_boxes(path: Path) -> list[bytes]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind)
        if size < 8:
            break
        offset += size
    return boxes


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def speech_wav(folder: Path) -> Path:
    """6 s: 2.3 s of digital silence, then speech-like audio at -30 LUFS."""
    return write_speech_like(folder / "speech.wav", 3.7, lufs=-30.0, lead_silence=2.3, seed=7)


@pytest.fixture(scope="module")
def short_wav(folder: Path) -> Path:
    """3 s of speech-like audio at -30 LUFS."""
    return write_speech_like(folder / "short.wav", 3.0, lufs=-30.0, seed=8)


@pytest.fixture(scope="module")
def talk(speech_wav: Path) -> Path:
    """6 s of 160x96 H.264 with B-frames, a keyframe every second, and the speech as AAC."""
    return _write(speech_wav.with_name("talk.mp4"), audio=speech_wav)


def test_copy_snaps_the_silence_trim_back_to_a_keyframe(talk: Path, tmp_path: Path) -> None:
    mp4, mp3 = tmp_path / "out.mp4", tmp_path / "out.mp3"
    stages: list[str] = []
    result = process_video(talk, mp4, mp3, ProcessOptions(), progress=lambda s, f: stages.append(s))

    keys = keyframe_times(talk)
    assert keys == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    # Silence trimming keeps from about 2.1 s (2.3 s minus its pad); the copy starts at the keyframe before.
    assert result.copied
    assert (result.video_codec, result.width, result.height) == ("h264", 160, 96)
    assert result.offset == pytest.approx(2.0, abs=0.001)
    assert result.audio is not None
    assert result.audio.offset == pytest.approx(2.0, abs=0.001), "the audio must follow the snapped start"
    assert mp3.exists()

    # The video packets are the input's own bytes, from the keyframe at 2 s on.
    with av.open(str(talk)) as source, av.open(str(mp4)) as output:
        wanted = [bytes(p) for p in source.demux(video=0) if p.size]
        copied = [bytes(p) for p in output.demux(video=0) if p.size]
    assert copied == wanted[2 * FPS : 2 * FPS + len(copied)]
    assert len(copied) == 4 * FPS

    frames = _frames(mp4)
    assert frames[0] == (0.0, 2 * FPS), "the output starts on the keyframe's picture, at time 0"
    assert [index for _, index in frames] == list(range(2 * FPS, 6 * FPS))
    spans = _spans(mp4)
    assert spans["audio"][0] == pytest.approx(0.0, abs=0.001)
    assert spans["audio"][1] == pytest.approx(spans["video"][1], abs=0.1)
    assert result.duration == pytest.approx(4.0, abs=0.1)

    loudness, _ = measure_file(mp4)
    assert loudness.integrated == pytest.approx(-16.0, abs=0.5)
    assert loudness.true_peak <= -1.0
    assert _top_boxes(mp4).index(b"moov") < _top_boxes(mp4).index(b"mdat"), "faststart: moov first"
    assert {"scan", "remux", "poster", "encode"} <= set(stages)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp3", "out.mp4"], "no part or work file left"


def test_copy_ends_where_the_last_kept_picture_ends(talk: Path, short_wav: Path, tmp_path: Path) -> None:
    # Intro, outro and shortened silences would move the audio away from the picture: they are ignored.
    options = ProcessOptions(
        start=1.5, end=4.3, trim_silence=False, intro=short_wav, outro=short_wav, max_silence=0.2
    )
    result = process_video(talk, tmp_path / "out.mp4", tmp_path / "out.mp3", options)
    assert result.copied
    assert result.offset == pytest.approx(1.0, abs=0.001)
    indexes = [index for _, index in _frames(tmp_path / "out.mp4")]
    # Cut by decode time: every picture up to the out point, and the few B-frame references after it.
    assert indexes[0] == FPS
    assert round(4.3 * FPS) <= indexes[-1] + 1 <= round(4.3 * FPS) + 4
    assert indexes == list(range(indexes[0], indexes[-1] + 1))
    spans = _spans(tmp_path / "out.mp4")
    assert spans["audio"][0] == pytest.approx(0.0, abs=0.001)
    assert spans["audio"][1] == pytest.approx(spans["video"][1], abs=0.05), "the audio ends with the video"


def test_frame_accurate_trim_reencodes_from_the_exact_picture(talk: Path, tmp_path: Path) -> None:
    options = ProcessOptions(start=2.52, end=4.0, trim_silence=False)
    mp4 = tmp_path / "out.mp4"
    result = process_video(talk, mp4, tmp_path / "out.mp3", options, VideoOptions(frame_accurate=True))
    assert not result.copied
    assert result.offset == pytest.approx(2.52, abs=0.001)
    assert result.audio is not None
    assert result.audio.offset == pytest.approx(2.52, abs=0.001)
    frames = _frames(mp4)
    assert frames[0] == (0.0, 63), "the picture on screen at 2.52 s (frame 63, shown 2.52-2.56 s) comes first"
    assert [index for _, index in frames] == list(range(63, 100))
    spans = _spans(mp4)
    assert spans["audio"][1] == pytest.approx(spans["video"][1], abs=0.1)
    assert result.duration == pytest.approx(1.48, abs=0.05)
    assert _top_boxes(mp4).index(b"moov") < _top_boxes(mp4).index(b"mdat")


@pytest.mark.parametrize(
    ("fmt", "codec", "copied"),
    [
        ("webm", "libvpx-vp9", False),
        ("matroska", "mpeg4", False),
        ("flv", "flv", False),
        ("mov", "mpeg4", False),
        ("matroska", "libx264", True),
        ("flv", "libx264", True),
        ("mov", "libx264", True),
        ("matroska", "libx265", True),
    ],
)
def test_containers_and_codecs(short_wav: Path, tmp_path: Path, fmt: str, codec: str, copied: bool) -> None:
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    src = _write(tmp_path / f"in.{fmt}", fmt=fmt, codec=codec, seconds=3.0, audio=short_wav)
    assert can_copy(src) is copied
    mp4 = tmp_path / "out.mp4"
    options = ProcessOptions(start=1.5, trim_silence=False)
    result = process_video(src, mp4, tmp_path / "out.mp3", options)
    assert result.copied is copied
    assert result.audio is not None
    with av.open(str(mp4)) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.codec_tag) == (("hevc", "hvc1") if codec == "libx265" else ("h264", "avc1"))
        assert container.streams.audio[0].codec_context.name == "aac"
    # In points count from the first audio sample, as the audio pipeline does (containers delay it by the
    # encoder's priming, or shift both streams). A copy starts on the keyframe at or before the in point,
    # a transcode on the picture shown at the in point; both at time 0.
    origin = _first_audio_time(src)
    pictures = _frames(src)
    if copied:
        key = max(k for k in keyframe_times(src) if k <= 1.5 + origin)
        start = next(index for at, index in pictures if at == pytest.approx(key))
        assert result.offset == pytest.approx(key - origin, abs=0.001)
        assert result.offset < 1.5
    else:
        start = max(index for at, index in pictures if at <= 1.5 + origin)
        assert result.offset == pytest.approx(1.5, abs=0.001)
    assert _frames(mp4)[0] == (0.0, start)
    spans = _spans(mp4)
    assert spans["video"][0] == pytest.approx(0.0, abs=0.001)
    assert spans["audio"][0] == pytest.approx(0.0, abs=0.001)
    assert spans["audio"][1] == pytest.approx(spans["video"][1], abs=0.1)


def test_variable_frame_rate_keeps_its_timing(short_wav: Path, tmp_path: Path) -> None:
    gaps = [0.02, 0.06, 0.04, 0.1, 0.03]  # seconds between pictures, repeated: a phone's or a game's VFR
    times = [round(sum(gaps[i % 5] for i in range(n)), 3) for n in range(60)]
    src = _write(tmp_path / "vfr.mkv", fmt="matroska", times=times, audio=short_wav)
    given = dict((index, at) for at, index in _frames(src))
    assert [given[i] for i in range(60)] == pytest.approx(times, abs=0.001)
    options = ProcessOptions(start=1.0, end=2.5, trim_silence=False)
    for frame_accurate in (False, True):
        mp4 = tmp_path / f"out-{frame_accurate}.mp4"
        result = process_video(
            src, mp4, tmp_path / "out.mp3", options, VideoOptions(frame_accurate=frame_accurate)
        )
        assert result.copied is not frame_accurate
        frames = _frames(mp4)
        assert frames[0][0] == 0.0
        assert len(frames) > 20
        # Output time 0 is the keyframe's time (copy) or the in point (transcode, which shows the picture
        # on screen there first); every other picture keeps its input time from there, to the millisecond.
        zero = given[frames[0][1]] if result.copied else 1.0 + _first_audio_time(src)
        assert [at for at, _ in frames[1:]] == pytest.approx(
            [given[i] - zero for _, i in frames[1:]], abs=0.0011
        )
        assert [i for _, i in frames] == list(range(frames[0][1], frames[-1][1] + 1))


def test_1080p_becomes_720p_and_the_poster_1280_wide(tmp_path: Path) -> None:
    src = _write(tmp_path / "hd.mkv", fmt="matroska", codec="mpeg4", seconds=1.0, size=(1920, 1080))
    mp4 = tmp_path / "out.mp4"
    result = process_video(src, mp4, tmp_path / "out.mp3", ProcessOptions())
    assert (result.copied, result.audio, result.width, result.height) == (False, None, 1280, 720)
    with av.open(str(mp4)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.format.name) == (1280, 720, "yuv420p")
        assert _read_index(frame) == 0
    assert not (tmp_path / "out.mp3").exists()
    poster = _decode_jpeg(poster_frame(src))
    assert (poster.width, poster.height) == (1280, 720)
    assert (_decode_jpeg(result.poster).width, _decode_jpeg(result.poster).height) == (1280, 720)


@pytest.mark.parametrize(
    ("size", "aspect", "rotation", "expected"),
    [
        ((1920, 1080), Fraction(1), 0, (1280, 720)),
        ((1080, 1920), Fraction(1), 0, (720, 1280)),  # portrait: 720p is its short side
        ((1920, 1080), Fraction(1), 90, (720, 1280)),  # a phone's landscape pixels shown upright
        ((720, 576), Fraction(64, 45), 0, (1024, 576)),  # anamorphic PAL 16:9 shown with square pixels
        ((320, 240), Fraction(1), 0, (320, 240)),  # never upscaled
        ((641, 359), Fraction(1), 0, (640, 358)),  # even
    ],
)
def test_output_size(
    size: tuple[int, int], aspect: Fraction, rotation: int, expected: tuple[int, int]
) -> None:
    assert output_size(*size, aspect, rotation, 720) == expected


def test_rotation_is_kept_by_a_copy_and_applied_by_a_transcode(tmp_path: Path) -> None:
    src = tmp_path / "phone.mp4"
    with av.open(str(src), "w") as container:
        video = container.add_stream("libx264", rate=FPS, options=X264)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = 160, 96, "yuv420p"
        video.set_display_rotation(90)  # shown turned a quarter counter-clockwise: upright portrait
        for index in range(FPS):
            frame = av.VideoFrame.from_ndarray(_picture(index, 160, 96, False), format="rgb24")
            frame.pts = index
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    for frame_accurate in (False, True):
        mp4 = tmp_path / f"out-{frame_accurate}.mp4"
        result = process_video(
            src, mp4, tmp_path / "x.mp3", ProcessOptions(), VideoOptions(frame_accurate=frame_accurate)
        )
        with av.open(str(mp4)) as container:
            frame = next(container.decode(video=0))
        if frame_accurate:
            assert (frame.width, frame.height, frame.rotation) == (96, 160, 0)
        else:
            assert (frame.width, frame.height, frame.rotation) == (160, 96, 90)
        # Either way the poster is upright: the band of black and white blocks along the coded picture's
        # top is on its left, the grey checkerboard on its right.
        poster = _decode_jpeg(result.poster).reformat(format="gray").to_ndarray().astype(np.int16)
        assert poster.shape == (160, 96)
        assert (np.abs(poster[:, 4:20] - 125) > 90).mean() > 0.9
        assert (np.abs(poster[:, -20:] - 125) > 90).mean() < 0.1


def test_video_without_audio(tmp_path: Path) -> None:
    src = make_video(tmp_path / "mute.mp4", 2.0, audio=False)
    mp4, mp3 = tmp_path / "out.mp4", tmp_path / "out.mp3"
    result = process_video(src, mp4, mp3, ProcessOptions(start=0.5, end=1.5))
    assert result.audio is None
    assert not mp3.exists()
    assert result.copied
    assert result.offset == 0.0, "the only keyframe is at 0"
    assert result.duration == pytest.approx(1.5, abs=0.05)
    with av.open(str(mp4)) as container:
        assert [s.type for s in container.streams] == ["video"]
    assert result.poster[:3] == b"\xff\xd8\xff"
    assert _top_boxes(mp4).index(b"moov") < _top_boxes(mp4).index(b"mdat")
    with pytest.raises(InvalidInput) as caught:
        process_video(src, mp4, mp3, ProcessOptions(start=2.5))
    assert caught.value.code == "invalid-trim"


def test_a_silent_track_is_no_audio(tmp_path: Path) -> None:
    quiet = silence_seconds(tmp_path / "quiet.wav", 2.0)
    src = _write(tmp_path / "screen.mp4", seconds=2.0, audio=quiet)
    result = process_video(src, tmp_path / "out.mp4", tmp_path / "out.mp3", ProcessOptions())
    assert result.audio is None
    assert not (tmp_path / "out.mp3").exists()
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.type for s in container.streams] == ["video"]


def _decode_jpeg(data: bytes) -> av.VideoFrame:
    assert data[:3] == b"\xff\xd8\xff"
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.name == "mjpeg"
        return next(container.decode(video=0))


def test_poster_skips_a_black_opening(tmp_path: Path) -> None:
    src = _write(tmp_path / "intro.mp4", seconds=4.0, black_until=2.0)
    chosen = _decode_jpeg(poster_frame(src))
    gray = chosen.reformat(format="gray").to_ndarray()
    assert gray.mean() > 40
    assert gray.std() > 12
    assert _read_index(chosen) >= 2 * FPS, "a picture after the black opening"
    assert _decode_jpeg(poster_frame(src, at=0.5)).reformat(format="gray").to_ndarray().mean() < 20
    assert _read_index(_decode_jpeg(poster_frame(src, at=3.0))) == 3 * FPS
    result = process_video(
        src, tmp_path / "out.mp4", tmp_path / "out.mp3", ProcessOptions(), VideoOptions(poster_at=2.5)
    )
    assert _read_index(_decode_jpeg(result.poster)) == round(2.5 * FPS)


def test_broken_input_and_bad_options(talk: Path, tmp_path: Path) -> None:
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(20_000))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(talk.read_bytes()[:4000])  # moov at the end: nothing to index the samples
    audio_only = write_speech_like(tmp_path / "voice.wav", 1.0)
    for src, code in ((noise, "video-unreadable"), (cut, "video-unreadable"), (audio_only, "media-no-video")):
        with pytest.raises(InvalidMedia) as caught:
            process_video(src, tmp_path / "out.mp4", tmp_path / "out.mp3", ProcessOptions())
        assert caught.value.code == code
    with pytest.raises(InvalidInput):
        process_video(
            talk, tmp_path / "out.mp4", tmp_path / "out.mp3", ProcessOptions(), VideoOptions(preset="x")
        )
    with pytest.raises(InvalidInput):
        process_video(talk, tmp_path / "out.mp4", tmp_path / "out.mp3", ProcessOptions(start=9.0, end=8.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "noise.mp4", "voice.wav"]
