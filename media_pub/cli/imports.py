"""`media-pub import FEED`: move a show in from its existing RSS feed (a URL or a file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from media_pub.bootstrap import Container
from media_pub.cli.base import container
from media_pub.db import repositories as repo
from media_pub.domain.rules import Role
from media_pub.errors import InvalidInput
from media_pub.services import auth
from media_pub.services import imports as svc

console = Console(stderr=True)


def import_feed(
    feed: Annotated[str, typer.Argument(help="The old feed: its http(s) URL or the path of a saved copy")],
    slug: Annotated[str | None, typer.Option(help="Slug of the new show (default: from its title)")] = None,
    copy_media: Annotated[
        bool, typer.Option(help="Copy artwork, JSON chapters and every episode's media, then publish them")
    ] = False,
    allow_private: Annotated[
        bool, typer.Option(help="Allow fetching from private and loopback addresses (local old hosts)")
    ] = False,
    ignore_lock: Annotated[
        bool, typer.Option(help="Import a feed marked podcast:locked (you own the show)")
    ] = False,
    owner: Annotated[str | None, typer.Option(help="User name to make the show's owner")] = None,
) -> None:
    """Create a show from an existing RSS feed, keeping every episode's guid and publication date.

    Without --copy-media, episodes are drafts: upload each one's media and it goes out on its old date.

    Prints what to change at the old host to move the listeners here.
    """
    is_url = feed.lower().startswith(("http://", "https://")) or "://" in feed
    source_url = feed if is_url else None
    data = svc.fetch_feed(feed, allow_private=allow_private) if is_url else svc.read_feed_file(Path(feed))
    options = svc.ImportOptions(
        slug=slug, copy_media=copy_media, allow_private=allow_private, ignore_lock=ignore_lock
    )
    c = container()
    try:
        with c.uow() as uow:
            acting = auth.system_user(uow)
            owner_user = repo.user_by_name(uow.session, owner) if owner else None
            if owner and owner_user is None:
                raise InvalidInput(f"no user named {owner!r}", code="user-not-found")
            uow.commit()
        report = svc.import_feed(c, acting, data, source_url=source_url, options=options)
        if owner_user is not None:
            with c.uow() as uow:
                auth.grant(uow, repo.show_by_id(uow.session, report.show_id), owner_user, Role.OWNER)
                uow.commit()
        typer.echo(f"imported show {report.slug}: {len(report.episodes)} episode(s)", err=True)
        if copy_media:
            _copy(c, report, acting.id, allow_private=allow_private)
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
    finally:
        c.close()
    typer.echo(f"feed: {report.feed_url}")
    typer.echo("next steps:")
    for number, step in enumerate(report.next_steps, 1):
        typer.echo(f"  {number}. {step}")
    failed = sum(o.media == "failed" for o in report.episodes)
    if failed:
        typer.echo(f"error: the media of {failed} episode(s) could not be copied; see above", err=True)
        raise typer.Exit(1)


def _copy(c: Container, report: svc.ImportReport, user_id: str, *, allow_private: bool) -> None:
    """Download every enclosure, then wait for the processing jobs and print each episode's result."""

    def show(outcome: svc.EpisodeOutcome) -> None:
        line = "copied" if outcome.media == "queued" else f"FAILED: {outcome.error}"
        typer.echo(f"{line}: {outcome.title}", err=True)

    with console.status("copying media..."):
        svc.copy_media(c, report, user_id, allow_private=allow_private, progress=show)
    wait = getattr(c.queue, "wait_idle", None)
    queued = [o for o in report.episodes if o.job_id]
    if wait is not None and queued:
        with console.status(f"processing {len(queued)} episode(s)..."):
            wait(None)
        with c.uow() as uow:
            for outcome in queued:
                job = repo.job_by_id(uow.session, outcome.job_id or "")
                episode = repo.episode_by_id(uow.session, outcome.id)
                outcome.status = episode.status
                if job.status != "succeeded":
                    outcome.media, outcome.error = "failed", job.error
                ok = "published" if episode.status == "published" else f"{episode.status}: {job.error or ''}"
                typer.echo(f"{ok}: {outcome.title}", err=True)
        report.next_steps = svc.next_steps(report)
