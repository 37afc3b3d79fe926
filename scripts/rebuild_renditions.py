#!/usr/bin/env python3
"""Rebuild every episode of a show after its loudness target or rendition list changed.

Talks to a running media_pub server over its HTTP API. Optionally changes the show first (`--target`,
`--target-mono`, `--renditions`), then asks the server to process each episode's untouched original again
(`POST /api/v1/episodes/{id}/reprocess`), `-j` at once, follows every job with a progress bar, and prints a
summary table: title, integrated loudness of the main rendition before -> after, status.

Published URLs keep their bytes: the server writes the new renditions as new objects under new URLs and
points the episode (and so the feed) at them; guids do not change, so apps do not show episodes as new.
Episodes without uploaded media are skipped. Episodes still processing are refused by the server
(episode-busy) and reported as failed; run the script again once they are done.

Usage:
    .venv/bin/python scripts/rebuild_renditions.py SHOW [--target LUFS] [--target-mono LUFS]
        [--renditions mp3,aac,opus] [-j N] [--dry-run] [--url URL] [--token TOKEN]

    scripts/rebuild_renditions.py my-show --target -19 --renditions mp3,aac -j 2
    scripts/rebuild_renditions.py my-show --dry-run

Environment:
    MEDIA_PUB_BASE_URL  server base URL, for --url (else http://127.0.0.1:8000), as for the CLI
    MEDIA_PUB_TOKEN     API token of an owner or editor of the show, for --token (never printed)

Output: progress bars on stderr, the summary table on stdout; errors as `error: ...` lines on stderr.
Exit code 0 when every episode was rebuilt, 1 when any failed (each is named) or the server refused a
request, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import httpx
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table
except ImportError:  # run with a bare python3 from a clone: use the project's .venv if `make` made it
    _VENV = Path(__file__).resolve().parent.parent / ".venv"
    if (_VENV / "bin" / "python").exists() and Path(sys.prefix).resolve() != _VENV.resolve():
        os.execv(_VENV / "bin" / "python", [str(_VENV / "bin" / "python"), __file__, *sys.argv[1:]])
    sys.exit("error: httpx and rich are missing; run `make install` and use .venv/bin/python")

RENDITIONS = ("mp3", "aac", "opus")
FINISHED = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.5
err = Console(stderr=True)


class ApiError(Exception):
    """A request the server refused or could not answer, as one line."""


@dataclass
class Outcome:
    episode: dict[str, Any]
    before: float | None
    after: float | None = None
    status: str = "failed"
    error: str | None = None


# --- the API ------------------------------------------------------------------------------------------------


def open_client(url: str, token: str) -> httpx.Client:
    # The token only ever goes into this header; error messages name the URL, never the headers.
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(30.0, read=120.0),
    )


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of one request; ApiError with the server's problem detail otherwise."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ApiError(f"cannot reach {client.base_url}: {exc}") from None
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = (
                f"{body.get('title')}: {body.get('detail')} ({body.get('code')}, HTTP {response.status_code})"
            )
        except ValueError:
            detail = f"HTTP {response.status_code} from {method} {path}"
        raise ApiError(detail)
    try:
        return response.json()
    except ValueError:
        raise ApiError(f"{method} {path} answered HTTP {response.status_code} without JSON") from None


def integrated(episode: dict[str, Any]) -> float | None:
    """Integrated loudness (LUFS) of the episode's main rendition, if measured."""
    loudness = (episode.get("media") or {}).get("loudness_out") or {}
    value = loudness.get("integrated")
    return float(value) if value is not None else None


# --- the work -----------------------------------------------------------------------------------------------


def show_changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.target is not None:
        changes["loudness_target"] = args.target
    if args.target_mono is not None:
        changes["loudness_target_mono"] = args.target_mono
    if args.renditions is not None:
        changes["renditions"] = args.renditions
    return changes


def rebuild(make_client: Any, outcome: Outcome, progress: Progress, task: TaskID, timeout: float) -> Outcome:
    """Reprocess one episode and wait for its job; failures are recorded on `outcome`, not raised."""
    episode_id = outcome.episode["id"]
    try:
        with make_client() as client:
            job = call(client, "POST", f"/api/v1/episodes/{episode_id}/reprocess")
            deadline = time.monotonic() + timeout
            while job["status"] not in FINISHED:
                if time.monotonic() > deadline:
                    raise ApiError(f"the job {job['id']} did not end in {timeout:g} s (still {job['stage']})")
                time.sleep(POLL_SECONDS)
                job = call(client, "GET", job["url"])
                progress.update(task, description=job["stage"] or job["status"], completed=job["progress"])
            outcome.status = job["status"]
            if job["status"] != "succeeded":
                code = f" ({job['error_code']})" if job.get("error_code") else ""
                outcome.error = f"job {job['status']}: {job.get('error') or 'no reason given'}{code}"
            outcome.after = integrated(call(client, "GET", f"/api/v1/episodes/{episode_id}"))
    except ApiError as exc:
        outcome.status, outcome.error = "failed", str(exc)
    progress.update(task, description=outcome.status, completed=1.0 if outcome.error is None else None)
    return outcome


def run_all(make_client: Any, outcomes: list[Outcome], jobs: int, timeout: float) -> None:
    with Progress(
        TextColumn("{task.fields[name]}"),
        TextColumn("{task.description:>10}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
    ) as progress:
        tasks = [progress.add_task("waiting", total=1.0, name=title(o.episode)[:40]) for o in outcomes]
        pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="rebuild")
        try:
            futures = [
                pool.submit(rebuild, make_client, o, progress, t, timeout)
                for o, t in zip(outcomes, tasks, strict=True)
            ]
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C: send nothing new; jobs already queued go on on the server
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


def title(episode: dict[str, Any]) -> str:
    return episode.get("title") or f"(untitled {episode['id'][:8]})"


def lufs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary(slug: str, outcomes: list[Outcome], dry_run: bool) -> Table:
    table = Table(
        title=f"{slug}: {'would reprocess' if dry_run else 'reprocessed'} {len(outcomes)} episode(s)"
    )
    table.add_column("episode", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("LUFS now" if dry_run else "LUFS before -> after", justify="right", no_wrap=True)
    for o in outcomes:
        loudness = lufs(o.before) if dry_run else f"{lufs(o.before)} -> {lufs(o.after)}"
        table.add_row(title(o.episode), "would reprocess" if dry_run else o.status, loudness)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.token:
        err.print("error: give --token or set MEDIA_PUB_TOKEN", highlight=False)
        return 2
    out = Console()
    try:
        with open_client(args.url, args.token) as client:
            show = call(client, "GET", f"/api/v1/shows/{args.show}")
            changes = show_changes(args)
            for name, value in changes.items():
                verb = "would change" if args.dry_run else "changing"
                err.print(f"{verb} {name}: {show.get(name)} -> {value}", highlight=False)
            if changes and not args.dry_run:
                call(client, "PATCH", f"/api/v1/shows/{args.show}", json=changes)
            episodes = call(client, "GET", f"/api/v1/shows/{args.show}/episodes")
    except ApiError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        return 1
    outcomes: list[Outcome] = []
    for episode in episodes:
        if episode.get("media") is None and episode.get("original") is None:
            err.print(f"skipped (no media): {title(episode)}", highlight=False)
        else:
            outcomes.append(Outcome(episode, integrated(episode)))
    if not args.dry_run and outcomes:
        run_all(lambda: open_client(args.url, args.token), outcomes, args.jobs, args.timeout)
    out.print(summary(args.show, outcomes, args.dry_run))
    failed = [o for o in outcomes if o.error is not None]
    for o in failed:
        err.print(
            f"error: {title(o.episode)} ({o.episode['id']}): {o.error}", highlight=False, soft_wrap=True
        )
    return 1 if failed else 0


def renditions(value: str) -> list[str]:
    kinds = [k.strip().lower() for k in value.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(RENDITIONS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"choose from {','.join(RENDITIONS)} (got {value!r})")
    return kinds


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Rebuild every episode of a show on a running media_pub server "
        "(after its loudness target or renditions changed).",
    )
    parser.add_argument("show", help="the show's slug")
    parser.add_argument("--target", type=float, help="first set the show's loudness target, LUFS (stereo)")
    parser.add_argument("--target-mono", type=float, help="first set the show's mono loudness target, LUFS")
    parser.add_argument(
        "--renditions", type=renditions, help="first set the show's renditions, e.g. mp3,aac,opus"
    )
    parser.add_argument("-j", "--jobs", type=int, default=1, help="episodes at once (default 1)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be done, change nothing")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait per episode")
    parser.add_argument(
        "--url",
        default=os.environ.get("MEDIA_PUB_BASE_URL") or "http://127.0.0.1:8000",
        help="server base URL (default: MEDIA_PUB_BASE_URL, as for the CLI)",
    )
    parser.add_argument(
        "--token", default=os.environ.get("MEDIA_PUB_TOKEN"), help="API token (default: MEDIA_PUB_TOKEN)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 32:
        parser.error("-j must be between 1 and 32")
    return args


if __name__ == "__main__":
    sys.exit(main())
