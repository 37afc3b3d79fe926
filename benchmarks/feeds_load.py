"""Feed serving under load: one API process, a big feed, full / gzip / 304 responses (issue 5's targets).

Builds a show with N published episodes straight in the database (no media processing: Episode and Asset
rows with show notes, as tests/e2e/test_feeds_complete.py does), starts `media-pub serve` (one process, the
log level at WARNING, so no access log; uvicorn picks uvloop and httptools, and the script checks the process
has them loaded) on a free loopback port, warms it up, then drives it from here for a fixed time per mode
with C keep-alive connections (wrk with one thread, as in the reference row L1: `wrk -t1 -c32 -d10s`):

  full   GET /feeds/{show}.xml
  gzip   the same with Accept-Encoding: gzip
  304    the same with If-None-Match: <the feed's ETag>
  route  the 304 with ?page=1 (the same feed): past the fast path, FastAPI's route with a database check
  floor  GET /healthz: a sync route without the database, what the server and framework cost per request

The client is wrk when it is on the PATH (`apt-get install wrk`; not a project dependency), else an asyncio
client on raw sockets (HTTP/1.1 keep-alive), which on a small machine competes with the server for the CPU
(the table names the client). Prints requests, seconds, req/s, p50/p99 latency and response body bytes per
mode, the API process's peak RSS, whether the feed's validators are the same after the run as before (the
feed was not rendered again), and PASS/FAIL lines for the targets (exit status 1 when one fails).

    .venv/bin/python benchmarks/feeds_load.py                       # 500 episodes, 10 s per mode, 32 conns
    .venv/bin/python benchmarks/feeds_load.py --seconds 3 --client python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from media_pub.bootstrap import bootstrap
from media_pub.config import Settings
from media_pub.db.models import Asset, Episode
from media_pub.services.auth import create_user
from media_pub.services.shows import create_show

SLUG = "load-show"
TARGETS = {"full": 300.0, "gzip": 800.0, "304": 1500.0}  # requests per second, one API process
P99_TARGET_MS = 100.0
WARMUP_SECONDS = 2.0
WORDS = [
    *("podcast", "feed", "audio", "episode", "guest", "host", "story", "media", "radio", "music", "city"),
    *("interview", "river", "archive", "season", "voice", "history", "science", "open", "local", "news"),
    *("market", "garden", "winter", "summer", "letter", "studio", "record", "listen", "world"),
]
SHOW = {
    "title": "Load Show",
    "description": "A show with many episodes, for the load benchmark",
    "author": "Bench",
    "owner_name": "Bench Mark",
    "owner_email": "bench@example.org",
    "language": "en",
    "category": "Technology",
}

# wrk prints this JSON line at the end of a run (latency in microseconds).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Result:
    """One mode's run."""

    mode: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    body_bytes: int
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_catalogue(settings: Settings, episodes: int) -> float:
    """A show and `episodes` published episodes, each with an MP3 rendition row; returns the seconds taken."""
    started = time.monotonic()
    container = bootstrap(settings)
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        rng = random.Random(5)  # show notes of about 600 bytes, different per episode (gzip sees real text)
        with container.uow() as uow:
            user, _ = create_user(uow, "bench", admin=True)
            show = create_show(uow, user, SLUG, dict(SHOW))
            for n in range(episodes):
                notes = f"<p>{' '.join(rng.choices(WORDS, k=90))}</p>"
                ep = Episode(show_id=show.id, guid=f"load-{n:05d}", title=f"Episode {n}", notes_html=notes,
                             number=n + 1, status="published",
                             published_at=now - timedelta(hours=episodes - n))  # fmt: skip
                uow.session.add(ep)
                uow.session.flush()
                asset = Asset(episode_id=ep.id, role="rendition", storage_key=f"load/{n}.mp3",
                              mime_type="audio/mpeg", byte_size=28_800_000 + n, sha256="ab" * 32,
                              duration=1800.0)  # fmt: skip
                uow.session.add(asset)
                uow.session.flush()
                ep.media_asset_id = asset.id
            uow.commit()
    finally:
        container.close()
    return time.monotonic() - started


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_PUB_")}  # no .env either: cwd
    env |= {
        "MEDIA_PUB_DATA_DIR": str(data_dir),
        "MEDIA_PUB_BASE_URL": f"http://127.0.0.1:{port}",
        "MEDIA_PUB_LOG_LEVEL": "WARNING",  # uvicorn's access log off, as in a quiet production setup
    }
    command = [sys.executable, "-m", "media_pub", "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(server: subprocess.Popen[bytes], base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise SystemExit(f"the server exited with {server.returncode}:\n{err}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not answer /healthz in time")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fast_stack(pid: int) -> list[str]:
    """Which of uvloop and httptools the server process has loaded (their extension modules in its maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in ("uvloop", "httptools") if f"/{name}/" in maps]


def validators(base: str) -> tuple[str, str]:
    """The feed's ETag and Last-Modified."""
    r = httpx.head(f"{base}/feeds/{SLUG}.xml")
    return r.headers["etag"], r.headers["last-modified"]


def probe(base: str, episodes: int) -> tuple[dict[str, tuple[str, dict[str, str]]], dict[str, int]]:
    """One request per mode: its URL and headers, checking that each mode answers as it should."""
    url = f"{base}/feeds/{SLUG}.xml"
    full = httpx.get(url, headers={"Accept-Encoding": "identity"})
    full.raise_for_status()
    items = full.content.count(b"<item>")
    if items != episodes:
        raise SystemExit(f"the feed has {items} items, not {episodes} (a paged feed?)")
    etag = full.headers["etag"]
    modes: dict[str, tuple[str, dict[str, str]]] = {
        "full": (url, {}),
        "gzip": (url, {"Accept-Encoding": "gzip"}),
        "304": (url, {"If-None-Match": etag}),
        "route": (f"{url}?page=1", {"If-None-Match": etag}),
        "floor": (f"{base}/healthz", {}),
    }
    sizes: dict[str, int] = {}
    for mode, (url, headers) in modes.items():
        # httpx asks for gzip by default: say "identity" unless the mode sends its own Accept-Encoding.
        sent = {"Accept-Encoding": "identity", **headers}
        with httpx.stream("GET", url, headers=sent) as r:
            raw = b"".join(r.iter_raw())
        want = 304 if mode in ("304", "route") else 200
        if r.status_code != want or (mode == "gzip") != (r.headers.get("content-encoding") == "gzip"):
            raise SystemExit(
                f"{mode}: status {r.status_code}, content-encoding {r.headers.get('content-encoding')}"
            )
        sizes[mode] = len(raw)
    return modes, sizes


def run_wrk(url: str, headers: dict[str, str], seconds: float, connections: int, script: Path) -> Result:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK "))
    data = json.loads(line[4:])
    return Result("", data["requests"], data["duration_us"] / 1e6, data["p50_us"] / 1000,
                  data["p99_us"] / 1000, 0, data["errors"])  # fmt: skip


async def _python_client(host: str, port: int, path: str, headers: dict[str, str], seconds: float,
                         connections: int) -> Result:  # fmt: skip
    """C keep-alive connections on raw sockets, each sending its next request when the last one is read."""
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port, limit=2**22)
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - sent)
                if status >= 400:
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0

    return Result("", len(latencies), elapsed, pct(0.50), pct(0.99), 0, errors)


def run_python(url: str, headers: dict[str, str], seconds: float, connections: int) -> Result:
    u = httpx.URL(url)
    path = u.raw_path.decode()
    return asyncio.run(_python_client(u.host, u.port or 80, path, headers, seconds, connections))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (plus a short warm-up)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    args.seconds = min(args.seconds, 60.0)  # bounded: at most a few minutes in all
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not on the PATH (apt-get install wrk), or use --client python")

    with tempfile.TemporaryDirectory(prefix="feeds-load-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        settings = Settings(data_dir=data_dir, base_url=base, _env_file=None)  # type: ignore[call-arg]
        built = build_catalogue(settings, args.episodes)
        print(f"catalogue: {args.episodes} published episodes in {built:.1f} s")
        server = start_server(data_dir, port)
        try:
            wait_ready(server, base)
            modes, sizes = probe(base, args.episodes)
            before = validators(base)
            stack = fast_stack(server.pid)
            script = data_dir / "report.lua"
            script.write_text(WRK_SCRIPT)
            loaded = " + ".join(stack) or "neither uvloop nor httptools"
            print(f"server: media-pub serve, one process (pid {server.pid}, {loaded}); "
                  f"client: {client}, {args.connections} connections, {os.cpu_count()} CPUs")  # fmt: skip
            results: list[Result] = []
            for mode, (url, headers) in modes.items():
                drive = (
                    (lambda s, u=url, h=headers: run_wrk(u, h, s, args.connections, script))
                    if client == "wrk"
                    else (lambda s, u=url, h=headers: run_python(u, h, s, args.connections))
                )
                drive(WARMUP_SECONDS)
                result = drive(args.seconds)
                result.mode, result.body_bytes = mode, sizes[mode]
                results.append(result)
            rss = peak_rss_mb(server.pid)
            same = validators(base) == before
        finally:
            stop_server(server)

    print()
    print(f"{'mode':<6} {'requests':>9} {'seconds':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'bytes':>9} {'errors':>7}")  # fmt: skip
    for r in results:
        print(f"{r.mode:<6} {r.requests:>9} {r.seconds:>8.1f} {r.rate:>8.0f} {r.p50_ms:>8.1f} "
              f"{r.p99_ms:>8.1f} {r.body_bytes:>9} {r.errors:>7}")  # fmt: skip
    by_mode = {r.mode: r for r in results}
    print()
    print(f"gzip/full req/s: {by_mode['gzip'].rate / by_mode['full'].rate:.1f}x, "
          f"304/full: {by_mode['304'].rate / by_mode['full'].rate:.1f}x, "
          f"304/route: {by_mode['304'].rate / by_mode['route'].rate:.1f}x, "
          f"floor/full: {by_mode['floor'].rate / by_mode['full'].rate:.1f}x; "
          f"gzip body is {by_mode['gzip'].body_bytes / by_mode['full'].body_bytes:.1%} of full")  # fmt: skip
    print(f"API process peak RSS: {rss:.0f} MB")
    print(f"feed validators after the run: {'the same (not rendered again)' if same else 'CHANGED'}")
    print()
    checks: list[tuple[bool, str]] = []
    for mode, target in TARGETS.items():
        r = by_mode[mode]
        ok = r.rate >= target and r.p99_ms <= P99_TARGET_MS and r.errors == 0
        checks.append((ok, f"{mode}: {r.rate:.0f} req/s (target >= {target:.0f}), p99 {r.p99_ms:.1f} ms "
                           f"(target <= {P99_TARGET_MS:.0f}), {r.errors} errors"))  # fmt: skip
    checks.append((stack == ["uvloop", "httptools"], f"server on uvloop and httptools ({stack})"))
    checks.append((same, "one render: the feed's validators held through the run"))
    for ok, line in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {line}")
    return 0 if all(ok for ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
