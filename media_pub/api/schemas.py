"""Request and response bodies of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from media_pub.db.models import Asset, Episode, Job, Show


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        """NUL is no text (PostgreSQL refuses it in a text column): dropped from every string sent. Other
        control characters are kept as sent and left out of the feeds when they are rendered."""
        return value.replace("\x00", "") if isinstance(value, str) else value


class FundingLink(_In):
    url: str = Field(max_length=2000)
    text: str = Field(default="Support the show", max_length=128)


class Person(_In):
    name: str = Field(max_length=128)
    role: str = "host"
    group: str = "cast"
    img: str | None = None
    href: str | None = None


class ShowFields(_In):
    title: str | None = Field(default=None, max_length=500)
    description: str | None = Field(default=None, max_length=20000)
    author: str | None = Field(default=None, max_length=500)
    owner_name: str | None = Field(default=None, max_length=500)
    owner_email: str | None = Field(default=None, max_length=320)
    language: str | None = Field(default=None, max_length=35)
    category: str | None = None
    subcategory: str | None = None
    explicit: bool | None = None
    show_type: Literal["episodic", "serial"] | None = None
    website: str | None = Field(default=None, max_length=2000)
    copyright: str | None = Field(default=None, max_length=500)
    funding: list[FundingLink] | None = None
    persons: list[Person] | None = None
    locked: bool | None = None
    loudness_target: float | None = Field(default=None, ge=-31, le=-9, description="LUFS, stereo episodes")
    loudness_target_mono: float | None = Field(default=None, ge=-31, le=-9, description="LUFS, mono episodes")
    trim_silence: bool | None = None
    silence_threshold_db: float | None = Field(default=None, ge=-90, le=-20, description="dBFS")
    silence_min_seconds: float | None = Field(default=None, ge=0.1, le=60)
    level: bool | None = Field(default=None, description="Level quiet and loud speakers (on for speech)")
    max_silence: float | None = Field(
        default=None, ge=0.2, le=60, description="Shorten inner silences to this many seconds (null: off)"
    )
    renditions: list[Literal["mp3", "aac", "opus"]] | None = Field(
        default=None, description="Audio renditions to make; MP3 is always made (the main enclosure)"
    )
    video_height: int | None = Field(default=None, ge=144, le=2160, description="Height of transcoded video")
    medium: str | None = Field(
        default=None, description="podcast:medium of the audio feed (podcast, music...)"
    )
    location: dict[str, Any] | None = Field(
        default=None, description="podcast:location: {text, geo, osm, rel, country}"
    )
    license: dict[str, Any] | None = Field(default=None, description="podcast:license: {slug, url}")
    txt: list[dict[str, Any]] | None = Field(
        default=None, description="podcast:txt entries: {text, purpose} (purpose e.g. applepodcastsverify)"
    )
    update_frequency: dict[str, Any] | None = Field(
        default=None, description="podcast:updateFrequency: {text, rrule, complete, dtstart}"
    )
    feed_page_size: int | None = Field(
        default=None, ge=10, le=1000, description="Items per page of an RFC 5005 paged feed (null: complete)"
    )
    moved_to: str | None = Field(
        default=None, max_length=2000, description="The feed moved to another host: its URL (301 there)"
    )

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ShowCreate(ShowFields):
    slug: str = Field(max_length=64)
    title: str = Field(max_length=500)  # type: ignore[assignment]


class ShowUpdate(ShowFields):
    pass


class ShowRead(BaseModel):
    id: str
    slug: str
    title: str
    description: str
    author: str
    owner_name: str
    owner_email: str
    language: str
    category: str
    subcategory: str | None
    explicit: bool
    show_type: str
    website: str | None
    copyright: str | None
    funding: list[dict[str, Any]]
    persons: list[dict[str, Any]]
    locked: bool
    loudness_target: float
    loudness_target_mono: float
    trim_silence: bool
    silence_threshold_db: float
    silence_min_seconds: float
    level: bool
    max_silence: float | None
    renditions: list[str]
    video_height: int
    intro_key: str | None
    outro_key: str | None
    medium: str
    location: dict[str, Any] | None
    license: dict[str, Any] | None
    txt: list[dict[str, Any]]
    update_frequency: dict[str, Any] | None
    feed_page_size: int | None
    moved_to: str | None
    feed_url: str
    artwork_key: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, show: Show, feed_url: str) -> ShowRead:
        data = {name: getattr(show, name) for name in cls.model_fields if name != "feed_url"}
        return cls(feed_url=feed_url, **data)


class ChapterIn(_In):
    start: float | str
    title: str = Field(default="", max_length=500)
    url: str | None = None


class EpisodePerson(_In):
    name: str = Field(description="At most 128 characters")
    role: str | None = Field(default=None, description="Podcasting 2.0 taxonomy role (default host)")
    group: str | None = Field(default=None, description="Podcasting 2.0 taxonomy group (default cast)")
    img: str | None = Field(default=None, description="https URL of a picture")
    href: str | None = Field(default=None, description="https URL of a page about the person")


class EpisodeFunding(_In):
    url: str = Field(description="https URL")
    text: str | None = Field(default=None, description="At most 128 characters (default: Support the show)")


class LocationIn(_In):
    text: str = Field(description="Human-readable place, at most 128 characters")
    geo: str | None = Field(default=None, description="RFC 5870 'geo:latitude,longitude'")
    osm: str | None = Field(default=None, description="OpenStreetMap type and id, e.g. R62422")
    rel: Literal["subject", "creator"] | None = None
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code")


class LicenseIn(_In):
    slug: str = Field(description="License identifier, e.g. cc-by-4.0")
    url: str | None = Field(default=None, description="https URL of the license text (custom licenses)")


class TxtIn(_In):
    text: str = Field(description="At most 4000 characters")
    purpose: str | None = Field(default=None, description="e.g. verify, applepodcastsverify")


class SoundbiteIn(_In):
    start: float | str = Field(description="Seconds or HH:MM:SS[.mmm] into the episode")
    duration: float = Field(description="1 to 300 seconds (apps advise 15 to 120)")
    title: str | None = Field(default=None, description="At most 128 characters")


class EpisodeFields(_In):
    title: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=100_000, description="Show notes; HTML is sanitized")
    season: int | None = Field(default=None, ge=1)
    number: int | None = Field(default=None, ge=1)
    episode_type: Literal["full", "trailer", "bonus"] | None = None
    explicit: bool | None = None
    chapters: list[ChapterIn] | None = None
    persons: list[EpisodePerson] | None = Field(default=None, description="Credits; null: the show's")
    funding: list[EpisodeFunding] | None = None
    location: LocationIn | None = None
    license: LicenseIn | None = None
    txt: list[TxtIn] | None = None
    soundbites: list[SoundbiteIn] | None = None
    season_name: str | None = Field(default=None, description="Name of the season (needs `season`)")
    episode_display: str | None = Field(
        default=None, description="Display text of the number (needs `number`)"
    )
    supporter_only: bool | None = Field(default=None, description="Only in supporters' private feeds")
    audio_feed: bool | None = Field(
        default=None, description="In the audio feed (null: automatic, when the episode has no video)"
    )

    def fields(self) -> dict[str, Any]:
        # Optional keys left out of a nested value stay out (the service fills its defaults).
        return self.model_dump(exclude_unset=True)


class EpisodeCreate(EpisodeFields):
    title: str = Field(default="", max_length=500)


class EpisodeUpdate(EpisodeFields):
    pass


class AssetRead(BaseModel):
    id: str
    role: str
    url: str | None = None
    mime_type: str
    byte_size: int
    sha256: str
    duration: float | None
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    codec: str | None
    kind: str
    width: int | None
    height: int | None
    loudness_in: dict[str, Any] | None
    loudness_out: dict[str, Any] | None
    processing: dict[str, Any]

    @classmethod
    def of(cls, asset: Asset, url: str | None) -> AssetRead:
        data = {name: getattr(asset, name) for name in cls.model_fields if name != "url"}
        return cls(url=url, **data)


class EpisodeRead(BaseModel):
    id: str
    show: str
    guid: str
    title: str
    notes: str
    season: int | None
    number: int | None
    episode_type: str
    explicit: bool
    status: str
    publish_at: datetime | None
    published_at: datetime | None
    publish_when_ready: bool
    chapters: list[dict[str, Any]]
    persons: list[dict[str, Any]] | None = Field(description="Credits; null: the show's apply")
    funding: list[dict[str, Any]]
    location: dict[str, Any] | None
    license: dict[str, Any] | None
    txt: list[dict[str, Any]]
    soundbites: list[dict[str, Any]]
    season_name: str | None
    episode_display: str | None
    supporter_only: bool
    audio_feed: bool | None
    warnings: list[str] = Field(
        default_factory=list, description="Advice that does not block publishing (e.g. soundbite lengths)"
    )
    jobs: list[JobRead] = Field(
        default_factory=list, description="Queued and running jobs of the episode (processing, retagging)"
    )
    last_error: str | None
    media: AssetRead | None = Field(
        description="The main enclosure: the MP3, or the video of a video episode"
    )
    renditions: list[AssetRead] = Field(
        default_factory=list, description="Every rendition of the current media (MP3, AAC, Opus, video)"
    )
    poster: AssetRead | None = Field(default=None, description="Poster frame of a video episode (JPEG)")
    original: AssetRead | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(
        cls,
        episode: Episode,
        media: AssetRead | None,
        original: AssetRead | None,
        renditions: list[AssetRead] | None = None,
        poster: AssetRead | None = None,
        warnings: list[str] | None = None,
        jobs: list[JobRead] | None = None,
    ) -> EpisodeRead:
        return cls(
            id=episode.id,
            show=episode.show.slug,
            guid=episode.guid,
            title=episode.title,
            notes=episode.notes_html,
            season=episode.season,
            number=episode.number,
            episode_type=episode.episode_type,
            explicit=episode.explicit,
            status=episode.status,
            publish_at=episode.publish_at,
            published_at=episode.published_at,
            publish_when_ready=episode.publish_when_ready,
            chapters=episode.chapters,
            persons=episode.persons,
            funding=episode.funding or [],
            location=episode.location,
            license=episode.license,
            txt=episode.txt or [],
            soundbites=episode.soundbites or [],
            season_name=episode.season_name,
            episode_display=episode.episode_display,
            supporter_only=bool(episode.supporter_only),
            audio_feed=episode.audio_feed,
            warnings=warnings or [],
            jobs=jobs or [],
            last_error=episode.last_error,
            media=media,
            renditions=renditions or [],
            poster=poster,
            original=original,
            created_at=episode.created_at,
            updated_at=episode.updated_at,
        )


class PublishRequest(_In):
    at: datetime | None = Field(
        default=None, description="Publish at this time (with a zone); now if omitted"
    )
    when_ready: bool = Field(default=False, description="If still processing, publish as soon as it is ready")


class JobRead(BaseModel):
    id: str
    kind: str
    status: str
    stage: str
    progress: float
    error: str | None
    error_code: str | None
    attempts: int
    episode_id: str | None
    result: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str

    @classmethod
    def of(cls, job: Job) -> JobRead:
        data = {name: getattr(job, name) for name in cls.model_fields if name != "url"}
        return cls(url=f"/api/v1/jobs/{job.id}", **data)


class Problem(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
