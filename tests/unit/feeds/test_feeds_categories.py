"""Apple category list and validate_category."""

from __future__ import annotations

import pytest

from media_pub.errors import InvalidInput
from media_pub.feeds import APPLE_CATEGORIES, validate_category


def test_top_level_categories_are_apples_current_list():
    assert list(APPLE_CATEGORIES) == [
        "Arts",
        "Business",
        "Comedy",
        "Education",
        "Fiction",
        "Government",
        "History",
        "Health & Fitness",
        "Kids & Family",
        "Leisure",
        "Music",
        "News",
        "Religion & Spirituality",
        "Science",
        "Society & Culture",
        "Sports",
        "Technology",
        "True Crime",
        "TV & Film",
    ]
    assert "Documentary" in APPLE_CATEGORIES["Society & Culture"]
    assert "Video Games" in APPLE_CATEGORIES["Leisure"]
    assert APPLE_CATEGORIES["Technology"] == []


@pytest.mark.parametrize(
    ("category", "sub"),
    [("Technology", None), ("Society & Culture", "Documentary"), ("News", "Tech News"), ("History", "")],
)
def test_valid(category, sub):
    validate_category(category, sub)


def test_unknown_category_names_allowed_values():
    with pytest.raises(InvalidInput) as exc:
        validate_category("Games & Hobbies", None)
    assert exc.value.code == "invalid-category"
    assert "Leisure" in exc.value.detail
    assert "TV & Film" in exc.value.detail


def test_unknown_subcategory_names_allowed_values():
    with pytest.raises(InvalidInput) as exc:
        validate_category("Arts", "Literature")
    assert exc.value.code == "invalid-category"
    assert "Books" in exc.value.detail


def test_subcategory_of_category_without_subcategories():
    with pytest.raises(InvalidInput) as exc:
        validate_category("True Crime", "Podcasts")
    assert "none" in exc.value.detail


def test_matching_is_exact():
    with pytest.raises(InvalidInput):
        validate_category("technology", None)
