"""feedgen extension for the Podcasting 2.0 namespace https://podcastindex.org/namespace/1.0 (prefix podcast).

Register it with ``fg.register_extension("podcast20", Podcast20Extension, Podcast20EntryExtension)``; the
channel values are then set through ``fg.podcast20`` and the item values through ``fe.podcast20``.
Values are written as given: callers pass text that is already XML-safe (see sanitize.clean_text).
"""

from __future__ import annotations

from dataclasses import dataclass

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from lxml import etree

PODCAST_NS = "https://podcastindex.org/namespace/1.0"
PODCAST_PREFIX = "podcast"
CHAPTERS_TYPE = "application/json+chapters"
MAX_TEXT = 128  # podcast:funding and podcast:person text limit


def _short(text: str, limit: int = MAX_TEXT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _sub(parent: etree._Element, name: str, text: str | None = None, **attrs: str | None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{PODCAST_NS}}}{name}")
    for key, value in attrs.items():
        if value is not None:
            el.set(key, value)
    if text is not None:
        el.text = text
    return el


@dataclass(frozen=True)
class _Person:
    name: str
    role: str | None
    group: str | None
    img: str | None
    href: str | None


def _write_persons(parent: etree._Element, persons: list[_Person]) -> None:
    for p in persons:
        _sub(parent, "person", _short(p.name), role=p.role, group=p.group, img=p.img, href=p.href)


class Podcast20Extension(BaseExtension):
    """Channel-level Podcasting 2.0 tags: guid, locked, funding, person."""

    def __init__(self) -> None:
        self._guid: str | None = None
        self._locked: bool | None = None
        self._locked_owner: str | None = None
        self._funding: list[tuple[str, str]] = []
        self._persons: list[_Person] = []

    def extend_ns(self) -> dict[str, str]:
        """Declare the podcast prefix on the feed root."""
        return {PODCAST_PREFIX: PODCAST_NS}

    def extend_rss(self, rss_feed: etree._Element) -> etree._Element:
        """Append the channel tags to <channel> (called by feedgen before the items are added)."""
        channel = rss_feed[0]
        if self._guid:
            _sub(channel, "guid", self._guid)
        if self._locked is not None:
            _sub(channel, "locked", "yes" if self._locked else "no", owner=self._locked_owner)
        for url, text in self._funding:
            _sub(channel, "funding", _short(text), url=url)
        _write_persons(channel, self._persons)
        return rss_feed

    def extend_atom(self, atom_feed: etree._Element) -> etree._Element:
        """Atom output is not supported; leave it untouched."""
        return atom_feed

    def podcast_guid(self, guid: str | None = None) -> str | None:
        """Get or set podcast:guid (the show's permanent UUIDv5)."""
        if guid is not None:
            self._guid = guid
        return self._guid

    def podcast_locked(self, locked: bool | None = None, owner: str | None = None) -> bool | None:
        """Get or set podcast:locked (yes/no) with the owner e-mail attribute."""
        if locked is not None:
            self._locked = locked
            self._locked_owner = owner or None
        return self._locked

    def podcast_funding(self, url: str, text: str) -> None:
        """Add a podcast:funding link; the text is cut to 128 characters."""
        self._funding.append((url, text))

    def podcast_person(
        self,
        name: str,
        role: str | None = None,
        group: str | None = None,
        img: str | None = None,
        href: str | None = None,
    ) -> None:
        """Add a channel podcast:person."""
        self._persons.append(_Person(name, role, group, img, href))


class Podcast20EntryExtension(BaseEntryExtension):
    """Item-level Podcasting 2.0 tags: chapters, season, episode, person."""

    def __init__(self) -> None:
        self._chapters: tuple[str, str] | None = None
        self._season: int | None = None
        self._episode: int | None = None
        self._persons: list[_Person] = []

    def extend_rss(self, entry: etree._Element) -> etree._Element:
        """Append the item tags to <item>."""
        if self._chapters is not None:
            url, type_ = self._chapters
            _sub(entry, "chapters", url=url, type=type_)
        if self._season is not None:
            _sub(entry, "season", str(self._season))
        if self._episode is not None:
            _sub(entry, "episode", str(self._episode))
        _write_persons(entry, self._persons)
        return entry

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        """Atom output is not supported; leave it untouched."""
        return entry

    def podcast_chapters(self, url: str, type_: str = CHAPTERS_TYPE) -> None:
        """Set podcast:chapters (url + MIME type of the JSON chapters file)."""
        self._chapters = (url, type_)

    def podcast_season(self, season: int) -> None:
        """Set podcast:season (integer)."""
        self._season = int(season)

    def podcast_episode(self, episode: int) -> None:
        """Set podcast:episode (number)."""
        self._episode = int(episode)

    def podcast_person(
        self,
        name: str,
        role: str | None = None,
        group: str | None = None,
        img: str | None = None,
        href: str | None = None,
    ) -> None:
        """Add an item podcast:person (an item list replaces the channel list in clients)."""
        self._persons.append(_Person(name, role, group, img, href))
