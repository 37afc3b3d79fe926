"""Plain input values for feed generation, built by the service layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FeedPerson:
    """A podcast:person credit (Podcasting 2.0 taxonomy role/group)."""

    name: str
    role: str = "host"
    group: str = "cast"
    img: str | None = None
    href: str | None = None


@dataclass(frozen=True)
class FeedFunding:
    """A podcast:funding link; text is shown to listeners (at most 128 characters are used)."""

    url: str
    text: str


@dataclass(frozen=True)
class FeedChannel:
    """Show-level feed metadata."""

    title: str
    description: str
    link: str
    feed_url: str
    language: str
    author: str
    owner_name: str
    owner_email: str
    image_url: str | None
    category: str
    subcategory: str | None
    explicit: bool
    show_type: str
    copyright: str | None
    funding: list[FeedFunding]
    persons: list[FeedPerson]
    locked: bool
    podcast_guid: str
    last_build: datetime
    new_feed_url: str | None = None
    block: bool = False
    complete: bool = False


@dataclass(frozen=True)
class FeedItem:
    """One published episode; `persons`, when given, replaces the channel's person list for this item."""

    guid: str
    title: str
    description_html: str
    link: str | None
    pub_date: datetime
    enclosure_url: str
    enclosure_length: int
    enclosure_type: str
    duration: float | None
    explicit: bool
    episode_type: str
    season: int | None
    number: int | None
    image_url: str | None
    chapters_url: str | None
    persons: list[FeedPerson] = field(default_factory=list)
