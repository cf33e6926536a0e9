"""The ingest stage's errors (the whole tree is drawn in :mod:`newswire.errors`).

Every failure to fetch a URL is a :class:`FetchError`; its subclasses exist so callers can ``except`` the
cases they handle specially (e.g. :class:`HttpStatusError` to honour ``retry_after``). The other classes are
what the stage's parsers and passes raise: a feed, feed list, sitemap or page that cannot be used, a feed that
failed as a whole. All carry the base's ``reason`` and ``retryable``.
"""

from __future__ import annotations

from newswire.errors import NewswireError

_RETRYABLE_STATUSES = frozenset({408, 425, 429})


class FetchError(NewswireError):
    """A URL could not be fetched.

    ``url`` is the URL whose fetch failed: for a failure after redirects it is the hop that failed, and the
    message names the URL originally requested. ``url`` is assignable because the layers below HTTP (DNS,
    the address guard) only know the host; the fetcher fills in the URL as the error passes through.
    """

    default_reason = "fetch"

    def __init__(self, url: str, detail: str, *, reason: str | None = None, retryable: bool | None = None):
        self.url = url
        self.detail = detail
        super().__init__(detail, reason=reason, retryable=retryable)

    def __str__(self) -> str:
        return f"{self.detail} [{self.reason}] ({self.url})"


class BlockedAddressError(FetchError):
    """The host is, or resolves to, an address the SSRF guard refuses (loopback, private, link-local...)."""

    default_reason = "blocked_address"


class DnsError(FetchError):
    """The host name could not be resolved. Retryable unless the name positively does not exist."""

    default_reason = "dns"
    default_retryable = True


class ConnectError(FetchError):
    """No TCP connection could be made, or the connection broke before the response was complete."""

    default_reason = "connect"
    default_retryable = True


class TlsError(FetchError):
    """The TLS handshake or certificate verification failed; usually a server misconfiguration."""

    default_reason = "tls"


class FetchTimeout(FetchError):
    """A connect/read timeout or the request's total wall-clock budget ran out."""

    default_reason = "timeout"
    default_retryable = True


class TooLargeError(FetchError):
    """The body (announced or decoded so far) exceeds the byte cap; ``limit`` is the cap that applied."""

    default_reason = "too_large"

    def __init__(self, url: str, detail: str, *, limit: int):
        self.limit = limit
        super().__init__(url, detail)


class RedirectError(FetchError):
    """Redirects looped (``redirect_loop``) or exceeded the hop limit (``too_many_redirects``)."""

    default_reason = "redirect"


class HttpStatusError(FetchError):
    """The server answered with a 4xx/5xx status (or a 3xx that cannot be followed).

    Retryable for 408, 425, 429 and every 5xx. ``retry_after`` is the server's Retry-After in seconds from
    now when it sent a parseable one, so a scheduler can back off exactly as long as asked.
    """

    default_reason = "http_status"

    def __init__(self, url: str, status: int, *, retry_after: float | None = None, detail: str | None = None):
        self.status = status
        self.retry_after = retry_after
        retryable = status in _RETRYABLE_STATUSES or 500 <= status <= 599
        super().__init__(url, detail or f"HTTP status {status}", retryable=retryable)


class UnsupportedContentType(FetchError):
    """The response's Content-Type is not one the caller accepts; the body was not downloaded."""

    default_reason = "content_type"

    def __init__(self, url: str, content_type: str, *, allowed: tuple[str, ...] = ()):
        self.content_type = content_type
        self.allowed = allowed
        detail = f"content type {content_type!r} not accepted"
        if allowed:
            detail += f" (accepted: {', '.join(allowed)})"
        super().__init__(url, detail)


class InvalidUrlError(FetchError):
    """The URL (or a redirect target) is malformed or not http(s), so it cannot identify or fetch a page.

    The fetcher raises it with ``reason`` ``invalid_url``; :func:`ingest.canonical.canonicalize_url` with a
    finer code (``empty``, ``unsupported_scheme``, ``no_host``, ``invalid_host``, ``invalid_port``) so callers
    can count rejections without parsing messages.
    """

    default_reason = "invalid_url"


class MalformedResponseError(FetchError):
    """The server broke HTTP framing or sent a body that does not decode as its Content-Encoding says.

    Retryable: on real sites this is most often a truncated or interrupted response.
    """

    default_reason = "protocol"
    default_retryable = True


class RobotsUnavailable(FetchError):
    """robots.txt could not be obtained (5xx, 429 or network failure), so crawling the host must wait.

    RFC 9309 says a crawler must assume complete disallow while robots.txt is unreachable; raising (rather
    than answering "disallowed") lets the caller reschedule instead of dropping the URL.
    """

    default_reason = "robots_unavailable"
    default_retryable = True

    def __init__(self, url: str, detail: str, *, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(url, detail)


# -- documents and passes --------------------------------------------------------------------------------


class FeedParseError(NewswireError):
    """The fetched document cannot be used as a feed.

    ``reason`` is one of ``empty_feed``, ``not_a_feed``, ``invalid_xml``, ``invalid_json``,
    ``entity_declaration``: stable codes for metrics and for deciding whether to retry (never, for these) or
    to flag the feed to an operator.
    """

    default_reason = "not_a_feed"


class FeedListError(NewswireError):
    """The feed list cannot be used; the message names the file and the offending entry.

    ``reason``: ``not_found``, ``unsupported_format``, ``syntax``, ``entity_declaration``, ``invalid_entry``,
    ``duplicate_url`` or ``empty``.
    """

    default_reason = "invalid_entry"


class SitemapError(NewswireError):
    """A document cannot be used as a sitemap.

    ``reason``: ``not_a_sitemap``, ``invalid_xml``, ``entity_declaration`` (DOCTYPE or ENTITY markup) or
    ``too_large`` (after gunzip). None of them is worth retrying.
    """

    default_reason = "not_a_sitemap"


class ExtractionError(NewswireError):
    """No usable article in the page. ``reason``: ``no_body`` (too little main text), ``not_html``, or
    ``worker_crashed`` (the extraction process died on the page)."""

    default_reason = "no_body"


class ArchiveError(NewswireError):
    """The archive of a feed could not be walked (bad interval, unusable cache directory)."""

    default_reason = "archive"


class RawStoreError(NewswireError):
    """A page kept in the raw store cannot be read back (an encoding this version does not know)."""

    default_reason = "raw_store"


class FeedFailed(NewswireError):
    """The feed itself could not be fetched or parsed; its entries were not looked at."""

    def __init__(
        self,
        feed_url: str,
        reason: str,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(f"feed {feed_url} failed ({reason}): {message}", reason=reason, retryable=retryable)
        self.feed_url = feed_url
        # The server's Retry-After (429/503), so the scheduler retries no sooner than asked.
        self.retry_after = retry_after
        self.http_status = http_status  # 404/410 tell the feed schedule the feed is gone
