"""Hostile text (markup, "]]>", control characters, lone surrogates, emoji) never breaks the XML."""

from __future__ import annotations

from dataclasses import replace

import feedparser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_pub.feeds import FeedFunding, FeedPerson, build_feed, clean_text

HOSTILE_PIECES = [
    "&",
    "&amp;",
    "&nbsp;",
    "&#1;",
    "&#xFFFE;",
    "&bogus;",
    "<",
    ">",
    "]]>",
    "<![CDATA[",
    "<!--",
    "-->",
    '"',
    "'",
    "<script>alert(1)</script>",
    '<a href="javascript:alert(1)" onclick="x()">x</a>',
    "<p>",
    "</p>",
    "<li>",
    "\x00",
    "\x01",
    "\x08",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\x7f",
    "\x85",
    "\t",
    "\r\n",
    "\ud800",
    "\udfff",
    "\ufffe",
    "\uffff",
    "😀",
    "👩‍👩‍👧",
    "\u202e",
    "\u00a0",
    "日本語",
]

# any code point, lone surrogates included (hypothesis excludes category Cs by default)
any_char = st.characters(exclude_categories=())
hostile_text = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(any_char, max_size=4)), max_size=12
).map("".join)

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def test_hostile_pieces_all_at_once(channel, make_item, strict_parse):
    blob = "".join(HOSTILE_PIECES)
    ch = replace(
        channel,
        title="Show " + blob,
        description=blob,
        author=blob,
        copyright=blob,
        persons=[FeedPerson("P " + blob, img="https://x.example/\x00a.jpg")],
        funding=[FeedFunding("https://x.example/f", blob)],
    )
    item = make_item(title="Ep " + blob, description_html=blob, persons=[FeedPerson("G " + blob)])
    data = build_feed(ch, [item])
    root = strict_parse(data)
    assert root.findtext("channel/item/title") == clean_text("Ep " + blob).strip()
    description = root.findtext("channel/item/description")
    assert "<script" not in description
    assert "javascript:" not in description
    assert feedparser.parse(data).bozo == 0


@SETTINGS
@given(title=hostile_text, notes=hostile_text, name=hostile_text)
def test_generated_hostile_text_parses_strictly(channel, make_item, strict_parse, title, notes, name):
    ch = replace(channel, description=notes, author=name, persons=[FeedPerson("P" + name)])
    item = make_item(title="Ep" + title, description_html=notes, persons=[FeedPerson("G" + name)])
    root = strict_parse(build_feed(ch, [item]))
    assert root.findtext("channel/item/title") == clean_text("Ep" + title).strip()
    assert root.findtext("channel/item/guid") == item.guid


@SETTINGS
@given(s=st.text(any_char))
def test_clean_text_output_is_xml_safe(s):
    out = clean_text(s)
    for ch in out:
        cp = ord(ch)
        assert cp in (0x9, 0xA, 0xD) or 0x20 <= cp <= 0xD7FF or 0xE000 <= cp <= 0xFFFD or cp >= 0x10000
    assert clean_text(out) == out
