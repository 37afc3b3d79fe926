"""Domain rules: lifecycle, identifiers, keys, chapter shifting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_pub.domain.keys import asset_key, show_key
from media_pub.domain.rules import EpisodeStatus, check_transition, podcast_guid, validate_slug
from media_pub.domain.values import Chapter, shift_chapters
from media_pub.errors import Conflict, InvalidInput


def test_podcast_guid_matches_the_namespace_example() -> None:
    # docs/tags/guid.md: this feed's podcast:guid is 917393e3-1b1e-5cef-ace4-edaa54e1f810.
    assert podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml") == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    assert podcast_guid("http://mp3s.nashownotes.com/pc20rss.xml/") == podcast_guid(
        "mp3s.nashownotes.com/pc20rss.xml"
    )


def test_status_transitions() -> None:
    check_transition(EpisodeStatus.DRAFT, EpisodeStatus.PROCESSING)
    check_transition(EpisodeStatus.READY, EpisodeStatus.PUBLISHED)
    with pytest.raises(Conflict):
        check_transition(EpisodeStatus.DRAFT, EpisodeStatus.PUBLISHED)
    with pytest.raises(Conflict):
        check_transition(EpisodeStatus.FAILED, EpisodeStatus.PUBLISHED)


@pytest.mark.parametrize("slug", ["a", "my-show", "show2026", "a" * 64])
def test_good_slugs(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "-a", "a-", "My-Show", "a b", "a/b", "../x", "a" * 65, "é"])
def test_bad_slugs(slug: str) -> None:
    with pytest.raises(InvalidInput):
        validate_slug(slug)


KEY = re.compile(r"^[a-z0-9/-]+\.[a-z0-9]{2,4}$")


@given(st.text(max_size=60), st.text(max_size=6))
def test_keys_never_take_unsafe_parts(name: str, ext: str) -> None:
    try:
        key = asset_key("abc123", "def456", name, ext)
    except ValueError:
        return
    assert KEY.match(key)
    assert ".." not in key


def test_key_shapes() -> None:
    assert asset_key("s1", "e1", "mp3-abcd", "mp3") == "shows/s1/episodes/e1/mp3-abcd.mp3"
    assert show_key("s1", "artwork-1", "jpg") == "shows/s1/artwork-1.jpg"
    with pytest.raises(ValueError, match="unsafe"):
        asset_key("../s", "e", "n", "mp3")


def test_shift_chapters_follows_the_cut() -> None:
    chapters = [Chapter(0, "Pre-show"), Chapter(20, "Intro"), Chapter(65, "Main"), Chapter(200, "After")]
    shifted = shift_chapters(chapters, offset=20.0, duration=100.0)
    assert [(c.start, c.title) for c in shifted] == [(0.0, "Intro"), (45.0, "Main")]
    # A chapter that began before the cut starts at 0 unless another one starts there.
    assert [c.title for c in shift_chapters([Chapter(0, "A"), Chapter(30, "B")], 10.0, 50.0)] == ["A", "B"]
