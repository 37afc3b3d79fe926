"""feedgen extension for the Podcasting 2.0 namespace https://podcastindex.org/namespace/1.0 (prefix podcast).

Register it with ``fg.register_extension("podcast20", Podcast20Extension, Podcast20EntryExtension)``; the
channel values are then set through ``fg.podcast20`` and the item values through ``fe.podcast20``.
Values are written as given: callers pass text that is already XML-safe (see sanitize.clean_text) and check
required values. Attributes whose value is None or empty are left out; tags come out in a fixed order
(``CHANNEL_ORDER``, ``ITEM_ORDER``), repeated tags in the order they were added.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from lxml import etree

if TYPE_CHECKING:
    from feedgen.entry import FeedEntry

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
PODCAST_PREFIX = "podcast"
CHAPTERS_TYPE = "application/json+chapters"
MAX_TEXT = 128  # the "please do not exceed" limit of most display texts (funding, person, location, ...)
MAX_SHORT = 32  # episode display and alternateEnclosure title

CHANNEL_ORDER = (
    "guid",
    "medium",
    "locked",
    "funding",
    "person",
    "location",
    "license",
    "image",
    "txt",
    "updateFrequency",
    "podping",
    "trailer",
)
ITEM_ORDER = (
    "chapters",
    "transcript",
    "soundbite",
    "season",
    "episode",
    "person",
    "location",
    "funding",
    "license",
    "image",
    "txt",
    "alternateEnclosure",
    "contentLink",
)

AttrValue = str | int | float | bool | None


def _short(text: str, limit: int = MAX_TEXT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_number(value: int | float) -> str:
    """Integers as they are; other numbers with one to three decimals ("73.0", "42.25"), never exponents."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    text = f"{round(value, 3):.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def format_iso(value: datetime | date) -> str:
    """ISO 8601 as JavaScript's toISOString writes it (UTC, milliseconds, "Z"); a date stays a date."""
    if not isinstance(value, datetime):
        return value.isoformat()
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def format_rfc2822(value: datetime) -> str:
    """RFC 2822 date in UTC ("Tue, 05 Mar 2024 12:00:00 +0000"), independent of the process locale."""
    return format_datetime(value.astimezone(UTC))


def sri_sha256(hex_digest: str) -> str:
    """The SRI string ("sha256-<base64>") for a SHA-256 digest given in hex, as stored for assets."""
    raw = bytes.fromhex(hex_digest)
    if len(raw) != 32:
        raise ValueError("a SHA-256 digest has 32 bytes")
    return "sha256-" + base64.b64encode(raw).decode("ascii")


def _attr(value: AttrValue) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    return value


@dataclass(frozen=True)
class _Node:
    """One podcast:* element to write: text, attributes in writing order, child nodes."""

    name: str
    text: str | None
    attrs: tuple[tuple[str, str], ...]
    children: tuple[_Node, ...] = ()

    def write(self, parent: etree._Element) -> etree._Element:
        el = etree.SubElement(parent, f"{{{PODCAST_NS}}}{self.name}")
        for key, value in self.attrs:
            el.set(key, value)
        if self.text is not None:
            el.text = self.text
        for child in self.children:
            child.write(el)
        return el


def node(
    name: str,
    text: str | None = None,
    attrs: Iterable[tuple[str, AttrValue]] = (),
    children: Iterable[_Node] = (),
) -> _Node:
    """Build a node, dropping attributes whose value is None or empty."""
    kept = tuple((k, v) for k, raw in attrs if (v := _attr(raw)) is not None)
    return _Node(name, text or None, kept, tuple(children))


class _Tags:
    """The podcast:* tags of one parent element; tags shared by channel, item and liveItem."""

    _order: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._nodes: dict[str, list[_Node]] = {}

    def _add(self, n: _Node, *, single: bool = False) -> None:
        if single:
            self._nodes[n.name] = [n]
        else:
            self._nodes.setdefault(n.name, []).append(n)

    def _write_tags(self, parent: etree._Element) -> None:
        for name in self._order:
            for n in self._nodes.get(name, ()):
                n.write(parent)

    def podcast_funding(self, url: str, text: str) -> None:
        """Add a podcast:funding link; the text is cut to 128 characters."""
        self._add(node("funding", _short(text), [("url", url)]))

    def podcast_person(
        self,
        name: str,
        role: str | None = None,
        group: str | None = None,
        img: str | None = None,
        href: str | None = None,
    ) -> None:
        """Add a podcast:person (an item list replaces the channel list in clients)."""
        attrs = [("role", role), ("group", group), ("img", img), ("href", href)]
        self._add(node("person", _short(name), attrs))

    def podcast_location(
        self,
        text: str,
        geo: str | None = None,
        osm: str | None = None,
        rel: str | None = None,
        country: str | None = None,
    ) -> None:
        """Add a podcast:location (geo "geo:lat,lon", osm "R113314", rel subject|creator, country code)."""
        attrs = [("rel", rel), ("geo", geo), ("osm", osm), ("country", country)]
        self._add(node("location", _short(text), attrs))

    def podcast_license(self, slug: str, url: str | None = None) -> None:
        """Set podcast:license (a license slug; `url` is required for custom licenses)."""
        self._add(node("license", slug, [("url", url)]), single=True)

    def podcast_image(
        self,
        href: str,
        alt: str | None = None,
        aspect_ratio: str | None = None,
        width: int | None = None,
        height: int | None = None,
        type_: str | None = None,
        purpose: str | None = None,
    ) -> None:
        """Add a podcast:image (alt, aspect-ratio and width are recommended)."""
        attrs: list[tuple[str, AttrValue]] = [
            ("href", href),
            ("alt", alt),
            ("aspect-ratio", aspect_ratio),
            ("width", width),
            ("height", height),
            ("type", type_),
            ("purpose", purpose),
        ]
        self._add(node("image", None, attrs))

    def podcast_txt(self, text: str, purpose: str | None = None) -> None:
        """Add a podcast:txt record (kept verbatim: it often carries a verification code)."""
        self._add(node("txt", text, [("purpose", purpose)]))


@dataclass(frozen=True)
class _LiveItem:
    entry: FeedEntry
    status: str
    start: datetime
    end: datetime | None


class Podcast20Extension(_Tags, BaseExtension):
    """Channel-level Podcasting 2.0 tags, in ``CHANNEL_ORDER``, then the podcast:liveItem elements."""

    _order = CHANNEL_ORDER

    def __init__(self) -> None:
        super().__init__()
        self._guid: str | None = None
        self._locked: bool | None = None
        self._live_items: list[_LiveItem] = []

    def extend_ns(self) -> dict[str, str]:
        """Declare the podcast prefix on the feed root."""
        return {PODCAST_PREFIX: PODCAST_NS}

    def extend_rss(self, rss_feed: etree._Element) -> etree._Element:
        """Append the channel tags and live items to <channel> (feedgen adds the items after this)."""
        channel = rss_feed[0]
        self._write_tags(channel)
        for live in self._live_items:
            el = live.entry.rss_entry()
            # Retag only once it sits in the tree, so the root's podcast prefix is used for it.
            channel.append(el)
            el.tag = f"{{{PODCAST_NS}}}liveItem"
            el.set("status", live.status)
            el.set("start", format_iso(live.start))
            if live.end is not None:
                el.set("end", format_iso(live.end))
        return rss_feed

    def extend_atom(self, atom_feed: etree._Element) -> etree._Element:
        """Atom output is not supported; leave it untouched."""
        return atom_feed

    def podcast_guid(self, guid: str | None = None) -> str | None:
        """Get or set podcast:guid (the show's permanent UUIDv5)."""
        if guid is not None:
            self._guid = guid
            self._add(node("guid", guid), single=True)
        return self._guid

    def podcast_locked(self, locked: bool | None = None, owner: str | None = None) -> bool | None:
        """Get or set podcast:locked (yes/no) with the owner e-mail attribute."""
        if locked is not None:
            self._locked = locked
            self._add(node("locked", "yes" if locked else "no", [("owner", owner)]), single=True)
        return self._locked

    def podcast_medium(self, medium: str) -> None:
        """Set podcast:medium (podcast, video, music, ... or a list medium such as mixed)."""
        self._add(node("medium", medium), single=True)

    def podcast_update_frequency(
        self,
        text: str,
        rrule: str | None = None,
        complete: bool = False,
        dtstart: datetime | date | None = None,
    ) -> None:
        """Set podcast:updateFrequency; complete="true" is written only when set."""
        attrs: list[tuple[str, AttrValue]] = [
            ("complete", True if complete else None),
            ("dtstart", format_iso(dtstart) if dtstart is not None else None),
            ("rrule", rrule),
        ]
        self._add(node("updateFrequency", _short(text), attrs), single=True)

    def podcast_podping(self, uses_podping: bool) -> None:
        """Set podcast:podping usesPodping="true|false"."""
        self._add(node("podping", None, [("usesPodping", bool(uses_podping))]), single=True)

    def podcast_trailer(
        self,
        url: str,
        title: str,
        pub_date: datetime,
        length: int | None = None,
        type_: str | None = None,
        season: int | None = None,
    ) -> None:
        """Add a podcast:trailer (pubdate is written as RFC 2822 in UTC)."""
        attrs: list[tuple[str, AttrValue]] = [
            ("url", url),
            ("pubdate", format_rfc2822(pub_date)),
            ("length", length),
            ("type", type_),
            ("season", season),
        ]
        self._add(node("trailer", _short(title), attrs))

    def podcast_live_item(
        self, entry: FeedEntry, status: str, start: datetime, end: datetime | None = None
    ) -> None:
        """Add a podcast:liveItem rendered from a feedgen entry (with this extension registered on it)."""
        self._live_items.append(_LiveItem(entry, status, start, end))


class Podcast20EntryExtension(_Tags, BaseEntryExtension):
    """Item-level (and liveItem-level) Podcasting 2.0 tags, in ``ITEM_ORDER``."""

    _order = ITEM_ORDER

    def extend_rss(self, entry: etree._Element) -> etree._Element:
        """Append the item tags to <item>."""
        self._write_tags(entry)
        return entry

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        """Atom output is not supported; leave it untouched."""
        return entry

    def podcast_chapters(self, url: str, type_: str = CHAPTERS_TYPE) -> None:
        """Set podcast:chapters (url + MIME type of the JSON chapters file)."""
        self._add(node("chapters", None, [("url", url), ("type", type_)]), single=True)

    def podcast_season(self, season: int, name: str | None = None) -> None:
        """Set podcast:season (integer) with an optional season name."""
        name = _short(name) if name else None
        self._add(node("season", str(int(season)), [("name", name)]), single=True)

    def podcast_episode(self, episode: int | float, display: str | None = None) -> None:
        """Set podcast:episode (a decimal number) with an optional display string (at most 32 characters)."""
        display = _short(display, MAX_SHORT) if display else None
        self._add(node("episode", format_number(episode), [("display", display)]), single=True)

    def podcast_transcript(
        self, url: str, type_: str, language: str | None = None, rel: str | None = None
    ) -> None:
        """Add a podcast:transcript; rel="captions" marks a timed captions file."""
        attrs = [("url", url), ("type", type_), ("language", language), ("rel", rel)]
        self._add(node("transcript", None, attrs))

    def podcast_soundbite(self, start: float, duration: float, title: str | None = None) -> None:
        """Add a podcast:soundbite (startTime and duration in seconds)."""
        attrs = [("startTime", float(start)), ("duration", float(duration))]
        self._add(node("soundbite", _short(title) if title else None, attrs))

    def podcast_alternate_enclosure(
        self,
        type_: str,
        sources: Iterable[tuple[str, str | None]],
        *,
        length: int | None = None,
        bitrate: float | None = None,
        height: int | None = None,
        lang: str | None = None,
        title: str | None = None,
        rel: str | None = None,
        codecs: str | None = None,
        default: bool = False,
        integrity: tuple[str, str] | None = None,
    ) -> None:
        """Add a podcast:alternateEnclosure: (uri, contentType) sources and a (type, value) integrity."""
        children = [node("source", None, [("uri", uri), ("contentType", ct)]) for uri, ct in sources]
        if integrity is not None:
            children.append(node("integrity", None, [("type", integrity[0]), ("value", integrity[1])]))
        attrs: list[tuple[str, AttrValue]] = [
            ("type", type_),
            ("length", length),
            ("bitrate", bitrate),
            ("height", height),
            ("lang", lang),
            ("title", _short(title, MAX_SHORT) if title else None),
            ("rel", rel),
            ("codecs", codecs),
            ("default", True if default else None),
        ]
        self._add(node("alternateEnclosure", None, attrs, children))

    def podcast_content_link(self, href: str, text: str = "") -> None:
        """Add a podcast:contentLink (where the content can be found outside the app)."""
        self._add(node("contentLink", text, [("href", href)]))
