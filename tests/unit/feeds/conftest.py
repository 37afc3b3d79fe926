"""Fixtures for the feed layer: a realistic three-episode show and small parsing helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from media_pub.feeds import FeedChannel, FeedFunding, FeedItem, FeedPerson

PODCAST_GUID = "917393e3-1b1e-5cef-ace4-edaa54e1f810"


def _strict_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)


@pytest.fixture
def strict_parse() -> Callable[[bytes], etree._Element]:
    """Parse feed bytes with a strict (recover=False), non-network lxml parser; raises on any XML error."""
    return _strict_parse


@pytest.fixture
def channel() -> FeedChannel:
    """A complete, realistic show."""
    return FeedChannel(
        title="Night Shift Radio",
        description="<p>Stories from people who work while the city sleeps. Tom &amp; Jerry approved.</p>",
        link="https://nightshift.example/",
        feed_url="https://feeds.nightshift.example/show.rss",
        language="en-us",
        author="Night Shift Collective",
        owner_name="Ada Owner",
        owner_email="ada@nightshift.example",
        image_url="https://cdn.nightshift.example/art/cover-3000.jpg",
        category="Society & Culture",
        subcategory="Documentary",
        explicit=False,
        show_type="episodic",
        copyright="© 2024 Night Shift Collective",
        funding=[
            FeedFunding("https://nightshift.example/support", "Support the show"),
            FeedFunding("https://patreon.example/nightshift", "Join us on Patreon"),
        ],
        persons=[
            FeedPerson(
                "Ada Owner", img="https://cdn.nightshift.example/ada.jpg", href="https://ada.example/"
            ),
            FeedPerson("Bo Producer", role="producer", group="crew"),
        ],
        locked=True,
        podcast_guid=PODCAST_GUID,
        last_build=datetime(2024, 3, 5, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
def items() -> list[FeedItem]:
    """Trailer + two numbered episodes (given out of order); episode 2 has chapters and guest persons."""
    base = datetime(2024, 1, 1, 6, 0, tzinfo=UTC)
    trailer = FeedItem(
        guid="0b6bb5a2-0000-4000-8000-000000000001",
        title="Trailer",
        description_html="<p>What this show is about.</p>",
        link="https://nightshift.example/trailer",
        pub_date=base,
        enclosure_url="https://cdn.nightshift.example/media/trailer.mp3",
        enclosure_length=482_113,
        enclosure_type="audio/mpeg",
        duration=61.4,
        explicit=False,
        episode_type="trailer",
        season=None,
        number=None,
        image_url=None,
        chapters_url=None,
    )
    ep1 = FeedItem(
        guid="0b6bb5a2-0000-4000-8000-000000000002",
        title="The Baker",
        description_html='<p>Meet the baker. <a href="https://bakery.example/">Bakery</a></p>',
        link="https://nightshift.example/1",
        pub_date=base + timedelta(days=7),
        enclosure_url="https://cdn.nightshift.example/media/ep1.mp3",
        enclosure_length=31_337_000,
        enclosure_type="audio/mpeg",
        duration=1834.6,
        explicit=False,
        episode_type="full",
        season=1,
        number=1,
        image_url="https://cdn.nightshift.example/art/ep1.png",
        chapters_url=None,
    )
    ep2 = FeedItem(
        guid="0b6bb5a2-0000-4000-8000-000000000003",
        title="The Night Nurse",
        description_html="<p>Twelve hours on the ward.</p><ul><li>Triage</li><li>Dawn</li></ul>",
        link="https://nightshift.example/2",
        # a different offset on purpose: output must be normalised to UTC
        pub_date=(base + timedelta(days=14)).astimezone(timezone(timedelta(hours=2))),
        enclosure_url="https://cdn.nightshift.example/media/ep2.m4a",
        enclosure_length=42_000_123,
        enclosure_type="audio/x-m4a",
        duration=2401.0,
        explicit=True,
        episode_type="full",
        season=1,
        number=2,
        image_url=None,
        chapters_url="https://cdn.nightshift.example/media/ep2.chapters.json",
        persons=[FeedPerson("Cy Guest", role="guest"), FeedPerson("Ada Owner")],
    )
    return [ep1, trailer, ep2]


@pytest.fixture
def make_item(items: list[FeedItem]):
    """Factory: a copy of the first episode with fields overridden."""

    def make(**changes: object) -> FeedItem:
        return replace(items[0], **changes)  # type: ignore[arg-type]

    return make
