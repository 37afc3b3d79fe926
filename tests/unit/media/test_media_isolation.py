"""run_isolated: results, progress and errors cross the process boundary; crashes and hangs do not."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from media_pub.errors import InvalidInput, InvalidMedia, NotFound
from media_pub.media.isolation import run_isolated
from tests.unit.media import helpers


def test_result_comes_back() -> None:
    assert run_isolated(helpers.add, 2, b=3, timeout=30, memory_mb=None) == 5


def test_progress_is_relayed() -> None:
    seen: list[tuple[str, float]] = []
    result = run_isolated(
        helpers.with_progress, 10, timeout=30, memory_mb=None, progress=lambda s, f: seen.append((s, f))
    )
    assert result == "done"
    assert seen
    assert all(stage == "work" for stage, _ in seen)
    assert seen[-1] == ("work", 1.0)
    assert [f for _, f in seen] == sorted(f for _, f in seen)


@pytest.mark.parametrize(
    ("fn", "cls", "code"),
    [
        (helpers.raise_not_found, NotFound, "thing-not-found"),
        (helpers.raise_invalid_input, InvalidInput, "bad-value"),
    ],
)
def test_domain_errors_keep_class_and_code(fn: object, cls: type, code: str) -> None:
    with pytest.raises(cls) as caught:
        run_isolated(fn, timeout=30, memory_mb=None)  # type: ignore[arg-type]
    assert caught.value.code == code
    assert caught.value.detail in ("no such thing", "bad value")


def test_other_exceptions_become_invalid_media() -> None:
    with pytest.raises(InvalidMedia, match="processing failed: ValueError: boom") as caught:
        run_isolated(helpers.raise_value_error, timeout=30, memory_mb=None)
    assert caught.value.code == "media-processing-failed"


def test_unpicklable_result_is_reported() -> None:
    with pytest.raises(InvalidMedia, match="could not be sent back"):
        run_isolated(helpers.returns_unpicklable, timeout=30, memory_mb=None)


def test_reply_may_not_carry_code() -> None:
    with pytest.raises(InvalidMedia, match="not accepted") as caught:
        run_isolated(helpers.returns_a_function, timeout=30, memory_mb=None)
    assert caught.value.code == "media-processing-failed"


def test_segfault_in_child_is_invalid_media_and_parent_survives() -> None:
    with pytest.raises(InvalidMedia) as caught:
        run_isolated(helpers.segfault, timeout=30, memory_mb=None)
    assert caught.value.code == "media-crashed"
    assert "SIGSEGV" in caught.value.detail
    assert run_isolated(helpers.add, 1, 1, timeout=30, memory_mb=None) == 2


def test_timeout_kills_the_child(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(InvalidMedia) as caught:
        run_isolated(helpers.sleep_forever, str(pid_file), timeout=1.5, memory_mb=None)
    assert caught.value.code == "media-timeout"
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_memory_limit() -> None:
    with pytest.raises(InvalidMedia) as caught:
        run_isolated(helpers.allocate, 2048, timeout=30, memory_mb=512)
    assert caught.value.code == "media-too-large"
    assert run_isolated(helpers.allocate, 16, timeout=30, memory_mb=512) == 16 * 1024 * 1024
