"""RSS 2.0 podcast feed generation (iTunes + Podcasting 2.0 namespaces) on top of feedgen."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime

from feedgen.entry import FeedEntry
from feedgen.ext.podcast import PodcastExtension
from feedgen.ext.podcast_entry import PodcastEntryExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from media_pub.errors import InvalidInput
from media_pub.feeds.categories import validate_category
from media_pub.feeds.ext_podcasting20 import CHAPTERS_TYPE, Podcast20EntryExtension, Podcast20Extension
from media_pub.feeds.model import FeedChannel, FeedItem, FeedPerson
from media_pub.feeds.sanitize import clean_text, sanitize_notes, truncate_html

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
GENERATOR = "media_pub"
DESCRIPTION_MAX_BYTES = 4000
SHOW_TYPES = ("episodic", "serial")
EPISODE_TYPES = ("full", "trailer", "bonus")

_APPLE_BOOL = {"yes": "true", "no": "false"}
_RENDER_LOCK = threading.Lock()


def _itunes(name: str) -> str:
    return f"{{{ITUNES_NS}}}{name}"


def _patch_itunes(parent: etree._Element, image_url: str | None) -> None:
    """Rewrite feedgen's yes/no to Apple's documented values and add itunes:image for any URL."""
    explicit = parent.find(_itunes("explicit"))
    if explicit is not None and explicit.text in _APPLE_BOOL:
        explicit.text = _APPLE_BOOL[explicit.text]
    for name in ("block", "complete"):
        el = parent.find(_itunes(name))
        if el is not None and el.text == "yes":
            el.text = "Yes"
    if image_url:
        # feedgen only accepts URLs ending in .jpg/.png (and silently drops others on the channel), which
        # rules out query strings such as cache busters, so the tag is written here instead.
        etree.SubElement(parent, _itunes("image"), href=image_url)


class ItunesExtension(PodcastExtension):
    """feedgen's podcast extension with Apple's true/false explicit, Yes for block/complete, any image URL."""

    def __init__(self) -> None:
        super().__init__()
        self.image_url: str | None = None

    def extend_rss(self, rss_feed: etree._Element) -> etree._Element:
        """Emit the itunes channel tags, then apply the Apple fix-ups."""
        rss_feed = super().extend_rss(rss_feed)
        _patch_itunes(rss_feed[0], self.image_url)
        return rss_feed


class ItunesEntryExtension(PodcastEntryExtension):
    """feedgen's podcast entry extension with Apple's true/false explicit and any image URL."""

    def __init__(self) -> None:
        super().__init__()
        self.image_url: str | None = None

    def extend_rss(self, entry: etree._Element) -> etree._Element:
        """Emit the itunes item tags, then apply the Apple fix-ups."""
        entry = super().extend_rss(entry)
        _patch_itunes(entry, self.image_url)
        return entry


def _t(value: str | None) -> str:
    """Clean and strip a text value for XML (None becomes '')."""
    return clean_text(value or "").strip()


def _opt(value: str | None) -> str | None:
    cleaned = _t(value)
    return cleaned or None


def _cdata_html(notes: str, limit: int | None) -> tuple[etree.CDATA | None, bool]:
    """Sanitize show notes, cut them to `limit` bytes, wrap them in CDATA; also say whether they were cut."""
    html = sanitize_notes(notes).strip()
    if not html:
        return None, False
    short = truncate_html(html, limit) if limit is not None else html
    # "]]>" cannot appear inside CDATA; in HTML "&gt;" means the same as ">".
    return etree.CDATA(short.replace("]]>", "]]&gt;")), short != html


def _positive(n: int | None) -> int | None:
    return n if n is not None and n > 0 else None


def _order_items(items: list[FeedItem], show_type: str) -> list[FeedItem]:
    """Episodic: newest first. Serial: oldest first by season, episode number, then date."""
    if show_type == "serial":

        def serial_key(it: FeedItem) -> tuple[int, float, datetime, str]:
            number = _positive(it.number)
            return (
                _positive(it.season) or 0,
                number if number is not None else math.inf,
                it.pub_date,
                it.guid,
            )

        return sorted(items, key=serial_key)
    return sorted(items, key=lambda it: (it.pub_date, it.guid), reverse=True)


def _add_persons(ext: Podcast20Extension | Podcast20EntryExtension, persons: list[FeedPerson]) -> None:
    for p in persons:
        name = _t(p.name)
        if name:
            ext.podcast_person(name, _opt(p.role), _opt(p.group), _opt(p.img), _opt(p.href))


def _utc(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InvalidInput(f"{what} must be a timezone-aware datetime", code="invalid-feed")
    return dt.astimezone(UTC)


def _channel(fg: FeedGenerator, ch: FeedChannel) -> None:
    title = _t(ch.title)
    link = _t(ch.link)
    if not title or not link:
        raise InvalidInput("a feed needs a channel title and link", code="invalid-feed")
    if ch.show_type not in SHOW_TYPES:
        raise InvalidInput(f"show_type must be one of {', '.join(SHOW_TYPES)}", code="invalid-feed")
    validate_category(ch.category, ch.subcategory)

    fg.title(title)
    description, _ = _cdata_html(ch.description, DESCRIPTION_MAX_BYTES)
    fg.description(description if description is not None else title)  # RSS requires a description
    fg.link(href=_t(ch.feed_url), rel="self", type="application/rss+xml")
    fg.link(href=link, rel="alternate")  # the last alternate link becomes RSS <link>
    fg.language(_t(ch.language))
    fg.lastBuildDate(_utc(ch.last_build, "last_build"))
    fg.generator(GENERATOR)
    if _opt(ch.copyright):
        fg.copyright(_t(ch.copyright))

    image_url = _opt(ch.image_url)
    if image_url:
        fg.image(url=image_url, title=title, link=link)  # plain RSS <image> for non-iTunes readers

    it: ItunesExtension = fg.podcast
    it.image_url = image_url
    if _opt(ch.author):
        it.itunes_author(_t(ch.author))
    owner_name, owner_email = _t(ch.owner_name), _t(ch.owner_email)
    if owner_name and owner_email:
        it.itunes_owner(name=owner_name, email=owner_email)
    category = {"cat": ch.category, "sub": ch.subcategory} if ch.subcategory else {"cat": ch.category}
    it.itunes_category(category, replace=True)
    it.itunes_explicit("yes" if ch.explicit else "no")
    it.itunes_type(ch.show_type)
    if _opt(ch.new_feed_url):
        it.itunes_new_feed_url(_t(ch.new_feed_url))
    if ch.block:
        it.itunes_block(True)
    if ch.complete:
        it.itunes_complete("yes")

    p20: Podcast20Extension = fg.podcast20
    if _opt(ch.podcast_guid):
        p20.podcast_guid(_t(ch.podcast_guid))
    p20.podcast_locked(ch.locked, owner=_opt(ch.owner_email))
    for f in ch.funding:
        url, text = _t(f.url), _t(f.text)
        if url:
            p20.podcast_funding(url, text or url)
    _add_persons(p20, ch.persons)


def _item(fe: FeedEntry, item: FeedItem) -> None:
    title, guid, enclosure_url = _t(item.title), _t(item.guid), _t(item.enclosure_url)
    if not (title and guid and enclosure_url):
        raise InvalidInput(f"episode {item.guid!r} needs a title, guid and enclosure", code="invalid-feed")
    if item.episode_type not in EPISODE_TYPES:
        raise InvalidInput(f"episode_type must be one of {', '.join(EPISODE_TYPES)}", code="invalid-feed")

    fe.title(title)
    description, truncated = _cdata_html(item.description_html, DESCRIPTION_MAX_BYTES)
    if description is not None:
        fe.description(description)
    if truncated:
        full, _ = _cdata_html(item.description_html, None)
        fe.content(full)  # the complete notes go to content:encoded
    if _opt(item.link):
        fe.link(href=_t(item.link), rel="alternate")
    fe.guid(guid, permalink=False)
    fe.pubDate(_utc(item.pub_date, f"pub_date of episode {item.guid!r}"))
    fe.enclosure(enclosure_url, str(max(0, int(item.enclosure_length))), _t(item.enclosure_type))

    it: ItunesEntryExtension = fe.podcast
    it.image_url = _opt(item.image_url)
    if item.duration is not None and math.isfinite(item.duration) and item.duration >= 0:
        it.itunes_duration(str(round(item.duration)))
    it.itunes_explicit("yes" if item.explicit else "no")
    it.itunes_episode_type(item.episode_type)
    season, number = _positive(item.season), _positive(item.number)
    if season is not None:
        it.itunes_season(season)
    if number is not None:
        it.itunes_episode(number)

    p20: Podcast20EntryExtension = fe.podcast20
    if _opt(item.chapters_url):
        p20.podcast_chapters(_t(item.chapters_url), CHAPTERS_TYPE)
    if season is not None:
        p20.podcast_season(season)
    if number is not None:
        p20.podcast_episode(number)
    _add_persons(p20, item.persons)


def build_feed(channel: FeedChannel, items: list[FeedItem]) -> bytes:
    """Render the show and its published items as UTF-8 RSS 2.0 bytes (same input, same bytes)."""
    for item in items:  # before sorting: naive and aware datetimes do not compare
        _utc(item.pub_date, f"pub_date of episode {item.guid!r}")
    fg = FeedGenerator()
    fg.register_extension("podcast", ItunesExtension, ItunesEntryExtension)
    fg.register_extension("podcast20", Podcast20Extension, Podcast20EntryExtension)
    _channel(fg, channel)
    for item in _order_items(items, channel.show_type):
        _item(fg.add_entry(order="append"), item)
    # feedgen formats dates by switching the process-wide locale (locale.setlocale) around strftime;
    # serialise renders so concurrent requests in a thread pool do not interleave those switches.
    with _RENDER_LOCK:
        out: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return out
