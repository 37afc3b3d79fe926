"""Pytest plugin: media_pub scaled out for tests. Real PostgreSQL, Redis as the Celery broker, S3 over HTTP
(moto), Celery workers in their own processes (killable with SIGKILL), and the API in the test process.

Fixtures:
- `redis_url`: a Redis database number of this session's own (claimed with a lock key in db 0), flushed.
- `scaled_settings`: Settings for the API of one test: a fresh PostgreSQL database, the Celery broker on
  `redis_url`, S3 storage through a `TcpProxy` (so a test can take storage away), short job lease, broker
  visibility timeout and housekeeping interval.
- `workers`: a factory of `WorkerProcess` (`media-pub worker` subprocesses with the same configuration);
  each is killed at teardown and its log printed (pytest shows it when the test failed).
- `scaled_container` / `scaled_client`: the API (TestClient over create_app) enqueuing over Celery.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from media_pub.api.app import create_app
from media_pub.bootstrap import Container, bootstrap
from media_pub.config import Settings, StorageSettings

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
IN_CI = os.environ.get("CI", "").lower() == "true"
VENV_BIN = Path(sys.executable).parent
LEASE_SECONDS = 2.0
VISIBILITY_TIMEOUT = 3
SCHEDULER_INTERVAL = 0.5


# --- Redis -------------------------------------------------------------------------------------------------


def _redis_reachable() -> bool:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1):
            return True
    except OSError:
        return False


def flush_redis(url: str) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        client.flushdb()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """redis://.../N: a database number no other test session holds (a lock key in db 0), flushed."""
    if not _redis_reachable():
        if IN_CI:
            pytest.fail(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT} and CI=true")
        pytest.skip(f"Redis is not reachable on {REDIS_HOST}:{REDIS_PORT}")
    import redis

    admin = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    token = uuid.uuid4().hex
    number = None
    for candidate in range(1, 16):
        if admin.set(f"media_pub:test-db-lock:{candidate}", token, nx=True, ex=3600):
            number = candidate
            break
    if number is None:
        pytest.fail("no free Redis database number (1-15): too many test sessions at once")
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    flush_redis(url)
    try:
        yield url
    finally:
        flush_redis(url)
        if admin.get(f"media_pub:test-db-lock:{number}") == token.encode():
            admin.delete(f"media_pub:test-db-lock:{number}")
        admin.close()


# --- a TCP proxy that a test can switch off (storage outages) -----------------------------------------------


class TcpProxy:
    """Forwards 127.0.0.1:port to a target; `down()` refuses and cuts connections, `up()` serves again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.2)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True, name="proxy")
        self._thread.start()

    def down(self) -> None:
        """Stop listening (connections are refused) and reset every open connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            a.setblocking(False)
            b.setblocking(False)
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while True:
                for key, _ in sel.select(timeout=1.0):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns.discard(a)
                self._conns.discard(b)


# --- PostgreSQL: a database per test ------------------------------------------------------------------------


def _admin_dsn(pg_url: str) -> str:
    match = re.match(r"postgresql\+psycopg://(?P<user>[^@]+)@(?P<host>[^:/]+):(?P<port>\d+)/", pg_url)
    assert match, pg_url
    return f"host={match['host']} port={match['port']} user={match['user']} dbname=test"


@pytest.fixture(scope="session")
def scaled_template_db(pg_url: str) -> Iterator[str]:
    """A database migrated to head once per session: each test's database is a copy of it (fast)."""
    import psycopg

    from media_pub.db.engine import upgrade

    name = f"media_pub_scale_tpl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(pg_url.rsplit("/", 1)[0] + "/" + name)  # disposes its engine: no connection stays open
    yield name
    with psycopg.connect(_admin_dsn(pg_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scaled_pg_url(pg_url: str, scaled_template_db: str) -> Iterator[str]:
    """A database of this test's own on the session's PostgreSQL server (workers may leave rows behind)."""
    import psycopg

    name = f"media_pub_scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{scaled_template_db}"')
    yield pg_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(_admin_dsn(pg_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- settings ----------------------------------------------------------------------------------------------


@dataclass
class Scaled:
    """One scaled-out deployment: the values every process shares, and the storage proxy."""

    values: dict[str, Any]
    storage: StorageSettings
    proxy: TcpProxy
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def settings(self, name: str) -> Settings:
        """Settings of one process (its own data folder: processes share only PG, Redis and S3)."""
        return Settings(**self.values, data_dir=self.root / name, storage=self.storage)

    def env(self, name: str, **extra: str) -> dict[str, str]:
        """The environment of a subprocess named `name`, configured like `settings(name)`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIA_PUB_")}
        for key, value in self.values.items():
            env[f"MEDIA_PUB_{key.upper()}"] = str(value)
        env["MEDIA_PUB_DATA_DIR"] = str(self.root / name)
        for key, value in self.storage.model_dump(exclude_none=True).items():
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[f"MEDIA_PUB_STORAGE__{key.upper()}"] = str(value)
        env.update(self.extra_env)
        env.update(extra)
        env["PYTHONUNBUFFERED"] = "1"
        return env


@pytest.fixture
def scaled(
    tmp_path: Path, scaled_pg_url: str, redis_url: str, s3_settings: StorageSettings, s3_server: str
) -> Iterator[Scaled]:
    flush_redis(redis_url)
    host, port = s3_server.removeprefix("http://").rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    proxy.up()
    storage = s3_settings.model_copy(update={"endpoint_url": proxy.url})
    values: dict[str, Any] = {
        "env": "test",
        "database_url": scaled_pg_url,
        "broker_url": redis_url,
        "base_url": "http://testserver",
        "log_level": "INFO",
        "job_lease_seconds": LEASE_SECONDS,
        "broker_visibility_timeout": VISIBILITY_TIMEOUT,
        "scheduler_interval_seconds": SCHEDULER_INTERVAL,
        "probe_timeout_seconds": 60,
    }
    yield Scaled(values, storage, proxy, tmp_path / "procs")
    proxy.down()
    flush_redis(redis_url)


@pytest.fixture
def scaled_settings(scaled: Scaled) -> Settings:
    """Settings of the in-test API process."""
    return scaled.settings("api")


# --- worker processes --------------------------------------------------------------------------------------


def live_group_members(pgid: int) -> list[int]:
    """Processes of group `pgid` still running (zombies waiting for a reaper do not count), from /proc."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            members.append(int(entry))
    return members


class WorkerProcess:
    """`media-pub worker` in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, name: str, concurrency: int = 1) -> None:
        self.env = env
        self.log_path = log_path
        self.name = name
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._offset = 0  # where this start's log begins

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> WorkerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== {self.name}: start #{self.starts + 1} =====\n".encode())
            self._offset = log.tell()
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "media-pub"), "worker", f"--concurrency={self.concurrency}"],
                env=self.env,
                cwd=self.log_path.parent,  # no stray .env file is read
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill takes the pool children too
            )
        self.starts += 1
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until Celery logs "ready." for this start (or the process dies)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as fh:
                fh.seek(self._offset)
                if re.search(rb"celery@\S+ ready\.", fh.read()):
                    return
            if not self.alive():
                raise AssertionError(f"worker {self.name} exited before ready:\n{self.tail()}")
            time.sleep(0.1)
        raise AssertionError(f"worker {self.name} not ready in {timeout} s:\n{self.tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (main process and pool children), then reap the main one."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        self._wait_group_gone()

    def _wait_group_gone(self, timeout: float = 10.0) -> None:
        """A SIGKILLed group's processes must be gone before a restart (they still hold job state)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while (members := live_group_members(self.proc.pid)) and time.monotonic() < deadline:
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def restart(self, *, wait: bool = True) -> WorkerProcess:
        if self.alive():
            self.kill()
        return self.start(wait=wait)

    def stop(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL if it lingers."""
        if not self.alive():
            if self.proc is not None:
                self._wait_group_gone(1.0)
            return
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.kill()

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log()))


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def workers(scaled: Scaled, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Make `WorkerProcess`es: `workers("w1", concurrency=1, start=True, **extra_env)`."""
    made: list[WorkerProcess] = []

    def make(
        name: str = "w1", *, concurrency: int = 1, start: bool = True, **extra_env: str
    ) -> WorkerProcess:
        worker = WorkerProcess(
            scaled.env(name, **extra_env),
            tmp_path / "logs" / f"{name}.log",
            name=name,
            concurrency=concurrency,
        )
        made.append(worker)
        return worker.start() if start else worker

    yield make
    for worker in made:  # SIGKILL: quick, and nothing a worker leaves behind outlives this test's db
        worker.kill()
    for worker in made:  # shown by pytest when the test failed
        print(f"----- log of worker {worker.name} ({worker.log_path}) -----\n{worker.tail(200)}")


@pytest.fixture
def scaled_container(scaled_settings: Settings) -> Iterator[Container]:
    """The API's container: migrates the fresh database; jobs go to Celery over Redis."""
    c = bootstrap(scaled_settings)
    assert type(c.queue).__name__ == "CeleryQueue", c.queue
    yield c
    c.close()
    shutil.rmtree(scaled_settings.data_dir, ignore_errors=True)


@pytest.fixture
def scaled_client(scaled_container: Container) -> Iterator[TestClient]:
    # The API's own housekeeping is off: recovering from a dead worker must come from the workers.
    with TestClient(create_app(scaled_container, scheduler=False), raise_server_exceptions=False) as tc:
        yield tc


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    every: float = 0.1,
    logs: Sequence[WorkerProcess] = (),
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` and the workers' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            details = "\n".join(f"--- {w.name} ---\n{w.tail(60)}" for w in logs)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{details}")
        time.sleep(every)
