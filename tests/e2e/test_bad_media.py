"""The bad-input matrix through the HTTP API: odd or damaged media is processed sensibly or refused clearly.

Every case uploads a file generated here, waits for its job and checks what the issue promises: never a 500,
never a crash or a hung job, a stable error code with a human message, the original kept byte for byte and
the episode left as it was when the job fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from fastapi.testclient import TestClient
from mutagen.id3 import APIC, ID3
from mutagen.mp4 import MP4, MP4Cover
from sqlalchemy import select

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.db.models import Asset
from media_pub.media.artwork import placeholder_artwork
from media_pub.media.loudness import measure_file
from media_pub.media.synth import write_speech_like
from tests.conftest import SHOW, make_settings, new_user
from tests.e2e.conftest import wait_job
from tests.unit.media.helpers import make_video, mux_stereo, write_pcm

pytestmark = pytest.mark.slow

SECONDS = 4.0  # of generated audio per case: long enough to measure, short enough for a quick matrix
STEREO, MONO = -16.0, -19.0  # the show's default loudness targets (LUFS)
# A job that ends with one of these crashed instead of judging the input: the issue allows neither.
CRASH_CODES = {"internal-error", "media-crashed", "media-processing-failed"}
CODE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


# ---------------------------------------------------------------------------------------------------------
# Generated inputs


def decode(path: Path) -> tuple[np.ndarray, int]:
    """All audio of `path` as float32 (channels, n) and its sample rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        layout = stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        blocks = [out.to_ndarray() for frame in container.decode(stream) for out in resampler.resample(frame)]
    return np.concatenate(blocks, axis=1).astype(np.float32), rate


def white_noise(tmp: Path) -> Path:
    """Independent white noise in both channels at -30 dBFS RMS, no speech at all."""
    rng = np.random.default_rng(11)
    noise = rng.standard_normal((2, round(SECONDS * 48000))).astype(np.float32)
    return write_pcm(tmp / "white.wav", noise * np.float32(10 ** (-30 / 20)), 48000)


def pink_noise(tmp: Path) -> Path:
    """Pink (1/f power) noise at -30 dBFS RMS, shaped in the frequency domain."""
    rng = np.random.default_rng(12)
    n = round(SECONDS * 48000)
    spectrum = np.fft.rfft(rng.standard_normal((2, n)), axis=1)
    freqs = np.fft.rfftfreq(n, 1 / 48000)
    spectrum[:, 1:] /= np.sqrt(freqs[1:])
    spectrum[:, 0] = 0
    pink = np.fft.irfft(spectrum, n, axis=1)
    pink *= 10 ** (-30 / 20) / np.sqrt(np.mean(pink**2))
    return write_pcm(tmp / "pink.wav", pink.astype(np.float32), 48000)


def clipping(tmp: Path) -> Path:
    """Speech-like driven 20 dB into hard clipping at 0 dBFS, as a clipped recording would be."""
    clean = write_speech_like(tmp / "clean.wav", SECONDS, lufs=-23.0, seed=21)
    samples, rate = decode(clean)
    driven = np.clip(samples * np.float32(10.0), -1.0, 1.0)
    assert np.mean(np.abs(driven) >= 0.999) > 0.01, "the fixture should really clip"
    return write_pcm(tmp / "clipping.wav", driven, rate)


def hi_res(tmp: Path) -> Path:
    """96 kHz stereo speech as 24-bit WAV."""
    plain = write_speech_like(tmp / "plain96.wav", SECONDS, lufs=-23.0, sample_rate=96000, seed=22)
    samples, rate = decode(plain)
    return write_pcm(tmp / "speech96.wav", samples, rate, codec="pcm_s24le")


def speech(name: str, fmt: str = "wav", **kwargs: Any) -> Callable[[Path], Path]:
    """Speech-like audio of SECONDS with write_speech_like's options (channels, sample_rate, lufs)."""

    def build(tmp: Path) -> Path:
        return write_speech_like(tmp / f"{name}.{fmt}", SECONDS, fmt=fmt, seed=23, **kwargs)

    return build


def digital_silence(tmp: Path) -> Path:
    return write_pcm(tmp / "silence.wav", np.zeros((2, round(SECONDS * 48000)), np.float32), 48000)


def dc_offset_silence(tmp: Path) -> Path:
    """What a silent take from a cheap interface holds: a -40 dBFS DC offset and -70 dBFS hiss (~-64 LUFS)."""
    rng = np.random.default_rng(13)
    hiss = rng.standard_normal((2, round(SECONDS * 48000))).astype(np.float32) * np.float32(10 ** (-70 / 20))
    return write_pcm(tmp / "dc-silence.wav", hiss + np.float32(0.01), 48000)


def click_in_silence(tmp: Path) -> Path:
    """Digital silence with one 10-sample click (a bumped microphone) in the middle."""
    samples = np.zeros((2, round(SECONDS * 48000)), np.float32)
    samples[:, 96000:96010] = 0.9
    return write_pcm(tmp / "click.wav", samples, 48000)


SILENT = {"digital": digital_silence, "dc-offset-and-hiss": dc_offset_silence}

# id -> (builder, target LUFS, output channels)
PROCESSED: dict[str, tuple[Callable[[Path], Path], float, int]] = {
    "white-noise": (white_noise, STEREO, 2),
    "pink-noise": (pink_noise, STEREO, 2),
    "clipping": (clipping, STEREO, 2),
    "mono": (speech("mono", channels=1), MONO, 1),
    "surround-5.1": (speech("surround", channels=6, fmt="flac"), STEREO, 2),
    "mono-8khz": (speech("narrow", channels=1, sample_rate=8000), MONO, 1),
    "stereo-96khz-24bit": (hi_res, STEREO, 2),
    "quiet-50lufs": (speech("quiet", lufs=-50.0), STEREO, 2),
    "loud-5lufs": (speech("loud", lufs=-5.0), STEREO, 2),
}

# Beyond the list: inputs whose target needs nearly all of the gain allowed (id -> builder, seconds of
# content that must survive, or None). Landing on target or a clear refusal are both fine; a job that
# "succeeds" off target, or cuts the speech away, is not.
AT_THE_EDGE: dict[str, tuple[Callable[[Path], Path], float | None]] = {
    "click-in-silence": (click_in_silence, None),
    "speech-55lufs": (speech("quieter", lufs=-55.0), SECONDS),
}


def mp3_with_cover(tmp: Path) -> Path:
    """An MP3 whose ID3 tag carries a front cover (FFmpeg shows it as an attached_pic video stream)."""
    path = write_speech_like(tmp / "cover.mp3", SECONDS, lufs=-20.0, seed=31)
    tags = ID3(path) if path.read_bytes()[:3] == b"ID3" else ID3()
    tags.add(APIC(encoding=3, mime="image/jpeg", type=3, desc="Cover", data=placeholder_artwork("mp3", 300)))
    tags.save(path)
    return path


def m4a_with_cover(tmp: Path) -> Path:
    """An M4A with a `covr` atom (FFmpeg shows it as an attached_pic video stream)."""
    path = write_speech_like(tmp / "cover.m4a", SECONDS, lufs=-20.0, seed=32)
    tags = MP4(path)
    tags["covr"] = [MP4Cover(placeholder_artwork("m4a", 300), imageformat=MP4Cover.FORMAT_JPEG)]
    tags.save()
    return path


def vfr_video(tmp: Path, seconds: float = 3.0) -> Path:
    """H.264 with irregular frame times (1/90000 time base, 5 to 60 fps) and an AAC voice-band tone."""
    rng = np.random.default_rng(41)
    path = tmp / "vfr.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 90000)
        sound = container.add_stream("aac", rate=48000)
        sound.codec_context.layout = "stereo"
        pts, index = 0, 0
        while pts < seconds * 90000:
            frame = av.VideoFrame.from_ndarray(
                np.full((48, 64, 3), index * 7 % 255, np.uint8), format="rgb24"
            )
            frame.pts, frame.time_base = pts, Fraction(1, 90000)
            for packet in video.encode(frame):
                container.mux(packet)
            pts += int(rng.choice([1500, 3000, 3600, 7200, 18000]))
            index += 1
        for packet in video.encode(None):
            container.mux(packet)
        total = round(seconds * 48000)
        t = np.arange(total) / 48000
        tone = (0.2 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(
            np.float32
        )
        mux_stereo(container, sound, tone)
    return path


# ---------------------------------------------------------------------------------------------------------
# The API side


@pytest.fixture
def episode(client: TestClient, host: dict[str, str]) -> dict:
    assert client.post("/api/v1/shows", json=SHOW, headers=host).status_code == 201
    created = client.post("/api/v1/shows/test-show/episodes", json={"title": "Odd input"}, headers=host)
    assert created.status_code == 201, created.text
    return created.json()


def upload(client: TestClient, headers: dict[str, str], episode_id: str, data: bytes) -> dict:
    """PUT the bytes as the episode's media; answers the accepted job (202), never a 500."""
    response = client.put(f"/api/v1/episodes/{episode_id}/media", content=data, headers=headers)
    assert response.status_code != 500, response.text
    assert response.status_code == 202, response.text
    return response.json()


def get_json(client: TestClient, url: str, headers: dict[str, str]) -> dict:
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


def finished(client: TestClient, headers: dict[str, str], job: dict, timeout: float = 60) -> dict:
    """Wait for the job, then check the job and episode answers and the shape of any error."""
    job = wait_job(client, job, headers, timeout=timeout)
    job = get_json(client, job["url"], headers)
    assert job["status"] in ("succeeded", "failed"), job
    episode = get_json(client, f"/api/v1/episodes/{job['episode_id']}", headers)
    assert episode["status"] != "processing", f"the job ended but the episode is still processing: {episode}"
    if job["status"] == "failed":
        assert job["error_code"], job
        assert CODE.match(job["error_code"]), job
        assert job["error_code"] not in CRASH_CODES, f"a crash, not a judgement of the input: {job}"
        assert job["error"], job
        assert len(job["error"]) > 15, job
        assert "Traceback" not in job["error"], job
        assert episode["last_error"], episode
    return job


def original_kept(container: Container, episode_id: str, data: bytes) -> None:
    """The upload is stored as an original asset of the episode, byte for byte."""
    sha = hashlib.sha256(data).hexdigest()
    with container.uow() as uow:
        keys = uow.session.scalars(
            select(Asset.storage_key).where(
                Asset.episode_id == episode_id, Asset.role == "original", Asset.sha256 == sha
            )
        ).all()
    assert len(keys) == 1, f"no original with the upload's sha256 {sha}"
    assert hashlib.sha256(container.storage.read_bytes(keys[0])).hexdigest() == sha


def fetch_rendition(client: TestClient, headers: dict[str, str], episode_id: str, tmp: Path) -> Path:
    """Publish the episode and GET its rendition the way an app does."""
    published = client.post(f"/api/v1/episodes/{episode_id}/publish", json={}, headers=headers)
    assert published.status_code == 200, published.text
    url = published.json()["media"]["url"]
    response = client.get(url.removeprefix("http://testserver"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/mpeg"
    path = tmp / "rendition.mp3"
    path.write_bytes(response.content)
    return path


def audio_format(path: Path) -> tuple[int, int, int]:
    """(sample rate, channels, count of non-cover video streams) of the first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        videos = [
            s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
        ]
        return stream.codec_context.sample_rate, stream.codec_context.channels, len(videos)


def no_child_left() -> None:
    """No child of this process is alive as a media worker or left as a zombie."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone while we looked
        if fields[1] != me:  # fields: state, ppid, ...
            continue
        assert fields[0] != "Z", f"zombie child {stat.parent.name}"
        assert b"child_main" not in cmdline, f"media worker {stat.parent.name} still runs: {cmdline!r}"


# ---------------------------------------------------------------------------------------------------------
# The matrix


@pytest.mark.parametrize("case", list(SILENT))
def test_silence_only_is_refused_and_loses_nothing(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path, case: str
) -> None:
    data = SILENT[case](tmp_path).read_bytes()
    job = finished(client, host, upload(client, host, episode["id"], data))
    after = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
    made = after["media"] and {k: after["media"][k] for k in ("loudness_in", "loudness_out", "duration")}
    assert job["status"] == "failed", f"silence was processed into {made}"
    assert job["error_code"] == "media-silent", job
    assert after["status"] != "published"
    assert after["media"] is None
    original_kept(container, episode["id"], data)


@pytest.mark.parametrize("case", list(PROCESSED))
def test_odd_audio_is_processed_to_target(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path, case: str
) -> None:
    build, target, channels = PROCESSED[case]
    data = build(tmp_path).read_bytes()
    job = finished(client, host, upload(client, host, episode["id"], data))
    assert job["status"] == "succeeded", job
    ready = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
    assert ready["status"] == "ready"
    assert ready["original"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert ready["media"]["mime_type"] == "audio/mpeg"
    assert ready["media"]["channels"] == channels
    assert ready["media"]["sample_rate"] == 44100
    original_kept(container, episode["id"], data)

    rendition = fetch_rendition(client, host, episode["id"], tmp_path)
    loudness, duration = measure_file(rendition)
    assert audio_format(rendition)[:2] == (44100, channels)
    assert loudness.integrated == pytest.approx(target, abs=0.5), loudness
    assert loudness.true_peak <= -1.0, loudness
    assert 0.5 * SECONDS <= duration <= SECONDS + 0.5, duration


@pytest.mark.parametrize("case", list(AT_THE_EDGE))
def test_out_of_reach_target_is_met_or_refused(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path, case: str
) -> None:
    build, content = AT_THE_EDGE[case]
    data = build(tmp_path).read_bytes()
    job = finished(client, host, upload(client, host, episode["id"], data))
    original_kept(container, episode["id"], data)
    if job["status"] == "failed":
        assert job["error_code"].startswith("media-"), job
        return
    loudness, duration = measure_file(fetch_rendition(client, host, episode["id"], tmp_path))
    assert loudness.integrated == pytest.approx(STEREO, abs=0.5), f"succeeded off target: {loudness}"
    assert loudness.true_peak <= -1.0, loudness
    if content is not None:
        assert duration >= 0.75 * content, f"{duration:.2f} s of {content} s of speech kept"


def test_corrupted_frames_in_the_middle(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path
) -> None:
    """4 KB of random bytes over the middle of a 10 s MP3: decoded around the damage, or a clear error."""
    clean = write_speech_like(tmp_path / "clean.mp3", 10.0, lufs=-20.0, seed=51).read_bytes()
    middle = len(clean) // 2
    damage = np.random.default_rng(52).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    data = clean[:middle] + damage + clean[middle + len(damage) :]
    response = client.put(f"/api/v1/episodes/{episode['id']}/media", content=data, headers=host)
    assert response.status_code != 500, response.text
    if response.status_code != 202:  # refused at upload: a problem with a code, nothing kept
        assert response.status_code in (415, 422), response.text
        assert response.headers["content-type"] == "application/problem+json", response.text
        assert response.json()["code"].startswith(("media-", "unsupported")), response.text
        assert get_json(client, f"/api/v1/episodes/{episode['id']}", host)["status"] == "draft"
        return
    job = finished(client, host, response.json())
    original_kept(container, episode["id"], data)
    if job["status"] == "failed":
        assert job["error_code"].startswith("media-"), job
        return
    loudness, duration = measure_file(fetch_rendition(client, host, episode["id"], tmp_path))
    assert duration == pytest.approx(10.0, abs=1.5)
    assert loudness.integrated == pytest.approx(STEREO, abs=0.5), loudness
    assert loudness.true_peak <= -1.0, loudness


@pytest.mark.parametrize("build", [mp3_with_cover, m4a_with_cover], ids=["mp3-apic", "m4a-covr"])
def test_audio_with_cover_art_is_audio(
    container: Container,
    client: TestClient,
    host: dict[str, str],
    episode: dict,
    tmp_path: Path,
    build: Callable[[Path], Path],
) -> None:
    show_art = placeholder_artwork("show")
    art = client.put("/api/v1/shows/test-show/artwork", content=show_art, headers=host)
    assert art.status_code == 200, art.text
    path = build(tmp_path)
    with av.open(str(path)) as probe:  # the fixture really has a cover stream
        assert any(s.disposition & av.stream.Disposition.attached_pic for s in probe.streams.video)
    data = path.read_bytes()
    job = finished(client, host, upload(client, host, episode["id"], data))
    assert job["status"] == "succeeded", job
    ready = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
    assert ready["original"]["kind"] == "audio", ready["original"]
    assert ready["media"]["mime_type"] == "audio/mpeg"
    assert ready["media"]["kind"] == "audio"
    original_kept(container, episode["id"], data)

    rendition = fetch_rendition(client, host, episode["id"], tmp_path)
    assert audio_format(rendition) == (44100, 2, 0)
    loudness, _ = measure_file(rendition)
    assert loudness.integrated == pytest.approx(STEREO, abs=0.5), loudness
    covers = ID3(rendition).getall("APIC")
    assert len(covers) == 1, [c.desc for c in covers]
    assert covers[0].data == show_art, "the rendition carries the show's artwork"
    feed = client.get("/feeds/test-show.xml")
    assert feed.status_code == 200
    assert f'href="http://testserver/media/{art.json()["artwork_key"]}"'.encode() in feed.content


def test_video_without_audio_gets_a_clear_outcome(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path
) -> None:
    data = make_video(tmp_path / "mute.mp4", 2.0, audio=False).read_bytes()
    response = client.put(f"/api/v1/episodes/{episode['id']}/media", content=data, headers=host)
    assert response.status_code != 500, response.text
    if response.status_code != 202:  # refused at upload
        assert response.status_code in (415, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"], response.text
        after = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
        assert after["status"] == "draft"
        return
    job = finished(client, host, response.json())
    original_kept(container, episode["id"], data)
    after = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
    if job["status"] == "failed":
        assert job["error_code"].startswith("media-"), job
        assert after["media"] is None
    else:
        assert after["media"] is not None


def test_variable_frame_rate_video_finishes(
    container: Container, client: TestClient, host: dict[str, str], episode: dict, tmp_path: Path
) -> None:
    path = vfr_video(tmp_path)
    with av.open(str(path)) as probe:  # the fixture really is irregular
        stream = probe.streams.video[0]
        times = sorted(p.pts for p in probe.demux(stream) if p.pts is not None)
        assert len(set(np.diff(times))) > 2, times
    data = path.read_bytes()
    job = finished(client, host, upload(client, host, episode["id"], data))
    original_kept(container, episode["id"], data)
    after = get_json(client, f"/api/v1/episodes/{episode['id']}", host)
    if job["status"] == "succeeded":
        assert after["status"] == "ready"
        assert after["media"]["duration"] == pytest.approx(3.0, abs=0.5), after["media"]
    else:
        assert after["media"] is None


# ---------------------------------------------------------------------------------------------------------
# Every job has a time limit


@pytest.fixture
def slow_then_timed(tmp_path: Path) -> Iterator[Callable[[float], tuple[Container, TestClient]]]:
    """Apps over one data folder, each built with its own job time limit (closed at the end)."""
    opened: list[tuple[Container, TestClient]] = []

    def build(job_timeout: float) -> tuple[Container, TestClient]:
        if opened:  # one app at a time on the data folder, as one server would be
            c, tc = opened[-1]
            tc.__exit__(None, None, None)
            c.close()
        c = bootstrap(make_settings(tmp_path, job_timeout_seconds=job_timeout))
        tc = TestClient(create_app(c), raise_server_exceptions=False)
        tc.__enter__()
        opened.append((c, tc))
        return c, tc

    yield build
    c, tc = opened[-1]
    tc.__exit__(None, None, None)
    c.close()


def test_every_job_has_a_time_limit(
    slow_then_timed: Callable[[float], tuple[Container, TestClient]], tmp_path: Path
) -> None:
    # First a normal app makes the episode ready, so "left as it was" has something to lose.
    c, client = slow_then_timed(300.0)
    headers = new_user(c, "host")
    assert client.post("/api/v1/shows", json=SHOW, headers=headers).status_code == 201
    ready_id = client.post("/api/v1/shows/test-show/episodes", json={"title": "A"}, headers=headers).json()[
        "id"
    ]
    first = write_speech_like(tmp_path / "first.wav", SECONDS, seed=61).read_bytes()
    assert finished(client, headers, upload(client, headers, ready_id, first))["status"] == "succeeded"
    before = get_json(client, f"/api/v1/episodes/{ready_id}", headers)
    assert before["status"] == "ready"

    # Then the same data under an app whose jobs may run 0.3 s: far less than any processing takes.
    c, client = slow_then_timed(0.3)
    draft_id = client.post("/api/v1/shows/test-show/episodes", json={"title": "B"}, headers=headers).json()[
        "id"
    ]
    second = write_speech_like(tmp_path / "second.wav", SECONDS, seed=62).read_bytes()
    for episode_id in (ready_id, draft_id):
        accepted = upload(client, headers, episode_id, second)
        started = time.monotonic()
        job = finished(client, headers, accepted, timeout=10)
        elapsed = time.monotonic() - started
        assert job["status"] == "failed", job
        assert job["error_code"] in ("media-timeout", "job-timeout"), job
        assert elapsed < 5.0, f"the 0.3 s limit took {elapsed:.1f} s to act"
        original_kept(c, episode_id, second)
        no_child_left()

    after = get_json(client, f"/api/v1/episodes/{ready_id}", headers)
    assert after["status"] == "ready"
    assert after["media"] == before["media"], "a failed job must not touch the episode's rendition"
    assert after["original"] == before["original"]
    draft = get_json(client, f"/api/v1/episodes/{draft_id}", headers)
    assert draft["status"] in ("draft", "failed"), draft
    assert draft["media"] is None
