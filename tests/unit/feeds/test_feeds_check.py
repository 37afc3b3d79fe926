"""The feed validator: one test per rule, each on a known-good feed broken in just that way."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from media_pub.feeds import build_feed
from media_pub.feeds.check import Problem, UnreadableFeed, check_feed

# podcast:guid example of docs/tags/guid.md: feed URL mp3s.nashownotes.com/pc20rss.xml
SELF_URL = "https://mp3s.nashownotes.com/pc20rss.xml"
SELF_GUID = "917393e3-1b1e-5cef-ace4-edaa54e1f810"

MINIMAL = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel>
<title>Tiny</title>
<description>A tiny show.</description>
<language>en</language>
<itunes:image href="https://cdn.example/art.jpg"/>
<itunes:category text="Technology"/>
<itunes:explicit>true</itunes:explicit>
<item>
  <title>One</title>
  <guid>t-1</guid>
  <enclosure url="https://cdn.example/1.mp3" length="1000" type="audio/mpeg"/>
</item>
</channel>
</rss>
"""

GOOD = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:atom="http://www.w3.org/2005/Atom">
<channel>
<title>Night Shift Radio</title>
<description><![CDATA[<p>Stories from the night.</p>]]></description>
<link>https://nightshift.example/</link>
<atom:link href="{SELF_URL}" rel="self" type="application/rss+xml"/>
<language>en-us</language>
<itunes:image href="https://cdn.example/art.jpg"/>
<itunes:category text="Society &amp; Culture"><itunes:category text="Documentary"/></itunes:category>
<itunes:explicit>false</itunes:explicit>
<itunes:author>Night Shift Collective</itunes:author>
<itunes:type>episodic</itunes:type>
<podcast:guid>{SELF_GUID}</podcast:guid>
<podcast:locked owner="ada@example.com">yes</podcast:locked>
<podcast:funding url="https://example.com/support">Support the show</podcast:funding>
<podcast:person role="host" img="https://example.com/ada.jpg">Ada Owner</podcast:person>
<podcast:medium>podcast</podcast:medium>
<podcast:txt purpose="applepodcastsverify">05124</podcast:txt>
<podcast:updateFrequency rrule="FREQ=WEEKLY;COUNT=10"
  dtstart="2024-01-01T00:00:00.000Z">Weekly</podcast:updateFrequency>
<podcast:podping usesPodping="true"/>
<podcast:trailer pubdate="Thu, 01 Apr 2021 08:00:00 EST" url="https://example.com/trailer.mp3"
  length="12345" type="audio/mpeg">Coming soon</podcast:trailer>
<podcast:license>cc-by-4.0</podcast:license>
<podcast:liveItem status="pending" start="2024-03-01T20:00:00Z" end="2024-03-01T21:00:00Z">
  <title>Live night</title>
  <guid>live-1</guid>
  <enclosure url="https://example.com/live.mp3" type="audio/mpeg" length="312"/>
  <podcast:contentLink href="https://example.com/live">Listen live</podcast:contentLink>
</podcast:liveItem>
<item>
  <title>The Baker</title>
  <description>Meet the baker.</description>
  <guid isPermaLink="false">ep-1</guid>
  <pubDate>Mon, 08 Jan 2024 06:00:00 +0000</pubDate>
  <enclosure url="https://cdn.example/ep1.mp3" length="31337000" type="audio/mpeg"/>
  <itunes:duration>1835</itunes:duration>
  <itunes:episodeType>full</itunes:episodeType>
  <itunes:episode>1</itunes:episode>
  <itunes:season>1</itunes:season>
  <podcast:transcript url="https://cdn.example/ep1.vtt" type="text/vtt"/>
  <podcast:chapters url="https://cdn.example/ep1.json" type="application/json+chapters"/>
  <podcast:soundbite startTime="73.0" duration="60.0">Why bread</podcast:soundbite>
  <podcast:alternateEnclosure type="audio/opus" length="20000000">
    <podcast:source uri="https://cdn.example/ep1.opus"/>
    <podcast:source uri="ipfs://QmExample"/>
    <podcast:integrity type="sri" value="sha384-abc"/>
  </podcast:alternateEnclosure>
  <podcast:season>1</podcast:season>
  <podcast:episode>1</podcast:episode>
</item>
<item>
  <title>The Night Nurse</title>
  <guid isPermaLink="false">ep-2</guid>
  <pubDate>Mon, 15 Jan 2024 06:00:00 +0000</pubDate>
  <enclosure url="https://cdn.example/ep2.m4a" length="42000123" type="audio/x-m4a"/>
  <itunes:duration>00:40:01</itunes:duration>
  <itunes:episode>2</itunes:episode>
</item>
</channel>
</rss>
"""

ITEM1 = "item 1 (guid ep-1)"
ITEM2 = "item 2 (guid ep-2)"
LIVE = "liveItem 1 (guid live-1)"
NEEDS_HTTPS = "uses http; the namespace requires https"


def broken(*changes: tuple[str, str], base: str = GOOD) -> bytes:
    """The base feed with each (old, new) applied once; every `old` must be there, so no change is a no-op."""
    for old, new in changes:
        assert base.count(old) == 1, old
        base = base.replace(old, new)
    return base.encode()


def lines(data: bytes, url: str | None = None) -> list[str]:
    return [str(p) for p in check_feed(data, url)]


def test_good_feeds_have_no_problems() -> None:
    assert lines(GOOD.encode()) == []
    assert lines(MINIMAL.encode()) == [
        "warning: channel: missing <link> (the show's website; recommended by Apple)",
        "warning: channel: missing itunes:author (recommended by Apple)",
        "warning: item 1 (guid t-1): missing <pubDate> (recommended by Apple)",
    ]


def test_problem_line_shape() -> None:
    problem = Problem("error", "item 3 (guid abc)", "enclosure length '0' is not a positive integer (bytes)")
    assert str(problem) == "error: item 3 (guid abc): enclosure length '0' is not a positive integer (bytes)"


# (changes, expected lines): each case breaks GOOD in one way and expects exactly these lines.
CASES = {
    # document
    "not utf-8": (
        [('encoding="UTF-8"', 'encoding="ISO-8859-1"')],
        ["warning: document: encoding is ISO-8859-1; Apple requires UTF-8"],
    ),
    "rss version": ([('version="2.0"', 'version="0.92"')], ["error: rss: version is '0.92', not '2.0'"]),
    "itunes namespace case": (
        [('xmlns:itunes="http://www.itunes.com/dtds/', 'xmlns:itunes="http://www.itunes.com/DTDs/')],
        [
            "error: document: itunes namespace is 'http://www.itunes.com/DTDs/podcast-1.0.dtd'; "
            "Apple reads itunes tags only under http://www.itunes.com/dtds/podcast-1.0.dtd",
            "error: channel: missing itunes:image (the show artwork)",
            "error: channel: missing itunes:category",
            "error: channel: missing itunes:explicit (true or false)",
            "warning: channel: missing itunes:author (recommended by Apple)",
        ],
    ),
    "podcast namespace": (
        [('xmlns:podcast="https://podcastindex', 'xmlns:podcast="http://podcastindex')],
        [
            "error: document: podcast namespace is 'http://podcastindex.org/namespace/1.0', "
            "not https://podcastindex.org/namespace/1.0"
        ],
    ),
    "old podcast namespace still checked": (
        [
            (
                'xmlns:podcast="https://podcastindex.org/namespace/1.0"',
                'xmlns:podcast="https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"',
            ),
            (">yes</podcast:locked>", ">true</podcast:locked>"),
        ],
        [
            "warning: document: podcast namespace uses the old URI "
            "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md; "
            "use https://podcastindex.org/namespace/1.0",
            "error: channel: podcast:locked is 'true', not yes or no",
        ],
    ),
    # channel
    "channel title": ([("<title>Night Shift Radio</title>", "")], ["error: channel: missing <title>"]),
    "channel description": (
        [("<description><![CDATA[<p>Stories from the night.</p>]]></description>", "")],
        ["error: channel: missing <description>"],
    ),
    "description bytes": (
        [("<p>Stories from the night.</p>", "é" * 2001)],  # 2001 characters, 4002 bytes
        ["error: channel: description is 4002 bytes; Apple allows at most 4000"],
    ),
    "itunes:image missing": (
        [('<itunes:image href="https://cdn.example/art.jpg"/>', "")],
        ["error: channel: missing itunes:image (the show artwork)"],
    ),
    "itunes:image no href": (
        [('<itunes:image href="https://cdn.example/art.jpg"/>', "<itunes:image/>")],
        ["error: channel: itunes:image href is missing"],
    ),
    "itunes:image http": (
        [('href="https://cdn.example/art.jpg"', 'href="http://cdn.example/art.jpg"')],
        ["warning: channel: itunes:image href http://cdn.example/art.jpg uses http; use https"],
    ),
    "language missing": ([("<language>en-us</language>", "")], ["error: channel: missing <language>"]),
    "language shape": (
        [("<language>en-us</language>", "<language>English (US)</language>")],
        ["error: channel: language 'English (US)' is not an ISO 639 code such as 'en' or 'en-us'"],
    ),
    "category missing": (
        [
            (
                '<itunes:category text="Society &amp; Culture"><itunes:category text="Documentary"/>'
                "</itunes:category>",
                "",
            )
        ],
        ["error: channel: missing itunes:category"],
    ),
    "category unknown": (
        [('text="Society &amp; Culture"', 'text="Podcasting"')],
        ["error: channel: itunes:category 'Podcasting' is not on Apple's list"],
    ),
    "subcategory unknown": (
        [('text="Documentary"', 'text="Golf"')],
        ["error: channel: itunes:category 'Golf' is not a subcategory of 'Society & Culture'"],
    ),
    "explicit missing": (
        [("<itunes:explicit>false</itunes:explicit>", "")],
        ["error: channel: missing itunes:explicit (true or false)"],
    ),
    "explicit yes": (
        [("<itunes:explicit>false</itunes:explicit>", "<itunes:explicit>yes</itunes:explicit>")],
        ["warning: channel: itunes:explicit is 'yes'; Apple documents true or false"],
    ),
    "explicit other": (
        [("<itunes:explicit>false</itunes:explicit>", "<itunes:explicit>maybe</itunes:explicit>")],
        ["error: channel: itunes:explicit is 'maybe', not true or false"],
    ),
    "link": (
        [("<link>https://nightshift.example/</link>", "")],
        ["warning: channel: missing <link> (the show's website; recommended by Apple)"],
    ),
    "author": (
        [("<itunes:author>Night Shift Collective</itunes:author>", "")],
        ["warning: channel: missing itunes:author (recommended by Apple)"],
    ),
    "itunes:type": (
        [(">episodic</itunes:type>", ">seasonal</itunes:type>")],
        ["error: channel: itunes:type is 'seasonal', not episodic or serial"],
    ),
    "serial needs episode numbers": (
        [(">episodic</itunes:type>", ">serial</itunes:type>"), ("<itunes:episode>2</itunes:episode>", "")],
        [f"error: {ITEM2}: itunes:episode is required in a serial show (itunes:type serial)"],
    ),
    "serial show trailer needs no number": (
        [
            (">episodic</itunes:type>", ">serial</itunes:type>"),
            ("<itunes:episode>2</itunes:episode>", "<itunes:episodeType>trailer</itunes:episodeType>"),
        ],
        [],
    ),
    # items
    "item title": ([("<title>The Night Nurse</title>", "")], [f"error: {ITEM2}: missing <title>"]),
    "enclosure missing": (
        [('<enclosure url="https://cdn.example/ep2.m4a" length="42000123" type="audio/x-m4a"/>', "")],
        [f"error: {ITEM2}: missing <enclosure>"],
    ),
    "two enclosures": (
        [
            (
                '<enclosure url="https://cdn.example/ep2.m4a"',
                '<enclosure url="https://cdn.example/ep2.mp3" length="1" type="audio/mpeg"/>'
                '<enclosure url="https://cdn.example/ep2.m4a"',
            )
        ],
        [f"warning: {ITEM2}: 2 enclosures; apps use only the first"],
    ),
    "enclosure url missing": (
        [('url="https://cdn.example/ep2.m4a" ', "")],
        [f"error: {ITEM2}: enclosure url is missing"],
    ),
    "enclosure url relative": (
        [('url="https://cdn.example/ep2.m4a"', 'url="/media/ep2.m4a"')],
        [f"error: {ITEM2}: enclosure url '/media/ep2.m4a' is not an absolute URL"],
    ),
    "enclosure url http": (
        [('url="https://cdn.example/ep2.m4a"', 'url="http://cdn.example/ep2.m4a"')],
        [f"warning: {ITEM2}: enclosure url http://cdn.example/ep2.m4a uses http; use https"],
    ),
    "enclosure url non-ascii": (
        [('url="https://cdn.example/ep2.m4a"', 'url="https://cdn.example/épisode2.m4a"')],
        [
            f"warning: {ITEM2}: enclosure url https://cdn.example/épisode2.m4a has non-ASCII characters; "
            "Apple requires ASCII"
        ],
    ),
    "enclosure url duplicate": (
        [('url="https://cdn.example/ep2.m4a"', 'url="https://cdn.example/ep1.mp3"')],
        [f"error: {ITEM2}: enclosure url https://cdn.example/ep1.mp3 is also used by item 1"],
    ),
    "enclosure length zero": (
        [('length="42000123"', 'length="0"')],
        [f"error: {ITEM2}: enclosure length '0' is not a positive integer (bytes)"],
    ),
    "enclosure length decimal": (
        [('length="42000123"', 'length="42.5MB"')],
        [f"error: {ITEM2}: enclosure length '42.5MB' is not a positive integer (bytes)"],
    ),
    "enclosure length missing": (
        [('length="42000123" ', "")],
        [f"error: {ITEM2}: enclosure length None is not a positive integer (bytes)"],
    ),
    "enclosure type missing": (
        [(' type="audio/x-m4a"', "")],
        [f"error: {ITEM2}: enclosure type is missing"],
    ),
    "enclosure type not media": (
        [('type="audio/x-m4a"', 'type="text/html"')],
        [f"error: {ITEM2}: enclosure type 'text/html' is not an audio or video type"],
    ),
    "enclosure type not apple": (
        [('type="audio/x-m4a"', 'type="audio/ogg"')],
        [
            f"warning: {ITEM2}: enclosure type 'audio/ogg' is not accepted by Apple Podcasts "
            "(application/pdf, audio/mpeg, audio/x-m4a, video/mp4, video/quicktime, video/x-m4v)"
        ],
    ),
    "guid missing": (
        [('<guid isPermaLink="false">ep-2</guid>', "")],
        ["error: item 2: missing <guid>"],
    ),
    "guid duplicate": (
        [(">ep-2</guid>", ">ep-1</guid>")],
        ["error: item 2 (guid ep-1): guid 'ep-1' is also used by item 1"],
    ),
    "pubDate missing": (
        [("<pubDate>Mon, 15 Jan 2024 06:00:00 +0000</pubDate>", "")],
        [f"warning: {ITEM2}: missing <pubDate> (recommended by Apple)"],
    ),
    "pubDate not rfc 2822": (
        [("Mon, 15 Jan 2024 06:00:00 +0000", "2024-01-15T06:00:00Z")],
        [f"error: {ITEM2}: pubDate '2024-01-15T06:00:00Z' is not an RFC 2822 date"],
    ),
    "item description bytes": (
        [("Meet the baker.", "x" * 4001)],
        [f"error: {ITEM1}: description is 4001 bytes; Apple allows at most 4000"],
    ),
    "duration": (
        [("<itunes:duration>00:40:01</itunes:duration>", "<itunes:duration>40 min</itunes:duration>")],
        [f"error: {ITEM2}: itunes:duration '40 min' is not seconds or HH:MM:SS"],
    ),
    "duration decimal": (
        [("<itunes:duration>1835</itunes:duration>", "<itunes:duration>1835.4</itunes:duration>")],
        [f"error: {ITEM1}: itunes:duration '1835.4' is not seconds or HH:MM:SS"],
    ),
    "episodeType": (
        [(">full</itunes:episodeType>", ">preview</itunes:episodeType>")],
        [f"error: {ITEM1}: itunes:episodeType is 'preview', not full, trailer or bonus"],
    ),
    "itunes:episode": (
        [("<itunes:episode>2</itunes:episode>", "<itunes:episode>0</itunes:episode>")],
        [f"error: {ITEM2}: itunes:episode '0' is not a positive integer"],
    ),
    "itunes:season": (
        [("<itunes:season>1</itunes:season>", "<itunes:season>S1</itunes:season>")],
        [f"error: {ITEM1}: itunes:season 'S1' is not a positive integer"],
    ),
    # podcast:guid
    "podcast:guid not uuid": (
        [(f">{SELF_GUID}<", ">nightshift<")],
        ["error: channel: podcast:guid 'nightshift' is not a UUID"],
    ),
    "podcast:guid other feed": (
        [(f'href="{SELF_URL}"', 'href="https://feeds.nightshift.example/show.rss"')],
        [
            f"warning: channel: podcast:guid {SELF_GUID} is not the UUIDv5 of the feed URL "
            "https://feeds.nightshift.example/show.rss (aeb7e1a6-9aeb-56e0-bbd2-b062731d8770); "
            "expected unless the feed moved and kept its guid"
        ],
    ),
    # podcast:liveItem
    "liveItem status": (
        [('status="pending"', 'status="soon"')],
        [f"error: {LIVE}: status is 'soon', not pending, live or ended"],
    ),
    "liveItem start missing": (
        [('start="2024-03-01T20:00:00Z" ', "")],
        [f"error: {LIVE}: start None is not an ISO 8601 date-time"],
    ),
    "liveItem start format": (
        [('start="2024-03-01T20:00:00Z"', 'start="Fri, 01 Mar 2024 20:00:00 GMT"')],
        [f"error: {LIVE}: start 'Fri, 01 Mar 2024 20:00:00 GMT' is not an ISO 8601 date-time"],
    ),
    "liveItem end before start": (
        [('end="2024-03-01T21:00:00Z"', 'end="2024-03-01T21:00:00+02:00"')],
        [f"error: {LIVE}: end is not after start"],
    ),
    "liveItem guid": ([("<guid>live-1</guid>", "")], ["error: liveItem 1: missing <guid>"]),
    "liveItem title": ([("<title>Live night</title>", "")], [f"error: {LIVE}: missing <title>"]),
    "liveItem enclosure": (
        [('<enclosure url="https://example.com/live.mp3" type="audio/mpeg" length="312"/>', "")],
        [f"warning: {LIVE}: no <enclosure> (fallback stream): some apps skip such live items"],
    ),
    "liveItem contentLink": (
        [('<podcast:contentLink href="https://example.com/live">Listen live</podcast:contentLink>', "")],
        [f"error: {LIVE}: missing podcast:contentLink (required in a liveItem)"],
    ),
    "contentLink http": (
        [('href="https://example.com/live"', 'href="http://example.com/live"')],
        [f"error: {LIVE}: podcast:contentLink href http://example.com/live {NEEDS_HTTPS}"],
    ),
    # other podcast:* tags
    "locked": (
        [(">yes</podcast:locked>", ">true</podcast:locked>")],
        ["error: channel: podcast:locked is 'true', not yes or no"],
    ),
    "funding url missing": (
        [('<podcast:funding url="https://example.com/support">', "<podcast:funding>")],
        ["error: channel: podcast:funding url is missing"],
    ),
    "funding url http": (
        [('url="https://example.com/support"', 'url="http://example.com/support"')],
        [f"error: channel: podcast:funding url http://example.com/support {NEEDS_HTTPS}"],
    ),
    "funding text length": (
        [(">Support the show<", ">" + "s" * 129 + "<")],
        ["warning: channel: podcast:funding text is 129 characters; at most 128 are shown"],
    ),
    "person text missing": (
        [(">Ada Owner</podcast:person>", "></podcast:person>")],
        ["error: channel: podcast:person has no text"],
    ),
    "person img http": (
        [('img="https://example.com/ada.jpg"', 'img="http://example.com/ada.jpg"')],
        [f"error: channel: podcast:person img http://example.com/ada.jpg {NEEDS_HTTPS}"],
    ),
    "transcript type": (
        [('type="text/vtt"', 'type="text/markdown"')],
        [
            f"error: {ITEM1}: podcast:transcript type 'text/markdown' is not one of application/json, "
            "application/srt, application/x-subrip, text/html, text/plain, text/vtt"
        ],
    ),
    "transcript url": (
        [('<podcast:transcript url="https://cdn.example/ep1.vtt"', "<podcast:transcript")],
        [f"error: {ITEM1}: podcast:transcript url is missing"],
    ),
    "chapters type": (
        [(' type="application/json+chapters"', "")],
        [f"error: {ITEM1}: podcast:chapters type is missing"],
    ),
    "soundbite duration": (
        [('duration="60.0"', 'duration="0"')],
        [f"error: {ITEM1}: podcast:soundbite duration '0' is not a positive number of seconds"],
    ),
    "soundbite startTime": (
        [('startTime="73.0"', 'startTime="1:13"')],
        [f"error: {ITEM1}: podcast:soundbite startTime '1:13' is not a number of seconds"],
    ),
    "alternateEnclosure type": (
        [('<podcast:alternateEnclosure type="audio/opus"', "<podcast:alternateEnclosure")],
        [f"error: {ITEM1}: podcast:alternateEnclosure type is missing"],
    ),
    "alternateEnclosure sources": (
        [
            ('<podcast:source uri="https://cdn.example/ep1.opus"/>', ""),
            ('<podcast:source uri="ipfs://QmExample"/>', ""),
        ],
        [f"error: {ITEM1}: podcast:alternateEnclosure needs at least one podcast:source with a uri"],
    ),
    "source uri http": (
        [('uri="https://cdn.example/ep1.opus"', 'uri="http://cdn.example/ep1.opus"')],
        [f"error: {ITEM1}: podcast:source uri http://cdn.example/ep1.opus {NEEDS_HTTPS}"],
    ),
    "integrity type": (
        [('type="sri"', 'type="md5"')],
        [f"error: {ITEM1}: podcast:integrity type 'md5' is not sri or pgp-signature"],
    ),
    "podcast:season": (
        [("<podcast:season>1</podcast:season>", "<podcast:season>one</podcast:season>")],
        [f"error: {ITEM1}: podcast:season 'one' is not an integer"],
    ),
    "podcast:episode": (
        [("<podcast:episode>1</podcast:episode>", "<podcast:episode>1b</podcast:episode>")],
        [f"error: {ITEM1}: podcast:episode '1b' is not a number"],
    ),
    "podcast:episode twice": (
        [("<podcast:episode>1</podcast:episode>", "<podcast:episode>1</podcast:episode>" * 2)],
        [f"warning: {ITEM1}: 2 podcast:episode tags; only one is allowed"],
    ),
    "medium": (
        [(">podcast</podcast:medium>", ">radio</podcast:medium>")],
        ["error: channel: podcast:medium 'radio' is not a known medium"],
    ),
    "txt length": (
        [(">05124</podcast:txt>", ">" + "t" * 4001 + "</podcast:txt>")],
        ["warning: channel: podcast:txt text is 4001 characters; at most 4000 are shown"],
    ),
    "updateFrequency COUNT without dtstart": (
        [(' dtstart="2024-01-01T00:00:00.000Z"', "")],
        ["error: channel: podcast:updateFrequency needs dtstart when its rrule has COUNT"],
    ),
    "updateFrequency rrule": (
        [('rrule="FREQ=WEEKLY;COUNT=10"', 'rrule="weekly"')],
        ["error: channel: podcast:updateFrequency rrule 'weekly' has no valid FREQ"],
    ),
    "updateFrequency complete": (
        [("<podcast:updateFrequency ", '<podcast:updateFrequency complete="yes" ')],
        ["error: channel: podcast:updateFrequency complete 'yes' is not true or false"],
    ),
    "podping": (
        [('usesPodping="true"', 'usesPodping="yes"')],
        ["error: channel: podcast:podping usesPodping 'yes' is not true or false"],
    ),
    "trailer pubdate": (
        [('pubdate="Thu, 01 Apr 2021 08:00:00 EST"', 'pubdate="2021-04-01"')],
        ["error: channel: podcast:trailer pubdate '2021-04-01' is not an RFC 2822 date"],
    ),
    "trailer url": (
        [('url="https://example.com/trailer.mp3"', 'url="http://example.com/trailer.mp3"')],
        [f"error: channel: podcast:trailer url http://example.com/trailer.mp3 {NEEDS_HTTPS}"],
    ),
    "license text": (
        [("<podcast:license>cc-by-4.0</podcast:license>", "<podcast:license/>")],
        ["error: channel: podcast:license has no text"],
    ),
}


@pytest.mark.parametrize(("changes", "expected"), list(CASES.values()), ids=list(CASES))
def test_rule(changes: list[tuple[str, str]], expected: list[str]) -> None:
    assert lines(broken(*changes)) == expected


def test_podcast_guid_matches_the_fetched_url() -> None:
    no_self_link = broken((f'<atom:link href="{SELF_URL}" rel="self" type="application/rss+xml"/>', ""))
    assert lines(no_self_link) == []  # nothing to compare with
    assert lines(no_self_link, "http://mp3s.nashownotes.com/pc20rss.xml/") == []  # scheme and slash ignored
    [warning] = lines(no_self_link, "https://moved.example/feed.xml")
    assert warning.startswith(f"warning: channel: podcast:guid {SELF_GUID} is not the UUIDv5")
    moved = check_feed(no_self_link, "https://moved.example/feed.xml", aliases=[SELF_URL])
    assert moved == []


def test_root_must_be_rss() -> None:
    atom = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>'
    assert lines(atom) == ["error: document: root element is <feed>, not <rss>"]
    assert lines(b'<rss version="2.0"/>') == ["error: rss: missing <channel>"]
    two = GOOD.replace("</channel>", "</channel><channel><title>x</title></channel>").encode()
    assert "error: rss: 2 <channel> elements; an RSS feed has exactly one" in lines(two)


@pytest.mark.parametrize(
    "data",
    [b"", b"   \n", b"<html><body><p>Not found</body></html>", b"\x89PNG\r\n\x1a\n", b"<rss><channel>"],
    ids=["empty", "blank", "html", "binary", "truncated"],
)
def test_unreadable_input_raises(data: bytes) -> None:
    with pytest.raises(UnreadableFeed):
        check_feed(data)


def test_undeclared_itunes_prefix_is_unreadable() -> None:
    with pytest.raises(UnreadableFeed, match="Namespace prefix itunes"):
        check_feed(b'<rss version="2.0"><channel><itunes:image href="x"/></channel></rss>')


def _doctype(internal_subset: str, title: str) -> bytes:
    return (
        GOOD.replace("<rss ", f"<!DOCTYPE rss [{internal_subset}]>\n<rss ", 1)
        .replace("<title>Night Shift Radio</title>", f"<title>{title}</title>", 1)
        .encode()
    )


def test_billion_laughs_is_refused_without_expansion() -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    )
    data = _doctype(entities, "&lol9;")
    started = time.perf_counter()
    with pytest.raises(UnreadableFeed, match=r"(?i)entit") as info:  # refused by libxml2 or by the checker
        check_feed(data)
    assert time.perf_counter() - started < 1.0
    assert "lollol" not in str(info.value)


@pytest.mark.parametrize(
    "subset",
    ['<!ENTITY xxe SYSTEM "{uri}">', '<!ENTITY % xxe SYSTEM "{uri}"> %xxe;'],
    ids=["general", "parameter"],
)
def test_external_entities_are_refused_without_reading_the_file(tmp_path: Path, subset: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-4711")
    data = _doctype(subset.format(uri=secret.as_uri()), "&xxe;" if "%" not in subset else "x")
    with pytest.raises(UnreadableFeed, match="declares XML entities") as info:
        check_feed(data)
    assert "TOP-SECRET-4711" not in str(info.value)


def test_external_dtd_is_not_loaded(tmp_path: Path) -> None:
    dtd = tmp_path / "feed.dtd"
    dtd.write_text('<!ENTITY show "TOP-SECRET-4711">')
    data = GOOD.replace("<rss ", f'<!DOCTYPE rss SYSTEM "{dtd.as_uri()}">\n<rss ', 1).encode()
    assert lines(data) == []
    with pytest.raises(UnreadableFeed, match="undefined entity &show;"):
        check_feed(data.replace(b"<title>Night Shift Radio</title>", b"<title>&show;</title>"))


# -- feeds produced by our own generator ---------------------------------------------------------------------


def _errors(data: bytes) -> list[str]:
    return [str(p) for p in check_feed(data) if p.severity == "error"]


def test_built_feed_has_no_errors(channel, items) -> None:
    problems = [str(p) for p in check_feed(build_feed(channel, items))]
    # the fixture's podcast:guid is the namespace docs' example, not the UUIDv5 of its own feed URL
    assert problems == [
        f"warning: channel: podcast:guid {SELF_GUID} is not the UUIDv5 of the feed URL "
        "https://feeds.nightshift.example/show.rss (aeb7e1a6-9aeb-56e0-bbd2-b062731d8770); "
        "expected unless the feed moved and kept its guid"
    ]


def test_built_feed_variants_have_no_errors(channel, make_item) -> None:
    serial = replace(channel, show_type="serial", explicit=True, podcast_guid="", persons=[], funding=[])
    video = make_item(
        guid="v-1", enclosure_url="https://cdn.example/v.mp4", enclosure_type="video/mp4", number=3
    )
    trailer = make_item(
        guid="t-1", enclosure_url="https://cdn.example/t.mp3", episode_type="trailer", number=None
    )
    assert _errors(build_feed(serial, [make_item(), video, trailer])) == []
    assert _errors(build_feed(replace(channel, image_url=None, link="https://x.example/"), [])) == [
        "error: channel: missing itunes:image (the show artwork)"
    ]
