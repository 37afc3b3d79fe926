"""Feed layer: RSS 2.0 podcast feeds, show-notes sanitizing, JSON chapters and Apple categories."""

from media_pub.feeds.categories import APPLE_CATEGORIES, validate_category
from media_pub.feeds.chapters import CHAPTERS_MIME, chapters_json
from media_pub.feeds.model import FeedChannel, FeedFunding, FeedItem, FeedPerson
from media_pub.feeds.podcast import build_feed
from media_pub.feeds.sanitize import clean_text, sanitize_notes

__all__ = [
    "APPLE_CATEGORIES",
    "CHAPTERS_MIME",
    "FeedChannel",
    "FeedFunding",
    "FeedItem",
    "FeedPerson",
    "build_feed",
    "chapters_json",
    "clean_text",
    "sanitize_notes",
    "validate_category",
]
