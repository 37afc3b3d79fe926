"""Safe outbound HTTP GET: public addresses only, redirects re-checked, bounded in total time and in bytes.

Every connection goes through GuardedTransport. Its network backend resolves the host once, refuses the
request unless every address is public, then dials exactly the address it checked, so a second DNS answer
cannot swap in an internal address (DNS rebinding). TLS still gets the host name for SNI and certificate
checks, because httpcore wraps the socket with the origin's name, not the address.

Errors are domain errors with stable codes; their messages name the host, never the URL (query strings
of private feeds carry tokens).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as ResolveTimeout
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpcore
import httpx

from media_pub import __version__
from media_pub.errors import InvalidInput, MediaPubError, TooLarge, Unavailable

ALLOWED_SCHEMES = ("http", "https")
MAX_REDIRECTS = 5
USER_AGENT = f"media_pub/{__version__} (feed import)"
FEED_ACCEPT = "application/rss+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 64 * 1024
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not in ipaddress's private list
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# getaddrinfo has no timeout of its own: it runs here so the caller can stop waiting at the deadline.
_resolver_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fetch-dns")


@dataclass(frozen=True)
class Fetched:
    """A finished GET: the URL after redirects, the status, headers (lower-case names) and the body."""

    url_final: str
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class FetchedFile:
    """A GET streamed to disk: the URL after redirects, status, headers, where it went and its size."""

    url_final: str
    status: int
    headers: dict[str, str]
    path: Path
    size: int


def _refused(host: str, why: str) -> InvalidInput:
    return InvalidInput(f"refused to fetch from {host}: {why}", code="fetch-refused-address")


def _too_large(host: str, limit: int) -> TooLarge:
    return TooLarge(f"the response from {host} is larger than {limit} bytes", code="fetch-too-large")


def _failed(host: str, why: str, *, retryable: bool = True) -> MediaPubError:
    kind = Unavailable if retryable else InvalidInput
    return kind(f"fetching from {host} failed: {why}", code="fetch-failed")


def blocked_reason(address: IPAddress) -> str | None:
    """Why an address must not be fetched from ("loopback address", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is how a dual-stack socket reaches a.b.c.d
            return blocked_reason(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := blocked_reason(embedded)):
            return f"{reason} (embedded in IPv6)"
    checks = (
        (address.is_unspecified, "unspecified address"),
        (address.is_loopback, "loopback address"),
        (address.is_link_local, "link-local address"),  # includes 169.254.169.254, cloud metadata
        (address.is_multicast, "multicast address"),
        (address in _SHARED, "shared (CGNAT) address"),
        (address.is_private, "private address"),
        (address.is_reserved, "reserved address"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local address"),
        (not address.is_global, "non-public address"),
    )
    return next((why for hit, why in checks if hit), None)


def resolve(host: str, port: int) -> list[str]:
    """The addresses getaddrinfo gives for host, in order: the only DNS lookup here (tests replace it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _dial(
    address: str, port: int, timeout: float, socket_options: Iterable[Any] | None
) -> httpcore.NetworkStream:
    """Open a TCP connection to an address that has been checked (tests wrap this to watch dials)."""
    return httpcore.SyncBackend().connect_tcp(address, port, timeout=timeout, socket_options=socket_options)


class _Deadline:
    """One total time budget shared by DNS, connects, TLS, writes and every read of every hop."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return self.at - time.monotonic()

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        left = self.left()
        if left <= 0:
            raise error("total time limit reached")
        return left if timeout is None else min(timeout, left)


def _checked_addresses(host: str, port: int, *, allow_private: bool, deadline: _Deadline) -> list[str]:
    future = _resolver_pool.submit(resolve, host, port)
    try:
        found = future.result(timeout=max(0.0, deadline.left()))
    except ResolveTimeout:
        raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
    except (OSError, UnicodeError) as exc:
        raise _failed(host, "the host name could not be resolved") from exc
    if not found:
        raise _failed(host, "the host name has no address")
    for text in found:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise _refused(host, "it resolves to an unusable address") from None
        reason = blocked_reason(address)
        if reason and not allow_private:
            raise _refused(host, f"it resolves to a {reason}")
    return found


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits at most until the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check, then dial the checked address; no unix sockets."""

    def __init__(self, *, allow_private: bool, deadline: _Deadline) -> None:
        self._allow_private = allow_private
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _checked_addresses(host, port, allow_private=self._allow_private, deadline=self._deadline)
        error: Exception | None = None
        for address in addresses:
            wait = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
            try:
                return _DeadlineStream(_dial(address, port, wait, socket_options), self._deadline)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None  # addresses is never empty
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not fetched from")

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self._deadline.left())))


_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)
_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except _CORE_ERRORS as exc:
        mapped = next((to for core, to in _HTTPX_ERRORS if isinstance(exc, core)), httpx.TransportError)
        raise mapped(str(exc), request=request) from exc


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes], request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors(self._request):
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


@cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that only dials public addresses it checked itself, within one total deadline.

    Make one per fetch: the time budget (`timeout` seconds) starts when the transport is created and covers
    every request sent through it. `allow_private=True` skips the address check (tests, trusted hosts).
    """

    def __init__(
        self, *, timeout: float, allow_private: bool = False, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.deadline = _Deadline(timeout)
        backend = _GuardedBackend(allow_private=allow_private, deadline=self.deadline)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or _ssl_context(), retries=0, network_backend=backend
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send one request through the guarded pool (redirects are the caller's business)."""
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors(request):
            response = self._pool.handle_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, request),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


def _checked_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise InvalidInput("not a valid URL", code="fetch-invalid-url") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        scheme = f"{parsed.scheme}:" if parsed.scheme else "a relative URL"
        raise InvalidInput(f"only http and https URLs are fetched, not {scheme}", code="fetch-refused-scheme")
    if not parsed.host:
        raise InvalidInput("the URL has no host", code="fetch-invalid-url")
    return parsed


@contextlib.contextmanager
def _get(
    url: str, *, timeout: float, allow_private: bool, accept: str, encoding: str
) -> Iterator[tuple[httpx.Response, str]]:
    """Follow up to MAX_REDIRECTS redirects (each hop checked again) and yield the final streamed response."""
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    current = _checked_url(url)
    host = current.host  # the hop being fetched: errors name it
    headers = {"user-agent": USER_AGENT, "accept": accept, "accept-encoding": encoding}
    transport = GuardedTransport(timeout=timeout, allow_private=allow_private)
    try:
        with httpx.Client(
            transport=transport, headers=headers, timeout=timeout, trust_env=False, follow_redirects=False
        ) as client:
            for redirects in range(MAX_REDIRECTS + 1):
                response = client.send(client.build_request("GET", current), stream=True)
                location = response.headers.get("location")
                if response.status_code not in _REDIRECTS or not location:
                    break
                response.close()
                if redirects == MAX_REDIRECTS:
                    raise InvalidInput(
                        f"{host} redirected more than {MAX_REDIRECTS} times",
                        code="fetch-too-many-redirects",
                    )
                try:
                    target = current.join(location)
                except httpx.InvalidURL:
                    raise _failed(host, "it redirected to an invalid URL", retryable=False) from None
                current = _checked_url(target)
                host = current.host
            try:
                yield response, host
            finally:
                response.close()
    except httpx.TimeoutException as exc:
        raise Unavailable(
            f"fetching from {host} took longer than {timeout:g} s", code="fetch-timeout"
        ) from exc
    except httpx.HTTPError as exc:
        detail = str(exc)
        # socket and protocol messages ("[Errno 111] Connection refused") help; a URL in one would not
        reason = (
            f"{type(exc).__name__}: {detail[:200]}" if detail and "://" not in detail else type(exc).__name__
        )
        raise _failed(host, reason) from exc


def _inflate(decoder: Any, data: bytes) -> Iterator[bytes]:
    """Decompress in pieces of at most _CHUNK bytes, so a small gzip bomb never becomes a big buffer."""
    out = decoder.decompress(data, _CHUNK)
    while out:
        yield out
        out = decoder.decompress(decoder.unconsumed_tail, _CHUNK)


def _chunks(response: httpx.Response, *, max_bytes: int, host: str) -> Iterator[bytes]:
    """The decoded body, stopping with fetch-too-large as soon as it passes max_bytes."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    decoder = None
    if encoding in ("", "identity"):
        declared = response.headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(host, max_bytes)  # before reading a single body byte
    elif encoding in ("gzip", "x-gzip", "deflate"):
        decoder = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    else:
        raise _failed(host, f"unsupported content encoding {encoding[:20]!r}", retryable=False)
    total = 0
    try:
        for raw in response.iter_raw():
            for piece in (raw,) if decoder is None else _inflate(decoder, raw):
                total += len(piece)
                if total > max_bytes:
                    raise _too_large(host, max_bytes)
                yield piece
    except zlib.error:
        raise _failed(host, "the compressed body is corrupt", retryable=False) from None


def fetch(
    url: str, *, max_bytes: int, timeout: float, allow_private: bool = False, accept: str = FEED_ACCEPT
) -> Fetched:
    """GET a public http(s) URL into memory; any final status is returned, redirects are followed.

    Raises:
        InvalidInput: fetch-refused-address (a non-public address, on any hop), fetch-refused-scheme,
            fetch-invalid-url, fetch-too-many-redirects (more than 5).
        TooLarge: fetch-too-large, once the (decoded) body passes max_bytes; nothing more is read.
        Unavailable: fetch-timeout (the whole exchange took longer than timeout seconds), fetch-failed.
    """
    with _get(url, timeout=timeout, allow_private=allow_private, accept=accept, encoding="gzip") as (
        response,
        host,
    ):
        body = bytearray()
        for piece in _chunks(response, max_bytes=max_bytes, host=host):
            body += piece
        return Fetched(str(response.url), response.status_code, dict(response.headers), bytes(body))


def fetch_to_file(
    url: str,
    path: str | os.PathLike[str],
    *,
    max_bytes: int,
    timeout: float,
    allow_private: bool = False,
    accept: str = "*/*",
) -> FetchedFile:
    """Stream a public http(s) URL to `path` with fetch's checks; the file appears only when complete.

    A status other than 2xx raises fetch-failed (Unavailable when a retry may help, else InvalidInput).
    Bytes go to a hidden temporary file beside `path`, renamed over it at the end and removed on failure.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    with _get(url, timeout=timeout, allow_private=allow_private, accept=accept, encoding="identity") as (
        response,
        host,
    ):
        status = response.status_code
        if not 200 <= status < 300:
            raise _failed(host, f"HTTP status {status}", retryable=status in _RETRYABLE_STATUS)
        size = 0
        try:
            with partial.open("wb") as out:
                for piece in _chunks(response, max_bytes=max_bytes, host=host):
                    out.write(piece)
                    size += len(piece)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return FetchedFile(str(response.url), status, dict(response.headers), target, size)
