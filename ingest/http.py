"""The one HTTP client ingest uses for feeds, pages, robots.txt and sitemaps.

Everything it fetches is hostile until proven otherwise, so the client enforces, per request:

* the SSRF guard on every connection, including each redirect hop, by connecting only to the address the
  guard checked (a custom httpcore network backend; httpx never resolves names itself);
* a wall-clock budget for the whole request, applied to every socket operation, so servers that drip a
  byte at a time (in headers or body) cannot hold a worker forever;
* a cap on the decoded body, enforced while decompressing with bounded output, so a gzip bomb costs at
  most the cap in memory;
* Content-Type and Content-Length checks before any body byte is read.

Failures surface as the typed errors of :mod:`ingest.errors`.
"""

from __future__ import annotations

import contextvars
import logging
import math
import select
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from ingest.errors import (
    ConnectError,
    FetchError,
    FetchTimeout,
    HttpStatusError,
    InvalidUrlError,
    MalformedResponseError,
    RedirectError,
    TlsError,
    TooLargeError,
    UnsupportedContentType,
)
from ingest.netguard import AddressGuard

if TYPE_CHECKING:
    from ingest.politeness import HostThrottle

__all__ = ["FetchResult", "Fetcher", "HttpPolicy", "parse_retry_after"]

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only codings we can decode with bounded output; br/zstd decoders cannot cap a single chunk's expansion.
_ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class HttpPolicy:
    """Limits and identity for outgoing requests; one policy is shared by a whole ingest run."""

    user_agent: str = "Newswire/0.1 (+https://github.com/newswire/newswire)"
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    allow_private_networks: bool = False

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"HttpPolicy.{name} must be a positive number of seconds, got {value!r}")
        if self.max_bytes <= 0:
            raise ValueError(f"HttpPolicy.max_bytes must be positive, got {self.max_bytes!r}")
        if self.max_redirects < 0:
            raise ValueError(f"HttpPolicy.max_redirects must not be negative, got {self.max_redirects!r}")
        if not self.user_agent.strip() or any(c in self.user_agent for c in "\r\n\0"):
            raise ValueError("HttpPolicy.user_agent must be a non-empty single-line string")


@dataclass(frozen=True)
class FetchResult:
    """A completed response (2xx, or 304 for a conditional GET) with its fully read, decoded body.

    ``redirects`` lists the URLs that answered with a redirect, in order (so ``redirects[0] == url`` when
    there was any); ``headers`` has lower-case keys, repeated headers joined with ", ".
    """

    url: str
    final_url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    elapsed: float
    redirects: tuple[str, ...] = ()
    #: The body as the server sent it when that was exactly one complete gzip member of ``content`` (a single
    #: ``gzip`` Content-Encoding, nothing after the member), with no optional header field and at most half
    #: the size of ``content``; else None. A compressed copy that costs nothing to keep (the raw store keeps
    #: pages gzip-compressed); the conditions stop a server's choices from making that copy large.
    gzipped: bytes | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str | None:
        """The MIME type, lower-case and without parameters (``text/html``), or None when absent."""
        return _parse_content_type(self.headers.get("content-type", ""))[0]

    @property
    def charset(self) -> str | None:
        """The Content-Type charset parameter, lower-case, or None. Pages often lie; treat it as a hint."""
        return _parse_content_type(self.headers.get("content-type", ""))[1].get("charset")

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a Retry-After header (delta-seconds or HTTP-date), or None if unusable.

    Dates in the past give 0; unparseable values give None rather than an error because the header is
    advice and a broken one must not turn a 503 into a different failure.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


class Fetcher:
    """Thread-safe HTTP GET client applying an :class:`HttpPolicy`; use as a context manager.

    ``guard`` overrides the address guard built from the policy (tests use it to simulate public hosts on
    loopback); ``ssl_context`` overrides the certifi-based default (e.g. a corporate CA bundle).
    """

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        throttle: HostThrottle | None = None,
        guard: AddressGuard | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._throttle = throttle
        self._guard = guard if guard is not None else AddressGuard(policy.allow_private_networks)
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context(trust_env=False)
        # Requests go straight to the transport, not through ``httpx.Client.send``: the client's layers (URL
        # re-parsing and merging, auth and redirect wrappers, a cookie jar that must stay empty anyway) cost the
        # fetching thread CPU on every page and did nothing here, since redirects are followed by ``get`` and no
        # cookie is ever sent. The headers are the ones the client sent: its defaults, ours over them.
        self._transport = _OriginPools(context, _GuardedBackend(self._guard))
        self._headers = httpx.Headers({"Accept": "*/*", "Connection": "keep-alive"})
        self._headers.update({"User-Agent": policy.user_agent, "Accept-Encoding": _ACCEPT_ENCODING})
        self._timeout = httpx.Timeout(
            connect=policy.connect_timeout,
            read=policy.read_timeout,
            write=policy.read_timeout,
            pool=policy.connect_timeout,
        ).as_dict()

    @property
    def throttle(self) -> HostThrottle | None:
        """The per-host spacing every request waits for (robots.txt Crawl-delays are added to it)."""
        return self._throttle

    @property
    def policy(self) -> HttpPolicy:
        return self._policy

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def get(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str | None = None,
        allowed_types: Collection[str] | None = None,
        refused_types: Collection[str] | None = None,
        max_bytes: int | None = None,
    ) -> FetchResult:
        """GET ``url``, following redirects, and return the decoded body.

        ``etag``/``last_modified`` make the request conditional (a 304 comes back as a result with
        ``not_modified``). ``allowed_types`` lists acceptable MIME types (``type/*`` wildcards allowed), minus
        ``refused_types`` (same form); a response without Content-Type is accepted. ``max_bytes`` overrides the
        policy's body cap.
        """
        started = time.monotonic()
        limit = self._policy.max_bytes if max_bytes is None else max_bytes
        if limit <= 0:
            raise ValueError(f"max_bytes must be positive, got {limit!r}")
        budget = _Budget(started + self._policy.total_timeout, self._policy.total_timeout)
        allowed = (_normalize_types(allowed_types), _normalize_types(refused_types))
        headers = _request_headers(accept, etag, last_modified)
        original = url.strip() if isinstance(url, str) else url
        current = _parse_http_url(original)
        redirects: list[str] = []
        visited = {str(current)}
        while True:
            if self._throttle is not None:
                budget.extend(self._throttle.wait(str(current)))
            hop_url = str(current)
            outcome = self._fetch_once(current, hop_url, headers, allowed, limit, budget, original)
            if isinstance(outcome, _Response):
                return FetchResult(
                    url=original,
                    final_url=hop_url,
                    status=outcome.status,
                    headers=outcome.headers,
                    content=outcome.content,
                    elapsed=time.monotonic() - started,
                    redirects=tuple(redirects),
                    gzipped=outcome.gzipped,
                )
            target = _redirect_target(current, outcome, original)
            redirects.append(hop_url)
            if str(target) in visited:
                raise RedirectError(
                    str(target),
                    f"redirect loop after {len(redirects)} hop(s) starting at {original}",
                    reason="redirect_loop",
                )
            if len(redirects) > self._policy.max_redirects:
                raise RedirectError(
                    str(target),
                    f"more than {self._policy.max_redirects} redirects starting at {original}",
                    reason="too_many_redirects",
                )
            logger.debug("redirect %s -> %s", hop_url, target)
            visited.add(str(target))
            current = target

    def _fetch_once(
        self,
        target: httpx.URL,
        url: str,
        headers: Mapping[str, str],
        allowed: tuple[tuple[str, ...], tuple[str, ...]],
        limit: int,
        budget: _Budget,
        original: str,
    ) -> _Response | str:
        """One request to ``target`` (``url`` is its text) without following redirects: a response, or the raw
        Location to go to next."""
        token = _DEADLINE.set(budget.deadline)
        try:
            if budget.remaining() <= 0:
                raise FetchTimeout(url, budget.exhausted_message())
            merged = self._headers.copy()
            merged.update(headers)
            request = httpx.Request("GET", target, headers=merged, extensions={"timeout": self._timeout})
            response = self._send(request, url, budget)
            response.request = request
            try:
                return _read_response(response, url, allowed, limit, budget)
            finally:
                response.close()
        except FetchError as exc:
            _attribute(exc, url, original)
            raise
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise _attribute(_translate(exc, url, budget), url, original) from exc
        finally:
            _DEADLINE.reset(token)

    def _send(self, request: httpx.Request, url: str, budget: _Budget) -> httpx.Response:
        """Send ``request`` on a pooled connection, and once more if it went out on a kept-alive connection that
        the server had closed.

        A server closes an idle keep-alive connection whenever its own idle timeout says so. The pool checks that
        an idle connection is still open before reusing it, but a close that crosses that check sends the GET onto
        a dead socket: it fails before any response byte, as an EOF ("Server disconnected without sending a
        response"), a reset or a failed write. That says nothing about the page, and a GET is idempotent, so it is
        sent once more, on the connection the pool hands out next (the dead one is gone), within the same budget
        (none left: a timeout, as any request that runs out of it): what urllib3, browsers and Go's client do, and
        httpx does not. A new connection that fails, or one that fails after answering, is the page's (or the
        host's) failure and is not sent again.
        """
        exchange = _Exchange()
        token = _EXCHANGE.set(exchange)
        try:
            return self._transport.handle_request(request)
        except _DEAD_CONNECTION_ERRORS as exc:
            if not exchange.reused or exchange.answered:
                raise
            if budget.remaining() <= 0:
                raise FetchTimeout(url, budget.exhausted_message()) from exc
            logger.info("%s: sent on a kept-alive connection the server had closed (%s); sending it again", url, exc)
        finally:
            _EXCHANGE.reset(token)
        return self._transport.handle_request(request)

    def __repr__(self) -> str:
        return f"Fetcher({self._policy!r})"


# --- request/response plumbing -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    headers: Mapping[str, str]
    content: bytes
    gzipped: bytes | None = None


class _Budget:
    """The request's wall-clock deadline; throttle waits extend it because they are not the server's fault."""

    def __init__(self, deadline: float, total: float) -> None:
        self.deadline = deadline
        self._total = total

    def extend(self, seconds: float) -> None:
        self.deadline += max(0.0, seconds)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def exhausted_message(self) -> str:
        return f"total time budget of {self._total:g}s exceeded"


def _read_response(
    response: httpx.Response,
    url: str,
    types: tuple[tuple[str, ...], tuple[str, ...]],
    limit: int,
    budget: _Budget,
) -> _Response | str:
    status = response.status_code
    headers = MappingProxyType({key.lower(): value for key, value in response.headers.items()})
    location = headers.get("location", "").strip()
    if status in _REDIRECT_STATUSES and location:
        return location
    if status == 304:
        return _Response(status, headers, b"")
    if status >= 300:
        raise HttpStatusError(url, status, retry_after=parse_retry_after(headers.get("retry-after")))
    mime = _parse_content_type(headers.get("content-type", ""))[0]
    allowed, refused = types
    if mime is not None and (
        (allowed and not _type_allowed(mime, allowed)) or (refused and _type_allowed(mime, refused))
    ):
        raise UnsupportedContentType(url, mime, allowed=allowed)
    declared = _content_length(headers.get("content-length"))
    if declared is not None and declared > limit:
        raise TooLargeError(url, f"Content-Length {declared} exceeds the {limit}-byte cap", limit=limit)
    decoder = _BodyDecoder(url, headers.get("content-encoding", ""), limit)
    received = 0
    body = bytearray()
    wire: bytearray | None = bytearray() if decoder.single_gzip else None
    for chunk in response.iter_raw():
        received += len(chunk)
        if received > limit:
            raise TooLargeError(url, f"body exceeds the {limit}-byte cap", limit=limit)
        body += decoder.feed(chunk)
        if wire is not None:
            wire += chunk
            if not _may_keep(wire, decoder, limit):
                wire = None  # it can no longer qualify: stop holding a second copy of the body
        if budget.remaining() <= 0:
            raise FetchTimeout(url, budget.exhausted_message())
    body += decoder.finish()
    gzipped = None
    if wire is not None and decoder.one_whole_member and _may_keep(wire, decoder, len(body)):
        gzipped = bytes(wire)
    return _Response(status, headers, bytes(body), gzipped)


#: FEXTRA, FNAME and FCOMMENT (RFC 1952 section 2.3.1): optional header fields of any length that decompress
#: to nothing, so a member carrying them could be any size for a tiny page.
_GZIP_OPTIONAL_FIELDS = 0x04 | 0x08 | 0x10


def _may_keep(wire: bytearray, decoder: _BodyDecoder, body_bound: int) -> bool:
    """Whether the gzip bytes received so far may still be kept as the page's compressed copy.

    They must be a single member so far, without optional header fields, and at most half of ``body_bound``
    (the decoded body once it is complete, the body cap before). The ratio keeps the stored copy's size tied
    to the page's, as our own compression does, while any real server's compression of an HTML page passes
    it; a level-0 ("stored") or padded member does not, and is compressed again by the raw store. Before
    the body is complete, the cap bounds the copy held next to the body to half of the cap.
    """
    has_optional_fields = len(wire) > 3 and wire[3] & _GZIP_OPTIONAL_FIELDS
    return decoder.one_member_so_far and not has_optional_fields and len(wire) * 2 <= body_bound


def _redirect_target(current: httpx.URL, location: str, original: str) -> httpx.URL:
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidUrlError(location, f"invalid redirect Location from {current} ({original})") from exc
    if target.scheme not in ("http", "https") or not target.host:
        raise InvalidUrlError(str(target), f"redirect from {current} to a non-http(s) URL ({original})")
    return target.copy_with(fragment=None)


def _parse_http_url(url: str) -> httpx.URL:
    if not isinstance(url, str) or not url:
        raise InvalidUrlError(str(url), "URL must be a non-empty string")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidUrlError(url, f"malformed URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise InvalidUrlError(url, "only http and https URLs can be fetched")
    if not parsed.host:
        raise InvalidUrlError(url, "URL has no host")
    return parsed.copy_with(fragment=None)


def _request_headers(accept: str | None, etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers = {"Accept": _safe_header_value(accept) or "*/*"}
    # Validators come from earlier responses of hostile servers; an unsendable one is dropped, not fatal.
    if validator := _safe_header_value(etag):
        headers["If-None-Match"] = validator
    if validator := _safe_header_value(last_modified):
        headers["If-Modified-Since"] = validator
    return headers


def _safe_header_value(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or not value.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return None
    return value


def _parse_content_type(value: str) -> tuple[str | None, dict[str, str]]:
    mime, _, rest = value.partition(";")
    mime = mime.strip().lower()
    params: dict[str, str] = {}
    for part in rest.split(";"):
        name, sep, raw = part.partition("=")
        if sep:
            params[name.strip().lower()] = raw.strip().strip("\"'").lower()
    return (mime or None), params


def _normalize_types(types: Collection[str] | None) -> tuple[str, ...]:
    if not types:
        return ()
    if isinstance(types, str):
        types = (types,)
    return tuple(dict.fromkeys(t for t in (_parse_content_type(t)[0] for t in types) if t))


def _type_allowed(mime: str, allowed: tuple[str, ...]) -> bool:
    major = mime.partition("/")[0]
    return any(a == mime or a == "*/*" or (a.endswith("/*") and a[:-2] == major) for a in allowed)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return max(int(part) for part in value.split(","))
    except ValueError:
        return None


def _attribute(error: FetchError, url: str, original: str) -> FetchError:
    """Point an error at the hop that failed (lower layers only know the host) and name the original URL."""
    error.url = url
    if url != original and original not in error.detail:
        error.detail = f"{error.detail} (redirected from {original})"
    return error


def _translate(exc: Exception, url: str, budget: _Budget) -> FetchError:
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        if budget.remaining() <= 0:
            return FetchTimeout(url, budget.exhausted_message())
        return FetchTimeout(url, f"{type(exc).__name__}: {detail}")
    if isinstance(exc, httpx.ConnectError):
        tls_failure = _find_cause(exc, ssl.SSLError, ssl.CertificateError)
        if tls_failure is not None:
            return TlsError(url, f"TLS failure: {tls_failure}")
        return ConnectError(url, f"cannot connect: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
        return MalformedResponseError(url, f"malformed response: {detail}")
    if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol | httpx.InvalidURL):
        return InvalidUrlError(url, f"cannot build a request: {detail}")
    if isinstance(exc, httpx.TransportError):
        return ConnectError(url, f"connection failed: {detail}")
    return FetchError(url, f"{type(exc).__name__}: {detail}")


def _find_cause(exc: BaseException, *types: type[BaseException]) -> BaseException | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, types):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


# --- bounded content decoding -------------------------------------------------------------------------


class _Overflow(Exception):
    """Internal: a decoding layer produced more than the cap."""


_UNDECODABLE_CODINGS = frozenset({"br", "zstd", "compress", "x-compress", "x-bzip2", "bzip2"})


class _BodyDecoder:
    """Undoes Content-Encoding layers, never letting any layer produce more than ``limit`` bytes."""

    def __init__(self, url: str, content_encoding: str, limit: int) -> None:
        self._url = url
        self._limit = limit
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        self._layers: list[_ZlibLayer] = []
        for coding in reversed(codings):
            if coding in ("gzip", "x-gzip", "deflate"):
                self._layers.append(_ZlibLayer(coding, limit))
            elif coding in _UNDECODABLE_CODINGS:
                raise MalformedResponseError(url, f"unsupported Content-Encoding {coding!r}", retryable=False)
            # Anything else ("identity", or junk like "utf-8" that misconfigured servers send) is ignored,
            # as browsers do: the body is not actually encoded.
        self._produced = 0

    @property
    def single_gzip(self) -> bool:
        """Whether the body is encoded by one gzip layer and nothing else."""
        return len(self._layers) == 1 and self._layers[0].is_gzip

    @property
    def one_whole_member(self) -> bool:
        """After :meth:`finish`: the one gzip layer was exactly one complete member, nothing before or after it,
        so the bytes received decompress (``gzip.decompress``) to the decoded body."""
        return self.single_gzip and self._layers[0].one_whole_member

    @property
    def one_member_so_far(self) -> bool:
        """Whether the one gzip layer has so far seen a single member and nothing after it."""
        return self.single_gzip and self._layers[0].one_member_so_far

    def feed(self, data: bytes) -> bytes:
        return self._run(lambda layer, chunk: layer.feed(chunk), data)

    def finish(self) -> bytes:
        return self._run(lambda layer, chunk: layer.feed(chunk) + layer.flush(), b"")

    def _run(self, step: Callable[[_ZlibLayer, bytes], bytes], data: bytes) -> bytes:
        try:
            for layer in self._layers:
                data = step(layer, data)
        except _Overflow:
            raise self._too_large() from None
        except zlib.error as exc:
            raise MalformedResponseError(self._url, f"body does not decode: {exc}") from exc
        self._produced += len(data)
        if self._produced > self._limit:
            raise self._too_large()
        return data

    def _too_large(self) -> TooLargeError:
        return TooLargeError(self._url, f"decoded body exceeds the {self._limit}-byte cap", limit=self._limit)


class _ZlibLayer:
    """One gzip/deflate layer decoded with ``max_length`` so a bomb expands at most to the cap."""

    def __init__(self, coding: str, limit: int) -> None:
        self._gzip = coding != "deflate"
        self._limit = limit
        self._produced = 0
        self._raw_deflate = False
        # Until a deflate stream has produced output we keep its input, in case it turns out to be raw
        # deflate without the zlib header (common server bug) and must be replayed.
        self._undecided: bytearray | None = None if self._gzip else bytearray()
        self._finished = False
        self._members = 1
        self._ignored_tail = False
        self._decompressor = self._new()

    @property
    def is_gzip(self) -> bool:
        return self._gzip

    @property
    def one_whole_member(self) -> bool:
        """One member read to its end (its trailer checked by zlib), and no byte after it."""
        return self.one_member_so_far and self._finished

    @property
    def one_member_so_far(self) -> bool:
        """One member (complete or not) and no byte after it, so far."""
        return self._gzip and self._members == 1 and not self._ignored_tail

    def _new(self) -> Any:
        if self._gzip:
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        if self._undecided is not None:
            self._undecided += data
        pieces: list[bytes] = []
        while data:
            if self._finished:
                if not (self._gzip and data[:2] == b"\x1f\x8b"):
                    self._ignored_tail = True
                    break  # trailing garbage after the stream: ignored, as browsers do
                self._decompressor = self._new()  # concatenated gzip member
                self._finished = False
                self._members += 1
            room = self._limit - self._produced + 1
            try:
                piece = self._decompressor.decompress(data, room)
            except zlib.error:
                if self._undecided is None or self._raw_deflate:
                    raise
                self._raw_deflate = True
                self._decompressor = self._new()
                data, self._undecided = bytes(self._undecided), None
                pieces.clear()
                continue
            self._account(piece)
            pieces.append(piece)
            if piece and self._undecided is not None:
                self._undecided = None
            if self._decompressor.eof:
                self._finished = True
                self._undecided = None
                data = self._decompressor.unused_data
            else:
                data = self._decompressor.unconsumed_tail
        return b"".join(pieces)

    def flush(self) -> bytes:
        if self._finished:
            return b""
        piece = self._decompressor.flush()
        self._account(piece)
        return piece

    def _account(self, piece: bytes) -> None:
        self._produced += len(piece)
        if self._produced > self._limit:
            raise _Overflow


# --- guarded connections ------------------------------------------------------------------------------

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("newswire_fetch_deadline", default=None)


def _clamp(timeout: float | None, on_expiry: type[Exception]) -> float | None:
    """Shrink a per-operation timeout to what is left of the current request's wall-clock budget."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise on_expiry("total time budget exhausted")
    return remaining if timeout is None else min(timeout, remaining)


class _Exchange:
    """One request attempt as its connection saw it; :class:`_SocketStream` fills it in (see ``Fetcher._send``)."""

    __slots__ = ("answered", "reused")

    def __init__(self) -> None:
        #: The connection had already carried a response when this request was written to it (None: not written).
        self.reused: bool | None = None
        #: At least one byte of this request's response arrived.
        self.answered = False


_EXCHANGE: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("newswire_fetch_exchange", default=None)

#: How a request sent on a connection the server had already closed fails (httpx names).
_DEAD_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class _SocketStream(httpcore.NetworkStream):
    """A blocking socket whose every operation respects the request deadline (see :func:`_clamp`)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        # Bytes received over the connection's life: a request written after some was written on a reused one.
        self._received = 0

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(_clamp(timeout, httpcore.ReadTimeout))
            data = self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc) or "read timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc
        if data:
            self._received += len(data)
            exchange = _EXCHANGE.get()
            if exchange is not None:
                exchange.answered = True
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        exchange = _EXCHANGE.get()
        if exchange is not None and exchange.reused is None:
            exchange.reused = self._received > 0
        try:
            while buffer:
                self._sock.settimeout(_clamp(timeout, httpcore.WriteTimeout))
                sent = self._sock.send(buffer)
                buffer = buffer[sent:]
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc) or "write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        # server_hostname is the URL's host, so SNI and certificate verification use the name even though
        # the socket is connected to the guard-checked IP address.
        try:
            self._sock.settimeout(_clamp(timeout, httpcore.ConnectTimeout))
            tls_sock = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError as exc:
            self.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except OSError as exc:
            self.close()
            raise httpcore.ConnectError(str(exc)) from exc
        except BaseException:
            self.close()
            raise
        return _SocketStream(tls_sock)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "socket":
            return self._sock
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "is_readable":
            return _is_readable(self._sock)
        return None


def _is_readable(sock: socket.socket) -> bool:
    """True if an idle keep-alive socket has data or EOF pending, i.e. the server dropped it."""
    if sock.fileno() < 0:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore network backend that connects through :class:`AddressGuard` instead of resolving itself."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = _DEADLINE.get()
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FetchTimeout(host, "total time budget exhausted before connecting")
            timeout = remaining if timeout is None else min(timeout, remaining)
        sock = self._guard.connect(host, port, timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        except BaseException:
            sock.close()
            raise
        return _SocketStream(sock)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's HTTP transport with its connection pool rebuilt around the guarded backend.

    httpx (< 1.0) has no public parameter for the network backend, so the pool it creates is replaced. If a
    future httpx stops keeping the pool in ``_pool`` this fails loudly at construction instead of silently
    connecting unguarded; tests also prove loopback is refused through this transport.
    """

    def __init__(self, ssl_context: ssl.SSLContext, backend: _GuardedBackend, *, keepalive: int) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("unsupported httpx version: cannot install the SSRF-guarded network backend")
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=_MAX_CONNECTIONS_PER_ORIGIN,
            max_keepalive_connections=keepalive,
            keepalive_expiry=15.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=backend,
        )


#: Connections to one origin at once (as many as the largest entry pool has threads).
_MAX_CONNECTIONS_PER_ORIGIN = 64
#: Idle keep-alive connections kept per origin, and origins whose pools are kept: at most 32 x 4 idle sockets.
_KEEPALIVE_PER_ORIGIN = 4
_MAX_ORIGINS = 32


class _OriginPools(httpx.BaseTransport):
    """One guarded connection pool per origin (scheme, host, port); the least recently used idle pools are closed.

    Why not one pool for every host: httpcore's pool checks every connection it holds on each request and each
    release (and counts its idle ones once per idle connection), and closes idle connections beyond its
    keep-alive bound. Shared by the entry threads of a run over tens of hosts, one pool held dozens of
    connections, so each fetch paid for all of them, and a bound small enough to keep that cheap closed a
    connection on almost every request: nearly every page was fetched on a new connection (a new TLS session
    on a real site). A pool per origin holds only that host's few connections and keeps them alive. A pool
    with a request in flight is never closed; beyond ``max_origins`` the oldest unused ones are.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        backend: _GuardedBackend,
        *,
        max_origins: int = _MAX_ORIGINS,
        keepalive: int = _KEEPALIVE_PER_ORIGIN,
    ) -> None:
        self._ssl_context = ssl_context
        self._backend = backend
        self._max_origins = max_origins
        self._keepalive = keepalive
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple[bytes, bytes, int | None], _OriginPool] = OrderedDict()
        self._closed = False

    @property
    def origins(self) -> int:
        """How many origins have a pool now (tests check the bound)."""
        with self._lock:
            return len(self._pools)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        origin = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        retired: list[_OriginPool] = []
        with self._lock:
            if self._closed:  # as httpx.Client did: a closed fetcher opens no connection
                raise RuntimeError("cannot send a request: the fetcher is closed")
            pool = self._pools.get(origin)
            if pool is None:
                pool = _OriginPool(_GuardedTransport(self._ssl_context, self._backend, keepalive=self._keepalive))
                self._pools[origin] = pool
                retired = self._retire_unused()
            else:
                self._pools.move_to_end(origin)
            pool.in_flight += 1
        for old in retired:
            old.transport.close()
        try:
            response = pool.transport.handle_request(request)
        except BaseException:
            self._release(pool)
            raise
        response.stream = _ReleasingStream(response.stream, lambda: self._release(pool))
        return response

    def _retire_unused(self) -> list[_OriginPool]:
        """Under the lock: take the oldest pools with no request in flight out, down to ``max_origins``."""
        excess = len(self._pools) - self._max_origins
        retired = []
        for origin, pool in list(self._pools.items()):
            if excess <= 0:
                break
            if pool.in_flight == 0:
                del self._pools[origin]
                retired.append(pool)
                excess -= 1
        return retired

    def _release(self, pool: _OriginPool) -> None:
        with self._lock:
            pool.in_flight -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.transport.close()


@dataclass
class _OriginPool:
    transport: _GuardedTransport
    in_flight: int = 0


class _ReleasingStream(httpx.SyncByteStream):
    """A response body that tells its origin's pool when it is closed (the request is then no longer in flight)."""

    def __init__(self, stream: httpx.SyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        release, self._release = self._release, None
        try:
            self._stream.close()
        finally:
            if release is not None:
                release()
