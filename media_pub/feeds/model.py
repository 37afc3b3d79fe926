"""Plain input values for feed generation, built by the service layer.

Every field added after the first release has a default, so older callers keep working. URLs are written as
given (an https check runs elsewhere); empty optional values are simply left out of the feed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


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
class FeedLocation:
    """A podcast:location; `geo` as "geo:lat,lon" (the "geo:" prefix is added if missing), `osm` as "R113314".

    `rel` is "subject" (what the content is about, the default when unset) or "creator" (where it was made).
    """

    text: str
    geo: str | None = None
    osm: str | None = None
    rel: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class FeedLicense:
    """A podcast:license: an SPDX-style slug such as "cc-by-4.0"; custom licenses need the `url`."""

    slug: str
    url: str | None = None


@dataclass(frozen=True)
class FeedImage:
    """A podcast:image; `aspect_ratio` in CSS form ("16/9"), `purpose` as tokens ("artwork social")."""

    href: str
    alt: str | None = None
    aspect_ratio: str | None = None
    width: int | None = None
    height: int | None = None
    type: str | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class FeedTxt:
    """A podcast:txt record, e.g. purpose="applepodcastsverify" with the code Apple gave."""

    text: str
    purpose: str | None = None


@dataclass(frozen=True)
class FeedUpdateFrequency:
    """podcast:updateFrequency: display text, RFC 5545 rrule ("FREQ=WEEKLY"), dtstart (needed with COUNT)."""

    text: str
    rrule: str | None = None
    complete: bool = False
    dtstart: datetime | date | None = None


@dataclass(frozen=True)
class FeedTrailer:
    """A channel podcast:trailer: an enclosure-like file with a title, a publication date, a season."""

    url: str
    title: str
    pub_date: datetime
    length: int | None = None
    type: str | None = None
    season: int | None = None


@dataclass(frozen=True)
class FeedTranscript:
    """A podcast:transcript link; rel="captions" marks a timed captions file."""

    url: str
    type: str
    language: str | None = None
    rel: str | None = None


@dataclass(frozen=True)
class FeedSoundbite:
    """A podcast:soundbite: `start` and `duration` in seconds (15-120 s advised), optional title."""

    start: float
    duration: float
    title: str | None = None


@dataclass(frozen=True)
class FeedSource:
    """A podcast:source inside an alternate enclosure; `content_type` when the transport differs (torrent)."""

    uri: str
    content_type: str | None = None


@dataclass(frozen=True)
class FeedAlternateEnclosure:
    """A podcast:alternateEnclosure for one rendition; `integrity` is an SRI string "sha256-<base64>".

    `default` marks the rendition that is the same file as the item's <enclosure>.
    """

    type: str
    sources: list[FeedSource]
    length: int | None = None
    bitrate: float | None = None
    height: int | None = None
    lang: str | None = None
    title: str | None = None
    rel: str | None = None
    codecs: str | None = None
    default: bool = False
    integrity: str | None = None


@dataclass(frozen=True)
class FeedContentLink:
    """A podcast:contentLink: where the content can be watched or heard outside the app."""

    href: str
    text: str = ""


@dataclass(frozen=True)
class FeedLiveItem:
    """A podcast:liveItem (a live stream); status pending|live|ended, `start` required, `content_links` >= 1.

    The optional enclosure is the fallback stream for apps without alternateEnclosure support.
    """

    guid: str
    title: str
    status: str
    start: datetime
    content_links: list[FeedContentLink]
    end: datetime | None = None
    description_html: str = ""
    enclosure_url: str | None = None
    enclosure_type: str | None = None
    enclosure_length: int = 0
    alternate_enclosures: list[FeedAlternateEnclosure] = field(default_factory=list)
    persons: list[FeedPerson] = field(default_factory=list)
    images: list[FeedImage] = field(default_factory=list)
    funding: list[FeedFunding] = field(default_factory=list)
    locations: list[FeedLocation] = field(default_factory=list)


@dataclass(frozen=True)
class FeedChannel:
    """Show-level feed metadata; `hubs` are WebSub hub URLs, `live_items` the show's live streams."""

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
    medium: str = "podcast"
    locations: list[FeedLocation] = field(default_factory=list)
    license: FeedLicense | None = None
    images: list[FeedImage] = field(default_factory=list)
    txts: list[FeedTxt] = field(default_factory=list)
    update_frequency: FeedUpdateFrequency | None = None
    uses_podping: bool | None = None
    trailers: list[FeedTrailer] = field(default_factory=list)
    hubs: list[str] = field(default_factory=list)
    live_items: list[FeedLiveItem] = field(default_factory=list)
    page_links: list[tuple[str, str]] = field(default_factory=list)  # RFC 5005 (rel, href), after hubs


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
    season_name: str | None = None
    episode_display: str | None = None
    funding: list[FeedFunding] = field(default_factory=list)
    locations: list[FeedLocation] = field(default_factory=list)
    transcripts: list[FeedTranscript] = field(default_factory=list)
    soundbites: list[FeedSoundbite] = field(default_factory=list)
    license: FeedLicense | None = None
    txts: list[FeedTxt] = field(default_factory=list)
    images: list[FeedImage] = field(default_factory=list)
    alternate_enclosures: list[FeedAlternateEnclosure] = field(default_factory=list)
    content_links: list[FeedContentLink] = field(default_factory=list)
    block: bool = False
