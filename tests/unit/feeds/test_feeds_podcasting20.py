"""Podcasting 2.0 tags: every channel, item and liveItem tag, checked per docs/tags/*.md with real parsers."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import feedparser
import podcastparser
import pytest

from media_pub.feeds import build_feed
from media_pub.feeds.ext_podcasting20 import PODCAST_NS, sri_sha256
from media_pub.feeds.model import (
    FeedAlternateEnclosure,
    FeedContentLink,
    FeedFunding,
    FeedImage,
    FeedLicense,
    FeedLiveItem,
    FeedLocation,
    FeedPerson,
    FeedSoundbite,
    FeedSource,
    FeedTrailer,
    FeedTranscript,
    FeedTxt,
    FeedUpdateFrequency,
)

NS = {
    "podcast": PODCAST_NS,
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "atom": "http://www.w3.org/2005/Atom",
}
P = f"{{{PODCAST_NS}}}"
T0 = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
HUBS = ["https://pubsubhubbub.appspot.com/", "https://websub.example/hub"]
MEDIA = b"the 1080p rendition"
SRI = "sha256-" + base64.b64encode(hashlib.sha256(MEDIA).digest()).decode()


def _xp(node, path: str) -> list:
    return node.xpath(path, namespaces=NS)


def _one(node, path: str):
    found = _xp(node, path)
    assert len(found) == 1, f"{path}: expected exactly one match, got {len(found)}"
    return found[0]


def _attrs(el) -> dict[str, str]:
    return dict(el.attrib)


def _live(guid: str, status: str, start: datetime, **changes) -> FeedLiveItem:
    base = FeedLiveItem(
        guid=guid,
        title=f"Live show {guid}",
        status=status,
        start=start,
        content_links=[
            FeedContentLink("https://nightshift.example/live", "Watch on our site"),
            FeedContentLink("https://video.example/nightshift/live", "Live on Video"),
        ],
        end=start + timedelta(hours=2),
        description_html="<p>Call in <b>live</b>.</p>",
        enclosure_url="https://stream.nightshift.example/live.mp3",
        enclosure_type="audio/mpeg",
        alternate_enclosures=[
            FeedAlternateEnclosure(
                "application/x-mpegURL",
                [FeedSource("https://stream.nightshift.example/live.m3u8")],
                title="HLS",
                default=True,
            )
        ],
        persons=[FeedPerson("Ada Owner"), FeedPerson("Cy Caller", role="guest")],
        images=[
            FeedImage("https://cdn.nightshift.example/live.jpg", alt="Studio at night", aspect_ratio="1/1")
        ],
        funding=[FeedFunding("https://nightshift.example/live-tips", "Tip the live show")],
    )
    return replace(base, **changes)


@pytest.fixture
def live_items() -> list[FeedLiveItem]:
    """An ended, a live and a pending stream, given out of order."""
    return [
        _live("a-pending", "pending", T0 + timedelta(days=7)),
        _live("c-ended", "ended", T0 - timedelta(days=7)),
        _live("b-now", "live", T0 - timedelta(minutes=30)),
    ]


@pytest.fixture
def full_channel(channel, live_items):
    """The conftest show with every Podcasting 2.0 channel tag set."""
    return replace(
        channel,
        medium="video",
        locations=[
            FeedLocation("Austin, TX", geo="geo:30.2672,97.7431", osm="R113314", rel="creator", country="us"),
            FeedLocation("Dreamworld (Queensland)", geo="-27.86159,153.3169", osm="W43678282"),
        ],
        license=FeedLicense("cc-by-4.0", "https://creativecommons.org/licenses/by/4.0/"),
        images=[
            FeedImage(
                "https://cdn.nightshift.example/art/square.jpg",
                alt="A moon over a city",
                aspect_ratio="1/1",
                width=3000,
                height=3000,
                type="image/jpeg",
                purpose="artwork",
            ),
            FeedImage(
                "https://cdn.nightshift.example/art/wide.jpg", aspect_ratio="16/9", purpose="social banner"
            ),
        ],
        txts=[FeedTxt("05124", purpose="applepodcastsverify"), FeedTxt("naj3eEZaWVVY9a38uhX8")],
        update_frequency=FeedUpdateFrequency(
            "Every other Monday for 10 episodes",
            rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=10",
            dtstart=datetime(2023, 8, 28, tzinfo=UTC),
        ),
        uses_podping=True,
        trailers=[
            FeedTrailer(
                "https://cdn.nightshift.example/media/teaser.mp3",
                "Coming April 1st",
                datetime(2021, 4, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
                length=12_345_678,
                type="audio/mpeg",
            ),
            FeedTrailer(
                "https://cdn.nightshift.example/media/s2-teaser.mp4",
                "Season 2: The Harbour",
                T0,
                length=2_000_000,
                type="video/mp4",
                season=2,
            ),
        ],
        hubs=HUBS,
        live_items=live_items,
    )


@pytest.fixture
def full_items(items):
    """The conftest episodes; episode 2 carries every Podcasting 2.0 item tag."""
    ep1, trailer, ep2 = items
    ep2 = replace(
        ep2,
        season_name="The Night Shift",
        episode_display="Ch.2",
        funding=[
            FeedFunding("https://nightshift.example/ep2/support", "Support this episode"),
            FeedFunding("https://tips.example/nurse", "Tip the nurse"),
        ],
        locations=[FeedLocation("St. Mary's Hospital", geo="geo:51.5176,-0.1743", rel="subject")],
        transcripts=[
            FeedTranscript("https://cdn.nightshift.example/media/ep2.vtt", "text/vtt", rel="captions"),
            FeedTranscript(
                "https://cdn.nightshift.example/media/ep2.json", "application/json", language="es"
            ),
        ],
        soundbites=[FeedSoundbite(73, 60.0), FeedSoundbite(1234.5, 42.25, "Why night shifts matter")],
        license=FeedLicense("my-podcast-license-v1", "https://nightshift.example/license.pdf"),
        txts=[FeedTxt("2024-03-05T12:00:00.000Z", purpose="release")],
        images=[FeedImage("https://cdn.nightshift.example/art/ep2.jpg", alt="A ward at dawn", width=1400)],
        alternate_enclosures=[
            FeedAlternateEnclosure(
                "audio/x-m4a",
                [FeedSource(ep2.enclosure_url)],
                length=ep2.enclosure_length,
                bitrate=128000,
                title="Standard",
                default=True,
            ),
            FeedAlternateEnclosure(
                "video/mp4",
                [
                    FeedSource("https://cdn.nightshift.example/media/ep2-1080.mp4"),
                    FeedSource(
                        "https://cdn.nightshift.example/media/ep2-1080.torrent", "application/x-bittorrent"
                    ),
                ],
                length=len(MEDIA),
                bitrate=681483.55,
                height=1080,
                lang="en-US",
                title="1080p video",
                rel="video",
                codecs="avc1.640028,mp4a.40.2",
                integrity=SRI,
            ),
        ],
        content_links=[FeedContentLink("https://video.example/watch?v=nurse", "Watch on Video")],
    )
    return [ep1, trailer, ep2]


@pytest.fixture
def root(full_channel, full_items, strict_parse):
    return strict_parse(build_feed(full_channel, full_items))


def test_podcast_elements_use_the_official_namespace_and_prefix(full_channel, full_items, strict_parse):
    data = build_feed(full_channel, full_items)
    root = strict_parse(data)
    assert root.nsmap["podcast"] == "https://podcastindex.org/namespace/1.0"
    assert data.count(b"xmlns:podcast=") == 1  # declared once, on <rss>
    assert b"xmlns:ns0" not in data
    assert b"xmlns:atom=" in data
    assert data.count(b"xmlns:atom=") == 1
    local_names = {el.tag.split("}")[1] for el in root.iter() if el.tag.startswith(P)}
    assert local_names == {
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
        "liveItem",
        "chapters",
        "transcript",
        "soundbite",
        "season",
        "episode",
        "alternateEnclosure",
        "source",
        "integrity",
        "contentLink",
    }
    for el in root.iter():
        for name, value in el.attrib.items():
            assert value.strip(), f"{el.tag} has an empty {name} attribute"


def test_websub_hub_links_follow_the_self_link(root, full_channel):
    ch = _one(root, "/rss/channel")
    links = _xp(ch, "atom:link")
    assert [(ln.get("rel"), ln.get("href")) for ln in links] == [
        ("self", full_channel.feed_url),
        *[("hub", hub) for hub in HUBS],
    ]
    first = list(ch).index(links[0])
    assert [list(ch).index(ln) for ln in links] == [first, first + 1, first + 2]


def test_channel_identity_medium_podping(root, full_channel):
    ch = _one(root, "/rss/channel")
    assert _one(ch, "podcast:guid/text()") == full_channel.podcast_guid
    assert _one(ch, "podcast:medium/text()") == "video"
    assert _attrs(_one(ch, "podcast:podping")) == {"usesPodping": "true"}
    assert _one(ch, "podcast:locked/text()") == "yes"


def test_channel_locations_license_images_txt(root):
    ch = _one(root, "/rss/channel")
    locations = _xp(ch, "podcast:location")
    assert [(loc.text, _attrs(loc)) for loc in locations] == [
        ("Austin, TX", {"rel": "creator", "geo": "geo:30.2672,97.7431", "osm": "R113314", "country": "us"}),
        # the "geo:" URI prefix is added when the caller gave bare coordinates
        ("Dreamworld (Queensland)", {"geo": "geo:-27.86159,153.3169", "osm": "W43678282"}),
    ]
    lic = _one(ch, "podcast:license")
    assert (lic.text, _attrs(lic)) == ("cc-by-4.0", {"url": "https://creativecommons.org/licenses/by/4.0/"})
    images = _xp(ch, "podcast:image")
    assert [_attrs(img) for img in images] == [
        {
            "href": "https://cdn.nightshift.example/art/square.jpg",
            "alt": "A moon over a city",
            "aspect-ratio": "1/1",
            "width": "3000",
            "height": "3000",
            "type": "image/jpeg",
            "purpose": "artwork",
        },
        {
            "href": "https://cdn.nightshift.example/art/wide.jpg",
            "aspect-ratio": "16/9",
            "purpose": "social banner",
        },
    ]
    assert all(img.text is None for img in images)
    txts = _xp(ch, "podcast:txt")
    assert [(t.text, t.get("purpose")) for t in txts] == [
        ("05124", "applepodcastsverify"),
        ("naj3eEZaWVVY9a38uhX8", None),
    ]


def test_channel_update_frequency_and_trailers(root, full_channel):
    ch = _one(root, "/rss/channel")
    uf = _one(ch, "podcast:updateFrequency")
    assert uf.text == "Every other Monday for 10 episodes"
    assert _attrs(uf) == {
        "dtstart": "2023-08-28T00:00:00.000Z",
        "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=10",
    }
    trailers = _xp(ch, "podcast:trailer")
    assert [t.text for t in trailers] == [t.title for t in full_channel.trailers]
    for el, given in zip(trailers, full_channel.trailers, strict=True):
        assert el.get("url") == given.url
        assert el.get("length") == str(given.length)
        assert el.get("type") == given.type
        assert parsedate_to_datetime(el.get("pubdate")) == given.pub_date  # RFC 2822
        assert el.get("pubdate").endswith("+0000")
    assert trailers[0].get("pubdate") == "Thu, 01 Apr 2021 13:00:00 +0000"
    assert "season" not in trailers[0].attrib
    assert trailers[1].get("season") == "2"


def test_channel_tag_order_live_items_before_the_first_item(root):
    ch = _one(root, "/rss/channel")
    tags = [c.tag for c in ch]
    first_item = tags.index("item")
    live_positions = [i for i, t in enumerate(tags) if t == f"{P}liveItem"]
    assert len(live_positions) == 3
    assert max(live_positions) < first_item
    last_channel_tag = max(i for i, t in enumerate(tags) if t.startswith(P) and t != f"{P}liveItem")
    assert last_channel_tag < min(live_positions)
    assert all(t == "item" for t in tags[first_item:])


def _podcast_children(el) -> list[str]:
    names = [c.tag.split("}")[1] for c in el if isinstance(c.tag, str) and c.tag.startswith(P)]
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]  # collapse repeats


def test_podcast_tag_order(root, full_items):
    assert _podcast_children(_one(root, "/rss/channel")) == [
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
        "liveItem",
    ]
    assert _podcast_children(_one(root, f"/rss/channel/item[guid='{full_items[2].guid}']")) == [
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
    ]


def test_blank_hubs_are_skipped(channel, strict_parse):
    root = strict_parse(build_feed(replace(channel, hubs=["", "  https://hub.example/ ", "\x00"]), []))
    assert [(ln.get("rel"), ln.get("href")) for ln in _xp(root, "/rss/channel/atom:link")] == [
        ("self", channel.feed_url),
        ("hub", "https://hub.example/"),
    ]


def test_item_tags(root, full_items):
    ep2 = full_items[2]
    node = _one(root, f"/rss/channel/item[guid='{ep2.guid}']")

    season = _one(node, "podcast:season")
    assert (season.text, _attrs(season)) == ("1", {"name": "The Night Shift"})
    episode = _one(node, "podcast:episode")
    assert (episode.text, _attrs(episode)) == ("2", {"display": "Ch.2"})
    assert [(f.get("url"), f.text) for f in _xp(node, "podcast:funding")] == [
        (f.url, f.text) for f in ep2.funding
    ]
    loc = _one(node, "podcast:location")
    assert (loc.text, _attrs(loc)) == (
        "St. Mary's Hospital",
        {"rel": "subject", "geo": "geo:51.5176,-0.1743"},
    )
    assert [_attrs(t) for t in _xp(node, "podcast:transcript")] == [
        {"url": "https://cdn.nightshift.example/media/ep2.vtt", "type": "text/vtt", "rel": "captions"},
        {
            "url": "https://cdn.nightshift.example/media/ep2.json",
            "type": "application/json",
            "language": "es",
        },
    ]
    soundbites = _xp(node, "podcast:soundbite")
    assert [(_attrs(s), s.text) for s in soundbites] == [
        ({"startTime": "73.0", "duration": "60.0"}, None),
        ({"startTime": "1234.5", "duration": "42.25"}, "Why night shifts matter"),
    ]
    lic = _one(node, "podcast:license")
    assert (lic.text, lic.get("url")) == ("my-podcast-license-v1", "https://nightshift.example/license.pdf")
    txt = _one(node, "podcast:txt")
    assert (txt.text, _attrs(txt)) == ("2024-03-05T12:00:00.000Z", {"purpose": "release"})
    assert _attrs(_one(node, "podcast:image")) == {
        "href": "https://cdn.nightshift.example/art/ep2.jpg",
        "alt": "A ward at dawn",
        "width": "1400",
    }
    link = _one(node, "podcast:contentLink")
    assert (link.text, _attrs(link)) == ("Watch on Video", {"href": "https://video.example/watch?v=nurse"})
    # the existing tags are still there
    assert _one(node, "podcast:chapters/@url") == ep2.chapters_url
    assert [p.text for p in _xp(node, "podcast:person")] == ["Cy Guest", "Ada Owner"]


def test_alternate_enclosures(root, full_items):
    ep2 = full_items[2]
    node = _one(root, f"/rss/channel/item[guid='{ep2.guid}']")
    standard, video = _xp(node, "podcast:alternateEnclosure")
    assert _attrs(standard) == {
        "type": "audio/x-m4a",
        "length": str(ep2.enclosure_length),
        "bitrate": "128000",
        "title": "Standard",
        "default": "true",
    }
    assert [_attrs(s) for s in _xp(standard, "podcast:source")] == [{"uri": ep2.enclosure_url}]
    assert not _xp(standard, "podcast:integrity")

    assert _attrs(video) == {
        "type": "video/mp4",
        "length": str(len(MEDIA)),
        "bitrate": "681483.55",
        "height": "1080",
        "lang": "en-US",
        "title": "1080p video",
        "rel": "video",
        "codecs": "avc1.640028,mp4a.40.2",
    }  # no default="false": unset means false
    assert [_attrs(s) for s in _xp(video, "podcast:source")] == [
        {"uri": "https://cdn.nightshift.example/media/ep2-1080.mp4"},
        {
            "uri": "https://cdn.nightshift.example/media/ep2-1080.torrent",
            "contentType": "application/x-bittorrent",
        },
    ]
    assert [c.tag for c in video] == [f"{P}source", f"{P}source", f"{P}integrity"]
    assert _attrs(_one(video, "podcast:integrity")) == {"type": "sri", "value": SRI}


def test_integrity_string_format(root):
    value = _one(root, "//podcast:integrity/@value")
    m = re.fullmatch(r"sha256-([A-Za-z0-9+/]{43}=)", value)
    assert m, value
    assert base64.b64decode(m[1], validate=True) == hashlib.sha256(MEDIA).digest()
    assert sri_sha256(hashlib.sha256(MEDIA).hexdigest()) == value


def test_live_items(root, full_channel):
    lives = _xp(root, "/rss/channel/podcast:liveItem")
    # ordered by start, whatever the input order
    assert [lv.findtext("guid") for lv in lives] == ["c-ended", "b-now", "a-pending"]
    assert [lv.get("status") for lv in lives] == ["ended", "live", "pending"]
    by_guid = {li.guid: li for li in full_channel.live_items}
    for lv in lives:
        given = by_guid[lv.findtext("guid")]
        assert list(lv.attrib) == ["status", "start", "end"]
        assert datetime.fromisoformat(lv.get("start")) == given.start
        assert datetime.fromisoformat(lv.get("end")) == given.end
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", lv.get("start"))
        assert _one(lv, "title/text()") == given.title
        assert _one(lv, "description/text()") == "<p>Call in <b>live</b>.</p>"
        assert _one(lv, "guid/@isPermaLink") == "false"
        enc = _one(lv, "enclosure")
        assert (enc.get("url"), enc.get("type"), enc.get("length")) == (
            given.enclosure_url,
            "audio/mpeg",
            "0",
        )
        alt = _one(lv, "podcast:alternateEnclosure")
        assert _attrs(alt) == {"type": "application/x-mpegURL", "title": "HLS", "default": "true"}
        assert _one(alt, "podcast:source/@uri") == "https://stream.nightshift.example/live.m3u8"
        assert [(c.get("href"), c.text) for c in _xp(lv, "podcast:contentLink")] == [
            (c.href, c.text) for c in given.content_links
        ]
        assert [(p.text, p.get("role")) for p in _xp(lv, "podcast:person")] == [
            ("Ada Owner", "host"),
            ("Cy Caller", "guest"),
        ]
        assert _attrs(_one(lv, "podcast:image")) == {
            "href": "https://cdn.nightshift.example/live.jpg",
            "alt": "Studio at night",
            "aspect-ratio": "1/1",
        }
        assert _one(lv, "podcast:funding/@url") == "https://nightshift.example/live-tips"
        # no <link>: feedparser would take it for the channel link (contentLink carries the page)
        assert not _xp(lv, "link | pubDate | itunes:*")


@pytest.mark.parametrize("status", ["pending", "live", "ended"])
def test_live_item_status(channel, strict_parse, status):
    ch = replace(channel, live_items=[_live("x", status, T0, end=None)])
    lv = _one(strict_parse(build_feed(ch, [])), "/rss/channel/podcast:liveItem")
    assert _attrs(lv) == {"status": status, "start": "2024-03-05T12:00:00.000Z"}


def test_live_item_start_is_normalised_to_utc(channel, strict_parse):
    start = datetime(2021, 9, 26, 7, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=-6)))
    ch = replace(channel, live_items=[_live("x", "live", start)])
    lv = _one(strict_parse(build_feed(ch, [])), "/rss/channel/podcast:liveItem")
    assert lv.get("start") == "2021-09-26T13:30:00.250Z"
    assert lv.get("end") == "2021-09-26T15:30:00.250Z"


def test_bare_live_item_needs_only_content_link(channel, strict_parse):
    bare = FeedLiveItem("bare", "Bare stream", "pending", T0, [FeedContentLink("https://x.example/live")])
    lv = _one(
        strict_parse(build_feed(replace(channel, live_items=[bare]), [])), "/rss/channel/podcast:liveItem"
    )
    assert [c.tag for c in lv] == ["title", "guid", f"{P}contentLink"]
    assert _one(lv, "podcast:contentLink").text is None


def test_podcastparser_sees_the_same_episodes(full_channel, full_items):
    data = build_feed(full_channel, full_items)
    parsed = podcastparser.parse(full_channel.feed_url, io.BytesIO(data))
    assert parsed["title"] == full_channel.title
    assert parsed["cover_url"] == full_channel.image_url
    by_guid = {ep["guid"]: ep for ep in parsed["episodes"]}
    assert set(by_guid) == {it.guid for it in full_items}  # live items are not episodes
    for it in full_items:
        ep = by_guid[it.guid]
        assert ep["title"] == it.title
        assert ep["enclosures"] == [
            {"url": it.enclosure_url, "file_size": it.enclosure_length, "mime_type": it.enclosure_type}
        ]
    assert (
        parsed["episodes"]
        == podcastparser.parse(
            full_channel.feed_url, io.BytesIO(build_feed(replace(full_channel, live_items=[]), full_items))
        )["episodes"]
    )


def test_feedparser_items_and_guids_with_live_items(full_channel, full_items):
    parsed = feedparser.parse(build_feed(full_channel, full_items))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    # feedparser has no liveItem model (feeds.md §4): it must still find exactly the episodes
    assert [e.id for e in parsed.entries] == [full_items[2].guid, full_items[0].guid, full_items[1].guid]
    for entry in parsed.entries:
        given = next(it for it in full_items if it.guid == entry.id)
        assert entry.title == given.title
        assert [enc.href for enc in entry.enclosures] == [given.enclosure_url]
    assert parsed.feed.title == full_channel.title
    assert parsed.feed.link == full_channel.link  # live items carry no <link> that could override it
    hubs = [ln.href for ln in parsed.feed.links if ln.get("rel") == "hub"]
    assert hubs == HUBS


def test_deterministic_bytes(full_channel, full_items):
    first = build_feed(full_channel, full_items)
    assert build_feed(full_channel, full_items) == first
    shuffled = replace(full_channel, live_items=list(reversed(full_channel.live_items)))
    assert build_feed(shuffled, list(reversed(full_items))) == first


def test_existing_callers_get_only_the_medium_tag(channel, items, strict_parse):
    root = strict_parse(build_feed(channel, items))
    names = sorted({el.tag.split("}")[1] for el in root.iter() if el.tag.startswith(P)})
    assert names == ["chapters", "episode", "funding", "guid", "locked", "medium", "person", "season"]
    assert _one(root, "/rss/channel/podcast:medium/text()") == "podcast"
    assert _xp(root, "/rss/channel/atom:link/@rel") == ["self"]
    assert not _xp(root, "//podcast:season/@name | //podcast:episode/@display | //itunes:block")


def test_item_block_and_empty_optionals(channel, make_item, strict_parse):
    item = make_item(
        block=True,
        images=[FeedImage("https://x.example/i.jpg", alt="", aspect_ratio=" ", width=0, purpose=None)],
        locations=[FeedLocation("", geo="geo:1,2"), FeedLocation("Somewhere", osm="")],
        transcripts=[FeedTranscript("", "text/vtt")],
        txts=[FeedTxt("  ")],
        content_links=[FeedContentLink("", "nowhere")],
        season_name="",
        episode_display=None,
    )
    node = _one(strict_parse(build_feed(channel, [item])), "/rss/channel/item")
    assert _one(node, "itunes:block/text()") == "Yes"
    assert _attrs(_one(node, "podcast:image")) == {"href": "https://x.example/i.jpg"}
    loc = _one(node, "podcast:location")
    assert (loc.text, _attrs(loc)) == ("Somewhere", {})
    assert not _xp(node, "podcast:transcript | podcast:txt | podcast:contentLink")
    assert _attrs(_one(node, "podcast:season")) == {}
    assert _attrs(_one(node, "podcast:episode")) == {}


def test_podping_false_and_complete_update_frequency(channel, strict_parse):
    ch = replace(
        channel,
        uses_podping=False,
        update_frequency=FeedUpdateFrequency("That's all folks!", complete=True),
    )
    root = strict_parse(build_feed(ch, []))
    assert _attrs(_one(root, "/rss/channel/podcast:podping")) == {"usesPodping": "false"}
    uf = _one(root, "/rss/channel/podcast:updateFrequency")
    assert (uf.text, _attrs(uf)) == ("That's all folks!", {"complete": "true"})


def test_display_texts_are_capped(channel, make_item, strict_parse):
    ch = replace(channel, trailers=[FeedTrailer("https://x.example/t.mp3", "t" * 300, T0)])
    item = make_item(
        season=1,
        season_name="s" * 300,
        episode_display="d" * 100,
        soundbites=[FeedSoundbite(1, 20, "b" * 300)],
        alternate_enclosures=[
            FeedAlternateEnclosure("audio/mpeg", [FeedSource("https://x.example/a")], title="a" * 99)
        ],
    )
    root = strict_parse(build_feed(ch, [item]))
    assert len(_one(root, "//podcast:trailer/text()")) <= 128
    assert len(_one(root, "//podcast:season/@name")) <= 128
    assert len(_one(root, "//podcast:episode/@display")) <= 32
    assert len(_one(root, "//podcast:soundbite/text()")) <= 128
    assert len(_one(root, "//podcast:alternateEnclosure/@title")) <= 32
