"""Every error Newswire raises on purpose, and the one shape they share.

Callers catch :class:`NewswireError` to handle any failure the project raises deliberately (as opposed to
bugs), and a subclass when they can do something specific. Every error carries ``reason``, a short stable
code (safe in metrics, dead-letter records and logs), and ``retryable``: may the same call succeed later?
Schedulers decide between "try again" and "give up" from those two attributes, never from messages.

The core's errors live here; each stage owns its subclasses in its own errors module::

    NewswireError                       reason, retryable                   (newswire.errors)
    ├── SettingsError                   the configuration is invalid        settings
    ├── BrokerUnavailable               Kafka unreachable or no ack         broker_unavailable, retryable
    ├── MessageTooLarge                 over the producer's size limit      message_too_large
    ├── TopicLimitTooLow                a topic takes less than must fit    topic_limit_too_low
    ├── WarehouseUnavailable            warehouse not opened or locked      warehouse_unavailable, retryable
    ├── ContractError                   a message breaks its contract       invalid_json, schema_violation, ...
    ├── EmbeddingError                  an encoder cannot be used           unknown_model, backend_missing, ...
    │
    ├── FetchError                      a URL could not be fetched          (ingest.errors)
    │   ├── InvalidUrlError             malformed or not http(s)            invalid_url, no_host, invalid_host, ...
    │   ├── BlockedAddressError         the SSRF guard refuses the address  blocked_address
    │   ├── DnsError                    the host name did not resolve       dns, retryable
    │   ├── ConnectError                no connection, or it broke          connect, retryable
    │   ├── TlsError                    TLS handshake or certificate        tls
    │   ├── FetchTimeout                a timeout or the total budget       timeout, retryable
    │   ├── TooLargeError               over the byte cap                   too_large
    │   ├── RedirectError               loop or too many hops               redirect
    │   ├── HttpStatusError             a 4xx/5xx answer                    http_status (retryable: 408/425/429/5xx)
    │   ├── UnsupportedContentType      not a type the caller accepts       content_type
    │   ├── MalformedResponseError      broken framing or encoding          protocol, retryable
    │   └── RobotsUnavailable           robots.txt unreachable              robots_unavailable, retryable
    ├── FeedParseError                  not a usable feed                   empty_feed, not_a_feed, invalid_xml, ...
    ├── FeedListError                   the operator's feed list is unusable
    ├── SitemapError                    not a usable sitemap                not_a_sitemap, invalid_xml, too_large, ...
    ├── ExtractionError                 no usable article in the page       no_body, not_html, worker_crashed
    ├── ArchiveError                    an archive walk cannot start
    ├── FeedFailed                      a feed failed as a whole (carries the cause's reason and Retry-After)
    ├── RawStoreError                   a stored raw page cannot be read back
    │
    ├── ClusteringError                 clustering used inconsistently      (transform.errors)
    │   ├── UnknownEvent                the event is not held (also a KeyError)
    │   └── StaleFeatures               stored features of another version
    ├── NearDuplicateError              the near-duplicate index misused
    │   └── StaleSignature              a stored signature of another version
    ├── InvalidArticleDoc               an ArticleDoc with unusable values
    ├── EventRecordError                an event without member articles
    ├── RebuildError                    the window to rebuild is not an interval
    │
    ├── StackError                      the local stack cannot start        (devtools.errors)
    ├── DagRunError                     an in-process DAG run failed
    └── CorpusError                     the sample sites cannot serve       (devtools.devserver)
        ├── TemplateError               a corpus placeholder cannot be filled
        └── ServerNotRunning            URLs asked for before the servers started

Dead letters record the failing stage and the error's ``reason``: :mod:`newswire.deadletters` lists both.
"""

from __future__ import annotations

from typing import Any, ClassVar


def _rebuild(cls: type[NewswireError], args: tuple[Any, ...], state: dict[str, Any]) -> NewswireError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class NewswireError(Exception):
    """Base of every error Newswire raises deliberately.

    ``reason`` and ``retryable`` default to the class's :attr:`default_reason` and :attr:`default_retryable`;
    a raise site that knows better passes them as keywords.
    """

    default_reason: ClassVar[str] = "error"
    default_retryable: ClassVar[bool] = False

    def __init__(self, message: str = "", *, reason: str | None = None, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else self.default_reason
        self.retryable = retryable if retryable is not None else self.default_retryable

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle the attributes, not the constructor's arguments: subclasses take different ones, and errors
        # cross process boundaries (extraction workers, Airflow task results) and must arrive whole.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class SettingsError(NewswireError):
    """The configuration is invalid; the message lists every problem so one edit can fix them all."""

    default_reason = "settings"


class BrokerUnavailable(NewswireError):
    """Kafka could not be reached or did not acknowledge in time; the operation may succeed later."""

    default_reason = "broker_unavailable"
    default_retryable = True


class MessageTooLarge(NewswireError):
    """A message is larger than the producer may send (``NEWSWIRE_MAX_MESSAGE_BYTES``); refused before sending.

    Raised by :meth:`newswire.messaging.Publisher.encode` before the message reaches the producer, so it fails
    alone: sent anyway, the producer would fail it as a broker error, and the caller, which confirms a whole
    chunk at once, would take every other message of the chunk down with it. Not retryable: the same message
    stays as large; only a higher limit (on the producer and the broker alike) lets it through.
    :meth:`~newswire.messaging.Publisher.confirm` raises it with ``broker_refused`` when a Kafka broker (its
    topic's ``max.message.bytes`` below the setting) refused a sent record for its size: ``size`` is then None
    (not reported), and the publisher sends nothing more (kafka-python's idempotent producer stops there).
    With ``topic_limit``, ``limit`` is the topic's own ``max.message.bytes``, lower than the setting (read at
    start-up, :mod:`newswire.topiclimits`): the record is refused before sending, alone, as any other.
    """

    default_reason = "message_too_large"

    def __init__(
        self, topic: str, size: int | None, limit: int, *, broker_refused: bool = False, topic_limit: bool = False
    ) -> None:
        what = f"a {topic} message of {size:,} bytes" if size is not None else f"a {topic} message"
        if broker_refused:
            text = (
                f"{what} was refused for its size by the producer or the broker although within"
                f" NEWSWIRE_MAX_MESSAGE_BYTES ({limit:,} bytes): the topic's max.message.bytes is lower; raise it"
                " (or lower the setting). The producer stops after such a refusal, so this process sends no more"
            )
        elif topic_limit:
            text = (
                f"{what} exceeds the topic's limit of {limit:,} bytes (its max.message.bytes, below"
                " NEWSWIRE_MAX_MESSAGE_BYTES)"
            )
        else:
            text = f"{what} exceeds the producer's limit of {limit:,} bytes (NEWSWIRE_MAX_MESSAGE_BYTES)"
        super().__init__(text)
        self.broker_refused = broker_refused
        self.topic_limit = topic_limit
        self.topic = topic
        self.size = size
        self.limit = limit


class WarehouseUnavailable(NewswireError):
    """The warehouse could not be opened or locked; nothing was written, the caller may retry."""

    default_reason = "warehouse_unavailable"
    default_retryable = True


class TopicLimitTooLow(NewswireError):
    """A topic's ``max.message.bytes`` (or the broker default it takes) is below the smallest limit Newswire can
    work with (``NEWSWIRE_MAX_MESSAGE_BYTES``'s minimum), found at start-up.

    Why refuse instead of warning: below it, a dead letter without its payload or an event without its member
    list may not fit, so the promise that they always do breaks; a dead letter that fails to send after its
    chunk's articles were confirmed leaves the chunk unrecorded, and every re-run republishes those articles.
    Not retryable: only raising the topic's limit (Kafka's tools) lets the process start.
    """

    default_reason = "topic_limit_too_low"

    def __init__(self, topic: str, limit: int, minimum: int, *, source: str = "max.message.bytes") -> None:
        super().__init__(
            f"topic {topic} takes records up to {limit:,} bytes ({source}), below the {minimum:,} bytes Newswire"
            f" needs (the minimum of NEWSWIRE_MAX_MESSAGE_BYTES: a dead letter without its payload, or an event"
            f" without its member list, must always fit); raise the topic's max.message.bytes to at least {minimum:,}"
        )
        self.topic = topic
        self.limit = limit
        self.minimum = minimum


class ContractError(NewswireError):
    """A message does not match its topic's contract (undecodable JSON or schema violation).

    ``reason`` is the dead-letter reason; ``details`` the validator's message.
    """

    def __init__(self, reason: str, details: str) -> None:
        super().__init__(f"{reason}: {details}", reason=reason)
        self.details = details


class EmbeddingError(NewswireError):
    """An encoder cannot be used. ``reason``: ``unknown_model``, ``backend_missing`` or ``bad_vector``."""

    default_reason = "embedding"
