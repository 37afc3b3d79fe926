"""RSS 2.0 podcast feed generation (iTunes + Podcasting 2.0 namespaces) on top of feedgen."""

from __future__ import annotations

import base64
import binascii
import math
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.ext.podcast import PodcastExtension
from feedgen.ext.podcast_entry import PodcastEntryExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from media_pub.errors import InvalidInput
from media_pub.feeds.categories import validate_category
from media_pub.feeds.ext_podcasting20 import CHAPTERS_TYPE, Podcast20EntryExtension, Podcast20Extension
from media_pub.feeds.model import (
    FeedAlternateEnclosure,
    FeedChannel,
    FeedContentLink,
    FeedFunding,
    FeedImage,
    FeedItem,
    FeedLicense,
    FeedLiveItem,
    FeedLocation,
    FeedPerson,
    FeedSoundbite,
    FeedTrailer,
    FeedTranscript,
    FeedTxt,
    FeedUpdateFrequency,
)
from media_pub.feeds.sanitize import clean_text, sanitize_notes, truncate_html

ITUNES_NS = "http://www.itunes.com/dtds/podcast-1.0.dtd"
ATOM_NS = "http://www.w3.org/2005/Atom"
GENERATOR = "media_pub"
DESCRIPTION_MAX_BYTES = 4000
SHOW_TYPES = ("episodic", "serial")
EPISODE_TYPES = ("full", "trailer", "bonus")
_BASE_MEDIUMS = (
    "podcast",
    "music",
    "video",
    "film",
    "audiobook",
    "newsletter",
    "blog",
    "publisher",
    "course",
)
MEDIUMS = (*_BASE_MEDIUMS, *(f"{m}L" for m in _BASE_MEDIUMS), "mixed")  # docs/tags/medium.md
LIVE_STATUSES = ("pending", "live", "ended")
LOCATION_RELS = ("subject", "creator")
TRANSCRIPT_RELS = ("captions",)
_SRI = re.compile(r"(sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})")
_SRI_DIGEST_BYTES = {"sha256": 32, "sha384": 48, "sha512": 64}

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


class WebSubExtension(BaseExtension):
    """WebSub discovery: an <atom:link rel="hub"> per hub, right after feedgen's rel="self" link."""

    def __init__(self) -> None:
        self.hubs: list[str] = []
        self.pages: list[tuple[str, str]] = []  # RFC 5005 paging: (rel, href) for first/next/previous/last

    def extend_rss(self, rss_feed: etree._Element) -> etree._Element:
        """Insert the hub links (feedgen itself writes only the first self link to RSS)."""
        channel = rss_feed[0]
        anchor = channel.find(f"{{{ATOM_NS}}}link[@rel='self']")
        at = channel.index(anchor) + 1 if anchor is not None else len(channel)
        links = [("hub", hub) for hub in self.hubs] + self.pages
        for offset, (rel, href) in enumerate(links):
            # SubElement first so the link takes the root's atom prefix, then move it next to rel="self".
            link = etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=href, rel=rel)
            channel.insert(at + offset, link)
        return rss_feed

    def extend_atom(self, atom_feed: etree._Element) -> etree._Element:
        """Atom output is not supported; leave it untouched."""
        return atom_feed


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


def order_items(items: list[FeedItem], show_type: str) -> list[FeedItem]:
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


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid-feed")


def _utc(dt: datetime, what: str) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise _invalid(f"{what} must be a timezone-aware datetime")
    return dt.astimezone(UTC)


def _count(n: int | None) -> int | None:
    """A byte count or pixel size: None stays None, negatives become None."""
    return int(n) if n is not None and n >= 0 else None


def _integrity(value: str | None, what: str) -> tuple[str, str] | None:
    """("sri", value) for a well-formed single-hash SRI string ("sha256-<base64 of 32 bytes>")."""
    sri = _t(value)
    if not sri:
        return None
    m = _SRI.fullmatch(sri)
    try:
        ok = m is not None and len(base64.b64decode(m[2], validate=True)) == _SRI_DIGEST_BYTES[m[1]]
    except binascii.Error:
        ok = False
    if not ok:
        raise _invalid(f"{what}: integrity must be an SRI string such as 'sha256-<base64 digest>'")
    return ("sri", sri)


_AnyP20 = Podcast20Extension | Podcast20EntryExtension


def _add_persons(ext: _AnyP20, persons: Sequence[FeedPerson]) -> None:
    for p in persons:
        name = _t(p.name)
        if name:
            ext.podcast_person(name, _opt(p.role), _opt(p.group), _opt(p.img), _opt(p.href))


def _add_funding(ext: _AnyP20, funding: Sequence[FeedFunding]) -> None:
    for f in funding:
        url, text = _t(f.url), _t(f.text)
        if url:
            ext.podcast_funding(url, text or url)


def _add_locations(ext: _AnyP20, locations: Sequence[FeedLocation]) -> None:
    for loc in locations:
        text = _t(loc.text)
        if not text:
            continue
        rel = _opt(loc.rel)
        if rel is not None and rel not in LOCATION_RELS:
            raise _invalid(f"location rel must be one of {', '.join(LOCATION_RELS)}")
        geo = _opt(loc.geo)
        if geo is not None and not geo.lower().startswith("geo:"):
            geo = f"geo:{geo}"
        ext.podcast_location(text, geo=geo, osm=_opt(loc.osm), rel=rel, country=_opt(loc.country))


def _add_license(ext: _AnyP20, license_: FeedLicense | None) -> None:
    if license_ is not None and _t(license_.slug):
        ext.podcast_license(_t(license_.slug), _opt(license_.url))


def _add_images(ext: _AnyP20, images: Sequence[FeedImage]) -> None:
    for img in images:
        href = _t(img.href)
        if href:
            ext.podcast_image(
                href,
                alt=_opt(img.alt),
                aspect_ratio=_opt(img.aspect_ratio),
                width=_positive(img.width),
                height=_positive(img.height),
                type_=_opt(img.type),
                purpose=_opt(img.purpose),
            )


def _add_txts(ext: _AnyP20, txts: Sequence[FeedTxt]) -> None:
    for txt in txts:
        text = _t(txt.text)
        if text:
            ext.podcast_txt(text, _opt(txt.purpose))


def _add_alternate_enclosures(
    ext: Podcast20EntryExtension, enclosures: Sequence[FeedAlternateEnclosure], what: str
) -> None:
    for alt in enclosures:
        type_ = _t(alt.type)
        sources = [(uri, _opt(s.content_type)) for s in alt.sources if (uri := _t(s.uri))]
        if not type_ or not sources:
            raise _invalid(f"{what}: an alternateEnclosure needs a type and at least one source")
        bitrate = alt.bitrate if alt.bitrate is not None and math.isfinite(alt.bitrate) else None
        ext.podcast_alternate_enclosure(
            type_,
            sources,
            length=_count(alt.length),
            bitrate=bitrate if bitrate is not None and bitrate > 0 else None,
            height=_positive(alt.height),
            lang=_opt(alt.lang),
            title=_opt(alt.title),
            rel=_opt(alt.rel),
            codecs=_opt(alt.codecs),
            default=alt.default,
            integrity=_integrity(alt.integrity, what),
        )


def _add_content_links(ext: Podcast20EntryExtension, links: Sequence[FeedContentLink]) -> int:
    """Add the links that have an href; return how many were added."""
    added = 0
    for link in links:
        href = _t(link.href)
        if href:
            ext.podcast_content_link(href, _t(link.text))
            added += 1
    return added


def _add_transcripts(ext: Podcast20EntryExtension, transcripts: Sequence[FeedTranscript], what: str) -> None:
    for tr in transcripts:
        url, type_, rel = _t(tr.url), _t(tr.type), _opt(tr.rel)
        if not url:
            continue
        if not type_:
            raise _invalid(f"{what}: transcript {url!r} needs a MIME type")
        if rel is not None and rel not in TRANSCRIPT_RELS:
            raise _invalid(f"{what}: transcript rel must be 'captions' or unset")
        ext.podcast_transcript(url, type_, _opt(tr.language), rel)


def _add_soundbites(ext: Podcast20EntryExtension, soundbites: Sequence[FeedSoundbite], what: str) -> None:
    for sb in soundbites:
        start, duration = float(sb.start), float(sb.duration)
        if not (math.isfinite(start) and math.isfinite(duration) and start >= 0 and duration > 0):
            raise _invalid(f"{what}: a soundbite needs a start >= 0 and a duration > 0 (seconds)")
        ext.podcast_soundbite(start, duration, _opt(sb.title))


def _add_update_frequency(p20: Podcast20Extension, uf: FeedUpdateFrequency | None) -> None:
    if uf is None:
        return
    text, rrule = _t(uf.text), _opt(uf.rrule)
    if not text:
        raise _invalid("updateFrequency needs a display text")
    if rrule is not None and "COUNT=" in rrule.upper() and uf.dtstart is None:
        raise _invalid("updateFrequency: an rrule with COUNT needs dtstart")
    dtstart = uf.dtstart
    if isinstance(dtstart, datetime):
        dtstart = _utc(dtstart, "updateFrequency dtstart")
    p20.podcast_update_frequency(text, rrule=rrule, complete=uf.complete, dtstart=dtstart)


def _add_trailers(p20: Podcast20Extension, trailers: Sequence[FeedTrailer]) -> None:
    for tr in trailers:
        url, title = _t(tr.url), _t(tr.title)
        if not url:
            continue
        if not title:
            raise _invalid(f"trailer {url!r} needs a title")
        p20.podcast_trailer(
            url,
            title,
            _utc(tr.pub_date, f"pub_date of trailer {url!r}"),
            length=_count(tr.length),
            type_=_opt(tr.type),
            season=_positive(tr.season),
        )


def _channel(fg: FeedGenerator, ch: FeedChannel) -> None:
    title = _t(ch.title)
    link = _t(ch.link)
    if not title or not link:
        raise _invalid("a feed needs a channel title and link")
    if ch.show_type not in SHOW_TYPES:
        raise _invalid(f"show_type must be one of {', '.join(SHOW_TYPES)}")
    if ch.medium not in MEDIUMS:
        raise _invalid(f"medium must be one of {', '.join(MEDIUMS)}")
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
    websub: WebSubExtension = fg.websub
    websub.hubs = [hub for h in ch.hubs if (hub := _t(h))]
    websub.pages = [(rel, href) for rel, h in ch.page_links if (href := _t(h))]

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
    p20.podcast_medium(ch.medium)
    p20.podcast_locked(ch.locked, owner=_opt(ch.owner_email))
    _add_funding(p20, ch.funding)
    _add_persons(p20, ch.persons)
    _add_locations(p20, ch.locations)
    _add_license(p20, ch.license)
    _add_images(p20, ch.images)
    _add_txts(p20, ch.txts)
    _add_update_frequency(p20, ch.update_frequency)
    if ch.uses_podping is not None:
        p20.podcast_podping(ch.uses_podping)
    _add_trailers(p20, ch.trailers)
    for live in sorted(ch.live_items, key=lambda li: (_utc(li.start, "start of a live item"), li.guid)):
        _live_item(p20, live)


def _live_item(p20: Podcast20Extension, live: FeedLiveItem) -> None:
    title, guid = _t(live.title), _t(live.guid)
    what = f"live item {live.guid!r}"
    if not (title and guid):
        raise _invalid(f"{what} needs a title and guid")
    if live.status not in LIVE_STATUSES:
        raise _invalid(f"{what}: status must be one of {', '.join(LIVE_STATUSES)}")
    start = _utc(live.start, f"start of {what}")
    end = _utc(live.end, f"end of {what}") if live.end is not None else None
    if end is not None and end < start:
        raise _invalid(f"{what} ends before it starts")

    fe = FeedEntry()
    fe.register_extension("podcast20", Podcast20EntryExtension)
    fe.title(title)
    description, _ = _cdata_html(live.description_html, DESCRIPTION_MAX_BYTES)
    if description is not None:
        fe.description(description)
    fe.guid(guid, permalink=False)
    enclosure_url = _opt(live.enclosure_url)
    if enclosure_url:
        if not _opt(live.enclosure_type):
            raise _invalid(f"{what}: the fallback enclosure needs a MIME type")
        fe.enclosure(enclosure_url, str(max(0, int(live.enclosure_length))), _t(live.enclosure_type))

    ext: Podcast20EntryExtension = fe.podcast20
    _add_persons(ext, live.persons)
    _add_locations(ext, live.locations)
    _add_funding(ext, live.funding)
    _add_images(ext, live.images)
    _add_alternate_enclosures(ext, live.alternate_enclosures, what)
    # docs/tags/live-item.md: contentLink is required, the fallback for apps that cannot play the stream
    if not _add_content_links(ext, live.content_links):
        raise _invalid(f"{what} needs a contentLink (the page where the stream can be watched)")
    p20.podcast_live_item(fe, live.status, start, end)


def _item(fe: FeedEntry, item: FeedItem) -> None:
    title, guid, enclosure_url = _t(item.title), _t(item.guid), _t(item.enclosure_url)
    what = f"episode {item.guid!r}"
    if not (title and guid and enclosure_url):
        raise _invalid(f"{what} needs a title, guid and enclosure")
    if item.episode_type not in EPISODE_TYPES:
        raise _invalid(f"episode_type must be one of {', '.join(EPISODE_TYPES)}")

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
    fe.pubDate(_utc(item.pub_date, f"pub_date of {what}"))
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
    if item.block:
        it.itunes_block(True)

    p20: Podcast20EntryExtension = fe.podcast20
    if _opt(item.chapters_url):
        p20.podcast_chapters(_t(item.chapters_url), CHAPTERS_TYPE)
    _add_transcripts(p20, item.transcripts, what)
    _add_soundbites(p20, item.soundbites, what)
    if season is not None:
        p20.podcast_season(season, _opt(item.season_name))
    if number is not None:
        p20.podcast_episode(number, _opt(item.episode_display))
    _add_persons(p20, item.persons)
    _add_locations(p20, item.locations)
    _add_funding(p20, item.funding)
    _add_license(p20, item.license)
    _add_images(p20, item.images)
    _add_txts(p20, item.txts)
    _add_alternate_enclosures(p20, item.alternate_enclosures, what)
    _add_content_links(p20, item.content_links)


def build_feed(channel: FeedChannel, items: list[FeedItem]) -> bytes:
    """Render the show, its live items and its published items as UTF-8 RSS 2.0 (same input, same bytes)."""
    for item in items:  # before sorting: naive and aware datetimes do not compare
        _utc(item.pub_date, f"pub_date of episode {item.guid!r}")
    fg = FeedGenerator()
    fg.register_extension("podcast", ItunesExtension, ItunesEntryExtension)
    fg.register_extension("podcast20", Podcast20Extension, Podcast20EntryExtension)
    fg.register_extension("websub", WebSubExtension, atom=False)
    _channel(fg, channel)
    for item in order_items(items, channel.show_type):
        _item(fg.add_entry(order="append"), item)
    # feedgen formats dates by switching the process-wide locale (locale.setlocale) around strftime;
    # serialise renders so concurrent requests in a thread pool do not interleave those switches.
    with _RENDER_LOCK:
        out: bytes = fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True)
    return out
