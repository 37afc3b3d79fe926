"""sanitize_notes and clean_text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media_pub.feeds import clean_text, sanitize_notes


def test_clean_text_removes_only_xml_forbidden_characters():
    kept = "tab\tlf\ncr\r del\x7f nel\x85 nbsp\u00a0 emoji😀 cjk日本 bmp-end\ufffd astral\U0010fffd"
    assert clean_text(kept) == kept
    assert clean_text("a\x00b\x01c\x08d\x0be\x0cf\x0eg\x1fh") == "abcdefgh"
    assert clean_text("x\ud800y\udfffz") == "xyz"
    assert clean_text("\ufffe\uffffok") == "ok"


def test_script_style_and_event_handlers_are_removed():
    out = sanitize_notes(
        '<p onclick="steal()">Hi<script>alert(1)</script><style>p{}</style>'
        '<img src=x onerror="alert(1)"><iframe src="https://evil.example"></iframe></p>'
    )
    assert out == "<p>Hi</p>"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "vbscript:msgbox(1)",
        "ftp://files.example/x",
        "/relative/path",
        "//evil.example/x",
    ],
)
def test_unsafe_or_relative_hrefs_are_dropped(href):
    out = sanitize_notes(f'<a href="{href}">link</a>')
    assert "href" not in out
    assert "link" in out


@pytest.mark.parametrize(
    "href", ["https://example.com/a?b=1&c=2", "http://example.com/", "mailto:hi@example.com"]
)
def test_safe_hrefs_are_kept_with_rel(href):
    out = sanitize_notes(f'<a href="{href}" target="_blank" rel="opener" title="t">link</a>')
    assert out.startswith('<a href="')
    assert 'rel="nofollow noopener"' in out
    assert "target" not in out
    assert "title=" not in out


def test_allowed_tags_are_kept_and_others_unwrapped():
    html = (
        "<h1>Title</h1><p>Intro <b>b</b> <strong>s</strong> <i>i</i> <em>e</em><br>next</p>"
        '<ol><li>one</li></ol><ul><li>two</li></ul><div><span class="x">kept text</span></div>'
    )
    assert sanitize_notes(html) == (
        "Title<p>Intro <b>b</b> <strong>s</strong> <i>i</i> <em>e</em><br>next</p>"
        "<ol><li>one</li></ol><ul><li>two</li></ul>kept text"
    )


def test_plain_text_is_kept_escaped():
    assert sanitize_notes("Tom & Jerry <3 > 2\nnew line") == "Tom &amp; Jerry &lt;3 &gt; 2\nnew line"


def test_control_characters_and_char_refs_to_them_are_removed():
    assert sanitize_notes("<p>a\x00b\x1bc&#1;d&#xFFFE;e\ud800f</p>") == "<p>abcdef</p>"


def test_comments_are_removed():
    assert sanitize_notes("<p>a<!-- secret -->b</p>") == "<p>ab</p>"


TAGS = ["p", "ol", "ul", "li", "a", "br", "b", "strong", "i", "em", "div", "span", "script", "table", "td"]
fragments = st.one_of(
    st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t}>" for t in TAGS]),
    st.sampled_from(
        ['<a href="https://x.example/?a=1&b=2">', '<a href="javascript:x">', "<a href=mailto:a@b>"]
    ),
    st.sampled_from(
        ["&", "&amp;", "<", ">", "]]>", "&#0;", "\x00", "\ud800", "😀", " ", "\n", "<!--", "-->"]
    ),
    st.text(max_size=5),
)
html_soup = st.lists(fragments, max_size=30).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(html=html_soup)
def test_sanitize_is_idempotent_and_safe(html):
    once = sanitize_notes(html)
    assert sanitize_notes(once) == once
    assert clean_text(once) == once
    assert "<script" not in once
    assert "javascript:" not in once
