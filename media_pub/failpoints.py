"""Failpoints: named places where a test can make a process die with SIGKILL, to check what survives.

Off unless the environment names them, so production code pays one dict lookup. With
`MEDIA_PUB_FAILPOINTS=process.stored,job.claimed`, the first process that reaches `hit("process.stored")`
kills itself; with `MEDIA_PUB_FAILPOINT_DIR` set, each failpoint fires once (a marker file named after it
is created in that folder first), so a restarted worker goes past it. `MEDIA_PUB_FAILPOINT_KILL=group` kills
the whole process group (a Celery worker and its pool) instead of the calling process only.

Names used: `job.claimed` (lease taken, before any work), `process.rendered` (renditions rendered, before
tagging and storing), `process.stored` (objects in storage, before the database commit),
`process.committed` (the job's end committed, before the broker's acknowledgement).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)


def hit(name: str) -> None:
    """Die here if the environment asks for failpoint `name` (and, with a marker folder, only once)."""
    names = os.environ.get("MEDIA_PUB_FAILPOINTS")
    if not names or name not in {n.strip() for n in names.split(",")}:
        return
    folder = os.environ.get("MEDIA_PUB_FAILPOINT_DIR")
    if folder:
        try:
            Path(folder, name).open("x").close()
        except FileExistsError:
            return
    log.warning("failpoint.kill name=%s pid=%s", name, os.getpid())
    if os.environ.get("MEDIA_PUB_FAILPOINT_KILL") == "group":
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
