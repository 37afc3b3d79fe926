"""Publishing a folder of TOML manifests (a show.toml and one file per episode), as in `episodes/`."""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from media_pub.bootstrap import Container
from media_pub.db import repositories as repo
from media_pub.db.models import Livestream
from media_pub.db.uow import UnitOfWork
from media_pub.domain.keys import show_key
from media_pub.errors import InvalidInput, MediaPubError
from media_pub.media.artwork import placeholder_artwork
from media_pub.media.synth import write_speech_like
from media_pub.services import episodes as ep_svc
from media_pub.services import livestreams as live_svc
from media_pub.services import shows as show_svc
from media_pub.services.auth import system_user
from media_pub.services.uploads import CHUNK, Spool, TrimRequest, attach_upload


@dataclass
class ManifestReport:
    show: str
    created_show: bool = False
    queued: list[tuple[str, str]] = field(default_factory=list)  # (episode title, job id)
    skipped: list[str] = field(default_factory=list)


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"{path}: {exc}", code="invalid-manifest") from exc


def _audio_file(manifest: dict[str, Any], base: Path, work: Path, index: int) -> Path:
    audio = manifest.get("audio")
    if isinstance(audio, str):
        path = (base / audio).resolve()
        if not path.is_file():
            raise InvalidInput(
                f"audio file {audio!r} not found next to the manifest", code="invalid-manifest"
            )
        return path
    if isinstance(audio, dict) and "synth" in audio:
        synth = audio["synth"]
        out = work / f"synth-{index}.wav"
        return write_speech_like(
            out,
            float(synth.get("seconds", 60)),
            lufs=float(synth.get("lufs", -26)),
            lead_silence=float(synth.get("lead_silence", 2)),
            tail_silence=float(synth.get("tail_silence", 2)),
            seed=int(synth.get("seed", index)),
            channels=int(synth.get("channels", 2)),
        )
    raise InvalidInput("an episode manifest needs audio = 'file' or [audio.synth]", code="invalid-manifest")


def publish_folder(container: Container, folder: Path) -> ManifestReport:
    """Create the show and every episode not there yet (matched by guid), queue their processing and
    publishing (at the manifest's `published` time). Returns what was queued."""
    show_manifest = _read(folder / "show.toml")
    slug = show_manifest.pop("slug", None)
    if not slug:
        raise InvalidInput(f"{folder / 'show.toml'} has no slug", code="invalid-manifest")
    show_manifest.pop("artwork", None)
    livestreams = show_manifest.pop("livestreams", [])
    report = ManifestReport(show=slug)
    with container.uow() as uow:
        user = system_user(uow)
        if not repo.slug_taken(uow.session, slug):
            show = show_svc.create_show(uow, user, slug, show_manifest)
            key = show_key(show.id, "artwork-demo", "jpg")
            container.storage.put_bytes(key, placeholder_artwork(show.title), content_type="image/jpeg")
            show.artwork_key = key
            report.created_show = True
        for stream in livestreams:  # announced streams (matched by guid)
            fields = dict(stream)
            guid = fields.pop("guid", None)
            if guid is None or not (repo.episode_by_guid(uow.session, guid) or _stream_exists(uow, guid)):
                live_svc.create_livestream(uow, user, slug, fields, guid=guid)
        uow.commit()
    work = Path(tempfile.mkdtemp(prefix="media-pub-manifests-"))
    try:
        for index, path in enumerate(sorted(folder.glob("*.toml"))):
            if path.name == "show.toml":
                continue
            _publish_one(container, slug, path, work, index, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


def _stream_exists(uow: UnitOfWork, guid: str) -> bool:
    return uow.session.scalar(select(Livestream.id).where(Livestream.guid == guid)) is not None


def _publish_one(
    container: Container, slug: str, path: Path, work: Path, index: int, report: ManifestReport
) -> None:
    manifest = _read(path)
    guid = manifest.pop("guid", None)
    with container.uow() as uow:
        if guid and repo.episode_by_guid(uow.session, guid) is not None:
            report.skipped.append(manifest.get("title", path.stem))
            return
    audio_path = _audio_file(manifest, path.parent, work, index)
    published = manifest.pop("published", None)
    trim = TrimRequest(manifest.pop("start", None), manifest.pop("end", None))
    manifest.pop("audio", None)
    at = _when(published, path)
    with (
        Spool(container.settings.data_dir / "tmp", container.settings.max_upload_bytes) as spool,
        audio_path.open("rb") as fh,
    ):
        while chunk := fh.read(CHUNK):
            spool.write(chunk)
    spooled = spool.finish()
    with container.uow() as uow:
        user = system_user(uow)
        episode = ep_svc.create_episode(uow, user, slug, manifest, guid=guid)
        uow.session.flush()
        try:
            job = attach_upload(
                uow,
                container.storage,
                container.queue,
                user,
                episode.id,
                spooled,
                trim,
                probe_timeout=container.settings.probe_timeout_seconds,
                probe_memory_mb=container.settings.probe_memory_mb,
            )
        except MediaPubError as exc:
            raise type(exc)(f"{path.name}: {exc.detail}", code=exc.code) from exc
        ep_svc.request_publish_when_ready(episode, at)
        uow.commit()
        report.queued.append((episode.title, job.id))


def _when(value: object, path: Path) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(
            f"{path.name}: published must be an ISO date-time", code="invalid-manifest"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
