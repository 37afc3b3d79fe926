"""Episodes: create, list, read, edit, upload media, publish."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from media_pub.api.deps import ContainerDep, UowDep, UserDep
from media_pub.api.schemas import (
    AssetRead,
    EpisodeCreate,
    EpisodeRead,
    EpisodeUpdate,
    JobRead,
    PublishRequest,
)
from media_pub.api.uploading import attach, check_length, file_chunks, spool_upload
from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Episode, User
from media_pub.db.uow import UnitOfWork
from media_pub.domain.rules import EpisodeStatus
from media_pub.services import episodes as svc
from media_pub.services.media import episode_waveform
from media_pub.services.uploads import (
    TrimRequest,
    episode_for_upload,
    reprocess,
)

router = APIRouter(prefix="/api/v1", tags=["episodes"])


def episode_read(
    uow: UnitOfWork, c: Container, episode: Episode, jobs: list[JobRead] | None = None
) -> EpisodeRead:
    def asset(asset_id: str | None, public: bool) -> AssetRead | None:
        if not asset_id:
            return None
        a = repo.asset_by_id(uow.session, asset_id)
        return AssetRead.of(a, c.urls.media(a.storage_key) if public else None)

    media = asset(episode.media_asset_id, True)
    made = (media.processing.get("renditions") or {}) if media is not None else {}
    renditions = [a for kind, asset_id in made.items() if kind != "poster" and (a := asset(asset_id, True))]
    poster = asset(made["poster"], True) if "poster" in made else None
    original = asset(episode.original_asset_id, False)
    warnings = svc.episode_warnings(uow, episode)
    if jobs is None:
        jobs = [JobRead.of(job) for job in svc.active_jobs(uow, episode)]
    return EpisodeRead.of(episode, media, original, renditions, poster, warnings, jobs)


@router.post("/shows/{show}/episodes", status_code=status.HTTP_201_CREATED)
def create_episode(
    show: str, body: EpisodeCreate, uow: UowDep, user: UserDep, c: ContainerDep
) -> EpisodeRead:
    """Create a draft episode; its guid is assigned now and never changes."""
    episode = svc.create_episode(uow, user, show, body.fields())
    uow.commit()
    return episode_read(uow, c, episode)


@router.get("/shows/{show}/episodes")
def list_episodes(show: str, uow: UowDep, user: UserDep, c: ContainerDep) -> list[EpisodeRead]:
    """Every episode of a show, drafts included."""
    return [episode_read(uow, c, e) for e in svc.list_episodes(uow, user, show)]


@router.get("/episodes/{episode_id}")
def get_episode(episode_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> EpisodeRead:
    """One episode with its media, measured loudness and status."""
    return episode_read(uow, c, svc.get_episode(uow, user, episode_id))


@router.patch("/episodes/{episode_id}")
def update_episode(
    episode_id: str, body: EpisodeUpdate, uow: UowDep, user: UserDep, c: ContainerDep
) -> EpisodeRead:
    """Edit any field. New chapters of processed media are written into its renditions by a `media.retag` job:
    the renditions get new URLs once it ends (the old URLs keep their bytes)."""
    episode = svc.update_episode(uow, user, episode_id, body.fields(), c.queue)
    # Listed before the commit: a quick job may end before the answer is built, and the host needs its id.
    jobs = [JobRead.of(job) for job in svc.active_jobs(uow, episode)]
    uow.commit()
    return episode_read(uow, c, episode, jobs)


@router.post("/episodes/{episode_id}/publish")
def publish_episode(
    episode_id: str, uow: UowDep, user: UserDep, c: ContainerDep, body: PublishRequest | None = None
) -> EpisodeRead:
    """Publish a ready episode now, or at `at` (it then goes out by itself)."""
    body = body or PublishRequest()
    episode = svc.get_episode(uow, user, episode_id)
    if body.when_ready and episode.status == EpisodeStatus.PROCESSING:
        svc.request_publish_when_ready(episode, body.at)
    else:
        episode = svc.publish_episode(uow, user, episode_id, body.at)
    uow.commit()
    return episode_read(uow, c, episode)


def _check_upload(c: Container, user: User, episode_id: str, request: Request) -> None:
    with c.uow() as uow:
        episode_for_upload(uow, user, episode_id)
    check_length(c, request)


async def _receive(
    c: Container, user: User, episode_id: str, chunks: AsyncIterator[bytes], trim: TrimRequest
) -> JobRead:
    """Spool the body, then probe, store and queue in a thread."""
    spooled = await spool_upload(c, chunks)
    return await run_in_threadpool(attach, c, user, episode_id, spooled, trim)


TrimQuery = Annotated[str | None, Query(description="In point: seconds or HH:MM:SS.mmm")]
EndQuery = Annotated[str | None, Query(description="Out point: seconds or HH:MM:SS.mmm")]
FrameQuery = Annotated[
    bool, Query(description="Video: re-encode so the cuts are frame-exact (else keyframe-accurate, copied)")
]
PosterQuery = Annotated[
    str | None, Query(description="Video: the poster frame's time in the output (default: automatic)")
]


@router.put(
    "/episodes/{episode_id}/media",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}},
)
async def upload_media(
    episode_id: str,
    request: Request,
    user: UserDep,
    c: ContainerDep,
    start: TrimQuery = None,
    end: EndQuery = None,
    frame_accurate: FrameQuery = False,
    poster_at: PosterQuery = None,
) -> JobRead:
    """Upload the episode's audio or video as the raw request body. Answers 202 with the processing job."""
    await run_in_threadpool(_check_upload, c, user, episode_id, request)
    trim = TrimRequest(start, end, frame_accurate, poster_at)
    return await _receive(c, user, episode_id, request.stream(), trim)


@router.post("/episodes/{episode_id}/media", status_code=status.HTTP_202_ACCEPTED)
async def upload_media_form(
    episode_id: str,
    request: Request,
    user: UserDep,
    c: ContainerDep,
    file: Annotated[UploadFile, File(description="The audio or video file")],
    start: Annotated[str | None, Form()] = None,
    end: Annotated[str | None, Form()] = None,
    frame_accurate: Annotated[bool, Form()] = False,
    poster_at: Annotated[str | None, Form()] = None,
) -> JobRead:
    """Upload media as a multipart form (for browsers). Answers 202 with the processing job."""
    await run_in_threadpool(_check_upload, c, user, episode_id, request)
    try:
        trim = TrimRequest(start, end, frame_accurate, poster_at)
        return await _receive(c, user, episode_id, file_chunks(file), trim)
    finally:
        await file.close()


@router.post("/episodes/{episode_id}/reprocess", status_code=status.HTTP_202_ACCEPTED)
def reprocess_episode(episode_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> JobRead:
    """Process the episode's original again with the show's current settings (new target, renditions...).

    Answers 202 with the job. Published URLs keep their bytes: the new renditions get new URLs.
    """
    job = reprocess(uow, c.queue, user, episode_id)
    uow.commit()
    return JobRead.of(job)


@router.get("/episodes/{episode_id}/waveform", response_class=Response,
            responses={200: {"content": {"application/json": {}}}})  # fmt: skip
def get_waveform(episode_id: str, uow: UowDep, user: UserDep, c: ContainerDep) -> Response:
    """Waveform peaks (BBC audiowaveform JSON, 20 px/s) of the episode's rendition, for trim editors."""
    svc.get_episode(uow, user, episode_id)
    return Response(episode_waveform(uow, c.storage, episode_id, public=False), media_type="application/json")
