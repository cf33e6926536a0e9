"""Typed failures of the ingest network layer.

Every failure to fetch a URL is a :class:`FetchError` carrying a short, stable ``reason`` code (safe to
store in metrics, dead-letter records and logs) and a ``retryable`` flag, so schedulers decide between
"try again later" and "give up on this URL" without parsing messages. Subclasses exist so callers can
``except`` the cases they handle specially (e.g. :class:`HttpStatusError` to honour ``retry_after``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from newswire.errors import NewswireError

_RETRYABLE_STATUSES = frozenset({408, 425, 429})


def _rebuild(cls: type[FetchError], state: dict[str, Any]) -> FetchError:
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = (str(error),)
    return error


class FetchError(NewswireError):
    """A URL could not be fetched.

    ``url`` is the URL whose fetch failed: for a failure after redirects it is the hop that failed, and the
    message names the URL originally requested. ``url`` is assignable because the layers below HTTP (DNS,
    the address guard) only know the host; the fetcher fills in the URL as the error passes through.
    """

    default_reason: ClassVar[str] = "fetch"
    default_retryable: ClassVar[bool] = False

    def __init__(self, url: str, detail: str, *, reason: str | None = None, retryable: bool | None = None):
        self.url = url
        self.detail = detail
        self.reason = reason if reason is not None else self.default_reason
        self.retryable = retryable if retryable is not None else self.default_retryable
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.detail} [{self.reason}] ({self.url})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclass constructors take different arguments, so pickle the attributes rather than ``args``:
        # errors cross process boundaries (Airflow task results, executor pools) and must survive it.
        return (_rebuild, (type(self), dict(self.__dict__)))


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
    """The URL (or a redirect target) is malformed or not http(s)."""

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
