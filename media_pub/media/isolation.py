"""Run untrusted-media work in a child process with a wall-time and a memory limit.

A demuxer that crashes, hangs or eats memory on a hostile file takes down the child, never the server:
every failure comes back as a MediaPubError in the parent.

The child is a fresh interpreter started with subprocess, not multiprocessing's "spawn": spawn re-runs the
parent's __main__ module, which breaks (or recurses) when the caller is a script without a main guard, and
fork is unsafe in a threaded server.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

from media_pub.errors import InvalidMedia, MediaPubError

T = TypeVar("T")

PROGRESS_INTERVAL = 0.1  # seconds between relayed progress messages of the same stage
_MB = 1024 * 1024
_BOOT = "import sys; from media_pub.media.isolation import child_main; child_main(int(sys.argv[1]))"


def _accepts_progress(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "progress" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _limit_child(memory_mb: int | None) -> None:
    """Limits that must be in place before the work (and its imports) start."""
    import resource

    # A crash must not leave a core file the size of the address space behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"  # numpy's BLAS threads would each reserve address space for nothing
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        # Die with the parent: a worker killed mid-job must not leave an orphan decoding for minutes.
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        # glibc gives every thread that mallocs its own 64 MB arena of address space; two are plenty,
        # and without this cap FFmpeg's threads make RLIMIT_AS fail on machines with many cores.
        libc.mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
    if memory_mb:
        limit = memory_mb * _MB
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def child_main(fd: int) -> None:
    """Entry point of the child: read the call from stdin, apply limits, run it, answer on `fd`."""
    conn = Connection(fd, readable=False)
    try:
        sys_path, memory_mb, payload = pickle.load(sys.stdin.buffer)
        sys.path[:] = sys_path  # the parent's, so its functions (even test modules) import here too
        _limit_child(memory_mb)
        fn, args, kwargs, wants_progress = pickle.loads(payload)
        if wants_progress:
            kwargs["progress"] = _Relay(conn)
        message: tuple[Any, ...] = ("ok", fn(*args, **kwargs))
    except MediaPubError as error:
        message = ("error", type(error).__module__, type(error).__qualname__, error.detail, error.code)
    except MemoryError:
        message = ("memory",)
    except BaseException as error:  # anything at all must reach the parent as a failure, not a traceback
        message = ("failed", f"{type(error).__name__}: {error}"[:300])
    try:
        conn.send(message)
    except Exception as error:  # an unpicklable result is a bug worth reporting, not a hang
        conn.send(("failed", f"the result could not be sent back ({type(error).__name__}: {error})"[:300]))
    finally:
        conn.close()


class _Relay:
    """The `progress` callback the child's function gets: forwards (stage, fraction), throttled."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage != self.stage or fraction >= 1.0 or now - self.last >= PROGRESS_INTERVAL:
            self.stage, self.last = stage, now
            self.conn.send(("progress", str(stage), float(fraction)))


# What the parent accepts from a child: a child that an exploit took over must not get to run code here
# through pickle, so only plain data and the value classes of this package come back.
_TRUSTED_PACKAGES = ("media_pub.media", "media_pub.domain", "media_pub.errors")
_SAFE_CLASSES = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("collections", "OrderedDict"), ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
    ("fractions", "Fraction"), ("decimal", "Decimal"), ("datetime", "datetime"), ("datetime", "date"),
    ("datetime", "timedelta"), ("datetime", "timezone"),
}  # fmt: skip


def _trusted(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _TRUSTED_PACKAGES)


class _ReplyUnpickler(pickle.Unpickler):
    """Unpickles a child's reply, refusing anything but data classes (no functions, no arbitrary types)."""

    def find_class(self, module: str, name: str) -> Any:
        if _trusted(module) or (module, name) in _SAFE_CLASSES:
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise pickle.UnpicklingError(f"the media worker sent {module}.{name}, which is not accepted")


def _receive(reader: Connection) -> Any:
    return _ReplyUnpickler(io.BytesIO(reader.recv_bytes())).load()


def _rebuild(module: str, qualname: str, detail: str, code: str) -> MediaPubError:
    """The child's MediaPubError as the same class in the parent (InvalidMedia if it cannot be found)."""
    try:
        cls = getattr(importlib.import_module(module), qualname) if _trusted(module) else None
    except (ImportError, AttributeError):
        cls = None
    if isinstance(cls, type) and issubclass(cls, MediaPubError):
        try:
            return cls(detail, code=code)
        except TypeError:
            pass
    return InvalidMedia(detail, code=code)


def _crash_detail(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the media worker crashed ({name}) while working on the file"
    return f"the media worker exited unexpectedly (exit code {returncode})"


def run_isolated(
    fn: Callable[..., T],
    *args: Any,
    timeout: float,
    memory_mb: int | None,
    progress: Callable[[str, float], None] | None = None,
    **kwargs: Any,
) -> T:
    """Call the module-level `fn(*args, **kwargs)` in a child process; failures become MediaPubError.

    Raises:
        MediaPubError: the same class (detail, code) `fn` raised.
        InvalidMedia: the child crashed (media-crashed), ran out of memory (media-too-large), ran past
            `timeout` seconds (media-timeout, the child is killed) or raised anything else
            (media-processing-failed).
    """
    wants_progress = progress is not None and _accepts_progress(fn)
    payload = pickle.dumps((fn, args, kwargs, wants_progress))
    call = pickle.dumps(([p for p in sys.path if isinstance(p, str)], memory_mb, payload))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if isinstance(p, str) and p)}
    read_fd, write_fd = os.pipe()
    reader = Connection(read_fd, writable=False)
    deadline = time.monotonic() + timeout
    answered = False
    try:
        child = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(write_fd)], stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env
        )
    except BaseException:
        reader.close()
        raise
    finally:
        os.close(write_fd)  # only the child writes; our copy would hide its end-of-file
    try:
        assert child.stdin is not None
        try:
            child.stdin.write(call)
            child.stdin.close()
        except BrokenPipeError:
            pass  # it died before reading; the loop below reports how
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InvalidMedia(
                    f"processing the file took longer than {timeout:g} s and was stopped",
                    code="media-timeout",
                )
            if not wait([reader], timeout=remaining):
                continue
            try:
                message = _receive(reader)
            except pickle.UnpicklingError as error:
                raise InvalidMedia(f"processing failed: {error}", code="media-processing-failed") from None
            except EOFError:
                try:
                    returncode = child.wait(5)
                except subprocess.TimeoutExpired:
                    returncode = None
                raise InvalidMedia(_crash_detail(returncode), code="media-crashed") from None
            kind = message[0]
            if kind == "progress":
                if progress is not None:
                    progress(message[1], message[2])
                continue
            answered = True
            if kind == "ok":
                return message[1]  # type: ignore[no-any-return]
            if kind == "error":
                raise _rebuild(*message[1:])
            if kind == "memory":
                raise InvalidMedia(
                    f"the file needed more than the {memory_mb} MB of memory allowed", code="media-too-large"
                )
            raise InvalidMedia(f"processing failed: {message[1]}", code="media-processing-failed")
    finally:
        reader.close()
        try:
            # A child that answered is exiting on its own; any other is killed now (timeout, bad message).
            child.wait(5 if answered else 0)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
