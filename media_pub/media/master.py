"""The renditions of one original: what a processing job makes, in one isolated child process.

Audio: MP3 (the main enclosure) plus AAC in M4A and Opus as asked, all from one master render.
Video: the video rendition (stream copied or transcoded), its audio-only MP3 and a poster frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from media_pub.domain.values import Loudness
from media_pub.media.process import ProcessOptions, ProcessResult, Progress, process_audio
from media_pub.media.video import VideoOptions, process_video


@dataclass
class Output:
    """One file the job made, before it is stored."""

    kind: str  # mp3, aac, opus, video, poster
    path: Path
    mime: str
    codec: str | None
    media_kind: str  # audio, video, image
    loudness: Loudness | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    key: str = ""
    size: int = 0
    sha: str = ""


@dataclass
class Made:
    """What the media step made and measured."""

    audio: ProcessResult | None
    outputs: list[Output]
    offset: float
    duration: float
    cuts: tuple[tuple[float, float], ...] = ()
    video: dict[str, object] = field(default_factory=dict)
    leveled: bool = False
    lead: float = 0.0  # seconds of intro before the episode's own start


_AUDIO = {
    "mp3": ("audio/mpeg", "mp3", "mp3"),
    "aac": ("audio/x-m4a", "aac", "m4a"),
    "opus": ("audio/ogg", "opus", "opus"),
}


def make_media(
    src: Path,
    work: Path,
    options: ProcessOptions,
    kinds: list[str],
    video: VideoOptions | None,
    progress: Progress | None = None,
) -> Made:
    """The media step, run in an isolated child: the renditions of one original, in `work`."""
    paths = {kind: work / f"rendition.{_AUDIO[kind][2]}" for kind in kinds}
    if video is None:
        result = process_audio(
            src, paths["mp3"], options, progress, aac=paths.get("aac"), opus=paths.get("opus")
        )
        outputs = [Output("mp3", paths["mp3"], "audio/mpeg", "mp3", "audio", result.loudness_out)]
        outputs += [
            Output(kind, paths[kind], _AUDIO[kind][0], _AUDIO[kind][1], "audio", result.extra.get(kind))
            for kind in ("aac", "opus")
            if kind in paths
        ]
        for out in outputs:
            out.duration = result.duration_out
        return Made(
            result, outputs, result.offset, result.duration_out, result.cuts, leveled=options.level,
            lead=result.lead,
        )  # fmt: skip

    mp4 = work / "rendition.mp4"
    made = process_video(src, mp4, paths["mp3"], replace(options, max_silence=None), video, progress)
    loudness = made.audio.extra.get("aac") if made.audio is not None else None
    outputs = [
        Output("video", mp4, "video/mp4", made.video_codec, "video", loudness, made.duration, made.width,
                made.height)
    ]  # fmt: skip
    if made.audio is not None:
        outputs.append(
            Output("mp3", paths["mp3"], "audio/mpeg", "mp3", "audio", made.audio.loudness_out,
                    made.audio.duration_out)
        )  # fmt: skip
    poster = work / "poster.jpg"
    poster.write_bytes(made.poster)
    outputs.append(Output("poster", poster, "image/jpeg", "mjpeg", "image"))
    info = {"copied": made.copied, "codec": made.video_codec, "width": made.width, "height": made.height}
    return Made(made.audio, outputs, made.offset, made.duration, (), info, leveled=options.level)
