"""Users, shows, episodes and manifest folders from the command line."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from media_pub.cli import tus_client as tus
from media_pub.cli.base import container, new_app
from media_pub.config import get_settings
from media_pub.db import repositories as repo
from media_pub.domain.rules import Role
from media_pub.errors import InvalidInput, MediaPubError, NotFound, Unavailable
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
            raise tus.remote_error(response)
        return response.json()


ServerOpt = Annotated[str | None, typer.Option(help="Server base URL (default MEDIA_PUB_BASE_URL)")]
TokenOpt = Annotated[str | None, typer.Option(envvar="MEDIA_PUB_TOKEN", help="API token")]


@dataclass
class UploadRequest:
    """What `episode upload` was asked to do, and where its resumable state lives."""

    show: str
    file: Path
    episode: dict[str, str]  # the create body: title, notes
    trim: dict[str, str]  # start, end
    states: tus.UploadStates
    key: str
    retry: tus.Retry
    chunk_size: int


@episode_app.command("upload")
def episode_upload(
    show: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    title: Annotated[str, typer.Option(help="Episode title")] = "",
    notes: Annotated[str, typer.Option(help="Show notes (HTML allowed)")] = "",
    start: Annotated[str | None, typer.Option(help="In point (s or HH:MM:SS.mmm)")] = None,
    end: Annotated[str | None, typer.Option(help="Out point")] = None,
    publish_now: Annotated[bool, typer.Option("--publish", help="Publish once processed")] = False,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue this file's unfinished upload, if any")
    ] = True,
    chunk_size: Annotated[int, typer.Option(min=64 * 1024, help="Bytes per request")] = tus.CHUNK_SIZE,
    retries: Annotated[
        int, typer.Option(min=1, help="Failures in a row before giving up")
    ] = tus.MAX_FAILURES,
    server: ServerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create an episode, upload FILE resumably (tus) with a progress bar, follow its processing, optionally
    publish. Run the same command again after an interruption to continue where it stopped."""
    base = (server or get_settings().base_url).rstrip("/")
    api = Api(base, token)
    request = UploadRequest(
        show=show,
        file=file,
        episode={"title": title, "notes": notes},
        trim={k: v for k, v in {"start": start, "end": end}.items() if v is not None},
        states=tus.UploadStates(tus.state_file()),
        key=tus.upload_key(base, show, file),
        retry=tus.Retry(retries, on_retry=_say_retry),
        chunk_size=chunk_size,
    )
    saved = request.states.get(request.key) if resume else None
    try:
        episode_id, job = _upload(api, request, saved)
    except MediaPubError as exc:
        if not exc.retryable:  # final: the next run starts over rather than resume a refused upload
            request.states.remove(request.key)
        raise
    job = follow_job(api, job)
    if job["status"] != "succeeded":
        raise MediaPubError(f"processing failed: {job['error']}")
    if publish_now:
        api.call("POST", f"/api/v1/episodes/{episode_id}/publish", json={})
    final = api.call("GET", f"/api/v1/episodes/{episode_id}")
    typer.echo(f"episode {final['id']} {final['status']}: {final['media']['url']}")


def _say_retry(reason: str, delay: float) -> None:
    console.print(f"upload: {reason}; retrying in {delay:g} s")


def _upload(api: Api, request: UploadRequest, saved: tus.SavedUpload | None) -> tuple[str, dict[str, Any]]:
    """Upload the file into its episode (new or saved); returns the episode id and its processing job."""
    size = request.file.stat().st_size
    offset: int | None = None
    if saved is not None and saved.url and saved.episode_id:
        offset, done = _resume_point(api, request, saved, saved.url, saved.episode_id)
        if done is not None:
            return done
    entry = saved or tus.SavedUpload(idempotency_key=uuid.uuid4().hex)
    request.states.put(request.key, entry)
    if entry.episode_id is None:
        entry.episode_id = _create_episode(api, request, entry.idempotency_key)
        request.states.put(request.key, entry)
    metadata = {"episode_id": entry.episode_id, "filename": request.file.name, **request.trim}
    for _ in range(2):  # a second time only if the server dropped the upload without attaching it
        if entry.url is None:
            entry.url = request.retry.call(lambda: tus.create_upload(api.http, size, metadata))
            request.states.put(request.key, entry)
            offset = 0
        try:
            job_id = _send_with_progress(api, request, entry.url, size, offset)
        except tus.UploadGone:
            episode = _episode(api, request, entry.episode_id)
            if episode is None:
                raise NotFound(f"episode {entry.episode_id} was deleted during the upload") from None
            attached = _attached_job(episode)
            if attached is not None:
                return entry.episode_id, attached
            console.print("upload: the server dropped the upload; starting it again")
            entry.url = None
            continue
        request.states.remove(request.key)
        if job_id is None:
            raise MediaPubError("the server accepted the upload but named no processing job")
        return entry.episode_id, _get(api, request, f"/api/v1/jobs/{job_id}")
    raise MediaPubError("the server dropped the upload twice; giving up")


def _resume_point(
    api: Api, request: UploadRequest, saved: tus.SavedUpload, url: str, episode_id: str
) -> tuple[int | None, tuple[str, dict[str, Any]] | None]:
    """Where a saved upload goes on: (offset, None), or (None, (episode id, job)) if it had finished;
    resets `saved` to start over if the server no longer has the upload."""
    try:
        offset = request.retry.call(lambda: tus.head_offset(api.http, url))
    except tus.UploadGone:
        episode = _episode(api, request, episode_id)
        attached = _attached_job(episode) if episode else None
        if attached is not None:
            request.states.remove(request.key)
            return None, (episode_id, attached)
        console.print("upload: the server no longer has the saved upload; starting over")
        saved.url = None
        if episode is None:  # deleted meanwhile: a new episode, so a new key
            saved.episode_id, saved.idempotency_key = None, uuid.uuid4().hex
        return None, None
    console.print(f"upload: resuming at byte {offset} of {request.file.stat().st_size}")
    return offset, None


def _create_episode(api: Api, request: UploadRequest, idempotency_key: str) -> str:
    """POST the episode; the saved Idempotency-Key makes a retry (or a rerun) answer the same episode."""
    url = f"/api/v1/shows/{request.show}/episodes"
    headers = {"Idempotency-Key": idempotency_key}
    response = request.retry.call(
        lambda: tus.send(api.http, "POST", url, json=request.episode, headers=headers)
    )
    return str(response.json()["id"])


def _send_with_progress(
    api: Api, request: UploadRequest, url: str, size: int, offset: int | None
) -> str | None:
    with (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        ) as progress,
        request.file.open("rb") as fh,
    ):
        task = progress.add_task("upload", total=size)
        return tus.send_file(
            api.http,
            url,
            fh,
            size,
            offset,
            request.retry,
            lambda done: progress.update(task, completed=done),
            request.chunk_size,
        )


def _get(api: Api, request: UploadRequest, url: str) -> dict[str, Any]:
    """GET with the upload's retries: once bytes are sent, a flaky answer must not lose track of them."""
    return dict(request.retry.call(lambda: tus.send(api.http, "GET", url)).json())


def _episode(api: Api, request: UploadRequest, episode_id: str) -> dict[str, Any] | None:
    try:
        return _get(api, request, f"/api/v1/episodes/{episode_id}")
    except NotFound:
        return None


def _attached_job(episode: dict[str, Any]) -> dict[str, Any] | None:
    """The processing job of an episode whose upload completed although its answer was lost, or None."""
    processing = [j for j in episode["jobs"] if j["kind"] == "media.process"]
    if processing:
        return dict(processing[-1])
    if episode["original"] is None:
        return None
    ok = episode["media"] is not None
    return {"status": "succeeded" if ok else "failed", "error": episode["last_error"], "url": ""}


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
