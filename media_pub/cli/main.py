"""Top-level commands: serve, worker, process, publish, db, and the user/show/episode groups."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from media_pub.cli import catalogue, imports, processing, supporters
from media_pub.cli.base import new_app, setup_logging
from media_pub.cli.feeds import feed_app
from media_pub.config import get_settings
from media_pub.errors import MediaPubError

app = new_app("media_pub: podcast and video publishing backend.")
app.add_typer(catalogue.user_app, name="user")
app.add_typer(catalogue.show_app, name="show")
app.add_typer(catalogue.episode_app, name="episode")
app.add_typer(feed_app, name="feed")
app.add_typer(supporters.supporter_app, name="supporter")
app.command("import")(imports.import_feed)
app.command("process")(processing.process)
app.command("publish")(catalogue.publish)

db_app = new_app("Database schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply database migrations up to the latest."""
    from media_pub.db.engine import upgrade

    settings = get_settings()
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date")


storage_app = new_app("Stored objects.")
app.add_typer(storage_app, name="storage")


@storage_app.command("sweep")
def storage_sweep(
    grace: Annotated[
        float | None, typer.Option(help="Keep unreferenced objects younger than this many seconds")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="List what would be deleted, delete nothing")] = False,
) -> None:
    """Delete stored objects no row refers to (left by crashed jobs or replaced files) once past the grace
    period (default MEDIA_PUB_SWEEP_GRACE_SECONDS)."""
    from datetime import UTC, datetime

    from media_pub.cli.base import container
    from media_pub.services.sweeper import sweep

    c = container()
    try:
        seconds = c.settings.sweep_grace_seconds if grace is None else grace
        report = sweep(c.uow, c.storage, now=datetime.now(UTC), grace_seconds=seconds, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        for key in report.deleted:
            typer.echo(f"{verb} {key}")
        typer.echo(
            f"{len(report.deleted)} {verb}, {report.scanned} scanned, {report.young} in their grace period"
        )
    finally:
        c.close()


@app.command()
def serve(
    demo: Annotated[bool, typer.Option(help="Load the demo show from ./episodes on first start")] = False,
    host: Annotated[str | None, typer.Option(help="Bind address (default MEDIA_PUB_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MEDIA_PUB_PORT)")] = None,
    workers: Annotated[int, typer.Option(help="API processes")] = 1,
    demo_dir: Annotated[Path, typer.Option(help="Manifest folder of the demo show")] = Path("episodes"),
) -> None:
    """Run the HTTP API (OpenAPI at /docs)."""
    import uvicorn

    from media_pub.api.main import prepare

    settings = get_settings()
    setup_logging(settings)
    prepare(settings, demo_dir if demo else None)
    uvicorn.run(
        "media_pub.api.main:app_factory",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs at once")] = 1,
    hostname: Annotated[
        str | None, typer.Option(help="Worker name (default celery@<host>); one per worker on a host")
    ] = None,
) -> None:
    """Run a Celery worker (needs MEDIA_PUB_BROKER_URL)."""
    from media_pub.jobs.worker import make_worker_app

    argv = ["worker", "--loglevel=INFO", f"--concurrency={concurrency}"]
    argv += ["--without-mingle", "--without-gossip"]  # nothing here uses them; each costs a second at start
    if hostname:
        argv.append(f"--hostname={hostname}")
    make_worker_app().worker_main(argv)


def main() -> None:
    """Entry point of the `media-pub` script."""
    try:
        app()
    except MediaPubError as exc:  # raised outside a command (settings, bootstrap)
        print(f"error: {exc.title}: {exc.detail}", file=sys.stderr)
        sys.exit(1)
