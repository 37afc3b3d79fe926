"""A big upload into one API process: throughput, and the process's memory (it must not grow with the upload).

Creates a user, a show and a draft episode straight in a temporary database, starts `media-pub serve` (one
process, as benchmarks/feeds_load.py does) on a free loopback port, and sends it a file of `--mb` MB
generated on the fly (one random 1 MiB block repeated, so the client holds 1 MiB, never the file):

  put    PUT /api/v1/episodes/{id}/media with Content-Length: the whole file as one streamed body. The
         server spools it, then probes it: the bytes are no media, so it answers 422 after the transfer
         (what is measured is the transfer; the spool is removed).
  tus    POST /api/v1/uploads, then PATCHes of `--tus-chunk-mb` MB each (no episode named, so nothing is
         probed: the bytes stay in the upload store, and the script DELETEs them afterwards).

A thread samples the API process's VmRSS (and VmHWM) in /proc every 50 ms. For each path the script prints
MB, seconds until the last byte was handed to the socket and until the answer, MB/s (by the answer), the
RSS at idle just before and the peak during the transfer, and PASS/FAIL for "peak - idle < 100 MB" (exit
status 1 when one fails). Bounded: `--max-seconds` per path (default 600), loopback only. Needs about
`--mb` MB free under the temporary directory.

    .venv/bin/python benchmarks/uploads_load.py              # 2048 MB, both paths: a minute or two
    .venv/bin/python benchmarks/uploads_load.py --mb 256     # quick
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from feeds_load import (  # this folder's feed benchmark
    fast_stack,
    free_port,
    start_server,
    stop_server,
    wait_ready,
)

from media_pub.bootstrap import bootstrap
from media_pub.config import Settings
from media_pub.services.auth import create_user
from media_pub.services.episodes import create_episode
from media_pub.services.shows import create_show

MB = 1024 * 1024
BLOCK = random.Random(7).randbytes(MB)  # incompressible, and not media
GROWTH_LIMIT_MB = 100.0
SAMPLE_SECONDS = 0.05
SLUG = "upload-show"
SHOW = {"title": "Upload Show", "description": "For the upload benchmark",
        "author": "Bench", "language": "en", "category": "Technology"}  # fmt: skip


@dataclass
class Result:
    path: str
    mb: int
    sent_s: float
    answered_s: float
    status: str
    idle_mb: float
    peak_mb: float

    @property
    def rate(self) -> float:
        return self.mb / self.answered_s if self.answered_s else 0.0

    @property
    def growth(self) -> float:
        return self.peak_mb - self.idle_mb


class Memory:
    """Samples a process's VmRSS every SAMPLE_SECONDS in a thread; `peak()` since the last `reset()`."""

    def __init__(self, pid: int) -> None:
        self.status = Path(f"/proc/{pid}/status")
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def read(self, field: str = "VmRSS") -> float:
        for line in self.status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self._peak = max(self._peak, self.read())
            except OSError:  # the process ended
                return

    def idle(self) -> float:
        """The RSS at rest: the median of a few samples a second after the last request."""
        time.sleep(1.0)
        samples = []
        for _ in range(5):
            samples.append(self.read())
            time.sleep(0.1)
        samples.sort()
        self._peak = samples[-1]
        return samples[2]

    def peak(self) -> float:
        return max(self._peak, self.read())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Body:
    """`size` bytes made of BLOCK, yielded in 1 MiB chunks; notes when the last one was taken."""

    def __init__(self, size: int, deadline: float) -> None:
        self.size, self.deadline = size, deadline
        self.done_at = 0.0

    def __iter__(self) -> Iterator[bytes]:
        left = self.size
        while left > 0:
            if time.monotonic() > self.deadline:
                raise TimeoutError("the upload took longer than --max-seconds")
            chunk = BLOCK[: min(left, MB)]
            left -= len(chunk)
            yield chunk
        self.done_at = time.monotonic()


def prepare(settings: Settings) -> tuple[str, str]:
    """A user with a token, a show and a draft episode; returns (token, episode id)."""
    container = bootstrap(settings)
    try:
        with container.uow() as uow:
            user, token = create_user(uow, "bench", admin=True)
            create_show(uow, user, SLUG, dict(SHOW))
            episode = create_episode(uow, user, SLUG, {"title": "Big upload"})
            uow.commit()
            return token, episode.id
    finally:
        container.close()


def put_upload(
    client: httpx.Client, episode_id: str, size: int, max_seconds: float
) -> tuple[float, float, str]:
    started = time.monotonic()
    body = Body(size, started + max_seconds)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    r = client.put(f"/api/v1/episodes/{episode_id}/media", content=iter(body), headers=headers)
    answered = time.monotonic()
    status = f"{r.status_code} {r.json().get('code', '') if r.status_code >= 400 else 'job queued'}"
    return body.done_at - started, answered - started, status


def tus_upload(client: httpx.Client, size: int, chunk: int, max_seconds: float) -> tuple[float, float, str]:
    tus = {"Tus-Resumable": "1.0.0"}
    started = time.monotonic()
    created = client.post("/api/v1/uploads", headers={**tus, "Upload-Length": str(size)})
    if created.status_code != 201:
        raise SystemExit(f"tus create: {created.status_code} {created.text}")
    location = created.headers["location"]
    offset, status, last = 0, "", started
    try:
        while offset < size:
            n = min(chunk, size - offset)
            body = Body(n, started + max_seconds)
            headers = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream",
                       "Content-Length": str(n)}  # fmt: skip
            r = client.patch(location, content=iter(body), headers=headers)
            if r.status_code != 204:
                raise SystemExit(f"tus PATCH at {offset}: {r.status_code} {r.text}")
            offset, last = int(r.headers["upload-offset"]), body.done_at
        answered = time.monotonic()
        status = f"204, {offset} bytes held"
    finally:
        client.delete(location, headers=tus)
    return last - started, answered - started, status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=2048, help="upload size in MiB (default 2048)")
    parser.add_argument("--tus-chunk-mb", type=int, default=64, help="bytes per tus PATCH (default 64 MiB)")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="per path (default 600)")
    parser.add_argument("--only", choices=["put", "tus"], help="one path only")
    args = parser.parse_args()
    size = args.mb * MB

    with tempfile.TemporaryDirectory(prefix="uploads-load-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(data_dir=data_dir, base_url=base, _env_file=None)  # type: ignore[call-arg]
        token, episode_id = prepare(settings)
        server = start_server(data_dir, port)
        results: list[Result] = []
        try:
            wait_ready(server, base)
            loaded = " + ".join(fast_stack(server.pid)) or "neither uvloop nor httptools"
            print(f"server: media-pub serve, one process (pid {server.pid}, {loaded}); upload {args.mb} MiB")
            memory = Memory(server.pid)
            auth = {"Authorization": f"Bearer {token}"}
            timeout = httpx.Timeout(120.0, connect=10.0)
            with httpx.Client(base_url=base, headers=auth, timeout=timeout) as client:
                client.get("/api/v1/uploads", headers={"Tus-Resumable": "1.0.0"})  # warm the routes
                runs = {
                    "put": lambda: put_upload(client, episode_id, size, args.max_seconds),
                    "tus": lambda: tus_upload(client, size, args.tus_chunk_mb * MB, args.max_seconds),
                }
                for name, run in runs.items():
                    if args.only and name != args.only:
                        continue
                    idle = memory.idle()
                    sent, answered, status = run()
                    results.append(Result(name, args.mb, sent, answered, status, idle, memory.peak()))
            hwm = memory.read("VmHWM")
            memory.stop()
        finally:
            stop_server(server)

    print()
    print(f"{'path':<5} {'MiB':>6} {'sent s':>7} {'answer s':>8} {'MiB/s':>7} {'idle MB':>8} {'peak MB':>8} "
          f"{'growth':>7}  answer")  # fmt: skip
    for r in results:
        print(f"{r.path:<5} {r.mb:>6} {r.sent_s:>7.1f} {r.answered_s:>8.1f} {r.rate:>7.0f} {r.idle_mb:>8.0f} "
              f"{r.peak_mb:>8.0f} {r.growth:>7.0f}  {r.status}")  # fmt: skip
    print()
    print(f"API process VmHWM (whole life, start-up included): {hwm:.0f} MB")
    failed = False
    for r in results:
        ok = r.growth < GROWTH_LIMIT_MB
        failed |= not ok
        verdict = "PASS" if ok else "FAIL"
        print(f"{verdict}  {r.path}: peak - idle = {r.growth:.0f} MB (limit < {GROWTH_LIMIT_MB:.0f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
