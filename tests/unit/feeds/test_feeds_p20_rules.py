"""Podcasting 2.0 input rules: what build_feed refuses, hostile text in the new tags, number/date formats."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import feedparser
import pytest

from media_pub.errors import InvalidInput
from media_pub.feeds import build_feed, clean_text
from media_pub.feeds.ext_podcasting20 import format_iso, format_number, sri_sha256
from media_pub.feeds.model import (
    FeedAlternateEnclosure,
    FeedContentLink,
    FeedImage,
    FeedLicense,
    FeedLiveItem,
    FeedLocation,
    FeedSoundbite,
    FeedSource,
    FeedTrailer,
    FeedTranscript,
    FeedTxt,
    FeedUpdateFrequency,
)
from media_pub.feeds.podcast import MEDIUMS

T0 = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
GOOD_SRI = "sha256-" + base64.b64encode(hashlib.sha256(b"x").digest()).decode()


def _live(**changes) -> FeedLiveItem:
    base = FeedLiveItem("live", "Live", "live", T0, [FeedContentLink("https://x.example/watch", "Watch")])
    return replace(base, **changes)


def _alt(**changes) -> FeedAlternateEnclosure:
    base = FeedAlternateEnclosure("video/mp4", [FeedSource("https://x.example/v.mp4")])
    return replace(base, **changes)


@pytest.mark.parametrize(
    "bad",
    [
        "sha256-abc",  # too short
        "sha256-" + base64.b64encode(bytes(31)).decode(),  # wrong digest size
        "sha384-" + base64.b64encode(bytes(32)).decode(),  # size of another algorithm
        "md5-" + base64.b64encode(bytes(16)).decode(),
        "sha256:" + base64.b64encode(bytes(32)).decode(),
        "sha256-" + base64.b64encode(bytes(32)).decode().replace("A", "*"),
        GOOD_SRI + " " + GOOD_SRI,
        GOOD_SRI.rstrip("="),  # bad base64 padding
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # hex, not SRI
    ],
)
def test_malformed_integrity_is_rejected(channel, make_item, bad):
    with pytest.raises(InvalidInput, match="integrity"):
        build_feed(channel, [make_item(alternate_enclosures=[_alt(integrity=bad)])])


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
def test_sri_algorithms_are_accepted(channel, make_item, strict_parse, algorithm):
    value = f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, b"x").digest()).decode()
    root = strict_parse(build_feed(channel, [make_item(alternate_enclosures=[_alt(integrity=value)])]))
    integrity = root.find(".//{https://podcastindex.org/namespace/1.0}integrity")
    assert dict(integrity.attrib) == {"type": "sri", "value": value}


def test_sri_sha256_helper():
    hex_digest = hashlib.sha256(b"x").hexdigest()
    assert sri_sha256(hex_digest) == GOOD_SRI
    with pytest.raises(ValueError, match="32 bytes"):
        sri_sha256(hex_digest[:-2])


@pytest.mark.parametrize(
    "alt",
    [
        FeedAlternateEnclosure("video/mp4", []),
        FeedAlternateEnclosure("video/mp4", [FeedSource(" ")]),
        FeedAlternateEnclosure("", [FeedSource("https://x.example/v.mp4")]),
    ],
)
def test_alternate_enclosure_needs_type_and_source(channel, make_item, alt):
    with pytest.raises(InvalidInput, match="alternateEnclosure"):
        build_feed(channel, [make_item(alternate_enclosures=[alt])])


@pytest.mark.parametrize(
    ("live", "message"),
    [
        (_live(status="upcoming"), "status"),
        (_live(status="LIVE"), "status"),
        (_live(content_links=[]), "contentLink"),
        (_live(content_links=[FeedContentLink("  ", "blank")]), "contentLink"),
        (_live(start=datetime(2024, 1, 1)), "timezone"),
        (_live(end=datetime(2024, 1, 1)), "timezone"),
        (_live(end=T0 - timedelta(minutes=1)), "ends before"),
        (_live(title=" "), "title"),
        (_live(guid=""), "guid"),
        (_live(enclosure_url="https://x.example/live.mp3"), "MIME"),
        (_live(alternate_enclosures=[_alt(sources=[])]), "alternateEnclosure"),
    ],
)
def test_invalid_live_items_are_rejected(channel, live, message):
    with pytest.raises(InvalidInput, match=message) as exc:
        build_feed(replace(channel, live_items=[live]), [])
    assert exc.value.code == "invalid-feed"


@pytest.mark.parametrize("medium", ["podcast", "video", "music", "audiobook", "videoL", "mixed", "course"])
def test_known_mediums(channel, strict_parse, medium):
    root = strict_parse(build_feed(replace(channel, medium=medium), []))
    assert root.findtext("channel/{https://podcastindex.org/namespace/1.0}medium") == medium


@pytest.mark.parametrize("medium", ["Podcast", "radio", "", "mixedL"])
def test_unknown_medium_is_rejected(channel, medium):
    assert medium not in MEDIUMS
    with pytest.raises(InvalidInput, match="medium"):
        build_feed(replace(channel, medium=medium), [])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"locations": [FeedLocation("Paris", rel="about")]}, "rel"),
        ({"update_frequency": FeedUpdateFrequency("Ten", rrule="FREQ=WEEKLY;COUNT=10")}, "COUNT"),
        ({"update_frequency": FeedUpdateFrequency(" ")}, "text"),
        ({"update_frequency": FeedUpdateFrequency("W", dtstart=datetime(2024, 1, 1))}, "timezone"),
        ({"trailers": [FeedTrailer("https://x.example/t.mp3", "", T0)]}, "title"),
        ({"trailers": [FeedTrailer("https://x.example/t.mp3", "T", datetime(2024, 1, 1))]}, "timezone"),
    ],
)
def test_invalid_channel_values_are_rejected(channel, changes, message):
    with pytest.raises(InvalidInput, match=message):
        build_feed(replace(channel, **changes), [])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"soundbites": [FeedSoundbite(-1, 30)]}, "soundbite"),
        ({"soundbites": [FeedSoundbite(10, 0)]}, "soundbite"),
        ({"soundbites": [FeedSoundbite(float("nan"), 30)]}, "soundbite"),
        ({"transcripts": [FeedTranscript("https://x.example/t.vtt", "")]}, "MIME"),
        (
            {"transcripts": [FeedTranscript("https://x.example/t.vtt", "text/vtt", rel="subtitles")]},
            "captions",
        ),
        ({"locations": [FeedLocation("Paris", rel="Subject")]}, "rel"),
    ],
)
def test_invalid_item_values_are_rejected(channel, make_item, changes, message):
    with pytest.raises(InvalidInput, match=message):
        build_feed(channel, [make_item(**changes)])


def test_update_frequency_with_a_date_dtstart(channel, strict_parse):
    uf = FeedUpdateFrequency("Weekly from 2025", rrule="FREQ=WEEKLY", dtstart=date(2025, 1, 1))
    root = strict_parse(build_feed(replace(channel, update_frequency=uf), []))
    el = root.find("channel/{https://podcastindex.org/namespace/1.0}updateFrequency")
    assert dict(el.attrib) == {"dtstart": "2025-01-01", "rrule": "FREQ=WEEKLY"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (73, "73"),
        (73.0, "73.0"),
        (1234.5, "1234.5"),
        (42.25, "42.25"),
        (160707.74, "160707.74"),
        (1e7, "10000000.0"),
        (0.1 + 0.2, "0.3"),
        (1e16, "10000000000000000.0"),
        (2.0004, "2.0"),
    ],
)
def test_format_number(value, text):
    assert format_number(value) == text


def test_format_iso():
    assert format_iso(datetime(2021, 9, 26, 7, 30, tzinfo=UTC)) == "2021-09-26T07:30:00.000Z"
    assert format_iso(date(2023, 8, 28)) == "2023-08-28"


def test_hostile_text_in_the_new_tags(channel, make_item, strict_parse):
    blob = "<script>&bogus; ]]> \"' \x00\x0b\ud800\ufffe 😀"
    link = FeedContentLink("https://x.example/\x00watch", blob)
    ch = replace(
        channel,
        locations=[FeedLocation(blob, geo="geo:1,2")],
        license=FeedLicense(blob),
        images=[FeedImage("https://x.example/i.jpg", alt=blob, purpose=blob)],
        txts=[FeedTxt(blob, purpose=blob)],
        update_frequency=FeedUpdateFrequency(blob, rrule="FREQ=DAILY"),
        trailers=[FeedTrailer("https://x.example/t.mp3", blob, T0)],
        live_items=[_live(title=blob, description_html=blob, content_links=[link])],
    )
    item = make_item(
        season=1,
        season_name=blob,
        episode_display=blob,
        soundbites=[FeedSoundbite(1, 20, blob)],
        alternate_enclosures=[_alt(title=blob, rel=blob, codecs=blob)],
        content_links=[link],
    )
    data = build_feed(ch, [item])
    root = strict_parse(data)
    cleaned = clean_text(blob).strip()
    lv = root.find("channel/{https://podcastindex.org/namespace/1.0}liveItem")
    assert lv.findtext("title") == cleaned
    assert lv.find("{https://podcastindex.org/namespace/1.0}contentLink").text == cleaned
    assert (
        lv.find("{https://podcastindex.org/namespace/1.0}contentLink").get("href")
        == "https://x.example/watch"
    )
    assert root.find("channel/{https://podcastindex.org/namespace/1.0}txt").text == cleaned
    assert "<script" not in (lv.findtext("description") or "")
    assert feedparser.parse(data).bozo == 0
