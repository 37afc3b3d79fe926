"""The `media-pub` command line."""

from __future__ import annotations

from media_pub.cli.main import app, main

__all__ = ["app", "main"]
