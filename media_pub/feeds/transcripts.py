"""Episode transcripts: parse WebVTT, SRT and Podcasting 2.0 JSON, render them, and follow audio edits.

Times are kept to the millisecond. Parsing is strict about what players choke on (encoding, timestamps,
order, size) and names the line, cue or segment at fault; it is lenient where players are (CRLF, a BOM,
extra blank lines, cue settings, missing SRT numbers). Overlapping cues are allowed, as WebVTT allows them;
cues that start before the previous one are refused rather than silently sorted, since that usually means
two files were pasted together.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from media_pub.domain.values import Cuts, map_time
from media_pub.errors import InvalidInput, TooLarge
from media_pub.feeds.sanitize import clean_text

TranscriptFormat = Literal["vtt", "srt", "json"]

TRANSCRIPT_MIME: dict[TranscriptFormat, str] = {
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "json": "application/json",
}
JSON_VERSION = "1.0.0"
MAX_BYTES = 5 * 1024 * 1024
MAX_CUES = 100_000  # a three-hour show transcribed word by word stays well below
ERROR_CODE = "invalid-transcript"

_HINTS: dict[str, TranscriptFormat] = {
    ".vtt": "vtt",
    ".webvtt": "vtt",
    ".srt": "srt",
    ".json": "json",
    "text/vtt": "vtt",
    "application/x-subrip": "srt",
    "application/srt": "srt",
    "text/srt": "srt",
    "application/json": "json",
}
_VTT_MAGIC = re.compile(r"WEBVTT(?:[ \t]|$)")
_VTT_TIME = re.compile(r"(?:(\d{1,9}):)?([0-5]\d):([0-5]\d)\.(\d{3})")
_SRT_TIME = re.compile(r"(\d{1,9}):([0-5]\d):([0-5]\d)[,.](\d{3})")
_TIMING = re.compile(r"\s*(\S*?)\s*-->\s*(\S*)(.*)")
_VOICE = re.compile(r"<v(?:\.[^\s<>]*)?(?:[ \t]([^<>]*))?>")
# Tag patterns stop at the next "<" or "{": a 5 MB run of "<" must not cost quadratic time.
_VTT_TAG = re.compile(r"<[^<>]*>")
_SRT_TAG = re.compile(r"</?(?:i|b|u|s|font)(?:\s[^<>]*)?>|\{\\[^{}]*\}", re.IGNORECASE)


@dataclass(frozen=True)
class Cue:
    """One timed piece of text, in seconds from the start of the audio; `speaker` when the file names one."""

    start: float
    end: float
    text: str
    speaker: str | None = None


@dataclass(frozen=True)
class Transcript:
    """The cues of a transcript, in time order, and the format it was read from."""

    cues: tuple[Cue, ...]
    format: TranscriptFormat = "vtt"

    @property
    def mime_type(self) -> str:
        """MIME type of the format the transcript was read from."""
        return TRANSCRIPT_MIME[self.format]


def _fail(where: str, problem: str) -> NoReturn:
    raise InvalidInput(f"{where}: {problem}", code=ERROR_CODE)


def _quote(value: object) -> str:
    """repr() cut to a readable length: a hostile line can be megabytes long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _clock(ms: int, sep: str = ".") -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


class _Cues:
    """Collects cues in milliseconds and enforces the rules every format shares."""

    def __init__(self, max_cues: int) -> None:
        self.cues: list[Cue] = []
        self.max_cues = max_cues
        self.last_start = 0

    def add(self, where: str, start: int, end: int, text: str, speaker: str | None) -> None:
        if end < start:
            _fail(where, f"the cue ends ({_clock(end)}) before it starts ({_clock(start)})")
        if start < self.last_start:
            _fail(
                where,
                f"the cue starts at {_clock(start)}, before the previous cue ({_clock(self.last_start)}); "
                "cues must be in time order",
            )
        if len(self.cues) >= self.max_cues:
            _fail(where, f"too many cues (the limit is {self.max_cues})")
        self.last_start = start
        self.cues.append(Cue(start / 1000, end / 1000, _tidy(text), _tidy_speaker(speaker)))


def _tidy(text: str) -> str:
    """Strip every line and drop blank ones: a blank line would end the cue in WebVTT and SRT."""
    lines = (line.strip() for line in clean_text(text).split("\n"))
    return "\n".join(line for line in lines if line)


def _tidy_speaker(speaker: str | None) -> str | None:
    if not speaker:
        return None
    return " ".join(clean_text(speaker).split()) or None


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        _fail("line 1", "the file is UTF-16; save it as UTF-8")
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        _fail(f"line {line}", f"not valid UTF-8 (byte {exc.start + len(data) - len(body)}); save it as UTF-8")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _hint(filename: str | None, content_type: str | None) -> TranscriptFormat | None:
    if content_type:
        kind = content_type.split(";", 1)[0].strip().lower()
        if kind in _HINTS:
            return _HINTS[kind]
    if filename and "." in filename:
        return _HINTS.get(filename[filename.rfind(".") :].lower())
    return None


def _detect(text: str, filename: str | None, content_type: str | None) -> TranscriptFormat:
    """The format by content; the name and type only choose the parser (and so the error) for unknown text."""
    head = text.lstrip()
    first, _, rest = head.partition("\n")
    if head.startswith(("{", "[")):
        return "json"
    if _VTT_MAGIC.match(first):
        return "vtt"
    if "-->" in first or (first.strip().isdigit() and "-->" in rest.partition("\n")[0]):
        return "srt"
    hint = _hint(filename, content_type)
    if hint is not None:
        return hint
    _fail(
        "line 1", "not a WebVTT, SRT or Podcasting 2.0 JSON transcript (HTML and plain text are not accepted)"
    )


def _blocks(lines: list[str], start: int) -> Iterator[tuple[int, list[str]]]:
    """(index of its first line, lines) for each run of non-blank lines from `start`."""
    block: list[str] = []
    first = start
    for i in range(start, len(lines)):
        if lines[i].strip():
            if not block:
                first = i
            block.append(lines[i])
        elif block:
            yield first, block
            block = []
    if block:
        yield first, block


def _time(value: str, pattern: re.Pattern[str], where: str, expected: str) -> int:
    m = pattern.fullmatch(value)
    if m is None:
        _fail(where, f"invalid timestamp {_quote(value)}: expected {expected}")
    hours, minutes, seconds, millis = m.groups()
    return (int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)) * 1000 + int(millis)


def _timing(line: str, where: str, parse: Callable[[str, str], int]) -> tuple[int, int]:
    m = _TIMING.fullmatch(line)
    if m is None:  # more than one word before "-->"
        _fail(where, f"expected 'start --> end', got {_quote(line.strip())}")
    start, end, rest = m.groups()
    if rest and not rest[0].isspace():
        _fail(where, f"unexpected text after the end time: {_quote(line.strip())}")
    return parse(start, where), parse(end, where)


def _vtt_time(value: str, where: str) -> int:
    hint = " (WebVTT puts '.', not ',', before the milliseconds)" if "," in value else ""
    return _time(value, _VTT_TIME, where, f"[hh:]mm:ss.ttt{hint}")


def _srt_time(value: str, where: str) -> int:
    return _time(value, _SRT_TIME, where, "HH:MM:SS,mmm")


def _is_vtt_meta(head: str, block: list[str]) -> bool:
    """NOTE, STYLE and REGION blocks: comments and styling, not cues."""
    word = head.split(None, 1)[0]
    return word == "NOTE" or (word in {"STYLE", "REGION"} and not any("-->" in line for line in block))


def _vtt_payload(lines: list[str]) -> tuple[str, str | None]:
    raw = "\n".join(lines)
    voice = _VOICE.search(raw)
    speaker = html.unescape(voice.group(1)) if voice and voice.group(1) else None
    return html.unescape(_VTT_TAG.sub("", raw)), speaker


def _parse_vtt(text: str, max_cues: int) -> list[Cue]:
    lines = text.split("\n")
    if not _VTT_MAGIC.match(lines[0]):
        _fail("line 1", "a WebVTT file must start with 'WEBVTT' on its first line")
    i = 1
    while i < len(lines) and lines[i].strip() and "-->" not in lines[i]:
        i += 1  # header lines (Kind:, Language:) up to the first blank line
    out = _Cues(max_cues)
    for first, block in _blocks(lines, i):
        if _is_vtt_meta(block[0], block):
            continue
        j = 0
        if "-->" not in block[0]:
            if len(block) < 2 or "-->" not in block[1]:
                _fail(f"line {first + 1}", "expected a cue timing line 'start --> end' (or a NOTE block)")
            j = 1  # block[0] is the cue identifier
        while j < len(block):  # a line with "-->" starts a new cue even without a blank line before it
            where = f"line {first + j + 1} (cue {len(out.cues) + 1})"
            start, end = _timing(block[j], where, _vtt_time)
            k = j + 1
            while k < len(block) and "-->" not in block[k]:
                k += 1
            body, speaker = _vtt_payload(block[j + 1 : k])
            out.add(where, start, end, body, speaker)
            j = k
    return out.cues


def _parse_srt(text: str, max_cues: int) -> list[Cue]:
    lines = text.split("\n")
    n = len(lines)

    def timing_at(i: int) -> int | None:
        """Index of the timing line if a cue starts at line i (its number is optional)."""
        s = lines[i].strip()
        if "-->" in s:
            return i
        if s.isascii() and s.isdigit() and i + 1 < n and "-->" in lines[i + 1]:
            return i + 1
        return None

    out = _Cues(max_cues)
    i = 0
    while i < n and not lines[i].strip():
        i += 1
    while i < n:
        t = timing_at(i)
        if t is None:
            _fail(f"line {i + 1}", "expected a cue number or a timing line 'HH:MM:SS,mmm --> HH:MM:SS,mmm'")
        where = f"line {t + 1} (cue {len(out.cues) + 1})"
        start, end = _timing(lines[t], where, _srt_time)
        i = t + 1
        payload: list[str] = []
        # Hand-edited files often hold blank lines inside a cue's text: a cue ends only where the next begins.
        while i < n and not (lines[i].strip() and timing_at(i) is not None):
            payload.append(lines[i])
            i += 1
        out.add(where, start, end, _SRT_TAG.sub("", "\n".join(payload)), None)
    return out.cues


def _json_time(seg: dict[str, Any], key: str, where: str) -> int | None:
    value = seg.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        _fail(where, f"'{key}' must be a number of seconds >= 0, got {_quote(value)}")
    return round(value * 1000)


def _parse_json(text: str, max_cues: int) -> list[Cue]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"line {exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})")
    except RecursionError:
        _fail("line 1", "JSON nested too deeply")
    if not isinstance(doc, dict) or not isinstance(doc.get("segments"), list):
        _fail("line 1", "expected a Podcasting 2.0 JSON transcript: an object with a 'segments' list")
    if not isinstance(doc.get("version", ""), str):
        _fail("line 1", "'version' must be a string such as \"1.0.0\"")
    rows: list[tuple[str, int, int | None, str, str | None]] = []
    for n, seg in enumerate(doc["segments"], 1):
        where = f"segment {n} (segments[{n - 1}])"
        if not isinstance(seg, dict):
            _fail(where, "expected an object with startTime and body")
        start = _json_time(seg, "startTime", where)
        if start is None:
            _fail(where, "'startTime' is missing")
        body, speaker = seg.get("body"), seg.get("speaker")
        if not isinstance(body, str):
            _fail(where, "'body' must be a string")
        if speaker is not None and not isinstance(speaker, str):
            _fail(where, "'speaker' must be a string")
        rows.append((where, start, _json_time(seg, "endTime", where), body, speaker))
        if len(rows) > max_cues:
            _fail(where, f"too many segments (the limit is {max_cues})")
    out = _Cues(max_cues)
    for n, (where, start, end, body, speaker) in enumerate(rows):
        if end is None:  # endTime is optional: the segment lasts until the next one starts
            following = rows[n + 1][1] if n + 1 < len(rows) else start
            end = max(start, following)
        out.add(where, start, end, body, speaker)
    return out.cues


_PARSERS: dict[TranscriptFormat, Callable[[str, int], list[Cue]]] = {
    "vtt": _parse_vtt,
    "srt": _parse_srt,
    "json": _parse_json,
}


def parse_transcript(
    data: bytes,
    filename: str | None = None,
    content_type: str | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_cues: int = MAX_CUES,
) -> Transcript:
    """Read a WebVTT, SRT or Podcasting 2.0 JSON transcript, detected by content (name and type are hints).

    Raises:
        TooLarge: (code "transcript-too-large") over `max_bytes`.
        InvalidInput: (code "invalid-transcript") anything else, with the line, cue or segment at fault.
    """
    if len(data) > max_bytes:
        raise TooLarge(
            f"the transcript is {len(data)} bytes; the limit is {max_bytes}", code="transcript-too-large"
        )
    text = _decode(data)
    if not text.strip():
        _fail("line 1", "the transcript is empty")
    fmt = _detect(text, filename, content_type)
    cues = _PARSERS[fmt](text, max_cues)
    if not cues:
        _fail("end of file", "the transcript has no cues")
    return Transcript(tuple(cues), fmt)


def _ms(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise InvalidInput(f"cue time must be finite, got {seconds!r}", code=ERROR_CODE)
    return max(0, round(seconds * 1000))


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(t: Transcript) -> bytes:
    """Render as WebVTT (UTF-8), with a `<v Speaker>` span on every cue whose speaker is known."""
    out = ["WEBVTT", ""]
    for cue in t.cues:
        out.append(f"{_clock(_ms(cue.start))} --> {_clock(_ms(cue.end))}")
        lines = [_vtt_escape(line) for line in _tidy(cue.text).split("\n") if line] or [""]
        speaker = _tidy_speaker(cue.speaker)
        if speaker:
            lines[0] = f"<v {_vtt_escape(speaker)}>{lines[0]}"
        out.extend(line for line in lines if line)
        out.append("")
    return "\n".join(out).encode("utf-8")


def to_srt(t: Transcript) -> bytes:
    """Render as SRT (UTF-8). SRT has no speaker field: "Name: " opens a cue whenever the speaker changes.

    Cues without text are left out (many SRT readers take an empty cue for the end of the file).
    """
    out: list[str] = []
    previous: str | None = None
    number = 0
    for cue in t.cues:
        lines = [line for line in _tidy(cue.text).split("\n") if line]
        if not lines:
            continue
        speaker = _tidy_speaker(cue.speaker)
        if speaker and speaker != previous:
            lines[0] = f"{speaker}: {lines[0]}"
        previous = speaker
        number += 1
        out += [str(number), f"{_clock(_ms(cue.start), ',')} --> {_clock(_ms(cue.end), ',')}", *lines, ""]
    return "\n".join(out).encode("utf-8")


def _seconds(ms: int) -> float | int:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def to_json(t: Transcript) -> bytes:
    """Render as Podcasting 2.0 JSON: {version, segments: [{speaker, startTime, endTime, body}]}."""
    segments: list[dict[str, Any]] = []
    for cue in t.cues:
        seg: dict[str, Any] = {}
        speaker = _tidy_speaker(cue.speaker)
        if speaker:
            seg["speaker"] = speaker
        seg["startTime"] = _seconds(_ms(cue.start))
        seg["endTime"] = _seconds(_ms(cue.end))
        seg["body"] = _tidy(cue.text)
        segments.append(seg)
    doc = {"version": JSON_VERSION, "segments": segments}
    return json.dumps(doc, ensure_ascii=False, allow_nan=False).encode("utf-8")


_RENDERERS: dict[TranscriptFormat, Callable[[Transcript], bytes]] = {
    "vtt": to_webvtt,
    "srt": to_srt,
    "json": to_json,
}


def render_transcript(t: Transcript, fmt: TranscriptFormat) -> bytes:
    """Render in the given format ("vtt", "srt" or "json"); TRANSCRIPT_MIME[fmt] is its MIME type."""
    return _RENDERERS[fmt](t)


def shift_transcript(
    t: Transcript, offset: float, duration: float, cuts: Cuts = (), lead: float = 0.0
) -> Transcript:
    """Move cues to the edited audio's timeline (see map_time), then by `lead` (an intro played first).

    A cue wholly before `offset`, inside a cut or past `duration` is dropped; one partly outside is clipped.
    A cue of no length is kept only if its instant survives the edit.
    """
    out: list[Cue] = []
    for cue in t.cues:
        start = round(max(0.0, map_time(cue.start, offset, cuts)) + lead, 3)
        end = round(min(max(0.0, map_time(cue.end, offset, cuts)) + lead, duration), 3)
        if cue.end > cue.start:
            if end <= start:
                continue
        elif (
            cue.start < offset
            or start >= duration
            or any(cut_start < cue.start < cut_end for cut_start, cut_end in cuts)
        ):
            continue
        else:
            end = start
        out.append(Cue(start, end, cue.text, cue.speaker))
    return Transcript(tuple(out), t.format)
