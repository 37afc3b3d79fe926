"""`media-pub process`: the processing pipeline on local files, no server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from media_pub.errors import InvalidInput
from media_pub.media.probe import probe_file
from media_pub.media.process import ProcessOptions, parse_timestamp, process_audio
from media_pub.media.tags import TagInfo, write_id3

console = Console(stderr=True)


def process(
    src: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="Input audio/video")
    ],
    dst: Annotated[Path, typer.Argument(help="Output MP3")],
    target: Annotated[float, typer.Option(help="Integrated loudness target, LUFS")] = -16.0,
    true_peak: Annotated[float, typer.Option(help="True-peak ceiling, dBTP")] = -1.0,
    start: Annotated[str | None, typer.Option(help="In point (s or HH:MM:SS.mmm)")] = None,
    end: Annotated[str | None, typer.Option(help="Out point")] = None,
    trim: Annotated[bool, typer.Option(help="Trim leading and trailing silence")] = True,
    title: Annotated[str | None, typer.Option(help="ID3 title (default: file name)")] = None,
) -> None:
    """Measure, normalize, trim and encode SRC to an MP3 at DST; the input is never modified."""
    if dst.resolve() == src.resolve():
        raise InvalidInput("the output must not overwrite the input", code="invalid-output")
    options = ProcessOptions(
        target_lufs=target,
        true_peak_db=true_peak,
        trim_silence=trim,
        start=parse_timestamp(start) if start else None,
        end=parse_timestamp(end) if end else None,
    )
    probe_file(src)  # refuse what is not media with one clear line, before any progress output
    began = time.monotonic()
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("measure", total=1.0)

        def report(stage: str, fraction: float) -> None:
            progress.update(task, description=stage, completed=fraction)

        result = process_audio(src, dst, options, progress=report)
    write_id3(dst, TagInfo(title=title or src.stem), result.duration_out)
    table = Table(title=str(dst))
    for column in ("", "duration s", "integrated LUFS", "LRA LU", "true peak dBTP"):
        table.add_column(column)
    for name, dur, loud in (
        ("input", result.duration_in, result.loudness_in),
        ("output", result.duration_out, result.loudness_out),
    ):
        table.add_row(
            name, f"{dur:.2f}", f"{loud.integrated:.2f}", f"{loud.lra:.2f}", f"{loud.true_peak:.2f}"
        )
    Console().print(table)
    Console().print(f"gain {result.gain_db:+.2f} dB, {time.monotonic() - began:.1f} s")
