"""Podcasting 2.0 values a host gives (persons, funding, location, license, txt, soundbites): checked, tidied.

Each function takes what came in (JSON-like values from the API, a manifest or the CLI) and returns what is
stored, or raises InvalidInput with a code naming the field and a detail naming the entry at fault. The rules
follow the namespace: every URL is https, display texts are at most 128 characters, txt at most 4000.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

from media_pub.errors import InvalidInput
from media_pub.feeds.sanitize import clean_text
from media_pub.media.process import parse_timestamp

MAX_ITEMS = 50
MAX_URL = 2000
SOUNDBITE_MIN, SOUNDBITE_MAX = 1.0, 300.0
SOUNDBITE_ADVISED = (15.0, 120.0)
_TOKEN = re.compile(r"^[a-z0-9][a-z0-9 ._-]{0,63}$")
_OSM = re.compile(r"^[NWR]\d{1,12}(?:#\d{1,12})?$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_GEO = re.compile(
    r"^(?:geo:)?(-?\d{1,2}(?:\.\d+)?),(-?\d{1,3}(?:\.\d+)?)(?:,(-?\d+(?:\.\d+)?))?(?:;u=\d+(?:\.\d+)?)?$"
)
_LICENSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,127}$")


def _fail(code: str, detail: str) -> NoReturn:
    raise InvalidInput(detail, code=code)


def _object(value: object, where: str, code: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(code, f"{where} must be an object with {', '.join(sorted(keys))}")
    unknown = set(value) - keys
    if unknown:
        _fail(code, f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    return value


def _list(value: object, where: str, code: str, limit: int = MAX_ITEMS) -> list[Any]:
    if not isinstance(value, list):
        _fail(code, f"{where} must be a list")
    if len(value) > limit:
        _fail(code, f"{where}: at most {limit} entries")
    return value


def _text(value: object, where: str, code: str, limit: int, *, required: bool = True) -> str | None:
    """Text without XML-forbidden characters, stripped; None when optional and empty."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        _fail(code, f"{where} must be text")
    text = " ".join(clean_text(value).split()) if limit <= 128 else clean_text(value).strip()
    if not text:
        if required:
            _fail(code, f"{where} must not be empty")
        return None
    if len(text) > limit:
        _fail(code, f"{where} is {len(text)} characters long; the limit is {limit}")
    return text


def https_url(value: object, where: str, code: str, *, required: bool = False) -> str | None:
    """An absolute https URL (the namespace allows no other scheme), at most 2000 ASCII characters."""
    if value is None or value == "":
        if required:
            _fail(code, f"{where} is required")
        return None
    if not isinstance(value, str):
        _fail(code, f"{where} must be an https URL")
    url = value.strip()
    if len(url) > MAX_URL:
        _fail(code, f"{where} is longer than {MAX_URL} characters")
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        _fail(code, f"{where} must be an https URL, got {url[:60]!r}")
    host = url[8:].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not host or not url.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        _fail(code, f"{where} is not a valid https URL (no host, spaces or non-ASCII characters)")
    return url


def _token(value: object, where: str, code: str, default: str) -> str:
    """A taxonomy word (person role or group, txt purpose): lowercased, letters, digits, spaces."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or not _TOKEN.match(value.strip().lower()):
        _fail(code, f"{where} must be a short lowercase word such as {default!r}")
    return value.strip().lower()


def persons(value: object) -> list[dict[str, Any]] | None:
    """podcast:person credits; None keeps the show's (an episode's list replaces the show's in apps)."""
    if value is None:
        return None
    code, out = "invalid-persons", []
    for i, raw in enumerate(_list(value, "persons", code)):
        where = f"persons[{i}]"
        item = _object(raw, where, code, {"name", "role", "group", "img", "href"})
        person: dict[str, Any] = {
            "name": _text(item.get("name"), f"{where}.name", code, 128),
            "role": _token(item.get("role"), f"{where}.role", code, "host"),
            "group": _token(item.get("group"), f"{where}.group", code, "cast"),
        }
        for key in ("img", "href"):
            url = https_url(item.get(key), f"{where}.{key}", code)
            if url:
                person[key] = url
        out.append(person)
    return out


def funding(value: object) -> list[dict[str, Any]]:
    """podcast:funding links: an https url and the text listeners see (at most 128 characters)."""
    code, out = "invalid-funding", []
    for i, raw in enumerate(_list(value or [], "funding", code)):
        where = f"funding[{i}]"
        item = _object(raw, where, code, {"url", "text"})
        url = https_url(item.get("url"), f"{where}.url", code, required=True)
        text = _text(item.get("text"), f"{where}.text", code, 128, required=False) or "Support the show"
        out.append({"url": url, "text": text})
    return out


def _geo(value: object, where: str, code: str) -> str | None:
    if value is None or value == "":
        return None
    geo = value.strip().lower() if isinstance(value, str) else ""
    m = _GEO.match(geo)
    if m is None or not (-90 <= float(m.group(1)) <= 90 and -180 <= float(m.group(2)) <= 180):
        _fail(code, f"{where} must be 'geo:latitude,longitude' (RFC 5870), e.g. 'geo:52.52,13.405'")
    return geo if geo.startswith("geo:") else f"geo:{geo}"


def location(value: object) -> dict[str, Any] | None:
    """podcast:location: text, with geo (RFC 5870), osm (e.g. R62422), rel subject|creator, country."""
    if value is None:
        return None
    code = "invalid-location"
    item = _object(value, "location", code, {"text", "geo", "osm", "rel", "country"})
    out: dict[str, Any] = {"text": _text(item.get("text"), "location.text", code, 128)}
    geo = _geo(item.get("geo"), "location.geo", code)
    if geo:
        out["geo"] = geo
    osm = item.get("osm")
    if osm not in (None, ""):
        if not isinstance(osm, str) or not _OSM.match(osm.strip().upper()):
            _fail(code, "location.osm must be an OpenStreetMap type and id such as 'R62422' or 'N1234#5'")
        out["osm"] = osm.strip().upper()
    rel = item.get("rel")
    if rel not in (None, ""):
        if rel not in ("subject", "creator"):
            _fail(code, "location.rel is 'subject' (what it is about) or 'creator' (where it was made)")
        out["rel"] = rel
    country = item.get("country")
    if country not in (None, ""):
        if not isinstance(country, str) or not _COUNTRY.match(country.strip().upper()):
            _fail(code, "location.country must be an ISO 3166-1 alpha-2 code such as 'DE'")
        out["country"] = country.strip().upper()
    return out


def license_(value: object) -> dict[str, Any] | None:
    """podcast:license: an SPDX-style slug (e.g. cc-by-4.0), with an https url for a custom license."""
    if value is None:
        return None
    code = "invalid-license"
    item = _object(value, "license", code, {"slug", "url"})
    slug = item.get("slug")
    if not isinstance(slug, str) or not _LICENSE.match(slug.strip()):
        _fail(code, "license.slug must be a license identifier such as 'cc-by-4.0' (at most 128 characters)")
    out: dict[str, Any] = {"slug": slug.strip()}
    url = https_url(item.get("url"), "license.url", code)
    if url:
        out["url"] = url
    return out


def txt(value: object) -> list[dict[str, Any]]:
    """podcast:txt records: text (at most 4000 characters) and an optional purpose (e.g. verify)."""
    code, out = "invalid-txt", []
    for i, raw in enumerate(_list(value or [], "txt", code, limit=10)):
        where = f"txt[{i}]"
        item = _object(raw, where, code, {"text", "purpose"})
        record: dict[str, Any] = {"text": _text(item.get("text"), f"{where}.text", code, 4000)}
        if item.get("purpose") not in (None, ""):
            record["purpose"] = _token(item.get("purpose"), f"{where}.purpose", code, "verify")
        out.append(record)
    return out


def soundbites(value: object, duration: float | None) -> list[dict[str, Any]]:
    """podcast:soundbite: start (seconds or HH:MM:SS) and duration (1 to 300 s), inside the episode."""
    code, out = "invalid-soundbites", []
    for i, raw in enumerate(_list(value or [], "soundbites", code)):
        where = f"soundbites[{i}]"
        item = _object(raw, where, code, {"start", "duration", "title"})
        if "start" not in item or "duration" not in item:
            _fail(code, f"{where} needs a start and a duration")
        try:
            start = parse_timestamp(item["start"])
        except InvalidInput as exc:
            _fail(code, f"{where}.start: {exc.detail}")
        length = item["duration"]
        if isinstance(length, bool) or not isinstance(length, int | float) or not math.isfinite(length):
            _fail(code, f"{where}.duration must be a number of seconds")
        if not SOUNDBITE_MIN <= length <= SOUNDBITE_MAX:
            _fail(code, f"{where}.duration must be {SOUNDBITE_MIN:g} to {SOUNDBITE_MAX:g} s, got {length:g}")
        if duration is not None and start + length > duration + 0.0005:
            _fail(
                code,
                f"{where} ends at {start + length:.3f} s, past the end of the episode ({duration:.3f} s)",
            )
        bite: dict[str, Any] = {"start": round(start, 3), "duration": round(float(length), 3)}
        title = _text(item.get("title"), f"{where}.title", code, 128, required=False)
        if title:
            bite["title"] = title
        out.append(bite)
    return sorted(out, key=lambda b: b["start"])


def soundbite_advice(bites: list[dict[str, Any]], duration: float | None) -> list[str]:
    """Warnings that do not block publishing: lengths outside 15-120 s, soundbites past a shorter edit."""
    low, high = SOUNDBITE_ADVISED
    notes = []
    for i, bite in enumerate(bites):
        start, length = float(bite["start"]), float(bite["duration"])
        if not low <= length <= high:
            notes.append(f"soundbites[{i}]: {length:g} s; apps advise {low:g} to {high:g} s")
        if duration is not None and start + length > duration + 0.0005:
            notes.append(f"soundbites[{i}] ends past the end of the episode ({duration:.3f} s)")
    return notes
