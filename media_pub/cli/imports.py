"""Moving a show in from an existing feed (being built)."""

from __future__ import annotations

import typer


def import_feed(feed: str) -> None:
    """Create a show from an existing RSS feed (URL or file)."""
    raise typer.Exit(2)
