"""Text and HTML hygiene for feeds: XML 1.0-safe characters and an Apple-friendly show-notes allowlist."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import nh3

# Everything XML 1.0 (5th ed.) does not allow as a Char: C0 controls except TAB/LF/CR, surrogates
# (lone ones survive in Python str), and the non-characters U+FFFE/U+FFFF.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

ALLOWED_TAGS: frozenset[str] = frozenset({"p", "ol", "ul", "li", "a", "br", "b", "strong", "i", "em"})
ALLOWED_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener"
_VOID_TAGS = frozenset({"br"})
_ELLIPSIS = "…"


def clean_text(s: str) -> str:
    """Remove the characters XML 1.0 forbids (C0 controls but tab/LF/CR, U+FFFE/U+FFFF, lone surrogates)."""
    return _XML_FORBIDDEN.sub("", s)


def _href_filter(tag: str, attr: str, value: str) -> str | None:
    if tag == "a" and attr == "href":
        value = value.strip()
        try:
            scheme = urlsplit(value).scheme.lower()
        except ValueError:
            return None
        return value if scheme in ALLOWED_SCHEMES else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags={"script", "style"},
    attributes={"a": {"href"}, "*": set()},  # "*" overrides the default lang/title on every tag
    attribute_filter=_href_filter,
    url_schemes=set(ALLOWED_SCHEMES),
    link_rel=LINK_REL,
    strip_comments=True,
)


def sanitize_notes(notes: str) -> str:
    """Reduce show notes to p/ol/ul/li/a/br/b/strong/i/em with safe links; idempotent and XML-safe."""
    out = clean_text(_CLEANER.clean(clean_text(notes)))
    # Stripping tags can leave markup that an HTML parser re-nests differently; iterate to a fixed point
    # so that sanitize_notes(sanitize_notes(x)) == sanitize_notes(x).
    for _ in range(4):
        again = clean_text(_CLEANER.clean(out))
        if again == out:
            break
        out = again
    return out


class _Truncator(HTMLParser):
    """Re-serialise sanitized HTML token by token until a UTF-8 byte budget is spent, then close open tags."""

    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0
        self.stack: list[str] = []
        self.done = False

    def _closing_cost(self, extra: str | None = None) -> int:
        tags = [*self.stack, extra] if extra else self.stack
        return sum(len(t) + 3 for t in tags)

    def _emit(self, s: str) -> None:
        self.parts.append(s)
        self.used += len(s.encode("utf-8"))

    def _fits(self, s: str, extra_tag: str | None = None) -> bool:
        reserve = self._closing_cost(extra_tag) + len(_ELLIPSIS.encode("utf-8"))
        return self.used + len(s.encode("utf-8")) + reserve <= self.limit

    def _stop(self) -> None:
        self._emit(_ELLIPSIS)
        self.done = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.done:
            return
        attr_s = "".join(f' {k}="{html.escape(v or "", quote=True)}"' for k, v in attrs)
        s = f"<{tag}{attr_s}>"
        void = tag in _VOID_TAGS
        if not self._fits(s, None if void else tag):
            self._stop()
            return
        self._emit(s)
        if not void:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS and not self.done and self.stack and self.stack[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.done or tag not in self.stack:
            return
        while self.stack:
            open_tag = self.stack.pop()
            self._emit(f"</{open_tag}>")
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.done:
            return
        escaped = html.escape(data, quote=False)
        if self._fits(escaped):
            self._emit(escaped)
            return
        # Binary search the longest prefix of the raw text whose escaped form fits, then prefer a word break.
        lo, hi = 0, len(data)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._fits(html.escape(data[:mid], quote=False)):
                lo = mid
            else:
                hi = mid - 1
        cut = data[:lo]
        space = cut.rfind(" ")
        if space > len(cut) * 3 // 4:
            cut = cut[:space]
        self._emit(html.escape(cut.rstrip(), quote=False))
        self._stop()

    def result(self) -> str:
        while self.stack:
            self._emit(f"</{self.stack.pop()}>")
        return "".join(self.parts)


def truncate_html(fragment: str, limit: int) -> str:
    """Cut sanitized HTML to at most `limit` UTF-8 bytes, keeping tags balanced (ends with an ellipsis)."""
    if len(fragment.encode("utf-8")) <= limit:
        return fragment
    parser = _Truncator(limit)
    parser.feed(fragment)
    parser.close()
    return parser.result()
