"""Storage keys. Built here and nowhere else, never from a client's file name."""

from __future__ import annotations

import re

_SAFE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_EXT = re.compile(r"^[a-z0-9]{2,4}$")


def _part(value: str, what: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"unsafe {what} for a storage key: {value!r}")
    return value


def asset_key(show_id: str, episode_id: str, name: str, ext: str) -> str:
    """`shows/{show}/episodes/{episode}/{name}.{ext}`: name is e.g. `original-<sha8>` or `mp3-<sha8>`."""
    if not _EXT.match(ext):
        raise ValueError(f"unsafe extension for a storage key: {ext!r}")
    return (
        f"shows/{_part(show_id, 'show id')}/episodes/{_part(episode_id, 'episode id')}/"
        f"{_part(name, 'name')}.{ext}"
    )


def show_key(show_id: str, name: str, ext: str) -> str:
    """`shows/{show}/{name}.{ext}` for show-level objects such as artwork."""
    if not _EXT.match(ext):
        raise ValueError(f"unsafe extension for a storage key: {ext!r}")
    return f"shows/{_part(show_id, 'show id')}/{_part(name, 'name')}.{ext}"
