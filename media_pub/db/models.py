"""SQLAlchemy models: the catalogue's entities (shows, episodes, assets, jobs, users)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def new_id() -> str:
    """A 32-character lowercase hex id: safe in URLs and storage keys."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")


class ApiToken(Base):
    """An API token: only its SHA-256 is stored; the prefix helps a user tell tokens apart."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    user: Mapped[User] = relationship(back_populates="tokens")


class Show(Base):
    __tablename__ = "shows"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(500), default="")
    owner_name: Mapped[str] = mapped_column(String(500), default="")
    owner_email: Mapped[str] = mapped_column(String(320), default="")
    language: Mapped[str] = mapped_column(String(35), default="en")
    category: Mapped[str] = mapped_column(String(100), default="Society & Culture")
    subcategory: Mapped[str | None] = mapped_column(String(100), default=None)
    explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    show_type: Mapped[str] = mapped_column(String(16), default="episodic")
    website: Mapped[str | None] = mapped_column(String(2000), default=None)
    copyright: Mapped[str | None] = mapped_column(String(500), default=None)
    artwork_key: Mapped[str | None] = mapped_column(String(500), default=None)
    funding: Mapped[list[Any]] = mapped_column(default=list)
    persons: Mapped[list[Any]] = mapped_column(default=list)
    locked: Mapped[bool] = mapped_column(Boolean, default=True)
    loudness_target: Mapped[float] = mapped_column(Float, default=-16.0)
    loudness_target_mono: Mapped[float] = mapped_column(Float, default=-19.0)
    trim_silence: Mapped[bool] = mapped_column(Boolean, default=True)
    silence_threshold_db: Mapped[float] = mapped_column(Float, default=-50.0)
    silence_min_seconds: Mapped[float] = mapped_column(Float, default=0.5)
    level: Mapped[bool] = mapped_column(Boolean, default=True)
    max_silence: Mapped[float | None] = mapped_column(Float, default=None)
    renditions: Mapped[list[Any]] = mapped_column(default=lambda: ["mp3", "aac"])
    video_height: Mapped[int] = mapped_column(Integer, default=720)
    intro_key: Mapped[str | None] = mapped_column(String(500), default=None)
    outro_key: Mapped[str | None] = mapped_column(String(500), default=None)
    # Feeds (issue 4): the Podcasting 2.0 channel values and where the feeds live.
    medium: Mapped[str] = mapped_column(String(16), default="podcast")
    # podcast:guid of each feed ("audio", "video", "live"): set once from the first URL, kept when it moves.
    feed_guids: Mapped[dict[str, Any]] = mapped_column(default=dict)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    license: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    txt: Mapped[list[Any]] = mapped_column(default=list)
    update_frequency: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    moved_to: Mapped[str | None] = mapped_column(String(2000), default=None)  # the feed left for this URL
    feed_page_size: Mapped[int | None] = mapped_column(Integer, default=None)  # None: one complete feed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped on every change that shows in the feed; the cached feed is rebuilt when it lags.
    feed_version: Mapped[int] = mapped_column(Integer, default=1)
    feed_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    episodes: Mapped[list[Episode]] = relationship(back_populates="show")


class ShowMember(Base):
    __tablename__ = "show_members"
    __table_args__ = (UniqueConstraint("show_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))


class Episode(Base):
    __tablename__ = "episodes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str] = mapped_column(String(500), unique=True)
    title: Mapped[str] = mapped_column(String(500), default="")
    notes_html: Mapped[str] = mapped_column(Text, default="")
    season: Mapped[int | None] = mapped_column(Integer, default=None)
    number: Mapped[int | None] = mapped_column(Integer, default=None)
    episode_type: Mapped[str] = mapped_column(String(16), default="full")
    explicit: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    publish_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    published_at: Mapped[datetime | None] = mapped_column(default=None)
    publish_when_ready: Mapped[bool] = mapped_column(Boolean, default=False)
    chapters: Mapped[list[Any]] = mapped_column(default=list)
    original_asset_id: Mapped[str | None] = mapped_column(String(32), default=None)
    media_asset_id: Mapped[str | None] = mapped_column(String(32), default=None)
    # Feeds (issue 4).
    supporter_only: Mapped[bool] = mapped_column(Boolean, default=False)  # only in supporters' feeds
    audio_feed: Mapped[bool | None] = mapped_column(Boolean, default=None)  # None: when it has no video
    persons: Mapped[list[Any] | None] = mapped_column(JSON, default=None)  # None: the show's
    funding: Mapped[list[Any]] = mapped_column(default=list)
    location: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    license: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    txt: Mapped[list[Any]] = mapped_column(default=list)
    soundbites: Mapped[list[Any]] = mapped_column(default=list)
    season_name: Mapped[str | None] = mapped_column(String(128), default=None)
    episode_display: Mapped[str | None] = mapped_column(String(32), default=None)
    livestream_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    show: Mapped[Show] = relationship(back_populates="episodes")


class Asset(Base):
    """A stored media object: an untouched original upload or a rendition made from it."""

    __tablename__ = "assets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(500), unique=True)
    mime_type: Mapped[str] = mapped_column(String(100))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    duration: Mapped[float | None] = mapped_column(Float, default=None)
    bitrate: Mapped[int | None] = mapped_column(Integer, default=None)
    sample_rate: Mapped[int | None] = mapped_column(Integer, default=None)
    channels: Mapped[int | None] = mapped_column(Integer, default=None)
    codec: Mapped[str | None] = mapped_column(String(50), default=None)
    kind: Mapped[str] = mapped_column(String(16), default="audio")
    width: Mapped[int | None] = mapped_column(Integer, default=None)
    height: Mapped[int | None] = mapped_column(Integer, default=None)
    frame_rate: Mapped[float | None] = mapped_column(Float, default=None)
    source_asset_id: Mapped[str | None] = mapped_column(String(32), default=None)
    processing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    loudness_in: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    loudness_out: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(50))
    episode_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    show_id: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(50), default="queued")
    error_code: Mapped[str | None] = mapped_column(String(100), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Who runs the job now and until when: a heartbeat renews it; a redelivery waits for it to run out.
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedCache(Base):
    """A show's last rendered feeds, one row per feed and page; rebuilt when the show's feed_version moves."""

    __tablename__ = "feed_cache"
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), primary_key=True)
    # audio, video or live, and ":N" for page N of a paged feed
    name: Mapped[str] = mapped_column(String(32), primary_key=True, default="audio")
    feed_version: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_gzip: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(String(80))
    last_modified: Mapped[datetime] = mapped_column()


class ShowAlias(Base):
    """A slug a show had before: its feeds answer 301 to the show's current feeds."""

    __tablename__ = "show_aliases"
    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transcript(Base):
    """An episode's transcript: the upload as received and its WebVTT form, both stored."""

    __tablename__ = "transcripts"
    __table_args__ = (UniqueConstraint("episode_id", "language"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(35))
    source_format: Mapped[str] = mapped_column(String(8))  # vtt, srt, json
    source_key: Mapped[str] = mapped_column(String(500))
    vtt_key: Mapped[str] = mapped_column(String(500))
    json_key: Mapped[str] = mapped_column(String(500))
    cues: Mapped[int] = mapped_column(Integer, default=0)
    captions: Mapped[bool] = mapped_column(Boolean, default=False)  # rel="captions": timed for video
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Livestream(Base):
    """A stream from announcement to replay: one guid throughout (the recording's episode reuses it)."""

    __tablename__ = "livestreams"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str] = mapped_column(String(500), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    notes_html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    start_at: Mapped[datetime] = mapped_column()
    end_at: Mapped[datetime | None] = mapped_column(default=None)
    content_link: Mapped[str] = mapped_column(String(2000))
    stream_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    stream_type: Mapped[str | None] = mapped_column(String(100), default=None)
    publish_at: Mapped[datetime | None] = mapped_column(default=None)  # None: shown at once
    audio_feed: Mapped[bool] = mapped_column(Boolean, default=False)  # the replay's MP3 in the audio feed
    persons: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    chapters: Mapped[list[Any]] = mapped_column(default=list)
    went_live_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    episode_id: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Supporter(Base):
    """A listener with a private feed: only the token's SHA-256 is stored."""

    __tablename__ = "supporters"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    show_id: Mapped[str] = mapped_column(ForeignKey("shows.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class IdempotencyRecord(Base):
    """The first answer to a POST sent with an Idempotency-Key, replayed to retries for 24 hours.

    `owner` is the SHA-256 of the request's Authorization header; `status` is None while the first request
    is still running (the unique (owner, key) pair arbitrates concurrent requests, in any process).
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("owner", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # SHA-256 of method, path, query and body
    status: Mapped[int | None] = mapped_column(Integer, default=None)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


# --- uploads over S3 (resumable and direct): models below this line ---


class ResumableUpload(Base):
    """A tus upload on the S3 backend: its bytes are parts of an S3 multipart upload plus a pending tail.

    `offset` = the parts' sizes + `tail_size` (bytes kept in the `{key}.tail-{start}-{size}` object until a
    part is full).
    One writer at a time across processes: a PATCH holds `lock_token` until `lock_expires_at`, renewing it.
    """

    __tablename__ = "resumable_uploads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    part_size: Mapped[int] = mapped_column(BigInteger)
    upload_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    storage_key: Mapped[str] = mapped_column(String(500))
    s3_upload_id: Mapped[str | None] = mapped_column(String(1024), default=None)
    parts: Mapped[list[Any]] = mapped_column(default=list)  # [{"number", "etag", "size"}]
    tail_size: Mapped[int] = mapped_column(BigInteger, default=0)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)  # the object exists under storage_key
    lock_token: Mapped[str | None] = mapped_column(String(32), default=None)
    lock_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class DirectUpload(Base):
    """A direct-to-S3 upload: the client sends parts to presigned URLs; the server completes and checks."""

    __tablename__ = "direct_uploads"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    storage_key: Mapped[str] = mapped_column(String(500))
    s3_upload_id: Mapped[str] = mapped_column(String(1024))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    part_size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(500), default=None)
    content_type: Mapped[str | None] = mapped_column(String(100), default=None)
    trim_start: Mapped[str | None] = mapped_column(String(32), default=None)
    trim_end: Mapped[str | None] = mapped_column(String(32), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, completing
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
