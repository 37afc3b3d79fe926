"""Running untrusted media work in a child process with time and memory limits.

A truncated MP4 can crash FFmpeg's demuxer (SIGSEGV cannot be caught); in a child, it only ends the child.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from media_pub import errors
from media_pub.errors import InvalidMedia, MediaPubError

T = TypeVar("T")
Progress = Callable[[str, float], None]


def _child(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
           memory_mb: int | None, wants_progress: bool) -> None:  # fmt: skip
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if wants_progress:
        last = [0.0]

        def progress(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25 or fraction >= 1.0:
                last[0] = now
                conn.send(("progress", stage, fraction))

        kwargs = {**kwargs, "progress": progress}
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except MediaPubError as exc:
        conn.send(("error", type(exc).__name__, exc.detail, exc.code))
    except MemoryError:
        conn.send(
            ("error", "InvalidMedia", "processing the file needs more memory than allowed", "media-too-big")
        )
    except BaseException as exc:  # anything else is reported, never raised across the process boundary
        conn.send(
            ("error", "InvalidMedia", f"processing failed: {type(exc).__name__}: {exc}", "media-unreadable")
        )
    finally:
        conn.close()


def _rebuild(name: str, detail: str, code: str) -> MediaPubError:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, MediaPubError)):
        cls = InvalidMedia
    return cls(detail, code=code)


def run_isolated(fn: Callable[..., T], *args: Any, timeout: float, memory_mb: int | None,
                 progress: Progress | None = None, **kwargs: Any) -> T:  # fmt: skip
    """Call module-level `fn(*args, **kwargs)` in a spawned child; relay its progress; re-raise its errors.

    Raises:
        InvalidMedia: the child crashed, ran out of memory or time (code media-timeout), or failed.
        MediaPubError: the same kind the child raised.
    """
    ctx = mp.get_context("spawn")  # never fork: the parent runs threads (API, job pool)
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(
        target=_child, args=(sender, fn, args, kwargs, memory_mb, progress is not None), daemon=True
    )
    proc.start()
    sender.close()
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InvalidMedia(
                    f"working on the file took longer than {timeout:g} s", code="media-timeout"
                )
            if not receiver.poll(min(remaining, 0.5)):
                continue
            try:
                message = receiver.recv()
            except EOFError:
                break  # the child ended without an answer: it crashed or was killed
            if message[0] == "progress":
                if progress is not None:
                    progress(message[1], message[2])
            elif message[0] == "ok":
                return message[1]  # type: ignore[no-any-return]
            else:
                raise _rebuild(*message[1:])
    finally:
        receiver.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    code = proc.exitcode
    reason = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    raise InvalidMedia(f"the file made the media decoder crash ({reason})", code="media-unreadable")
