"""parse_feed: every field of a realistic feed, host quirks, round trip through build_feed, hostile XML."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from media_pub.errors import InvalidInput
from media_pub.feeds import FeedChannel, FeedItem, build_feed, sanitize_notes
from media_pub.feeds.importer import (
    ImportedFunding,
    ImportedPerson,
    ImportedShow,
    ImportedSoundbite,
    ImportedTranscript,
    parse_feed,
)

OFFICIAL_NS = "https://podcastindex.org/namespace/1.0"
OLD_NS = "https://github.com/Podcastindex-org/podcast-namespace/blob/main/docs/1.0.md"

# A Castopod-style feed using every field the importer reads.
FULL_FEED = f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"
     xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="{OFFICIAL_NS}"
     xmlns:atom="http://www.w3.org/2005/Atom"
     xmlns:content="http://purl.org/rss/1.0/modules/content/">
  <channel>
    <title><![CDATA[Night Shift Radio]]></title>
    <description><![CDATA[<p>Stories from people who work <b>while the city sleeps</b>.</p>]]></description>
    <link>https://nightshift.example/</link>
    <atom:link href="https://feeds.nightshift.example/show.rss" rel="self" type="application/rss+xml"/>
    <atom:link href="https://pubsubhubbub.appspot.com/" rel="hub"/>
    <language>en-US</language>
    <copyright>© 2024 Night Shift Collective</copyright>
    <generator>Castopod - https://castopod.org/</generator>
    <image>
      <url>https://cdn.nightshift.example/art/rss-image.jpg</url>
      <title>Night Shift Radio</title>
      <link>https://nightshift.example/image-link</link>
    </image>
    <itunes:image href="https://cdn.nightshift.example/art/cover-3000.jpg?v=2"/>
    <itunes:author>Night Shift Collective</itunes:author>
    <itunes:owner>
      <itunes:name>Ada Owner</itunes:name>
      <itunes:email>ada@nightshift.example</itunes:email>
    </itunes:owner>
    <itunes:category text="Society &amp; Culture">
      <itunes:category text="Documentary"/>
    </itunes:category>
    <itunes:category text="Arts"/>
    <itunes:explicit>false</itunes:explicit>
    <itunes:type>Serial</itunes:type>
    <itunes:new-feed-url>https://new.nightshift.example/feed.xml</itunes:new-feed-url>
    <itunes:complete>Yes</itunes:complete>
    <itunes:block>No</itunes:block>
    <podcast:guid>917393e3-1b1e-5cef-ace4-edaa54e1f810</podcast:guid>
    <podcast:locked owner="ada@nightshift.example">yes</podcast:locked>
    <podcast:medium>Podcast</podcast:medium>
    <podcast:funding url="https://nightshift.example/support">Support the show</podcast:funding>
    <podcast:funding url="https://patreon.example/nightshift">Join us on Patreon</podcast:funding>
    <podcast:person href="https://ada.example/"
                    img="https://cdn.nightshift.example/ada.jpg">Ada Owner</podcast:person>
    <podcast:person role="Producer" group="Crew">Bo Producer</podcast:person>
    <item>
      <title>The Baker</title>
      <guid isPermaLink="false">  Ep-ABC-001  </guid>
      <link>https://nightshift.example/1</link>
      <description><![CDATA[<p>Meet the baker.</p>]]></description>
      <content:encoded><![CDATA[<p>Meet the baker.</p><ul><li>Sourdough</li><li>Dawn</li></ul>]]>
      </content:encoded>
      <pubDate>Tue, 05 Mar 2024 14:00:00 +0200</pubDate>
      <enclosure url="https://cdn.nightshift.example/media/ep1.mp3" length="31337000" type="audio/mpeg"/>
      <itunes:duration>01:02:03</itunes:duration>
      <itunes:explicit>yes</itunes:explicit>
      <itunes:episodeType>full</itunes:episodeType>
      <itunes:season>2</itunes:season>
      <itunes:episode>7</itunes:episode>
      <itunes:image href="https://cdn.nightshift.example/art/ep1.png"/>
      <podcast:chapters url="https://cdn.nightshift.example/ep1.json" type="application/json+chapters"/>
      <podcast:transcript url="https://cdn.nightshift.example/ep1.vtt" type="text/vtt" language="en"
                          rel="captions"/>
      <podcast:transcript url="https://cdn.nightshift.example/ep1.html" type="text/html"/>
      <podcast:person role="guest" img="https://cdn.nightshift.example/cy.jpg">Cy Guest</podcast:person>
      <podcast:soundbite startTime="73.5" duration="60">The best part</podcast:soundbite>
      <podcast:soundbite startTime="1234" duration="42.25"/>
      <podcast:funding url="https://bakery.example/tip">Tip the baker</podcast:funding>
    </item>
    <item>
      <title>Trailer</title>
      <guid>tag:nightshift.example,2024:Episode  Two</guid>
      <description><![CDATA[<p>What this show is about, at some length.</p>]]></description>
      <content:encoded><![CDATA[<p>Short.</p>]]></content:encoded>
      <enclosure url="https://cdn.nightshift.example/media/trailer.m4a" length="482113" type="audio/x-m4a"/>
      <itunes:duration>1834.6</itunes:duration>
      <itunes:explicit>Clean</itunes:explicit>
      <itunes:episodeType>Trailer</itunes:episodeType>
      <itunes:block>Yes</itunes:block>
    </item>
    <item>
      <title>A text-only announcement</title>
      <guid isPermaLink="true">https://nightshift.example/news/1</guid>
      <description>We are on a break.</description>
      <pubDate>Mon, 01 Jan 2024 06:00:00 GMT</pubDate>
    </item>
    <item>
      <title>No guid here</title>
      <link>https://nightshift.example/3</link>
      <pubDate>2024-02-01T10:00:00Z</pubDate>
      <enclosure url="https://cdn.nightshift.example/media/ep3.mp3" length="" type="audio/mpeg"/>
      <itunes:duration>45:10</itunes:duration>
    </item>
  </channel>
</rss>
""".encode()


def test_every_channel_field() -> None:
    show = parse_feed(FULL_FEED)
    assert isinstance(show, ImportedShow)
    assert show.title == "Night Shift Radio"
    assert show.description == "<p>Stories from people who work <b>while the city sleeps</b>.</p>"
    assert show.link == "https://nightshift.example/"
    assert show.feed_url == "https://feeds.nightshift.example/show.rss"
    assert show.language == "en-US"
    assert show.copyright == "© 2024 Night Shift Collective"
    assert show.generator == "Castopod - https://castopod.org/"
    assert show.image_url == "https://cdn.nightshift.example/art/cover-3000.jpg?v=2"  # itunes:image wins
    assert show.author == "Night Shift Collective"
    assert (show.owner_name, show.owner_email) == ("Ada Owner", "ada@nightshift.example")
    assert (show.category, show.subcategory) == ("Society & Culture", "Documentary")
    assert show.explicit is False
    assert show.show_type == "serial"
    assert show.new_feed_url == "https://new.nightshift.example/feed.xml"
    assert show.complete is True
    assert show.block is False
    assert show.podcast_guid == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    assert show.locked is True
    assert show.locked_owner == "ada@nightshift.example"
    assert show.medium == "podcast"
    assert show.funding == [
        ImportedFunding("https://nightshift.example/support", "Support the show"),
        ImportedFunding("https://patreon.example/nightshift", "Join us on Patreon"),
    ]
    assert show.persons == [
        ImportedPerson(
            "Ada Owner", "host", "cast", "https://cdn.nightshift.example/ada.jpg", "https://ada.example/"
        ),
        ImportedPerson("Bo Producer", "producer", "crew"),
    ]
    assert len(show.episodes) == 4


def test_every_episode_field() -> None:
    ep = parse_feed(FULL_FEED).episodes[0]
    assert ep.guid == "Ep-ABC-001"  # case kept, surrounding whitespace trimmed
    assert ep.guid_source == "guid"
    assert ep.title == "The Baker"
    # content:encoded is longer than description, so it is the notes
    assert ep.description_html == "<p>Meet the baker.</p><ul><li>Sourdough</li><li>Dawn</li></ul>"
    assert ep.link == "https://nightshift.example/1"
    assert ep.pub_date == datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    assert ep.pub_date is not None
    assert ep.pub_date.utcoffset() is not None
    assert ep.enclosure_url == "https://cdn.nightshift.example/media/ep1.mp3"
    assert (ep.enclosure_length, ep.enclosure_type) == (31_337_000, "audio/mpeg")
    assert ep.has_media is True
    assert ep.duration == 3723.0
    assert ep.explicit is True
    assert ep.episode_type == "full"
    assert (ep.season, ep.number) == (2, 7)
    assert ep.image_url == "https://cdn.nightshift.example/art/ep1.png"
    assert ep.chapters_url == "https://cdn.nightshift.example/ep1.json"
    assert ep.chapters_type == "application/json+chapters"
    assert ep.transcripts == [
        ImportedTranscript("https://cdn.nightshift.example/ep1.vtt", "text/vtt", "en", "captions"),
        ImportedTranscript("https://cdn.nightshift.example/ep1.html", "text/html"),
    ]
    assert ep.persons == [
        ImportedPerson("Cy Guest", "guest", "cast", "https://cdn.nightshift.example/cy.jpg")
    ]
    assert ep.soundbites == [ImportedSoundbite(73.5, 60.0, "The best part"), ImportedSoundbite(1234.0, 42.25)]
    assert ep.funding == [ImportedFunding("https://bakery.example/tip", "Tip the baker")]
    assert ep.block is False


def test_odd_episodes_are_kept_with_their_quirks() -> None:
    _, trailer, text_only, no_guid = parse_feed(FULL_FEED).episodes
    assert trailer.guid == "tag:nightshift.example,2024:Episode  Two"  # inner double space kept
    assert trailer.pub_date is None  # missing pubDate is not an error
    assert trailer.description_html == "<p>What this show is about, at some length.</p>"
    assert trailer.duration == pytest.approx(1834.6)
    assert trailer.explicit is False  # "Clean"
    assert trailer.episode_type == "trailer"
    assert trailer.block is True
    assert trailer.season is None
    assert trailer.number is None

    assert text_only.has_media is False
    assert text_only.enclosure_url is None
    assert text_only.guid == "https://nightshift.example/news/1"
    assert text_only.description_html == "We are on a break."

    assert no_guid.guid == "https://cdn.nightshift.example/media/ep3.mp3"  # what apps fall back to
    assert no_guid.guid_source == "enclosure"
    assert no_guid.enclosure_length is None  # length="" tolerated
    assert no_guid.pub_date == datetime(2024, 2, 1, 10, 0, tzinfo=UTC)  # ISO 8601 tolerated
    assert no_guid.duration == 2710.0


# An Anchor/Libsyn-style feed: BOM and blank line first, odd-case itunes namespace URI and values,
# the old Podcasting 2.0 URI, an HTML entity outside CDATA, a guid in CDATA, the image URL as text.
QUIRKY_FEED = (
    b"\xef\xbb\xbf\n\n"
    + f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/DTDs/Podcast-1.0.dtd" xmlns:podcast="{OLD_NS}"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
<title>Caf&eacute;&nbsp;Talk</title>
<description>Chats over coffee &amp; cake.</description>
<link>https://anchor.example/cafe</link>
<language>de</language>
<itunes:explicit>Yes</itunes:explicit>
<itunes:type>EPISODIC</itunes:type>
<itunes:category text="Society &amp;amp; Culture"/>
<itunes:image>https://anchor.example/cafe.jpg</itunes:image>
<podcast:locked>No</podcast:locked>
<podcast:person role="host">Mia Barista</podcast:person>
<item>
<title><![CDATA[Folge 1: Espresso & mehr]]></title>
<guid isPermaLink="false"><![CDATA[  a1B2-c3D4
]]></guid>
<pubDate>Wed, 6 Mar 2024 09:30:00 GMT</pubDate>
<description><![CDATA[<p>Kaffee&nbsp;und <a href="https://anchor.example">mehr</a></p>]]></description>
<enclosure type="audio/mpeg" url=" https://anchor.example/ep1.mp3 " length="123"/>
<itunes:duration>00:45:10</itunes:duration>
<itunes:explicit>TRUE</itunes:explicit>
<itunes:episodeType>FULL</itunes:episodeType>
<dc:creator>Mia</dc:creator>
<podcast:transcript url="https://anchor.example/ep1.srt" type="application/x-subrip"/>
<podcast:season>3</podcast:season>
<podcast:episode>4</podcast:episode>
</item>
</channel>
</rss>
""".encode()
)


def test_quirky_host_feed() -> None:
    show = parse_feed(QUIRKY_FEED)
    assert show.title == "Caf\u00e9\u00a0Talk"
    assert show.description == "Chats over coffee & cake."
    assert show.explicit is True
    assert show.show_type == "episodic"
    assert show.category == "Society & Culture"
    assert show.subcategory is None
    assert show.image_url == "https://anchor.example/cafe.jpg"
    assert show.locked is False
    assert show.persons == [ImportedPerson("Mia Barista")]
    assert show.podcast_guid is None
    assert show.feed_url is None
    (ep,) = show.episodes
    assert ep.title == "Folge 1: Espresso & mehr"
    assert ep.guid == "a1B2-c3D4"
    # inside CDATA an HTML entity is text: it stays as written
    assert ep.description_html == '<p>Kaffee&nbsp;und <a href="https://anchor.example">mehr</a></p>'
    assert ep.enclosure_url == "https://anchor.example/ep1.mp3"
    assert ep.pub_date == datetime(2024, 3, 6, 9, 30, tzinfo=UTC)
    assert ep.duration == 2710.0
    assert ep.explicit is True
    assert ep.episode_type == "full"
    assert (ep.season, ep.number) == (3, 4)  # podcast:season/episode when itunes ones are missing
    assert ep.transcripts == [ImportedTranscript("https://anchor.example/ep1.srt", "application/x-subrip")]


@pytest.mark.parametrize(
    "uri", [OFFICIAL_NS, OLD_NS, OFFICIAL_NS + "/", OLD_NS.replace("Podcastindex", "podcastindex")]
)
def test_podcasting20_tags_under_either_namespace(uri: str) -> None:
    feed = f"""<rss version="2.0" xmlns:p="{uri}"><channel><title>T</title>
      <p:guid>abc</p:guid><p:funding url="https://f.example/">Fund</p:funding>
      <item><guid>g</guid><p:chapters url="https://c.example/c.json" type="application/json+chapters"/>
      <p:transcript url="https://c.example/t.vtt" type="text/vtt"/><p:person>P</p:person>
      <p:soundbite startTime="1" duration="20"/></item></channel></rss>""".encode()
    show = parse_feed(feed)
    assert show.podcast_guid == "abc"
    assert show.funding == [ImportedFunding("https://f.example/", "Fund")]
    (ep,) = show.episodes
    assert ep.chapters_url == "https://c.example/c.json"
    assert ep.transcripts == [ImportedTranscript("https://c.example/t.vtt", "text/vtt")]
    assert ep.persons == [ImportedPerson("P")]
    assert ep.soundbites == [ImportedSoundbite(1.0, 20.0)]


def test_unknown_namespace_with_podcast_prefix_is_ignored() -> None:
    feed = b"""<rss xmlns:podcast="https://example.com/not-podcasting"><channel><title>T</title>
      <podcast:guid>nope</podcast:guid></channel></rss>"""
    assert parse_feed(feed).podcast_guid is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1834", 1834.0), ("1834.6", 1834.6), ("30:34", 1834.0), ("1:02:03", 3723.0), (" 00:00:59 ", 59.0)],
)
def test_duration_forms(text: str, seconds: float) -> None:
    feed = f"""<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>T</title>
      <item><guid>g</guid><itunes:duration>{text}</itunes:duration></item></channel></rss>""".encode()
    assert parse_feed(feed).episodes[0].duration == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "-5", "nan", "12 min"])
def test_bad_durations_are_none(text: str) -> None:
    feed = f"""<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel><title>T</title>
      <item><guid>g</guid><itunes:duration>{text}</itunes:duration></item></channel></rss>""".encode()
    assert parse_feed(feed).episodes[0].duration is None


def test_windows_1252_feed() -> None:
    feed = '<?xml version="1.0" encoding="windows-1252"?>'
    feed += "<rss><channel><title>Café – Talk</title></channel></rss>"
    assert parse_feed(feed.encode("cp1252")).title == "Café – Talk"


def test_large_feed_imports() -> None:
    items = "".join(
        f'<item><title>E{i}</title><guid>g-{i}</guid><enclosure url="https://x.example/{i}.mp3" '
        f'length="1" type="audio/mpeg"/><pubDate>Tue, 05 Mar 2024 12:00:00 GMT</pubDate></item>'
        for i in range(5000)
    )
    started = time.monotonic()
    show = parse_feed(f"<rss><channel><title>Big</title>{items}</channel></rss>".encode())
    assert len(show.episodes) == 5000
    assert len({ep.guid for ep in show.episodes}) == 5000
    assert time.monotonic() - started < 5


# --- round trip through our own builder -------------------------------------------------------------


def test_round_trip_through_build_feed(channel: FeedChannel, items: list[FeedItem]) -> None:
    odd = replace(
        items[0], guid="Case-Sensitive GUID  with two spaces", enclosure_url="https://x.example/o.mp3"
    )
    items = [*items, odd]
    show = parse_feed(build_feed(channel, items))

    assert show.title == channel.title
    assert show.description == sanitize_notes(channel.description)
    assert show.link == channel.link
    assert show.feed_url == channel.feed_url
    assert show.language == channel.language
    assert show.author == channel.author
    assert (show.owner_name, show.owner_email) == (channel.owner_name, channel.owner_email)
    assert show.image_url == channel.image_url
    assert (show.category, show.subcategory) == (channel.category, channel.subcategory)
    assert show.explicit is channel.explicit
    assert show.show_type == channel.show_type
    assert show.copyright == channel.copyright
    assert show.podcast_guid == channel.podcast_guid
    assert show.locked is channel.locked
    assert show.locked_owner == channel.owner_email
    assert show.funding == [ImportedFunding(f.url, f.text) for f in channel.funding]
    assert show.persons == [ImportedPerson(p.name, p.role, p.group, p.img, p.href) for p in channel.persons]
    assert (show.new_feed_url, show.complete, show.block) == (None, False, False)

    assert sorted(ep.guid for ep in show.episodes) == sorted(it.guid for it in items)
    by_guid = {ep.guid: ep for ep in show.episodes}
    for it in items:
        ep = by_guid[it.guid]
        assert ep.guid_source == "guid"
        assert ep.title == it.title
        assert ep.description_html == sanitize_notes(it.description_html)
        assert ep.link == it.link
        assert ep.pub_date == it.pub_date
        assert ep.pub_date is not None
        assert ep.pub_date.tzinfo is not None
        assert (ep.enclosure_url, ep.enclosure_length, ep.enclosure_type) == (
            it.enclosure_url,
            it.enclosure_length,
            it.enclosure_type,
        )
        assert ep.has_media
        assert ep.duration == (round(it.duration) if it.duration is not None else None)
        assert ep.explicit is it.explicit
        assert ep.episode_type == it.episode_type
        assert (ep.season, ep.number) == (it.season, it.number)
        assert ep.image_url == it.image_url
        assert ep.chapters_url == it.chapters_url
        assert ep.persons == [ImportedPerson(p.name, p.role, p.group, p.img, p.href) for p in it.persons]


def test_round_trip_of_move_flags(channel: FeedChannel, items: list[FeedItem]) -> None:
    moved = replace(channel, new_feed_url="https://elsewhere.example/feed", block=True, complete=True)
    show = parse_feed(build_feed(moved, items))
    assert (show.new_feed_url, show.block, show.complete) == ("https://elsewhere.example/feed", True, True)


# --- not a feed --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   \n",
        b"not xml at all",
        b'{"title": "json"}',
        b"<rss><channel><title>cut off",
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title></feed>',
        b"<rss version='2.0'><title>no channel</title></rss>",
        b"<!DOCTYPE html><html><body>a website</body></html>",
        b"<html><head><title>x</title></head></html>",
    ],
)
def test_not_a_feed(data: bytes) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_feed(data)
    assert caught.value.code == "import-not-a-feed"


# --- hostile XML -------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss><channel><title>&lol9;</title></channel></rss>"""

QUADRATIC_BLOWUP = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "'
    + b"x" * 100_000
    + b'">]><rss><channel><title>'
    + b"&a;" * 20_000
    + b"</title></channel></rss>"
)


def _assert_unsafe(data: bytes) -> InvalidInput:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        parse_feed(data)
    assert time.monotonic() - started < 1.0
    assert caught.value.code == "import-unsafe-xml"
    return caught.value


def test_billion_laughs_is_refused() -> None:
    _assert_unsafe(BILLION_LAUGHS)


def test_quadratic_blowup_is_refused() -> None:
    _assert_unsafe(QUADRATIC_BLOWUP)


_OPENED: list[str] | None = None


def _audit_opens(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and args and isinstance(args[0], str | bytes | Path):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit_opens)  # inert unless _OPENED is a list; audit hooks cannot be removed


def _exception_text(exc: BaseException) -> str:
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts += [str(seen), repr(seen), *map(str, seen.args)]
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts)


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE rss [<!ENTITY xxe SYSTEM "{url}">]><rss><channel><title>&xxe;</title></channel></rss>',
        '<!DOCTYPE rss [<!ENTITY % p SYSTEM "{url}"> %p;]><rss><channel><title>t</title></channel></rss>',
        '<!DOCTYPE rss SYSTEM "{url}"><rss><channel><title>t</title></channel></rss>',
        '<rss xmlns:xi="http://www.w3.org/2001/XInclude"><channel><title><xi:include href="{url}" '
        'parse="text"/></title></channel></rss>',
    ],
    ids=["entity", "parameter-entity", "external-dtd", "xinclude"],
)
def test_external_references_never_read_the_file(tmp_path: Path, template: str) -> None:
    global _OPENED
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    data = ('<?xml version="1.0"?>' + template.format(url=secret.as_uri())).encode()
    _OPENED = []
    try:
        if "DOCTYPE" not in template:
            # no DTD, so this parses; XInclude is simply not processed
            show = parse_feed(data)
            assert "TOP-SECRET" not in repr(show)
        else:
            exc = _assert_unsafe(data)
            assert "TOP-SECRET" not in _exception_text(exc)
        assert str(secret) not in _OPENED
    finally:
        _OPENED = None


def test_remote_dtd_is_refused_without_a_connection() -> None:
    _assert_unsafe(
        b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://127.0.0.1:9/rss-0.91.dtd"><rss><channel><title>t</title></channel></rss>'
    )


def test_entity_declaration_without_doctype_name_is_refused() -> None:
    _assert_unsafe(b'<!DOCTYPE x [<!ENTITY e "boom">]><rss><channel><title>&e;</title></channel></rss>')
