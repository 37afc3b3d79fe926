"""Supporters (private feeds) from the command line (being built)."""

from __future__ import annotations

from media_pub.cli.base import new_app

supporter_app = new_app("Supporters and their private feeds.")
