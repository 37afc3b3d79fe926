"""build_feed: Apple and Podcasting 2.0 tags, real parsers, ordering, truncation, determinism."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

import feedparser
import podcastparser
import pytest

from media_pub.errors import InvalidInput
from media_pub.feeds import CHAPTERS_MIME, FeedChannel, FeedFunding, FeedItem, FeedPerson, build_feed

NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
}


def _xp(node, path: str) -> list:
    return node.xpath(path, namespaces=NS)


def _one(node, path: str):
    found = _xp(node, path)
    assert len(found) == 1, f"{path}: expected exactly one match, got {len(found)}"
    return found[0]


class _BalanceChecker(HTMLParser):
    """Fails on an end tag that closes nothing or on elements left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag != "br":
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack}")
        else:
            self.stack.pop()


def assert_balanced_html(fragment: str) -> None:
    checker = _BalanceChecker()
    checker.feed(fragment)
    checker.close()
    assert not checker.errors, checker.errors
    assert not checker.stack, f"unclosed tags: {checker.stack}"


def test_realistic_show_parses_with_podcastparser(channel, items):
    data = build_feed(channel, items)
    parsed = podcastparser.parse(channel.feed_url, io.BytesIO(data))

    assert parsed["title"] == channel.title
    assert parsed["type"] == "episodic"
    assert parsed["itunes_categories"] == [["Society & Culture", "Documentary"]]
    assert parsed["itunes_owner"] == {"name": "Ada Owner", "email": "ada@nightshift.example"}
    assert parsed["cover_url"] == channel.image_url
    by_guid = {ep["guid"]: ep for ep in parsed["episodes"]}
    assert set(by_guid) == {it.guid for it in items}
    for it in items:
        ep = by_guid[it.guid]
        assert ep["title"] == it.title
        assert ep["enclosures"] == [
            {"url": it.enclosure_url, "file_size": it.enclosure_length, "mime_type": it.enclosure_type}
        ]
        assert ep["total_time"] == round(it.duration)
        assert ep["published"] == int(it.pub_date.timestamp())
        assert ep["explicit"] is it.explicit
    assert by_guid[items[2].guid]["number"] == 2
    assert by_guid[items[2].guid]["season"] == 1
    assert by_guid[items[1].guid]["type"] == "trailer"


def test_realistic_show_parses_with_feedparser(channel, items):
    data = build_feed(channel, items)
    parsed = feedparser.parse(data)

    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == channel.title
    assert parsed.feed.link == channel.link
    assert {e.id for e in parsed.entries} == {it.guid for it in items}
    assert parsed.entries[0].id == items[2].guid  # newest first
    nurse = next(e for e in parsed.entries if e.id == items[2].guid)
    assert nurse.enclosures[0].href == items[2].enclosure_url
    assert nurse.itunes_duration == "2401"


def test_xml_declaration_and_exact_namespaces(channel, items, strict_parse):
    data = build_feed(channel, items)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    for prefix, uri in NS.items():
        assert f'xmlns:{prefix}="{uri}"'.encode() in data
    root = strict_parse(data)
    assert root.tag == "rss"
    assert root.get("version") == "2.0"
    assert {p: root.nsmap[p] for p in NS} == NS


def test_channel_tags(channel, items, strict_parse):
    root = strict_parse(build_feed(channel, items))
    ch = _one(root, "/rss/channel")

    assert _one(ch, "title/text()") == channel.title
    assert _one(ch, "link/text()") == channel.link
    assert _one(ch, "description/text()") == channel.description
    assert _one(ch, "language/text()") == "en-us"
    assert _one(ch, "generator/text()") == "media_pub"
    assert _one(ch, "copyright/text()") == channel.copyright
    assert parsedate_to_datetime(_one(ch, "lastBuildDate/text()")) == channel.last_build
    self_link = _one(ch, "atom:link[@rel='self']")
    assert self_link.get("href") == channel.feed_url
    assert self_link.get("type") == "application/rss+xml"

    assert _one(ch, "itunes:image/@href") == channel.image_url
    assert _one(ch, "itunes:author/text()") == channel.author
    assert _one(ch, "itunes:owner/itunes:name/text()") == channel.owner_name
    assert _one(ch, "itunes:owner/itunes:email/text()") == channel.owner_email
    assert _one(ch, "itunes:explicit/text()") == "false"
    assert _one(ch, "itunes:type/text()") == "episodic"
    assert not _xp(ch, "itunes:new-feed-url | itunes:block | itunes:complete")

    assert _one(ch, "podcast:guid/text()") == channel.podcast_guid
    locked = _one(ch, "podcast:locked")
    assert (locked.text, locked.get("owner")) == ("yes", channel.owner_email)
    funding = _xp(ch, "podcast:funding")
    assert [(f.get("url"), f.text) for f in funding] == [(f.url, f.text) for f in channel.funding]
    persons = _xp(ch, "podcast:person")
    assert [(p.text, p.get("role"), p.get("group"), p.get("img"), p.get("href")) for p in persons] == [
        ("Ada Owner", "host", "cast", "https://cdn.nightshift.example/ada.jpg", "https://ada.example/"),
        ("Bo Producer", "producer", "crew", None, None),
    ]
    # channel tags come before the first item
    children = [c.tag for c in ch]
    assert children.index("item") > children.index(f"{{{NS['podcast']}}}person")


def test_description_is_cdata_html(channel, items):
    data = build_feed(channel, items)
    assert b"<description><![CDATA[<p>Stories from people" in data


def test_item_tags(channel, items, strict_parse):
    root = strict_parse(build_feed(channel, items))
    for it in items:
        node = _one(root, f"/rss/channel/item[guid='{it.guid}']")
        assert _one(node, "title/text()") == it.title
        assert _one(node, "link/text()") == it.link
        assert _one(node, "description/text()").startswith("<")
        assert _one(node, "guid/@isPermaLink") == "false"
        assert parsedate_to_datetime(_one(node, "pubDate/text()")) == it.pub_date
        assert _one(node, "pubDate/text()").endswith("+0000")
        enc = _one(node, "enclosure")
        assert (enc.get("url"), enc.get("length"), enc.get("type")) == (
            it.enclosure_url,
            str(it.enclosure_length),
            it.enclosure_type,
        )
        assert _one(node, "itunes:duration/text()") == str(round(it.duration))
        assert _one(node, "itunes:explicit/text()") == ("true" if it.explicit else "false")
        assert _one(node, "itunes:episodeType/text()") == it.episode_type
        assert not _xp(node, "content:encoded")  # notes are short: description only

    ep1, trailer, ep2 = items
    t = _one(root, f"/rss/channel/item[guid='{trailer.guid}']")
    assert not _xp(t, "itunes:season | itunes:episode | podcast:season | podcast:episode | itunes:image")
    assert not _xp(t, "podcast:chapters | podcast:person")

    e1 = _one(root, f"/rss/channel/item[guid='{ep1.guid}']")
    assert _one(e1, "itunes:image/@href") == ep1.image_url
    assert _one(e1, "itunes:season/text()") == "1"
    assert _one(e1, "itunes:episode/text()") == "1"
    assert 'rel="nofollow noopener"' in _one(e1, "description/text()")

    e2 = _one(root, f"/rss/channel/item[guid='{ep2.guid}']")
    chapters = _one(e2, "podcast:chapters")
    assert (chapters.get("url"), chapters.get("type")) == (ep2.chapters_url, CHAPTERS_MIME)
    assert _one(e2, "podcast:season/text()") == "1"
    assert _one(e2, "podcast:episode/text()") == "2"
    assert _one(e2, "itunes:episode/text()") == "2"
    assert [(p.text, p.get("role")) for p in _xp(e2, "podcast:person")] == [
        ("Cy Guest", "guest"),
        ("Ada Owner", "host"),
    ]


@pytest.mark.parametrize(("explicit", "text"), [(True, "true"), (False, "false")])
def test_explicit_is_true_false(channel, make_item, explicit, text, strict_parse):
    root = strict_parse(build_feed(replace(channel, explicit=explicit), [make_item(explicit=explicit)]))
    assert _one(root, "/rss/channel/itunes:explicit/text()") == text
    assert _one(root, "/rss/channel/item/itunes:explicit/text()") == text


def test_category_nesting(channel, strict_parse):
    root = strict_parse(build_feed(channel, []))
    cat = _one(root, "/rss/channel/itunes:category")
    assert cat.get("text") == "Society & Culture"
    assert [c.get("text") for c in _xp(cat, "itunes:category")] == ["Documentary"]
    assert b'text="Society &amp; Culture"' in build_feed(channel, [])

    root = strict_parse(build_feed(replace(channel, category="True Crime", subcategory=None), []))
    cat = _one(root, "/rss/channel/itunes:category")
    assert cat.get("text") == "True Crime"
    assert len(cat) == 0


def test_invalid_category_is_rejected(channel):
    with pytest.raises(InvalidInput) as exc:
        build_feed(replace(channel, category="Podcasting"), [])
    assert exc.value.code == "invalid-category"


def test_episodic_order_is_newest_first(channel, make_item, strict_parse):
    d = datetime(2024, 1, 1, tzinfo=UTC)
    given = [make_item(guid=f"day{n}", pub_date=d + timedelta(days=n), number=None) for n in (2, 0, 3, 1)]
    root = strict_parse(build_feed(channel, given))
    assert _xp(root, "/rss/channel/item/guid/text()") == ["day3", "day2", "day1", "day0"]


def test_serial_order_is_oldest_first_by_season_and_number(channel, make_item, strict_parse):
    serial = replace(channel, show_type="serial")
    d = datetime(2024, 1, 1, tzinfo=UTC)
    given = [
        make_item(guid="s2e1", season=2, number=1, pub_date=d + timedelta(days=30)),
        make_item(guid="s1e2", season=1, number=2, pub_date=d + timedelta(days=2)),
        make_item(guid="trailer", season=None, number=None, episode_type="trailer", pub_date=d),
        make_item(guid="s1e1-late", season=1, number=1, pub_date=d + timedelta(days=40)),  # renumbered
        make_item(guid="s1e1", season=1, number=1, pub_date=d + timedelta(days=1)),
        make_item(guid="s1-bonus", season=1, number=None, episode_type="bonus", pub_date=d + timedelta(3)),
    ]
    root = strict_parse(build_feed(serial, given))
    assert _one(root, "/rss/channel/itunes:type/text()") == "serial"
    assert _xp(root, "/rss/channel/item/guid/text()") == [
        "trailer",
        "s1e1",
        "s1e1-late",
        "s1e2",
        "s1-bonus",
        "s2e1",
    ]


def test_podcast_guid_passes_through(channel, strict_parse):
    guid = "c5a1ed1c-3f7a-5b0e-9d7f-2d0a6f3b1e44"
    root = strict_parse(build_feed(replace(channel, podcast_guid=guid), []))
    assert _one(root, "/rss/channel/podcast:guid/text()") == guid


def test_move_block_complete_and_unlocked(channel, strict_parse):
    moved = replace(
        channel,
        new_feed_url="https://new.example/feed.xml",
        block=True,
        complete=True,
        locked=False,
    )
    ch = _one(strict_parse(build_feed(moved, [])), "/rss/channel")
    assert _one(ch, "itunes:new-feed-url/text()") == "https://new.example/feed.xml"
    assert _one(ch, "itunes:block/text()") == "Yes"
    assert _one(ch, "itunes:complete/text()") == "Yes"
    assert _one(ch, "podcast:locked/text()") == "no"


def test_zero_or_missing_numbers_and_duration_are_omitted(channel, make_item, strict_parse):
    item = make_item(season=0, number=0, duration=None, link=None, image_url=None)
    node = _one(strict_parse(build_feed(channel, [item])), "/rss/channel/item")
    assert not _xp(node, "itunes:season | itunes:episode | podcast:season | podcast:episode")
    assert not _xp(node, "itunes:duration | link | itunes:image")


def test_image_urls_with_query_strings_are_kept(channel, make_item, strict_parse):
    # feedgen itself only accepts URLs ending in .jpg/.png
    ch = replace(channel, image_url="https://cdn.example/cover.jpg?v=3")
    item = make_item(image_url="https://cdn.example/ep.jpeg")
    root = strict_parse(build_feed(ch, [item]))
    assert _one(root, "/rss/channel/itunes:image/@href") == "https://cdn.example/cover.jpg?v=3"
    assert _one(root, "/rss/channel/image/url/text()") == "https://cdn.example/cover.jpg?v=3"
    assert _one(root, "/rss/channel/item/itunes:image/@href") == "https://cdn.example/ep.jpeg"


def test_funding_and_person_text_are_capped(channel, strict_parse):
    ch = replace(
        channel,
        funding=[FeedFunding("https://x.example/", "f" * 300)],
        persons=[FeedPerson("p" * 300)],
    )
    root = strict_parse(build_feed(ch, []))
    assert len(_one(root, "/rss/channel/podcast:funding/text()")) <= 128
    assert len(_one(root, "/rss/channel/podcast:person/text()")) <= 128


def test_naive_datetimes_are_rejected(channel, make_item):
    with pytest.raises(InvalidInput):
        build_feed(replace(channel, last_build=datetime(2024, 1, 1)), [])
    with pytest.raises(InvalidInput):
        build_feed(channel, [make_item(pub_date=datetime(2024, 1, 1)), make_item(guid="aware")])


def test_item_without_title_is_rejected(channel, make_item):
    with pytest.raises(InvalidInput):
        build_feed(channel, [make_item(title=" \x00 ")])


def _long_notes(paragraphs: int) -> str:
    return "".join(
        f'<p>Paragraph {i} — café &amp; crème, naïve «quotes» 🎙️ <a href="https://ex.example/{i}?a=1&amp;b=2">'
        f"link {i}</a> <strong>bold <em>nested</em></strong></p><ul><li>item {i}</li></ul>"
        for i in range(paragraphs)
    )


def test_long_channel_description_is_truncated_well_formed(channel, strict_parse):
    ch = replace(channel, description=_long_notes(200))
    data = build_feed(ch, [])
    desc = _one(strict_parse(data), "/rss/channel/description/text()")
    assert len(desc.encode("utf-8")) <= 4000
    assert len(desc.encode("utf-8")) > 3500  # uses most of the budget
    assert desc.endswith("</p>") or desc.endswith("</ul>")
    assert "…" in desc
    assert_balanced_html(desc)


def test_long_item_notes_are_truncated_and_kept_whole_in_content_encoded(channel, make_item, strict_parse):
    notes = _long_notes(120)
    node = _one(strict_parse(build_feed(channel, [make_item(description_html=notes)])), "/rss/channel/item")
    desc = _one(node, "description/text()")
    assert len(desc.encode("utf-8")) <= 4000
    assert_balanced_html(desc)
    full = _one(node, "content:encoded/text()")
    assert "Paragraph 119" in full
    assert_balanced_html(full)


def test_truncation_at_every_length_stays_balanced(channel, strict_parse):
    # walk the cut point across tags, entities and multi-byte characters
    notes = _long_notes(3)
    for extra in range(0, 400, 7):
        ch = replace(channel, description="x" * (3600 + extra) + notes)
        desc = _one(strict_parse(build_feed(ch, [])), "/rss/channel/description/text()")
        assert len(desc.encode("utf-8")) <= 4000
        assert_balanced_html(desc)


def test_cdata_terminator_in_notes_stays_well_formed(channel, make_item, strict_parse):
    notes = '<p>a ]]> b</p><a href="https://x.example/]]>">l</a> ]]&gt;'
    data = build_feed(channel, [make_item(description_html=notes, title="]]> title")])
    node = _one(strict_parse(data), "/rss/channel/item")
    assert _one(node, "title/text()") == "]]> title"
    assert "]]&gt;" in _one(node, "description/text()")


def test_build_is_deterministic(channel, items):
    first = build_feed(channel, items)
    second = build_feed(channel, list(reversed(items)))
    assert first == second
    assert build_feed(channel, items) == first


def test_feed_changes_when_last_build_changes(channel, items):
    later = replace(channel, last_build=channel.last_build + timedelta(hours=1))
    assert build_feed(later, items) != build_feed(channel, items)


def test_empty_feed_is_valid(channel):
    parsed = feedparser.parse(build_feed(channel, []))
    assert parsed.bozo == 0
    assert parsed.entries == []


def test_item_model_defaults():
    item = FeedItem(
        guid="g",
        title="t",
        description_html="",
        link=None,
        pub_date=datetime(2024, 1, 1, tzinfo=UTC),
        enclosure_url="https://x.example/a.mp3",
        enclosure_length=1,
        enclosure_type="audio/mpeg",
        duration=None,
        explicit=False,
        episode_type="full",
        season=None,
        number=None,
        image_url=None,
        chapters_url=None,
    )
    assert item.persons == []
    assert FeedPerson("n") == FeedPerson("n", role="host", group="cast")
    fields = FeedChannel.__dataclass_fields__
    assert fields["new_feed_url"].default is None
    assert fields["block"].default is False
    assert fields["complete"].default is False
