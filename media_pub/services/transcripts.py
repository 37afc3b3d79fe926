"""Episode transcripts: upload (WebVTT, SRT or JSON), the forms apps fetch, and following audio edits.

Three objects per transcript, all under the episode's key space: the upload as received (`source_key`), and
the WebVTT and Podcasting 2.0 JSON forms in the published audio's timeline (`vtt_key`, `json_key`). A host
may upload a transcript made from the original recording (`timeline="original"`): it is then moved onto the
published audio with the processing's offset, cuts and lead, and moved again whenever the episode is
processed anew. Which timeline an upload is in is recorded in its source key (`...-upload-original-<sha>`),
since the Transcript row has no column for it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from typing import Literal, NamedTuple

from sqlalchemy import select

from media_pub.db import repositories as repo
from media_pub.db.models import Episode, Transcript, User
from media_pub.db.uow import UnitOfWork, UowFactory
from media_pub.domain.keys import asset_key
from media_pub.domain.rules import EpisodeStatus, JobStatus
from media_pub.errors import InvalidInput, MediaPubError, NotFound
from media_pub.feeds import transcripts as tx
from media_pub.services.auth import require_role
from media_pub.services.shows import touch_feed
from media_pub.storage.base import Storage

log = logging.getLogger(__name__)

Timeline = Literal["published", "original"]
PublicFormat = Literal["vtt", "json"]
PUBLIC_TYPES: dict[PublicFormat, str] = {"vtt": "text/vtt; charset=utf-8", "json": "application/json"}
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*$")
_FORMS: tuple[PublicFormat, ...] = ("vtt", "json")
_SOURCE_TYPES = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip", "json": "application/json"}


class TranscriptLink(NamedTuple):
    """One podcast:transcript of an episode: `path` is joined to the public base URL by the caller."""

    path: str  # "/transcripts/{episode_id}/{language}.vtt"
    mime: str  # "text/vtt" or "application/json"
    language: str
    captions: bool  # rel="captions" (set on the WebVTT link only)


class _Edit(NamedTuple):
    offset: float
    cuts: list[tuple[float, float]]
    lead: float
    duration: float


def normalize_language(value: str) -> str:
    """A BCP 47 language tag such as "en" or "pt-br", lowercased (it names the URL and the storage key)."""
    tag = value.strip().lower().replace("_", "-")
    if len(tag) > 35 or not _LANGUAGE.match(tag):
        raise InvalidInput(
            f"{value[:40]!r} is not a language tag; use one such as 'en' or 'pt-br'", code="invalid-language"
        )
    return tag


def timeline_of(row: Transcript) -> Timeline:
    """The timeline the upload was made in, as recorded in its source key."""
    name = row.source_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return "original" if name.rsplit("-", 2)[-2:-1] == ["original"] else "published"


def _edit(uow: UnitOfWork, episode: Episode) -> _Edit | None:
    """How processing turned the original into the published audio; None before processing."""
    if not episode.media_asset_id:
        return None
    main = repo.asset_by_id(uow.session, episode.media_asset_id)
    done = main.processing or {}
    cuts = [(float(a), float(b)) for a, b in done.get("cuts") or []]
    return _Edit(
        float(done.get("offset") or 0.0), cuts, float(done.get("lead") or 0.0), float(main.duration or 0)
    )


def _published(t: tx.Transcript, edit: _Edit | None, timeline: Timeline) -> tx.Transcript:
    if timeline == "published" or edit is None:
        return t  # an original-timeline upload before processing is moved once processing succeeds
    moved = tx.shift_transcript(t, edit.offset, edit.duration, edit.cuts, edit.lead)
    if not moved.cues:
        raise InvalidInput(
            "every cue falls in audio that processing removed (silence or cuts); is this the right file?",
            code="invalid-transcript",
        )
    return moved


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _store_forms(storage: Storage, episode: Episode, language: str, t: tx.Transcript) -> tuple[str, str]:
    """Store the WebVTT and JSON forms; content-addressed keys, so an unchanged form keeps its object."""
    keys = []
    for fmt in _FORMS:
        body = tx.render_transcript(t, fmt)
        key = asset_key(episode.show_id, episode.id, f"transcript-{language}-{_digest(body)}", fmt)
        storage.put_bytes(key, body, content_type=PUBLIC_TYPES[fmt])
        keys.append(key)
    return keys[0], keys[1]


def _row(uow: UnitOfWork, episode_id: str, language: str) -> Transcript | None:
    stmt = select(Transcript).where(Transcript.episode_id == episode_id, Transcript.language == language)
    return uow.session.scalar(stmt)


def _forget(uow: UnitOfWork, storage: Storage, keys: set[str]) -> None:
    """Delete objects no row points at any more, once the transaction that let go of them commits."""

    def delete() -> None:
        for key in keys:
            try:
                storage.delete(key)
            except Exception:  # a leftover object is harmless; the committed row is what counts
                log.warning("transcript.delete_failed key=%s", key)

    if keys:
        uow.after_commit(delete)


def put_transcript(
    uow: UnitOfWork,
    storage: Storage,
    user: User,
    episode_id: str,
    language: str,
    data: bytes,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    timeline: Timeline = "published",
    captions: bool = False,
) -> Transcript:
    """Add or replace the episode's transcript in `language`.

    Raises:
        InvalidInput: (code "invalid-transcript") the file's line, cue or segment at fault; a bad language.
        TooLarge: over 5 MB.
    """
    episode = repo.episode_by_id(uow.session, episode_id)
    require_role(uow, user, episode.show)
    language = normalize_language(language)
    if timeline not in ("published", "original"):
        raise InvalidInput("timeline is 'published' or 'original'", code="invalid-timeline")
    parsed = tx.parse_transcript(data, filename, content_type)
    published = _published(parsed, _edit(uow, episode), timeline)
    # Objects first, row second: the database never points at a missing object.
    name = f"transcript-{language}-upload-{timeline}-{_digest(data)}"
    source_key = asset_key(episode.show_id, episode.id, name, parsed.format)
    storage.put_bytes(source_key, data, content_type=_SOURCE_TYPES[parsed.format])
    vtt_key, json_key = _store_forms(storage, episode, language, published)
    row = _row(uow, episode.id, language)
    if row is None:
        row = Transcript(episode_id=episode.id, language=language)
        uow.session.add(row)
        old: set[str] = set()
    else:
        old = {row.source_key, row.vtt_key, row.json_key}
    row.source_format, row.source_key, row.vtt_key, row.json_key = (
        parsed.format,
        source_key,
        vtt_key,
        json_key,
    )
    row.cues, row.captions = len(published.cues), captions
    _forget(uow, storage, old - {source_key, vtt_key, json_key})
    if episode.status == EpisodeStatus.PUBLISHED:
        touch_feed(episode.show)
    uow.session.flush()
    return row


def list_transcripts(uow: UnitOfWork, user: User, episode_id: str) -> Sequence[Transcript]:
    """The episode's transcripts, by language."""
    episode = repo.episode_by_id(uow.session, episode_id)
    require_role(uow, user, episode.show)
    stmt = select(Transcript).where(Transcript.episode_id == episode.id).order_by(Transcript.language)
    return uow.session.scalars(stmt).all()


def delete_transcript(uow: UnitOfWork, storage: Storage, user: User, episode_id: str, language: str) -> None:
    """Remove the episode's transcript in `language` and its stored objects."""
    episode = repo.episode_by_id(uow.session, episode_id)
    require_role(uow, user, episode.show)
    row = _row(uow, episode.id, normalize_language(language))
    if row is None:
        raise NotFound(f"the episode has no transcript in {language!r}", code="transcript-not-found")
    uow.session.delete(row)
    _forget(uow, storage, {row.source_key, row.vtt_key, row.json_key})
    if episode.status == EpisodeStatus.PUBLISHED:
        touch_feed(episode.show)


def public_transcript(
    uow: UnitOfWork,
    storage: Storage,
    episode_id: str,
    language: str,
    fmt: PublicFormat,
    *,
    supporter_of: str | None = None,
) -> bytes:
    """The WebVTT or JSON form for apps: published, public episodes only (NotFound otherwise); with
    `supporter_of` (the show id of a checked supporter token) that show's supporter-only ones too."""
    missing = NotFound("no such transcript", code="transcript-not-found")
    episode = uow.session.get(Episode, episode_id)
    if episode is None or episode.status != EpisodeStatus.PUBLISHED or episode.published_at is None:
        raise missing
    if supporter_of is not None and episode.show_id != supporter_of:
        raise missing
    if episode.supporter_only and supporter_of is None:  # not public, nor are their transcripts
        raise missing
    try:
        row = _row(uow, episode.id, normalize_language(language))
    except InvalidInput:
        raise missing from None
    if row is None:
        raise missing
    return storage.read_bytes(row.vtt_key if fmt == "vtt" else row.json_key)


def feed_transcripts(uow: UnitOfWork, episode: Episode) -> list[TranscriptLink]:
    """The podcast:transcript links of an episode: per language its WebVTT, then its JSON form."""
    stmt = select(Transcript).where(Transcript.episode_id == episode.id).order_by(Transcript.language)
    return [
        TranscriptLink(
            f"/transcripts/{episode.id}/{row.language}.{fmt}",
            mime,
            row.language,
            row.captions and fmt == "vtt",
        )
        for row in uow.session.scalars(stmt)
        for fmt, mime in (("vtt", "text/vtt"), ("json", "application/json"))
    ]


def reshift_transcripts(uow_factory: UowFactory, storage: Storage, episode_id: str) -> int:
    """Move the episode's original-timeline transcripts onto its current media (after processing).

    Idempotent: the forms are rebuilt from the stored upload and stored under content-addressed keys.
    Returns how many transcripts changed.
    """
    changed = 0
    with uow_factory() as uow:
        episode = repo.episode_by_id(uow.session, episode_id)
        edit = _edit(uow, episode)
        if edit is None:
            return 0
        stmt = select(Transcript).where(Transcript.episode_id == episode.id)
        for row in uow.session.scalars(stmt):
            if timeline_of(row) != "original":
                continue
            try:
                parsed = tx.parse_transcript(storage.read_bytes(row.source_key), row.source_key)
                moved = tx.shift_transcript(parsed, edit.offset, edit.duration, edit.cuts, edit.lead)
                vtt_key, json_key = _store_forms(storage, episode, row.language, moved)
            except MediaPubError as error:
                if error.retryable:
                    raise  # the queue runs the handler again; the finished processing job is left alone
                log.warning("transcript.reshift_failed episode_id=%s language=%s code=%s",
                            episode_id, row.language, error.code)  # fmt: skip
                continue
            if (vtt_key, json_key) == (row.vtt_key, row.json_key):
                continue
            _forget(uow, storage, {row.vtt_key, row.json_key} - {vtt_key, json_key})
            row.vtt_key, row.json_key, row.cues = vtt_key, json_key, len(moved.cues)
            changed += 1
        if changed and episode.status == EpisodeStatus.PUBLISHED:
            touch_feed(episode.show)
        uow.commit()
    if changed:
        log.info("transcripts.reshifted episode_id=%s count=%s", episode_id, changed)
    return changed


def reshift_after_processing(uow_factory: UowFactory, storage: Storage, job_id: str) -> int:
    """After a `media.process` job: if it succeeded, move original-timeline transcripts onto the new media."""
    with uow_factory() as uow:
        job = repo.job_by_id(uow.session, job_id)
        if job.status != JobStatus.SUCCEEDED or not job.episode_id:
            return 0
        episode_id = job.episode_id
    return reshift_transcripts(uow_factory, storage, episode_id)
