"""`media-pub process`: the processing pipeline on local files, no server.

`media-pub process IN OUT.mp3` renders one file; `media-pub process IN... -o OUTDIR` renders files and
folders (their audio/video files, not recursive) to OUTDIR/<stem>.mp3, `-j` at once, each in its own child
process so one bad file cannot take the batch down, and ends with a summary table.
"""

from __future__ import annotations

import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from media_pub.config import get_settings
from media_pub.errors import InvalidInput
from media_pub.media.isolation import run_isolated
from media_pub.media.probe import probe_file
from media_pub.media.process import ProcessOptions, ProcessResult, parse_timestamp, process_audio
from media_pub.media.tags import TagInfo, write_id3

console = Console(stderr=True)

MEDIA_EXTENSIONS = frozenset(
    {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".opus", ".mp4", ".mov", ".mkv", ".webm"}
)
# MPEG-1 layer III bitrates (the output is 44.1 kHz).
MP3_BITRATES = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
PRESET_KEYS = (
    "target_lufs",
    "true_peak_db",
    "trim_silence",
    "silence_threshold_db",
    "silence_min_seconds",
    "bitrate_kbps",
    "channels",
    "level",
    "max_silence",
)
MAX_JOBS = 32


# --- options: flags over preset over defaults -------------------------------------------------------------


def _number(name: str, value: Any, low: float, high: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{where}{name} must be a number, not {value!r}", code="invalid-options")
    if not low <= value <= high:
        raise InvalidInput(f"{where}{name} must be between {low:g} and {high:g}", code="invalid-options")
    return float(value)


def _check_value(key: str, value: Any, where: str = "") -> Any:
    """`value` of the option `key` (a preset key), validated; InvalidInput naming it otherwise."""
    if key == "target_lufs":
        return _number(key, value, -50.0, -5.0, where)
    if key == "true_peak_db":
        return _number(key, value, -20.0, 0.0, where)
    if key == "silence_threshold_db":
        return _number(key, value, -90.0, -10.0, where)
    if key == "silence_min_seconds":
        return _number(key, value, 0.0, 60.0, where)
    if key in ("trim_silence", "level"):
        if not isinstance(value, bool):
            raise InvalidInput(f"{where}{key} must be true or false", code="invalid-options")
        return value
    if key == "max_silence":
        return _number(key, value, 0.2, 60.0, where)
    if key == "bitrate_kbps":
        if isinstance(value, bool) or not isinstance(value, int) or value not in MP3_BITRATES:
            allowed = ", ".join(map(str, MP3_BITRATES))
            raise InvalidInput(f"{where}bitrate_kbps must be one of {allowed}", code="invalid-options")
        return value
    if key == "channels":
        if isinstance(value, bool) or value not in (1, 2):
            raise InvalidInput(f"{where}channels must be 1 or 2", code="invalid-options")
        return value
    raise AssertionError(key)


def load_preset(path: Path) -> dict[str, Any]:
    """The options of a TOML preset (only PRESET_KEYS, values checked); InvalidInput on anything wrong."""
    where = f"preset {path.name}: "
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"the preset {path} does not exist", code="invalid-preset") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the preset {path} cannot be read ({error})", code="invalid-preset") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        detail = " ".join(str(error).split())
        raise InvalidInput(f"{where}not valid TOML ({detail})", code="invalid-preset") from None
    unknown = sorted(set(data) - set(PRESET_KEYS))
    if unknown:
        raise InvalidInput(
            f"{where}unknown key(s) {', '.join(unknown)}; known: {', '.join(PRESET_KEYS)}",
            code="invalid-preset",
        )
    return {key: _check_value(key, value, where) for key, value in data.items()}


def build_options(
    preset: Path | None,
    flags: dict[str, Any],
    start: str | None,
    end: str | None,
) -> ProcessOptions:
    """ProcessOptions from the defaults, then the preset, then the flags given (None = not given)."""
    values = load_preset(preset) if preset is not None else {}
    for key, value in flags.items():
        if value is not None:
            values[key] = _check_value(key, value, "--")
    return ProcessOptions(
        **values,
        start=parse_timestamp(start) if start else None,
        end=parse_timestamp(end) if end else None,
    )


# --- inputs and outputs ------------------------------------------------------------------------------------


def collect_inputs(paths: list[Path]) -> list[Path]:
    """The files to process: files as given, and the media files directly inside folders (by extension)."""
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_EXTENSIONS)
            if not inside:
                raise InvalidInput(f"the folder {path} holds no audio or video files", code="invalid-input")
        elif path.is_file():
            inside = [path]
        else:
            raise InvalidInput(f"{path} does not exist", code="invalid-input")
        for file in inside:
            key = file.resolve()
            if key not in seen:  # a file named twice (alone and in its folder) is processed once
                seen.add(key)
                found.append(file)
    return found


def plan_outputs(inputs: list[Path], output_dir: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs; InvalidInput if two inputs share an output or an output would hit an input."""
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInput(f"the output {output_dir} is not a folder", code="invalid-output")
    pairs: list[tuple[Path, Path]] = []
    by_output: dict[Path, Path] = {}
    for src in inputs:
        dst = output_dir / f"{src.stem}.mp3"
        other = by_output.setdefault(dst.resolve(), src)
        if other is not src:
            raise InvalidInput(
                f"{other} and {src} would both be written to {dst}; rename one or process them apart",
                code="output-collision",
            )
        pairs.append((src, dst))
    for _, dst in pairs:
        _refuse_overwriting_inputs(dst, inputs)
    return pairs


def _refuse_overwriting_inputs(dst: Path, inputs: list[Path]) -> None:
    resolved = {p.resolve() for p in inputs}
    for written in (dst, dst.with_suffix(".part")):  # process_audio writes .part first
        if written.resolve() in resolved:
            raise InvalidInput(f"the output {dst} would overwrite the input {written}", code="invalid-output")


# --- the work ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    src: Path
    dst: Path
    seconds: float
    result: ProcessResult | None = None
    error: str | None = None


def render(
    src: Path,
    dst: Path,
    options: ProcessOptions,
    title: str,
    timeout: float,
    progress: Any = None,
) -> ProcessResult:
    """Probe, process (in a child process) and tag one file; MediaPubError on failure."""
    probe_file(src)  # refuse what is not media with one clear line, before any work
    result: ProcessResult = run_isolated(
        process_audio, src, dst, options, timeout=timeout, memory_mb=None, progress=progress
    )
    write_id3(dst, TagInfo(title=title), result.duration_out)
    return result


def _progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.fields[name]}"),
        TextColumn("{task.description:>9}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
    )


def run_batch(
    pairs: list[tuple[Path, Path]], options: ProcessOptions, jobs: int, timeout: float
) -> list[Outcome]:
    """Process every pair, `jobs` at once, one progress bar each; failures are collected, not raised."""
    outcomes: list[Outcome | None] = [None] * len(pairs)
    with _progress_bars() as progress:
        tasks = [progress.add_task("waiting", total=1.0, name=src.name) for src, _ in pairs]
        lock = threading.Lock()

        def one(index: int) -> None:
            src, dst = pairs[index]
            task: TaskID = tasks[index]
            began = time.monotonic()

            def report(stage: str, fraction: float) -> None:
                progress.update(task, description=stage, completed=fraction)

            progress.update(task, description="probe", completed=0.0)
            try:
                result = render(src, dst, options, src.stem, timeout, report)
            except Exception as error:  # one file failing (however) must not end the batch
                detail = getattr(error, "detail", None) or f"{type(error).__name__}: {error}"
                outcome = Outcome(src, dst, time.monotonic() - began, error=" ".join(str(detail).split()))
                progress.update(task, description="failed")
            else:
                outcome = Outcome(src, dst, time.monotonic() - began, result=result)
                progress.update(task, description="done", completed=1.0)
            with lock:
                outcomes[index] = outcome

        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="media-pub-process")
        try:
            for future in [pool.submit(one, i) for i in range(len(pairs))]:
                future.result()
        except BaseException:  # Ctrl-C: start nothing new (running children get the SIGINT too)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return [o for o in outcomes if o is not None]


def summary_table(outcomes: list[Outcome]) -> Table:
    """One row per file; the reasons of failed files follow the table, one line each."""
    failed = [o for o in outcomes if o.result is None]
    table = Table(
        title="media-pub process",
        caption="\n".join(f"{o.src.name} failed: {o.error}" for o in failed) or None,
        caption_justify="left",
    )
    longest = max((len(o.src.name) for o in outcomes), default=4)
    table.add_column("file", overflow="fold", min_width=min(longest, 32))
    table.add_column("status", no_wrap=True)
    columns = ("in LUFS", "out LUFS", "out dBTP", "in s", "out s", "took s", "in LRA", "out LRA")
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for o in outcomes:
        r = o.result
        if r is None:
            table.add_row(o.src.name, "failed", "-", "-", "-", "-", "-", f"{o.seconds:.1f}", "-", "-")
            continue
        table.add_row(
            o.src.name,
            "ok",
            f"{r.loudness_in.integrated:.1f}",
            f"{r.loudness_out.integrated:.1f}",
            f"{r.loudness_out.true_peak:.1f}",
            f"{r.duration_in:.2f}",
            f"{r.duration_out:.2f}",
            f"{o.seconds:.1f}",
            f"{r.loudness_in.lra:.1f}",
            f"{r.loudness_out.lra:.1f}",
        )
    return table


# --- the command -------------------------------------------------------------------------------------------


def process(
    paths: Annotated[
        list[Path],
        typer.Argument(help="IN OUT.mp3 for one file, or IN... (files or folders) with -o OUTDIR"),
    ],
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write OUTDIR/<input name>.mp3 for every input"),
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=MAX_JOBS, help="Files at once")] = 1,
    preset: Annotated[
        Path | None, typer.Option(help="TOML preset of options; flags given override it")
    ] = None,
    target: Annotated[
        float | None, typer.Option(help="Integrated loudness target, LUFS (default -16)")
    ] = None,
    true_peak: Annotated[float | None, typer.Option(help="True-peak ceiling, dBTP (default -1)")] = None,
    start: Annotated[str | None, typer.Option(help="In point (s or HH:MM:SS.mmm)")] = None,
    end: Annotated[str | None, typer.Option(help="Out point")] = None,
    trim: Annotated[
        bool | None,
        typer.Option("--trim/--no-trim", help="Trim leading and trailing silence (default: trim)"),
    ] = None,
    bitrate: Annotated[
        int | None, typer.Option(help="MP3 bitrate, kbit/s (default 64 mono, 128 stereo)")
    ] = None,
    level: Annotated[
        bool | None,
        typer.Option("--level/--no-level", help="Level quiet and loud speakers (default: level)"),
    ] = None,
    max_silence: Annotated[
        float | None, typer.Option(help="Shorten inner silences to this many seconds (default: keep)")
    ] = None,
    title: Annotated[
        str | None, typer.Option(help="ID3 title, one file only (default: the input's name)")
    ] = None,
) -> None:
    """Measure, normalize, trim and encode to MP3; inputs are never modified.

    Exit code 1 if any file failed (each is named on stderr with the reason).
    """
    options = build_options(
        preset,
        {
            "target_lufs": target,
            "true_peak_db": true_peak,
            "trim_silence": trim,
            "bitrate_kbps": bitrate,
            "level": level,
            "max_silence": max_silence,
        },
        start,
        end,
    )
    timeout = get_settings().job_timeout_seconds
    if output_dir is None:
        if len(paths) != 2:
            raise typer.BadParameter(
                "give IN OUT.mp3 for one file, or IN... -o OUTDIR for several", param_hint="PATHS"
            )
        _single(paths[0], paths[1], options, title, timeout)
        return
    if title is not None:
        raise InvalidInput("--title needs a single file; in a batch each title is the file's name")
    pairs = plan_outputs(collect_inputs(paths), output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    outcomes = run_batch(pairs, options, jobs, timeout)
    terminal = Console()
    # Piped into a file or another program the table keeps its rows whole rather than fold at 80 columns.
    Console(width=terminal.width if terminal.is_terminal else 140).print(summary_table(outcomes))
    failed = [o for o in outcomes if o.error is not None]
    for o in failed:
        typer.echo(f"error: {o.src}: {o.error}", err=True)
    if failed:
        raise typer.Exit(1)


def _single(src: Path, dst: Path, options: ProcessOptions, title: str | None, timeout: float) -> None:
    """One file to one file; errors end the command with one line (base.ErrorsAsOneLine)."""
    if src.is_dir():
        raise InvalidInput(f"{src} is a folder; use -o OUTDIR to process folders", code="invalid-input")
    if not src.is_file():
        raise InvalidInput(f"{src} does not exist", code="invalid-input")
    if dst.is_dir():
        raise InvalidInput(
            f"the output {dst} is a folder; use -o {dst} to write into it", code="invalid-output"
        )
    if dst.resolve() == src.resolve() or dst.with_suffix(".part").resolve() == src.resolve():
        raise InvalidInput("the output must not overwrite the input", code="invalid-output")
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

        result: ProcessResult = run_isolated(
            process_audio, src, dst, options, timeout=timeout, memory_mb=None, progress=report
        )
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
