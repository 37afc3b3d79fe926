"""`media-pub feed check URL|FILE`: validate a podcast feed against Apple's and Podcasting 2.0's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from media_pub import __version__
from media_pub.cli.base import new_app
from media_pub.feeds.check import UnreadableFeed, check_feed

MAX_FEED_BYTES = 50 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0

feed_app = new_app("Podcast feed tools.")


def _fetch(url: str) -> tuple[bytes, list[str]]:
    """GET the feed (redirects followed, size capped); return its bytes and every URL it answered under."""
    import httpx  # only this command needs it; keeps `media-pub` start-up light

    headers = {"User-Agent": f"media_pub/{__version__} (feed check)"}
    try:
        with (
            httpx.Client(timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=True, headers=headers) as client,
            client.stream("GET", url) as response,
        ):
            if not response.is_success:
                raise UnreadableFeed(f"fetch failed: HTTP {response.status_code} from {response.url}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FEED_BYTES:
                raise UnreadableFeed(f"fetch failed: the feed is larger than {MAX_FEED_BYTES} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():  # decoded, so the cap also bounds gzip bombs
                size += len(chunk)
                if size > MAX_FEED_BYTES:
                    raise UnreadableFeed(f"fetch failed: the feed is larger than {MAX_FEED_BYTES} bytes")
                chunks.append(chunk)
            urls = [str(response.url), *(str(r.url) for r in response.history)]
            return b"".join(chunks), urls
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise UnreadableFeed(f"fetch failed: {exc or type(exc).__name__}") from None


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FEED_BYTES:
            raise UnreadableFeed(f"{path} is larger than {MAX_FEED_BYTES} bytes")
        return path.read_bytes()
    except OSError as exc:
        raise UnreadableFeed(f"cannot read {path}: {exc.strerror or exc}") from None


@feed_app.command("check")
def check(
    source: Annotated[str, typer.Argument(help="Feed URL (http or https) or path of a feed file")],
) -> None:
    """Check a feed against Apple Podcasts' and Podcasting 2.0's rules, one line per problem.

    Exit code 0 without errors (warnings are printed), 1 with any error, 2 when the feed cannot be read.
    """
    try:
        if source.lower().startswith(("http://", "https://")):
            data, urls = _fetch(source)
            problems = check_feed(data, urls[0], aliases=urls[1:])
        else:
            problems = check_feed(_read(Path(source)))
    except UnreadableFeed as exc:
        typer.echo(f"error: {exc.title}: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(str(problem))
    errors = sum(p.severity == "error" for p in problems)
    typer.echo(f"{errors} error(s), {len(problems) - errors} warning(s)", err=True)
    raise typer.Exit(1 if errors else 0)
