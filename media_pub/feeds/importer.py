"""Read an existing RSS podcast feed (Anchor, Libsyn, Castopod...) into plain values for a show moving in.

Strict about safety: the XML goes through defusedxml with DTDs, entity declarations and external references
forbidden, so a feed can neither expand entities nor make the parser read a file or open a connection.
Tolerant about everything else: namespace URIs match without regard to case or a trailing slash (both
Podcasting 2.0 URIs count), element names compare in lower case, yes/no/true/false/clean in any case, and
HTML entities such as &nbsp; outside CDATA are read as the characters they name.
"""

from __future__ import annotations

import codecs
import hashlib
import html
import html.entities
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import fromstring

from media_pub.errors import InvalidInput
from media_pub.feeds.model import FeedFunding, FeedPerson, FeedSoundbite, FeedTranscript

# Canonical prefixes for the namespaces read here; keys are lower case without a trailing slash.
_NAMESPACES = {
    "http://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "https://www.itunes.com/dtds/podcast-1.0.dtd": "itunes",
    "https://podcastindex.org/namespace/1.0": "podcast",
    "http://podcastindex.org/namespace/1.0": "podcast",
    "https://github.com/podcastindex-org/podcast-namespace/blob/main/docs/1.0.md": "podcast",
    "http://purl.org/rss/1.0/modules/content": "content",
    "http://www.w3.org/2005/atom": "atom",
    "http://purl.org/dc/elements/1.1": "dc",
    "http://www.google.com/schemas/play-podcasts/1.0": "googleplay",
}
_TRUE = frozenset({"yes", "true", "explicit", "1"})
_FALSE = frozenset({"no", "false", "clean", "0"})
SHOW_TYPES = frozenset({"episodic", "serial"})
EPISODE_TYPES = frozenset({"full", "trailer", "bonus"})
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY_OR_CDATA = re.compile(rb"<!\[CDATA\[.*?\]\]>|&([A-Za-z][A-Za-z0-9]{1,31});", re.DOTALL)


# What a feed says of people, funding, transcripts and soundbites is what our own feeds say: the same values.
ImportedPerson = FeedPerson
ImportedFunding = FeedFunding
ImportedTranscript = FeedTranscript
ImportedSoundbite = FeedSoundbite


@dataclass(frozen=True)
class ImportedEpisode:
    """One <item>. `guid_source` says where the guid came from: guid, enclosure, link or generated."""

    guid: str
    guid_source: str
    title: str
    description_html: str
    link: str | None
    pub_date: datetime | None
    enclosure_url: str | None
    enclosure_length: int | None
    enclosure_type: str | None
    has_media: bool
    duration: float | None
    explicit: bool | None
    episode_type: str | None
    season: int | None
    number: int | None
    image_url: str | None
    chapters_url: str | None
    chapters_type: str | None
    block: bool = False
    transcripts: list[ImportedTranscript] = field(default_factory=list)
    persons: list[ImportedPerson] = field(default_factory=list)
    soundbites: list[ImportedSoundbite] = field(default_factory=list)
    funding: list[ImportedFunding] = field(default_factory=list)


@dataclass(frozen=True)
class ImportedShow:
    """The <channel>: show metadata as found (category text unescaped), and its items in feed order."""

    title: str
    description: str
    link: str | None
    feed_url: str | None
    language: str | None
    author: str | None
    owner_name: str | None
    owner_email: str | None
    image_url: str | None
    category: str | None
    subcategory: str | None
    explicit: bool | None
    show_type: str | None
    copyright: str | None
    podcast_guid: str | None
    locked: bool | None
    locked_owner: str | None
    new_feed_url: str | None
    complete: bool
    block: bool
    medium: str | None
    generator: str | None
    funding: list[ImportedFunding] = field(default_factory=list)
    persons: list[ImportedPerson] = field(default_factory=list)
    episodes: list[ImportedEpisode] = field(default_factory=list)


def _not_a_feed(why: str) -> InvalidInput:
    return InvalidInput(f"not an RSS podcast feed: {why}", code="import-not-a-feed")


def _unsafe() -> InvalidInput:
    return InvalidInput(
        "the feed declares a DTD, entities or external references; these are refused for safety",
        code="import-unsafe-xml",
    )


@lru_cache(maxsize=256)
def _canonical(tag: str) -> str:
    """'{ns}Name' -> 'prefix:name' for the namespaces above, 'Name' -> 'name'; others stay as they are."""
    if not tag.startswith("{"):
        return tag.lower()
    uri, _, local = tag[1:].partition("}")
    prefix = _NAMESPACES.get(uri.strip().rstrip("/").lower())
    return f"{prefix}:{local.lower()}" if prefix else tag


def _replace_html_entities(data: bytes) -> bytes:
    """&nbsp; and friends (undefined in XML without a DTD) as character references; CDATA is untouched."""

    def swap(match: re.Match[bytes]) -> bytes:
        name = match.group(1)
        if name is None or name.decode() in _XML_ENTITIES:
            return match.group(0)
        code = html.entities.name2codepoint.get(name.decode())
        return f"&#{code};".encode() if code is not None else match.group(0)

    return _ENTITY_OR_CDATA.sub(swap, data)


def _parse_xml(data: bytes) -> Element:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    data = data.lstrip(b" \t\r\n")  # some hosts send a blank line before <?xml ...?>
    if not data:
        raise _not_a_feed("the document is empty")
    try:
        try:
            root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except ParseError as exc:
            if "undefined entity" not in str(exc):
                raise
            root = fromstring(
                _replace_html_entities(data), forbid_dtd=True, forbid_entities=True, forbid_external=True
            )
    except DTDForbidden as exc:
        if str(exc.name).lower() == "html":  # a web page given instead of its feed
            raise _not_a_feed("it is an HTML page") from None
        raise _unsafe() from None
    except DefusedXmlException:
        raise _unsafe() from None
    except ParseError as exc:
        line, column = exc.position
        raise _not_a_feed(f"it is not well-formed XML (line {line}, column {column})") from None
    for el in root.iter():
        if isinstance(el.tag, str):
            el.tag = _canonical(el.tag)
    return root


def _child(parent: Element | None, name: str) -> Element | None:
    if parent is None:
        return None
    return next((el for el in parent if el.tag == name), None)


def _children(parent: Element, name: str) -> list[Element]:
    return [el for el in parent if el.tag == name]


def _text(el: Element | None) -> str | None:
    """Text with surrounding whitespace trimmed (CDATA included), None when empty."""
    if el is None:
        return None
    text = "".join(el.itertext()) if len(el) else (el.text or "")
    return text.strip() or None


def _first_text(parent: Element, *names: str) -> str | None:
    return next((t for name in names if (t := _text(_child(parent, name)))), None)


def _attr(el: Element | None, name: str) -> str | None:
    if el is None:
        return None
    return (el.get(name) or "").strip() or None


def _flag(text: str | None) -> bool | None:
    value = (text or "").strip().lower()
    return True if value in _TRUE else False if value in _FALSE else None


def _yes(text: str | None) -> bool:
    return (text or "").strip().lower() in ("yes", "true")


def _int(text: str | None) -> int | None:
    try:
        value = float((text or "").strip())
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value >= 0 and value == int(value) else None


def _seconds(text: str | None) -> float | None:
    """Seconds from '1834', '1834.6', '30:34' or '1:02:03'."""
    parts = (text or "").strip().split(":")
    if not parts[0] or len(parts) > 3:
        return None
    try:
        values = [float(part) for part in parts]
    except ValueError:
        return None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    total = 0.0
    for value in values:
        total = total * 60 + value
    return total


def _date(text: str | None) -> datetime | None:
    """RFC 2822 (as feeds should have it) or ISO 8601, as an aware UTC datetime; a missing zone is UTC."""
    if not text:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _image(parent: Element) -> str | None:
    itunes = _child(parent, "itunes:image")
    return (
        _attr(itunes, "href")
        or _text(itunes)  # a frequent mistake: the URL as text
        or _attr(_child(parent, "googleplay:image"), "href")
        or _text(_child(_child(parent, "image"), "url"))
    )


def _persons(parent: Element) -> list[ImportedPerson]:
    persons = []
    for el in _children(parent, "podcast:person"):
        name = _text(el)
        if name:
            role = (_attr(el, "role") or "host").lower()
            group = (_attr(el, "group") or "cast").lower()
            persons.append(ImportedPerson(name, role, group, _attr(el, "img"), _attr(el, "href")))
    return persons


def _funding(parent: Element) -> list[ImportedFunding]:
    found = []
    for el in _children(parent, "podcast:funding"):
        url = _attr(el, "url")
        if url:
            found.append(ImportedFunding(url, _text(el) or ""))
    return found


def _transcripts(item: Element) -> list[ImportedTranscript]:
    found = []
    for el in _children(item, "podcast:transcript"):
        url = _attr(el, "url")
        if url:
            found.append(
                ImportedTranscript(url, _attr(el, "type") or "", _attr(el, "language"), _attr(el, "rel"))
            )
    return found


def _soundbites(item: Element) -> list[ImportedSoundbite]:
    found = []
    for el in _children(item, "podcast:soundbite"):
        start, duration = _seconds(_attr(el, "startTime")), _seconds(_attr(el, "duration"))
        if start is not None and duration is not None:
            found.append(ImportedSoundbite(start, duration, _text(el)))
    return found


def _guid(item: Element, enclosure_url: str | None, link: str | None, title: str) -> tuple[str, str]:
    """The guid exactly as written (only surrounding whitespace trimmed), else what podcast apps use."""
    guid = _text(_child(item, "guid"))
    if guid:
        return guid, "guid"
    if enclosure_url:
        return enclosure_url, "enclosure"
    if link:
        return link, "link"
    seed = "\n".join([title, _text(_child(item, "pubdate")) or "", _text(_child(item, "description")) or ""])
    return f"urn:sha256:{hashlib.sha256(seed.encode()).hexdigest()[:32]}", "generated"


def _notes(item: Element) -> str:
    """content:encoded when it says more than description (or itunes:summary)."""
    short = _first_text(item, "description", "itunes:summary") or ""
    full = _text(_child(item, "content:encoded")) or ""
    return full if len(full) > len(short) else short


def _episode(item: Element) -> ImportedEpisode:
    enclosure = next((el for el in _children(item, "enclosure") if _attr(el, "url")), None)
    enclosure_url = _attr(enclosure, "url")
    link = _text(_child(item, "link"))
    title = _first_text(item, "title", "itunes:title") or ""
    guid, guid_source = _guid(item, enclosure_url, link, title)
    episode_type = (_text(_child(item, "itunes:episodetype")) or "").lower()
    chapters = _child(item, "podcast:chapters")
    return ImportedEpisode(
        guid=guid,
        guid_source=guid_source,
        title=title,
        description_html=_notes(item),
        link=link,
        pub_date=_date(_first_text(item, "pubdate", "dc:date")),
        enclosure_url=enclosure_url,
        enclosure_length=_int(_attr(enclosure, "length")),
        enclosure_type=_attr(enclosure, "type"),
        has_media=enclosure_url is not None,
        duration=_seconds(_text(_child(item, "itunes:duration"))),
        explicit=_flag(_text(_child(item, "itunes:explicit"))),
        episode_type=episode_type if episode_type in EPISODE_TYPES else None,
        season=_int(_first_text(item, "itunes:season", "podcast:season")),
        number=_int(_first_text(item, "itunes:episode", "podcast:episode")),
        image_url=_image(item),
        chapters_url=_attr(chapters, "url"),
        chapters_type=_attr(chapters, "type"),
        block=_yes(_text(_child(item, "itunes:block"))),
        transcripts=_transcripts(item),
        persons=_persons(item),
        soundbites=_soundbites(item),
        funding=_funding(item),
    )


def _category(channel: Element) -> tuple[str | None, str | None]:
    first = _child(channel, "itunes:category")
    category = _attr(first, "text")
    sub = _attr(_child(first, "itunes:category"), "text")
    # html.unescape: some hosts escape twice, giving "Society &amp; Culture" after parsing
    return (html.unescape(category) if category else None, html.unescape(sub) if sub else None)


def _self_url(channel: Element) -> str | None:
    return next(
        (_attr(el, "href") for el in _children(channel, "atom:link") if _attr(el, "rel") == "self"), None
    )


def parse_feed(data: bytes) -> ImportedShow:
    """Parse RSS 2.0 podcast feed bytes into an ImportedShow.

    Raises:
        InvalidInput: code "import-unsafe-xml" for any DTD, entity declaration or external reference;
            "import-not-a-feed" for bytes that are not well-formed XML or not an RSS <channel>.
    """
    root = _parse_xml(bytes(data))
    if root.tag != "rss":
        kind = (
            "an Atom feed" if root.tag == "atom:feed" else f"a <{root.tag.rpartition('}')[2][:40]}> document"
        )
        raise _not_a_feed(f"it is {kind}; only RSS 2.0 feeds can be imported")
    channel = _child(root, "channel")
    if channel is None:
        raise _not_a_feed("the <rss> element has no <channel>")
    owner = _child(channel, "itunes:owner")
    locked = _child(channel, "podcast:locked")
    show_type = (_text(_child(channel, "itunes:type")) or "").lower()
    category, subcategory = _category(channel)
    return ImportedShow(
        title=_first_text(channel, "title", "itunes:title") or "",
        description=_first_text(channel, "description", "itunes:summary", "itunes:subtitle") or "",
        link=_text(_child(channel, "link")),
        feed_url=_self_url(channel),
        language=_text(_child(channel, "language")),
        author=_first_text(channel, "itunes:author", "googleplay:author"),
        owner_name=_text(_child(owner, "itunes:name")),
        owner_email=_text(_child(owner, "itunes:email")),
        image_url=_image(channel),
        category=category,
        subcategory=subcategory,
        explicit=_flag(_text(_child(channel, "itunes:explicit"))),
        show_type=show_type if show_type in SHOW_TYPES else None,
        copyright=_text(_child(channel, "copyright")),
        podcast_guid=_text(_child(channel, "podcast:guid")),
        locked=_flag(_text(locked)) if locked is not None else None,
        locked_owner=_attr(locked, "owner"),
        new_feed_url=_text(_child(channel, "itunes:new-feed-url")),
        complete=_yes(_text(_child(channel, "itunes:complete"))),
        block=_yes(_text(_child(channel, "itunes:block"))),
        medium=(_text(_child(channel, "podcast:medium")) or "").lower() or None,
        generator=_text(_child(channel, "generator")),
        funding=_funding(channel),
        persons=_persons(channel),
        episodes=[_episode(item) for item in _children(channel, "item")],
    )
