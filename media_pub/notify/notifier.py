"""Tell WebSub hubs and Podping that a feed changed, from one background thread, with retries.

`notify()` only queues, so a slow or dead hub never delays the request that changed the feed. A
notification still waiting (queued or backing off) absorbs a new one for the same feed and reason: the
receiver re-reads the whole feed anyway. One being sent does not, because it may predate the change.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

from media_pub import __version__

log = logging.getLogger(__name__)

REASONS: frozenset[str] = frozenset({"update", "live", "liveEnd"})
_MEDIA = ("podcast", "music", "video", "film", "audiobook", "newsletter", "blog")
MEDIUMS: frozenset[str] = frozenset({"mixed", *_MEDIA, *(f"{m}L" for m in _MEDIA)})  # "L": lists of feeds
USER_AGENT = f"media_pub/{__version__}"
_BODY_SNIPPET = 200

Kind = Literal["websub", "podping"]


@dataclass(order=True)
class _Delivery:
    """One message to one receiver; ordered by when it is due."""

    due: float
    seq: int
    kind: Kind = field(compare=False)
    endpoint: str = field(compare=False)
    feed_url: str = field(compare=False)
    reason: str = field(compare=False)
    medium: str = field(compare=False)
    attempt: int = field(default=0, compare=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        # A WebSub ping carries no reason, so "update" and "live" for one feed are the same ping.
        return (self.kind, self.endpoint, self.feed_url, self.reason if self.kind == "podping" else "")


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http(s) URL, got {url!r}")
    return url


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Notifier:
    """Sends WebSub publish pings to `hubs` and Podping GETs to `podping_url` whenever notify() is called.

    Args:
        hubs: WebSub hub URLs; each gets `POST hub.mode=publish&hub.url=<feed>`.
        podping_url: Podping endpoint; it gets `GET ?url=<feed>&reason=<reason>&medium=<medium>`.
        podping_token: sent as the `Authorization` header to the Podping endpoint; never logged.
        timeout: seconds for each HTTP request.
        attempts: tries per receiver, the first included.
        base_delay: wait before the first retry; it doubles for each later one, up to `max_delay`.
        max_pending: deliveries waiting at most; more are dropped with a warning.
        transport: an httpx transport to use instead of the network (tests).
    """

    def __init__(
        self,
        hubs: Sequence[str] = (),
        podping_url: str | None = None,
        podping_token: str | None = None,
        *,
        timeout: float = 10.0,
        attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
        max_pending: int = 10_000,
        transport: httpx.BaseTransport | None = None,
        first_delay: float = 0.0,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._first_delay = first_delay
        self._targets: list[tuple[Kind, str]] = [("websub", _check_url(h, "a WebSub hub")) for h in hubs]
        if podping_url:
            self._targets.append(("podping", _check_url(podping_url, "podping_url")))
        self._token = podping_token or None
        self._timeout = timeout
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._max_pending = max_pending
        self._transport = transport
        self._cond = threading.Condition()
        self._heap: list[_Delivery] = []
        self._pending: dict[tuple[str, str, str, str], _Delivery] = {}
        self._in_flight = 0
        self._seq = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Whether any receiver is configured; when not, notify() does nothing."""
        return bool(self._targets)

    @property
    def pending(self) -> int:
        """Deliveries queued or being sent."""
        with self._cond:
            return len(self._heap) + self._in_flight

    def notify(self, feed_url: str, reason: str = "update", medium: str = "podcast") -> None:
        """Queue a change notice for every receiver and return at once; sending happens in the background."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {sorted(REASONS)}, got {reason!r}")
        if medium not in MEDIUMS:
            raise ValueError(f"medium must be one of {sorted(MEDIUMS)}, got {medium!r}")
        _check_url(feed_url, "feed_url")
        if not self._targets:
            return
        now = time.monotonic() + self._first_delay  # other processes may serve the old feed that long
        with self._cond:
            if self._closed:
                log.warning("notify.closed feed=%s reason=%s", feed_url, reason)
                return
            for kind, endpoint in self._targets:
                item = _Delivery(now, next(self._seq), kind, endpoint, feed_url, reason, medium)
                if item.key in self._pending:
                    continue
                if len(self._heap) >= self._max_pending:
                    log.warning("notify.dropped kind=%s feed=%s reason=queue-full", kind, feed_url)
                    continue
                heapq.heappush(self._heap, item)
                self._pending[item.key] = item
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="media-pub-notify", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or being sent (retries included); False if `timeout` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within `timeout`, then stop the worker; later notify() calls are ignored.

        A request still in flight at the deadline gets half a second more to finish; the rest is dropped.
        """
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        with self._cond:
            self._closed = True
            left = len(self._heap)
            self._heap.clear()
            self._pending.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.5, deadline - time.monotonic()))
        if left:
            log.warning("notify.abandoned count=%d", left)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- worker ------------------------------------------------------------------------------------

    def _next(self) -> _Delivery | None:
        """Block until a delivery is due (and claim it) or the notifier closes (None)."""
        with self._cond:
            while not self._closed:
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0].due - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                item = heapq.heappop(self._heap)
                if self._pending.get(item.key) is item:
                    del self._pending[item.key]
                self._in_flight += 1
                return item
            return None

    def _run(self) -> None:
        headers = {"User-Agent": USER_AGENT}
        with httpx.Client(
            timeout=self._timeout, follow_redirects=False, headers=headers, transport=self._transport
        ) as client:
            while (item := self._next()) is not None:
                delay: float | None = None
                try:
                    delay = self._attempt(client, item)
                except Exception as exc:  # never let one bad delivery stop the worker
                    log.error("notify.crashed kind=%s error=%s", item.kind, self._redact(repr(exc)))
                with self._cond:
                    self._in_flight -= 1
                    if delay is not None and not self._closed and item.key not in self._pending:
                        item.attempt += 1
                        item.due = time.monotonic() + delay
                        heapq.heappush(self._heap, item)
                        self._pending[item.key] = item
                    self._cond.notify_all()

    def _request(self, client: httpx.Client, item: _Delivery) -> httpx.Request:
        if item.kind == "websub":
            form = {"hub.mode": "publish", "hub.url": item.feed_url}
            return client.build_request("POST", item.endpoint, data=form)
        params = {"url": item.feed_url, "reason": item.reason, "medium": item.medium}
        headers = {"Authorization": self._token} if self._token else None
        return client.build_request("GET", item.endpoint, params=params, headers=headers)

    def _attempt(self, client: httpx.Client, item: _Delivery) -> float | None:
        """Send once: None when done (delivered, refused for good, out of attempts), else the retry delay."""
        hint: float | None = None
        try:
            response = client.send(self._request(client, item), stream=True)
        except httpx.HTTPError as exc:
            error, retry = f"{type(exc).__name__}: {exc}", True
        else:
            try:
                if response.is_success:
                    log.info("notify.sent kind=%s feed=%s reason=%s", item.kind, item.feed_url, item.reason)
                    return None
                error = f"HTTP {response.status_code} {self._snippet(response)!r}"
                retry = response.status_code in (408, 425, 429) or response.status_code >= 500
                hint = _retry_after(response.headers.get("Retry-After"))
            finally:
                response.close()
        attempt = item.attempt + 1
        delay = self._delay(attempt, hint) if retry and attempt < self._attempts else None
        log.warning(
            "notify.failed kind=%s endpoint=%s feed=%s reason=%s attempt=%d/%d error=%s next=%s",
            item.kind,
            self._redact(self._public(item.endpoint)),
            item.feed_url,
            item.reason,
            attempt,
            self._attempts,
            self._redact(error),
            "give-up" if delay is None else f"{delay:.2f}s",
        )
        return delay

    def _delay(self, attempt: int, hint: float | None) -> float:
        """base, 2*base, 4*base... (+ up to 10 % jitter, so many feeds do not retry in step), capped."""
        delay: float = min(self._max_delay, self._base_delay * 2.0 ** (attempt - 1))
        delay *= 1 + random.random() / 10
        if hint is not None:
            delay = max(delay, hint)
        return min(delay, self._max_delay)

    def _snippet(self, response: httpx.Response) -> str:
        body = b""
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= _BODY_SNIPPET:
                    break
        except httpx.HTTPError:
            pass  # the status says enough
        return body[:_BODY_SNIPPET].decode("utf-8", "replace")

    @staticmethod
    def _public(url: str) -> str:
        """The URL without user:password."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=netloc))

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "[redacted]") if self._token else text
