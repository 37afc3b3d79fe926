"""Feed validator: Apple Podcasts' and Podcasting 2.0's rules checked on RSS bytes (pure: no I/O).

Rules come from Apple's "A Podcaster's Guide to RSS" and podcasts requirements, and from the Podcasting 2.0
tag documents (Podcastindex-org/podcast-namespace: docs/tags/*.md); see /work/shared/reference/feeds.md.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from lxml import etree

from media_pub.domain.rules import podcast_guid
from media_pub.errors import InvalidInput
from media_pub.feeds.categories import APPLE_CATEGORIES
from media_pub.feeds.ext_podcasting20 import PODCAST_NS
from media_pub.feeds.podcast import ITUNES_NS

Severity = Literal["error", "warning"]

# Clients must treat the namespace's old GitHub URI as identical to the official one (docs/1.0.md).
PODCAST_NS_OLD = "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"
ATOM_NS = "http://www.w3.org/2005/Atom"
DESCRIPTION_MAX_BYTES = 4000
APPLE_ENCLOSURE_TYPES = frozenset(
    {"audio/x-m4a", "audio/mpeg", "video/quicktime", "video/mp4", "video/x-m4v", "application/pdf"}
)
TRANSCRIPT_TYPES = frozenset(
    {"text/plain", "text/html", "text/vtt", "application/json", "application/x-subrip", "application/srt"}
)
_MEDIUMS = ("podcast", "music", "video", "film", "audiobook", "newsletter", "blog", "publisher", "course")
MEDIUMS = frozenset({*_MEDIUMS, *(m + "L" for m in _MEDIUMS), "mixed"})
LIVE_STATUSES = ("pending", "live", "ended")
EPISODE_TYPES = ("full", "trailer", "bonus")

_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://\S+$")
_LANGUAGE_RE = re.compile(r"^[a-zA-Z]{2,3}(-[a-zA-Z0-9]{1,8})*$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DURATION_RE = re.compile(r"^\d+(:[0-5]\d){0,2}$")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", re.ASCII)
_INT_RE = re.compile(r"^\d+$", re.ASCII)
_RRULE_FREQ_RE = re.compile(r"(^|;)FREQ=(SECONDLY|MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY)(;|$)")
# podcast:* attributes that hold URLs; every hypertext URL in the namespace must be https (docs/1.0.md).
_URL_ATTRS = ("url", "href", "img", "uri", "feedUrl")


class UnreadableFeed(InvalidInput):
    """The bytes are not a feed that can be checked: not well-formed XML, or XML entity declarations."""

    code = "unreadable-feed"
    title = "Unreadable feed"


@dataclass(frozen=True)
class Problem:
    """One finding; str() gives the report line `severity: where: message`."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class _Report:
    problems: list[Problem] = field(default_factory=list)

    def error(self, where: str, message: str) -> None:
        self.problems.append(Problem("error", where, message))

    def warning(self, where: str, message: str) -> None:
        self.problems.append(Problem("warning", where, message))

    def add(self, severity: Severity, where: str, message: str) -> None:
        self.problems.append(Problem(severity, where, message))


def _it(name: str) -> str:
    return f"{{{ITUNES_NS}}}{name}"


def _pc(name: str) -> str:
    return f"{{{PODCAST_NS}}}{name}"


def _text(el: etree._Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def _is_positive_int(value: str | None) -> bool:
    return value is not None and bool(_INT_RE.match(value.strip())) and int(value) > 0


def _is_number(value: str | None) -> bool:
    return value is not None and bool(_NUMBER_RE.match(value.strip()))


def _short(where: str) -> str:
    """'item 3 (guid abc)' -> 'item 3'."""
    return where.split(" (", 1)[0]


def _rfc2822(value: str) -> bool:
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


def _iso8601(value: str | None) -> datetime | None:
    try:
        parsed = datetime.fromisoformat((value or "").strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_feed(data: bytes) -> etree._Element:
    """Parse feed bytes safely: no entity expansion, no DTD or network loading.

    Raises:
        UnreadableFeed: empty or not well-formed XML, or a DOCTYPE declaring entities (billion laughs, XXE).
    """
    if not data.strip():
        raise UnreadableFeed("the document is empty")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise UnreadableFeed(f"not well-formed XML: {exc}") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        # A feed never needs entity declarations; refusing them is simpler than bounding their expansion.
        raise UnreadableFeed("the document declares XML entities (<!ENTITY>), which feeds must not use")
    undefined = next(root.iter(etree.Entity), None)
    if undefined is not None:  # possible when a DOCTYPE names an external DTD, which is never loaded
        raise UnreadableFeed(f"the document uses an undefined entity {undefined.text}")
    return root


def check_feed(data: bytes, url: str | None = None, *, aliases: Iterable[str] = ()) -> list[Problem]:
    """Check RSS bytes against Apple's and Podcasting 2.0's rules; return the problems in document order.

    Args:
        data: the feed document.
        url: where the feed was fetched from, if it was; used to check podcast:guid.
        aliases: other URLs of the same feed (redirects), also accepted as podcast:guid seeds.

    Raises:
        UnreadableFeed: see parse_feed.
    """
    root = parse_feed(data)
    report = _Report()
    encoding = root.getroottree().docinfo.encoding or "UTF-8"
    if encoding.upper() not in ("UTF-8", "UTF8"):
        report.warning("document", f"encoding is {encoding}; Apple requires UTF-8")
    _check_namespaces(root, report)
    if root.tag != "rss":
        report.error("document", f"root element is <{etree.QName(root).localname}>, not <rss>")
        return report.problems
    if root.get("version") != "2.0":
        report.error("rss", f"version is {root.get('version')!r}, not '2.0'")
    channels = root.findall("channel")
    if not channels:
        report.error("rss", "missing <channel>")
        return report.problems
    if len(channels) > 1:
        report.error("rss", f"{len(channels)} <channel> elements; an RSS feed has exactly one")
    seeds = [u for u in (url, *aliases) if u]
    _Checker(report).run(channels[0], seeds)
    return report.problems


def _check_namespaces(root: etree._Element, report: _Report) -> None:
    """Flag itunes/podcast prefixes bound to a wrong URI; move old-URI podcast tags to the official URI."""
    reported: set[str] = set()
    itunes_lookalikes = {ITUNES_NS.lower(), ITUNES_NS.lower().replace("http://", "https://", 1)}
    for el in root.iter(etree.Element):
        ns = etree.QName(el).namespace
        if ns == PODCAST_NS_OLD:
            el.tag = f"{{{PODCAST_NS}}}{etree.QName(el).localname}"
        if ns is None or ns in (ITUNES_NS, PODCAST_NS) or ns in reported:
            continue
        if ns == PODCAST_NS_OLD:
            report.warning("document", f"podcast namespace uses the old URI {ns}; use {PODCAST_NS}")
        elif el.prefix == "itunes" or ns.lower() in itunes_lookalikes:
            report.error(
                "document", f"itunes namespace is {ns!r}; Apple reads itunes tags only under {ITUNES_NS}"
            )
        elif el.prefix == "podcast":
            report.error("document", f"podcast namespace is {ns!r}, not {PODCAST_NS}")
        else:
            continue
        reported.add(ns)


class _Checker:
    """Walks one <channel>; keeps the cross-item state (guids and enclosure URLs seen)."""

    def __init__(self, report: _Report) -> None:
        self.r = report
        self.guids: dict[str, str] = {}
        self.enclosures: dict[str, str] = {}
        self.live_guids: dict[str, str] = {}
        self.podcast_checks: dict[str, Callable[[etree._Element, str], None]] = {
            "locked": self._locked,
            "funding": self._funding,
            "person": self._person,
            "transcript": self._transcript,
            "chapters": self._chapters,
            "soundbite": self._soundbite,
            "alternateEnclosure": self._alternate_enclosure,
            "season": self._season,
            "episode": self._episode,
            "medium": self._medium,
            "txt": self._txt,
            "updateFrequency": self._update_frequency,
            "podping": self._podping,
            "trailer": self._trailer,
            "license": self._license,
            "contentLink": self._content_link,
        }

    def run(self, ch: etree._Element, seeds: list[str]) -> None:
        self._channel(ch, seeds)
        serial = _text(ch.find(_it("type"))) == "serial"
        for n, item in enumerate(ch.findall("item"), 1):
            self._item(item, self._label("item", n, item), serial=serial)
        for n, live in enumerate(ch.findall(_pc("liveItem")), 1):
            self._live_item(live, self._label("liveItem", n, live))

    @staticmethod
    def _label(kind: str, n: int, el: etree._Element) -> str:
        guid = _text(el.find("guid"))
        return f"{kind} {n} (guid {guid})" if guid else f"{kind} {n}"

    # -- shared helpers ----------------------------------------------------------------------------------

    def _url(self, value: str | None, where: str, what: str, http: Severity) -> str | None:
        """Check an absolute URL; `http` is the severity of a plain-http URL. Return it when usable."""
        value = (value or "").strip()
        if not value:
            self.r.error(where, f"{what} is missing")
            return None
        if not _URL_RE.match(value):
            self.r.error(where, f"{what} {value!r} is not an absolute URL")
            return None
        if value.lower().startswith("http://"):
            self.r.add(http, where, f"{what} {value} uses http; use https")
        return value

    def _required(self, parent: etree._Element, tag: str, where: str, what: str) -> str:
        value = _text(parent.find(tag))
        if not value:
            self.r.error(where, f"missing {what}")
        return value

    def _description(self, parent: etree._Element, where: str) -> None:
        size = len(_text(parent.find("description")).encode())
        if size > DESCRIPTION_MAX_BYTES:
            self.r.error(where, f"description is {size} bytes; Apple allows at most {DESCRIPTION_MAX_BYTES}")

    def _explicit(self, parent: etree._Element, where: str, *, required: bool) -> None:
        el = parent.find(_it("explicit"))
        value = _text(el).lower()
        if el is None:
            if required:
                self.r.error(where, "missing itunes:explicit (true or false)")
        elif value in ("yes", "no", "clean"):
            self.r.warning(where, f"itunes:explicit is {_text(el)!r}; Apple documents true or false")
        elif value not in ("true", "false"):
            self.r.error(where, f"itunes:explicit is {_text(el)!r}, not true or false")

    def _itunes_image(self, parent: etree._Element, where: str, *, required: bool) -> None:
        el = parent.find(_it("image"))
        if el is None:
            if required:
                self.r.error(where, "missing itunes:image (the show artwork)")
            return
        self._url(el.get("href"), where, "itunes:image href", "warning")

    def _single(self, parent: etree._Element, names: Iterable[str], where: str) -> None:
        for name in names:
            count = len(parent.findall(_pc(name)))
            if count > 1:
                self.r.warning(where, f"{count} podcast:{name} tags; only one is allowed")

    def _podcast_children(self, parent: etree._Element, where: str) -> None:
        """Run the podcast:* tag checks on direct children, and the https rule on all their URLs."""
        for el in parent.iterchildren(_pc("*")):
            name = etree.QName(el).localname
            if name == "liveItem":
                continue  # checked on its own, with its own `where`
            check = self.podcast_checks.get(name)
            if check is not None:
                check(el, where)
            for sub in el.iter(etree.Element):
                for attr in _URL_ATTRS:
                    value = (sub.get(attr) or "").strip()
                    if value.lower().startswith("http://"):
                        what = f"podcast:{etree.QName(sub).localname} {attr}"
                        self.r.error(where, f"{what} {value} uses http; the namespace requires https")

    def _text_limit(self, el: etree._Element, where: str, limit: int, *, required: bool) -> None:
        tag, text = etree.QName(el).localname, _text(el)
        if required and not text:
            self.r.error(where, f"podcast:{tag} has no text")
        elif len(text) > limit:
            self.r.warning(where, f"podcast:{tag} text is {len(text)} characters; at most {limit} are shown")

    def _attr(self, el: etree._Element, attr: str, where: str) -> str:
        value = (el.get(attr) or "").strip()
        if not value:
            self.r.error(where, f"podcast:{etree.QName(el).localname} {attr} is missing")
        return value

    # -- channel -------------------------------------------------------------------------------------------

    def _channel(self, ch: etree._Element, seeds: list[str]) -> None:
        w = "channel"
        self._required(ch, "title", w, "<title>")
        if self._required(ch, "description", w, "<description>"):
            self._description(ch, w)
        self._itunes_image(ch, w, required=True)
        language = self._required(ch, "language", w, "<language>")
        if language and not _LANGUAGE_RE.match(language):
            self.r.error(w, f"language {language!r} is not an ISO 639 code such as 'en' or 'en-us'")
        self._categories(ch, w)
        self._explicit(ch, w, required=True)
        if not _text(ch.find("link")):
            self.r.warning(w, "missing <link> (the show's website; recommended by Apple)")
        if not _text(ch.find(_it("author"))):
            self.r.warning(w, "missing itunes:author (recommended by Apple)")
        show_type = ch.find(_it("type"))
        if show_type is not None and _text(show_type) not in ("episodic", "serial"):
            self.r.error(w, f"itunes:type is {_text(show_type)!r}, not episodic or serial")
        image_url = ch.find("image/url")
        if image_url is not None:
            self._url(_text(image_url), w, "image url", "warning")
        new_feed_url = ch.find(_it("new-feed-url"))
        if new_feed_url is not None:
            self._url(_text(new_feed_url), w, "itunes:new-feed-url", "warning")
        self._single(ch, ("guid", "locked", "medium", "updateFrequency", "podping", "license"), w)
        self._podcast_guid(ch, seeds)
        self._podcast_children(ch, w)

    def _categories(self, ch: etree._Element, w: str) -> None:
        categories = ch.findall(_it("category"))
        if not categories:
            self.r.error(w, "missing itunes:category")
        for cat in categories:
            name = cat.get("text")
            if not name:
                self.r.error(w, "itunes:category has no text attribute")
                continue
            subs = APPLE_CATEGORIES.get(name)
            if subs is None:
                self.r.error(w, f"itunes:category {name!r} is not on Apple's list")
                continue
            for sub in cat.findall(_it("category")):
                if sub.get("text") not in subs:
                    self.r.error(w, f"itunes:category {sub.get('text')!r} is not a subcategory of {name!r}")

    def _podcast_guid(self, ch: etree._Element, seeds: list[str]) -> None:
        el = ch.find(_pc("guid"))
        if el is None:
            return
        value = _text(el)
        if not _UUID_RE.match(value):
            self.r.error("channel", f"podcast:guid {value!r} is not a UUID")
            return
        self_links = [
            link.get("href", "").strip()
            for link in ch.findall(f"{{{ATOM_NS}}}link")
            if link.get("rel") == "self" and link.get("href", "").strip()
        ]
        candidates = self_links + seeds
        if candidates and uuid.UUID(value) not in {uuid.UUID(podcast_guid(u)) for u in candidates}:
            self.r.warning(
                "channel",
                f"podcast:guid {value} is not the UUIDv5 of the feed URL {candidates[0]} "
                f"({podcast_guid(candidates[0])}); expected unless the feed moved and kept its guid",
            )

    # -- items ---------------------------------------------------------------------------------------------

    def _item(self, item: etree._Element, w: str, *, serial: bool) -> None:
        self._required(item, "title", w, "<title>")
        self._enclosure(item, w)
        self._guid(item, w, self.guids)
        pub_date = item.find("pubDate")
        if pub_date is None:
            self.r.warning(w, "missing <pubDate> (recommended by Apple)")
        elif not _rfc2822(_text(pub_date)):
            self.r.error(w, f"pubDate {_text(pub_date)!r} is not an RFC 2822 date")
        self._description(item, w)
        duration = item.find(_it("duration"))
        if duration is not None and not _DURATION_RE.match(_text(duration)):
            self.r.error(w, f"itunes:duration {_text(duration)!r} is not seconds or HH:MM:SS")
        episode_type = item.find(_it("episodeType"))
        if episode_type is not None and _text(episode_type) not in EPISODE_TYPES:
            self.r.error(w, f"itunes:episodeType is {_text(episode_type)!r}, not full, trailer or bonus")
        for name in ("episode", "season"):
            el = item.find(_it(name))
            if el is not None and not _is_positive_int(_text(el)):
                self.r.error(w, f"itunes:{name} {_text(el)!r} is not a positive integer")
        # Apple: serial shows need episode numbers; trailers and bonus content may be show- or season-level.
        if serial and item.find(_it("episode")) is None and _text(episode_type) in ("", "full"):
            self.r.error(w, "itunes:episode is required in a serial show (itunes:type serial)")
        self._explicit(item, w, required=False)
        self._itunes_image(item, w, required=False)
        self._single(item, ("chapters", "season", "episode", "license"), w)
        self._podcast_children(item, w)

    def _enclosure(self, item: etree._Element, w: str) -> None:
        enclosures = item.findall("enclosure")
        if not enclosures:
            self.r.error(w, "missing <enclosure>")
            return
        if len(enclosures) > 1:
            self.r.warning(w, f"{len(enclosures)} enclosures; apps use only the first")
        enc = enclosures[0]
        url = self._url(enc.get("url"), w, "enclosure url", "warning")
        if url is not None:
            if not url.isascii():
                self.r.warning(w, f"enclosure url {url} has non-ASCII characters; Apple requires ASCII")
            if url in self.enclosures:
                self.r.error(w, f"enclosure url {url} is also used by {self.enclosures[url]}")
            else:
                self.enclosures[url] = _short(w)
        if not _is_positive_int(enc.get("length")):
            self.r.error(w, f"enclosure length {enc.get('length')!r} is not a positive integer (bytes)")
        mime = (enc.get("type") or "").strip()
        if not mime:
            self.r.error(w, "enclosure type is missing")
        elif mime.startswith(("audio/", "video/")) and mime not in APPLE_ENCLOSURE_TYPES:
            allowed = ", ".join(sorted(APPLE_ENCLOSURE_TYPES))
            self.r.warning(w, f"enclosure type {mime!r} is not accepted by Apple Podcasts ({allowed})")
        elif mime not in APPLE_ENCLOSURE_TYPES:
            self.r.error(w, f"enclosure type {mime!r} is not an audio or video type")

    def _guid(self, item: etree._Element, w: str, seen: dict[str, str]) -> None:
        guid = _text(item.find("guid"))
        if not guid:
            self.r.error(w, "missing <guid>")
        elif guid in seen:
            self.r.error(w, f"guid {guid!r} is also used by {seen[guid]}")
        else:
            seen[guid] = _short(w)

    def _live_item(self, live: etree._Element, w: str) -> None:
        status = live.get("status")
        if status not in LIVE_STATUSES:
            self.r.error(w, f"status is {status!r}, not pending, live or ended")
        start = _iso8601(live.get("start"))
        if start is None:
            self.r.error(w, f"start {live.get('start')!r} is not an ISO 8601 date-time")
        if live.get("end") is not None:
            end = _iso8601(live.get("end"))
            if end is None:
                self.r.error(w, f"end {live.get('end')!r} is not an ISO 8601 date-time")
            elif start is not None and end <= start:
                self.r.error(w, "end is not after start")
        self._required(live, "title", w, "<title>")
        self._guid(live, w, self.live_guids)
        enclosure = live.find("enclosure")
        if enclosure is None:  # recommended, not required: many streams are only watched on a web page
            self.r.warning(w, "no <enclosure> (fallback stream): some apps skip such live items")
        else:
            self._url(enclosure.get("url"), w, "enclosure url", "warning")
        if live.find(_pc("contentLink")) is None:
            self.r.error(w, "missing podcast:contentLink (required in a liveItem)")
        self._podcast_children(live, w)

    # -- podcast:* tags ------------------------------------------------------------------------------------

    def _locked(self, el: etree._Element, w: str) -> None:
        if _text(el) not in ("yes", "no"):
            self.r.error(w, f"podcast:locked is {_text(el)!r}, not yes or no")

    def _funding(self, el: etree._Element, w: str) -> None:
        self._attr(el, "url", w)
        self._text_limit(el, w, 128, required=False)

    def _person(self, el: etree._Element, w: str) -> None:
        self._text_limit(el, w, 128, required=True)

    def _transcript(self, el: etree._Element, w: str) -> None:
        self._attr(el, "url", w)
        mime = self._attr(el, "type", w)
        if mime and mime not in TRANSCRIPT_TYPES:
            allowed = ", ".join(sorted(TRANSCRIPT_TYPES))
            self.r.error(w, f"podcast:transcript type {mime!r} is not one of {allowed}")

    def _chapters(self, el: etree._Element, w: str) -> None:
        self._attr(el, "url", w)
        self._attr(el, "type", w)

    def _soundbite(self, el: etree._Element, w: str) -> None:
        start, duration = el.get("startTime"), el.get("duration")
        if not _is_number(start) or float(start or 0) < 0:
            self.r.error(w, f"podcast:soundbite startTime {start!r} is not a number of seconds")
        if not _is_number(duration) or float(duration or 0) <= 0:
            self.r.error(w, f"podcast:soundbite duration {duration!r} is not a positive number of seconds")
        self._text_limit(el, w, 128, required=False)

    def _alternate_enclosure(self, el: etree._Element, w: str) -> None:
        self._attr(el, "type", w)
        length = el.get("length")
        if length is not None and not _is_positive_int(length):
            self.r.error(w, f"podcast:alternateEnclosure length {length!r} is not a positive integer")
        sources = el.findall(_pc("source"))
        for source in sources:
            self._attr(source, "uri", w)
        if not any((s.get("uri") or "").strip() for s in sources):
            self.r.error(w, "podcast:alternateEnclosure needs at least one podcast:source with a uri")
        integrity = el.findall(_pc("integrity"))
        if len(integrity) > 1:
            self.r.error(w, "podcast:alternateEnclosure has more than one podcast:integrity")
        for check in integrity:
            if check.get("type") not in ("sri", "pgp-signature"):
                self.r.error(w, f"podcast:integrity type {check.get('type')!r} is not sri or pgp-signature")
            self._attr(check, "value", w)

    def _season(self, el: etree._Element, w: str) -> None:
        if not _INT_RE.match(_text(el)):
            self.r.error(w, f"podcast:season {_text(el)!r} is not an integer")

    def _episode(self, el: etree._Element, w: str) -> None:
        if not _is_number(_text(el)):
            self.r.error(w, f"podcast:episode {_text(el)!r} is not a number")

    def _medium(self, el: etree._Element, w: str) -> None:
        if _text(el) not in MEDIUMS:
            self.r.error(w, f"podcast:medium {_text(el)!r} is not a known medium")

    def _txt(self, el: etree._Element, w: str) -> None:
        self._text_limit(el, w, 4000, required=True)

    def _update_frequency(self, el: etree._Element, w: str) -> None:
        self._text_limit(el, w, 128, required=False)
        if el.get("complete") not in (None, "true", "false"):
            self.r.error(w, f"podcast:updateFrequency complete {el.get('complete')!r} is not true or false")
        rrule = (el.get("rrule") or "").upper()
        if el.get("rrule") is not None and not _RRULE_FREQ_RE.search(rrule):
            self.r.error(w, f"podcast:updateFrequency rrule {el.get('rrule')!r} has no valid FREQ")
        dtstart = el.get("dtstart")
        if dtstart is not None and _iso8601(dtstart) is None:
            self.r.error(w, f"podcast:updateFrequency dtstart {dtstart!r} is not an ISO 8601 date")
        if "COUNT=" in rrule and dtstart is None:
            self.r.error(w, "podcast:updateFrequency needs dtstart when its rrule has COUNT")

    def _podping(self, el: etree._Element, w: str) -> None:
        if el.get("usesPodping") not in ("true", "false"):
            self.r.error(w, f"podcast:podping usesPodping {el.get('usesPodping')!r} is not true or false")

    def _trailer(self, el: etree._Element, w: str) -> None:
        self._attr(el, "url", w)
        pubdate = self._attr(el, "pubdate", w)
        if pubdate and not _rfc2822(pubdate):
            self.r.error(w, f"podcast:trailer pubdate {pubdate!r} is not an RFC 2822 date")
        length, season = el.get("length"), el.get("season")
        if length is not None and not _is_positive_int(length):
            self.r.error(w, f"podcast:trailer length {length!r} is not a positive integer")
        if season is not None and not _INT_RE.match(season.strip()):
            self.r.error(w, f"podcast:trailer season {season!r} is not an integer")
        self._text_limit(el, w, 128, required=True)

    def _license(self, el: etree._Element, w: str) -> None:
        self._text_limit(el, w, 128, required=True)

    def _content_link(self, el: etree._Element, w: str) -> None:
        self._attr(el, "href", w)
