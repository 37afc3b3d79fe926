"""Users, shows, episodes and manifest folders from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from media_pub.cli.base import container, new_app
from media_pub.config import get_settings
from media_pub.db import repositories as repo
from media_pub.domain.rules import Role
from media_pub.errors import InvalidInput, MediaPubError, Unavailable
from media_pub.services import auth
from media_pub.services import shows as show_svc

user_app = new_app("API users and their tokens.")
show_app = new_app("Shows.")
episode_app = new_app("Episodes (through the HTTP API of a running server).")
console = Console(stderr=True)


@user_app.command("create")
def user_create(
    name: str,
    admin: Annotated[bool, typer.Option(help="May act on every show")] = False,
    show: Annotated[str | None, typer.Option(help="Give a role on this show (slug)")] = None,
    role: Annotated[Role, typer.Option(help="Role on --show")] = Role.OWNER,
) -> None:
    """Create a user and print its API token (shown only this once; only its hash is stored)."""
    c = container()
    with c.uow() as uow:
        user, token = auth.create_user(uow, name, admin=admin)
        if show:
            auth.grant(uow, repo.show_by_slug(uow.session, show), user, role)
        uow.commit()
    console.print(f"created user {name!r}{' (admin)' if admin else ''}; its API token (shown once):")
    typer.echo(token)


@show_app.command("create")
def show_create(
    slug: str,
    title: Annotated[str, typer.Option(help="Show title")],
    description: Annotated[str, typer.Option()] = "",
    author: Annotated[str, typer.Option()] = "",
    owner_name: Annotated[str, typer.Option()] = "",
    owner_email: Annotated[str, typer.Option()] = "",
    language: Annotated[str, typer.Option()] = "en",
    category: Annotated[str, typer.Option()] = "Society & Culture",
    subcategory: Annotated[str | None, typer.Option()] = None,
    explicit: Annotated[bool, typer.Option()] = False,
    owner: Annotated[str | None, typer.Option(help="User name to make owner")] = None,
) -> None:
    """Create a show."""
    c = container()
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "author": author,
        "owner_name": owner_name,
        "owner_email": owner_email,
        "language": language,
        "category": category,
        "subcategory": subcategory,
        "explicit": explicit,
    }
    with c.uow() as uow:
        acting = auth.system_user(uow)
        show = show_svc.create_show(uow, acting, slug, fields)
        if owner:
            user = repo.user_by_name(uow.session, owner)
            if user is None:
                raise InvalidInput(f"no user named {owner!r}", code="user-not-found")
            auth.grant(uow, show, user, Role.OWNER)
        uow.commit()
        typer.echo(f"created show {slug}: feed at {c.urls.feed(show)}")


@show_app.command("list")
def show_list() -> None:
    """List shows with their feed URLs."""
    c = container()
    with c.uow() as uow:
        for show in repo.list_shows(uow.session):
            typer.echo(f"{show.slug}\t{show.title}\t{c.urls.feed(show)}")


def publish(
    folder: Annotated[Path, typer.Argument(help="Folder with show.toml and episode manifests")],
) -> None:
    """Create and publish a manifest folder's show and episodes (like episodes/); waits for processing."""
    from media_pub.services.manifests import publish_folder

    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder", code="invalid-manifest")
    c = container()
    report = publish_folder(c, folder)
    for title in report.skipped:
        console.print(f"skipped (already there): {title}")
    wait = getattr(c.queue, "wait_idle", None)
    if wait is not None and report.queued:
        with console.status(f"processing {len(report.queued)} episodes..."):
            wait(None)
    failed = 0
    with c.uow() as uow:
        for title, job_id in report.queued:
            job = repo.job_by_id(uow.session, job_id)
            ok = job.status == "succeeded"
            failed += not ok
            console.print(f"{'ok' if ok else 'FAILED'}: {title}" + ("" if ok else f": {job.error}"))
    c.close()
    typer.echo(f"feed: {get_settings().base_url}/feeds/{report.show}.xml")
    if failed:
        raise typer.Exit(1)


class Api:
    """A small client of a running server's API, turning problem+json answers into domain errors."""

    def __init__(self, server: str, token: str | None) -> None:
        if not token:
            raise InvalidInput("give --token or set MEDIA_PUB_TOKEN", code="token-missing")
        self.http = httpx.Client(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, read=600.0),
        )

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {self.http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _remote_error(response)
        return response.json()


def _remote_error(response: httpx.Response) -> MediaPubError:
    """The server's problem+json answer as an error the CLI prints in one line."""
    try:
        body = response.json()
        error = MediaPubError(f"{body.get('detail')} ({body.get('code')}, HTTP {response.status_code})")
        error.title = str(body.get("title") or error.title)
    except ValueError:
        error = MediaPubError(f"HTTP {response.status_code} from the server")
    return error


ServerOpt = Annotated[str | None, typer.Option(help="Server base URL (default MEDIA_PUB_BASE_URL)")]
TokenOpt = Annotated[str | None, typer.Option(envvar="MEDIA_PUB_TOKEN", help="API token")]


@episode_app.command("upload")
def episode_upload(
    show: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str, typer.Option(help="Episode title")] = "",
    notes: Annotated[str, typer.Option(help="Show notes (HTML allowed)")] = "",
    start: Annotated[str | None, typer.Option(help="In point (s or HH:MM:SS.mmm)")] = None,
    end: Annotated[str | None, typer.Option(help="Out point")] = None,
    publish_now: Annotated[bool, typer.Option("--publish", help="Publish once processed")] = False,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create an episode, upload FILE with a progress bar, follow its processing, optionally publish."""
    api = Api(server or get_settings().base_url, token)
    episode = api.call("POST", f"/api/v1/shows/{show}/episodes", json={"title": title, "notes": notes})
    size = file.stat().st_size

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("upload", total=size)

        def chunks() -> Any:
            with file.open("rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    progress.advance(task, len(chunk))
                    yield chunk

        params = {k: v for k, v in {"start": start, "end": end}.items() if v is not None}
        job = api.call(
            "PUT",
            f"/api/v1/episodes/{episode['id']}/media",
            content=chunks(),
            params=params,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
    job = follow_job(api, job)
    if job["status"] != "succeeded":
        raise MediaPubError(f"processing failed: {job['error']}")
    if publish_now:
        api.call("POST", f"/api/v1/episodes/{episode['id']}/publish", json={})
    final = api.call("GET", f"/api/v1/episodes/{episode['id']}")
    typer.echo(f"episode {final['id']} {final['status']}: {final['media']['url']}")


def follow_job(api: Api, job: dict[str, Any]) -> dict[str, Any]:
    """Show a job's stage and progress until it ends."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), console=console
    ) as progress:
        task = progress.add_task("queued", total=1.0)
        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = api.call("GET", job["url"])
            progress.update(task, completed=job["progress"], description=job["stage"])
    return job
