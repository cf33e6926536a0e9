"""Poll one feed: conditional GET, parse, and take every new entry to exactly one recorded outcome.

Outcomes are recorded only after the broker acknowledged the articles of the same chunk, so a crash at any
point re-does work (at-least-once, deduplicated downstream by article id) but never marks an article stored
that Kafka did not accept. Feed-level failures raise :class:`FeedFailed` so the Airflow task for that feed,
and only that one, fails and is retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from ingest.admission import HostWindow, map_bounded, url_host
from ingest.canonical import InvalidUrlError, article_id_for, canonicalize_url, choose_canonical
from ingest.claims import UrlClaims
from ingest.errors import FeedFailed, FetchError, HttpStatusError, TooLargeError, UnsupportedContentType
from ingest.extract import ExtractionError
from ingest.extract_workers import Extractor
from ingest.feedlist import FeedSpec
from ingest.feeds import FeedEntry, FeedParseError, parse_feed
from ingest.http import Fetcher
from ingest.ledger import (
    DEAD_LETTER,
    DUPLICATE,
    NEW,
    SKIPPED,
    EntryOutcome,
    FeedState,
    IngestLedger,
    RunCounts,
    dead_letter_id,
)
from ingest.messages import article_message, entry_from_payload, entry_to_payload
from ingest.politeness import release_admission
from ingest.rawstore import RawArticle
from ingest.robots import RobotsCache
from ingest.schedule_policy import ServerHints, parse_hints
from newswire import contracts
from newswire.deadletters import DeadLetterReason, DeadLetterStage, dead_letter_message, send_dead_letter
from newswire.errors import MessageTooLarge, NewswireError
from newswire.messaging import Publisher
from newswire.settings import Settings
from newswire.warehouse import utcnow

log = logging.getLogger(__name__)

#: A feed is accepted by what its body is, not by its declared type: servers send RSS as text/rss+xml,
#: application/xml-dtd, text/plain, ... The parser sniffs the document (and refuses HTML with a reason) and
#: records a warning when the declared type is not a feed type. Only what cannot be a feed document is refused
#: before its body is downloaded.
FEED_TYPES = ("text/*", "application/*")
NOT_FEED_TYPES = ("application/pdf", "application/zip", "application/gzip", "application/msword")
PAGE_TYPES = ("text/html", "application/xhtml+xml")
#: Articles confirmed by the broker and recorded in the ledger together.
CHUNK = 25


@dataclass
class FeedReport:
    """What one poll of one feed did; summed into run summaries and stored in ``ingest_runs``."""

    feed_url: str
    status: str  # ok | not_modified | failed
    http_status: int | None = None
    error: str | None = None
    counts: RunCounts = field(default_factory=RunCounts)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what the feed document had wrong (stored per run)
    # For the feed schedule (ingest/schedule_policy.py), not reported: the entries' dates and the server's hints.
    published: tuple[datetime, ...] = ()
    hints: ServerHints | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "feed_url": self.feed_url,
            "status": self.status,
            "http_status": self.http_status,
            "error": self.error,
            "entries_in_feed": self.counts.entries_in_feed,
            "entries_seen": self.counts.entries_seen,
            "new": self.counts.new_articles,
            "duplicates": self.counts.duplicates,
            "dead_letters": self.counts.dead_letters,
            "skipped": self.counts.skipped,
            "bytes": self.counts.bytes,
            "seconds": round(self.seconds, 3),
            "reasons": dict(self.reasons),
            "warnings": list(self.warnings),
        }


@dataclass
class FeedPoller:
    """Everything a poll needs, built once per process and shared by the feeds it polls."""

    settings: Settings
    ledger: IngestLedger
    publisher: Publisher
    fetcher: Fetcher
    robots: RobotsCache | None
    extractor: Extractor
    run_id: str
    interval: tuple[datetime | None, datetime | None] = (None, None)
    claims: UrlClaims = field(default_factory=UrlClaims)
    entry_pool: ThreadPoolExecutor | None = None
    #: Shared by every feed this poller polls at once: at most ``entries_per_host`` entries of one host wait for
    #: its request slot (see :mod:`ingest.admission`); ``None``: only the per-feed window applies.
    host_window: HostWindow | None = None
    #: Buffer the feed-state and run rows of polls that recorded no entry; the caller must then call
    #: ``ledger.flush()`` when done (``ingest_feeds`` does). Off for single-feed tasks: nothing to batch.
    defer_bookkeeping: bool = False
    _states: dict[str, FeedState] = field(default_factory=dict)
    _retry_feeds: frozenset[str] | None = None

    def prefetch(self, feeds: Sequence[FeedSpec]) -> None:
        """Read every feed's conditional-GET state in one query (a run over 1,000 feeds saves 1,000)."""
        urls = [f.url for f in feeds]
        known = self.ledger.feed_states(urls)
        # A feed never polled has no row: known to have no validators, so its poll does not ask again.
        self._states.update({url: known.get(url, FeedState(None, None)) for url in urls})
        self._retry_feeds = frozenset(self.ledger.feeds_with_retries(self.settings.entry_max_attempts))

    def poll(self, feed: FeedSpec) -> FeedReport:
        with self._recorded(feed) as report:
            self._poll(feed, report)
        return report

    @contextmanager
    def _recorded(self, feed: FeedSpec, http_status: int | None = None) -> Iterator[FeedReport]:
        """A report for one pass over a feed's entries, stored in ``ingest_runs`` however the pass ends.

        The feed's many small ledger transactions share one open warehouse for the duration. A batched
        ledger writes nothing until its flush, so the feed's few reads open the warehouse briefly instead:
        holding a DuckDB file across page fetches would lock every other process out of it meanwhile.
        """
        started, t0 = utcnow(), time.monotonic()
        report = FeedReport(feed_url=feed.url, status="ok", http_status=http_status)
        with nullcontext() if self.ledger.batched else self.ledger.warehouse.hold():
            try:
                yield report
            except FeedFailed as exc:
                report.status, report.error = "failed", str(exc)
                raise
            except NewswireError as exc:  # broker or warehouse down mid-pass: recorded, then the run fails
                report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
                raise
            finally:
                report.seconds = time.monotonic() - t0
                self.ledger.record_run(
                    run_id=self.run_id,
                    feed_url=feed.url,
                    started_at=started,
                    status=report.status,
                    http_status=report.http_status,
                    error=report.error,
                    counts=report.counts,
                    duration=report.seconds,
                    interval=self.interval,
                    warnings=report.warnings,
                    defer=self.defer_bookkeeping and report.status != "failed",
                )

    def _poll(self, feed: FeedSpec, report: FeedReport) -> None:
        state = self._states.pop(feed.url, None) or self.ledger.feed_state(feed.url)
        try:
            response = self.fetcher.get(
                feed.url,
                etag=state.etag,
                last_modified=state.last_modified,
                accept="application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
                allowed_types=FEED_TYPES,
                refused_types=NOT_FEED_TYPES,
                max_bytes=self.settings.max_feed_bytes,
            )
        except FetchError as exc:
            report.http_status = getattr(exc, "status", None)
            self._feed_failed(
                feed,
                DeadLetterStage.FEED_FETCH,
                exc.reason,
                str(exc),
                exc.retryable,
                report,
                getattr(exc, "retry_after", None),
            )
        report.http_status = response.status
        report.counts.bytes += len(response.content)
        report.hints = parse_hints(response.headers, None if response.not_modified else response.content, utcnow())
        entries: tuple[FeedEntry, ...] = ()
        if response.not_modified:
            report.status = "not_modified"
        else:
            try:
                parsed = parse_feed(
                    response.content,
                    url=response.final_url,
                    content_type=response.headers.get("content-type"),
                    max_entries=self.settings.max_entries_per_feed,
                )
            except FeedParseError as exc:
                self._feed_failed(feed, DeadLetterStage.FEED_PARSE, exc.reason, str(exc), False, report)
            entries = parsed.entries
            report.counts.entries_in_feed = len(entries)
            report.published = tuple(e.published for e in entries if e.published is not None)
            for warning in parsed.warnings:
                log.warning("feed %s: %s", feed.url, warning)
            report.warnings.extend(parsed.warnings)
        self._process(feed, entries, report)
        # Validators are saved last: if anything above crashed, the next poll fetches the feed again.
        self.ledger.save_feed(
            feed.url,
            name=feed.name,
            language=feed.language,
            tags=feed.tags,
            status=response.status,
            etag=response.etag,
            last_modified=response.last_modified,
            error=None,
            defer=self.defer_bookkeeping and report.counts.entries_seen == 0,
        )

    def _feed_failed(
        self,
        feed: FeedSpec,
        stage: DeadLetterStage,
        reason: str,
        message: str,
        retryable: bool,
        report: FeedReport,
        retry_after: float | None = None,
    ) -> None:
        now = utcnow()
        dl = dead_letter_message(
            dead_letter_id=dead_letter_id(feed.url, "(feed)"),
            stage=stage,
            reason=reason,
            message=message,
            retryable=retryable,
            url=feed.url,
            feed_url=feed.url,
            payload={"feed": {"url": feed.url, "name": feed.name}},
            created_at=now,
        )
        self.ledger.record_feed_failure(dl)
        self.ledger.save_feed(
            feed.url,
            name=feed.name,
            language=feed.language,
            tags=feed.tags,
            status=getattr(report, "http_status", None),
            etag=None,
            last_modified=None,
            error=f"{reason}: {message}",
        )
        self._publish_dead_letters([dl])
        raise FeedFailed(feed.url, reason, message, retryable, retry_after, getattr(report, "http_status", None))

    def process_entries(
        self, feed: FeedSpec, entries: Sequence[FeedEntry], *, bytes_fetched: int = 0, warnings: Sequence[str] = ()
    ) -> FeedReport:
        """Take entries found outside the feed document (archive pages, sitemaps) to their outcomes, as a poll does.

        The feed itself is not fetched and its conditional-GET state is left alone; the run is recorded in
        ``ingest_runs`` like a poll (``bytes_fetched``: what finding the entries cost), so the accounting
        invariant covers these entries too.
        """
        with self._recorded(feed) as report:
            report.counts.entries_in_feed = len(entries)
            report.counts.bytes += bytes_fetched
            report.warnings.extend(warnings)
            self._process(feed, entries, report)
        return report

    def _process(self, feed: FeedSpec, entries: Iterable[FeedEntry], report: FeedReport) -> None:
        entries = list(entries)
        known = self.ledger.known_entries(feed.url, (e.key for e in entries))
        todo: list[FeedEntry] = []
        seen_keys: set[str] = set()
        for entry in entries:
            if entry.key in seen_keys:
                continue  # duplicate GUID/link inside one document: one entry
            seen_keys.add(entry.key)
            prior = known.get(entry.key)
            if prior is None or self._retry_due(prior.outcome, prior.retryable, prior.attempts, prior.last_attempt_at):
                todo.append(entry)
        # Entries that failed earlier and are no longer in the feed document are retried from the ledger.
        retries = (
            self.ledger.retry_candidates(feed.url, self.settings.entry_max_attempts)
            if self._retry_feeds is None or feed.url in self._retry_feeds
            else []
        )
        for payload in retries:
            entry = entry_from_payload(payload)
            if entry.key not in seen_keys:
                seen_keys.add(entry.key)
                todo.append(entry)
        self._run_chunks(feed, todo, report)

    def redrive(self, feed: FeedSpec, entries: Sequence[FeedEntry]) -> FeedReport:
        """Take dead-lettered entries through the whole entry path again, whatever their retry state.

        Used by ``newswire dead-letters retry``: an operator's explicit retry ignores backoff and the attempt
        limit. Recorded as a run of its own (``ingest_runs``), so the accounting invariant covers it too.
        """
        with self._recorded(feed) as report:
            self._run_chunks(feed, list(dict((e.key, e) for e in entries).values()), report)
        return report

    def _run_chunks(self, feed: FeedSpec, todo: list[FeedEntry], report: FeedReport) -> None:
        """Decide entries chunk by chunk; a chunk is recorded only after the broker confirmed it."""
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            # One ledger query for the chunk instead of one per entry; claims cover what this process stores
            # meanwhile, and the transform's id check covers other processes.
            urls = _urls_of(chunk)
            known = _KnownUrls(self.ledger, self.ledger.known_urls(urls), frozenset(urls))
            if self.entry_pool is not None and len(chunk) > 1:
                # Fetch + extract entries concurrently (the throttle still spaces requests per host).
                outcomes = map_bounded(
                    self.entry_pool,
                    partial(self._decide, feed, known=known),
                    chunk,
                    self._entry_window(len(chunk)),
                    hosts=self.host_window,
                    host_of=_entry_host,
                )
            else:
                outcomes = [self._decide(feed, entry, known) for entry in chunk]
            # Sent from this thread: the publisher confirms per thread what that thread sent.
            for o in outcomes:
                if o.outcome == NEW and o.raw is not None:
                    # _decide encodes every NEW article (a message over the limit is that entry's dead
                    # letter there); encoding here instead could fail outside any entry's handling.
                    if o.encoded is None:
                        raise RuntimeError(f"entry {o.entry_key}: a new article without its encoded message")
                    self.publisher.send_encoded(contracts.ARTICLES, o.raw.article_id, o.encoded)
            self.publisher.confirm()
            self._publish_dead_letters([o.dead_letter for o in outcomes if o.dead_letter])
            self.ledger.record(outcomes, self.run_id)
            for o in outcomes:
                report.counts.count(o.outcome)
                if o.outcome != NEW:
                    key = f"{o.outcome}:{o.reason}"
                    report.reasons[key] = report.reasons.get(key, 0) + 1

    def _entry_window(self, chunk: int) -> int:
        """Entries of one feed's chunk waiting for their host's slot at once (see :func:`map_bounded`):
        ``entries_per_feed``, or the whole chunk when that is 0. Also without a global host interval: a robots
        Crawl-delay spaces a host anyway, and an unspaced host admits at once, so the window costs nothing."""
        if self.settings.entries_per_feed <= 0:
            return chunk
        return self.settings.entries_per_feed

    def _retry_due(self, outcome: str, retryable: bool, attempts: int, last_attempt_at: datetime | None = None) -> bool:
        if not (outcome == DEAD_LETTER and retryable and attempts < self.settings.entry_max_attempts):
            return False
        # The same exponential backoff as retry_candidates(): a site answering 429/503 is not hit again on
        # every poll (2, 4, 8... minutes after the last attempt).
        return last_attempt_at is None or utcnow() - last_attempt_at >= timedelta(minutes=2**attempts)

    def _publish_dead_letters(self, dead_letters: list[dict[str, object]]) -> None:
        if not dead_letters:
            return
        for dl in dead_letters:
            send_dead_letter(self.publisher, dict(dl))
        self.publisher.confirm()

    def _decide(self, feed: FeedSpec, entry: FeedEntry, known: _KnownUrls) -> EntryOutcome:
        """Take one entry to its outcome. Network and parsing errors become outcomes, never exceptions."""
        base = {
            "feed_url": feed.url,
            "entry_key": entry.key,
            "entry_url": entry.link,
            "guid": entry.guid,
            "title": entry.title,
            "published_at": entry.published,
        }

        def dead(stage: DeadLetterStage, reason: str, message: str, retryable: bool) -> EntryOutcome:
            dl = dead_letter_message(
                dead_letter_id=dead_letter_id(feed.url, entry.key),
                stage=stage,
                reason=reason,
                message=message,
                retryable=retryable,
                url=entry.link,
                feed_url=feed.url,
                payload={"entry": entry_to_payload(entry), "feed": {"url": feed.url, "name": feed.name}},
                created_at=utcnow(),
            )
            return EntryOutcome(**base, outcome=DEAD_LETTER, reason=dl["reason"], dead_letter=dl)

        if not (entry.link or entry.guid or entry.title):
            # Nothing to fetch and nothing to name it by (an RSS item with only a description): counted and
            # recorded, keyed by a hash of its text, so later polls know it and do not count it again.
            return EntryOutcome(**base, outcome=SKIPPED, reason="no_identity")
        if not entry.link:
            return dead(
                DeadLetterStage.FEED_PARSE, DeadLetterReason.NO_LINK, "entry has no link to an article page", False
            )
        try:
            url = canonicalize_url(entry.link)
        except InvalidUrlError as exc:
            return dead(DeadLetterStage.FEED_PARSE, DeadLetterReason.INVALID_URL, str(exc), False)

        prior = known.article_of(url)
        owner, slot = self.claims.claim(url)
        if not owner and prior is None:
            # Waiting for another feed's entry of the same URL (up to its whole download and extraction) is not
            # waiting for the host's request slot: the feed's and the host's window places go back first.
            release_admission()
            prior = self.claims.wait(slot, timeout=self.settings.total_timeout * 3)
        if prior:
            if owner:
                self.claims.resolve(slot, prior)
            return EntryOutcome(
                **base, outcome=DUPLICATE, reason="same_url", duplicate_of=prior, method="url", urls=(url,)
            )
        outcome: EntryOutcome | None = None
        try:
            outcome = self._fetch_and_publish(feed, entry, url, base, dead, known)
            return outcome
        finally:
            if owner:
                found = outcome.article_id or outcome.duplicate_of if outcome else None
                self.claims.resolve(slot, found, outcome.urls if outcome else ())

    def _fetch_and_publish(
        self,
        feed: FeedSpec,
        entry: FeedEntry,
        url: str,
        base: dict[str, object],
        dead: Callable[[str, str, str, bool], EntryOutcome],
        known: _KnownUrls,
    ) -> EntryOutcome:
        assert entry.link is not None

        if self.robots is not None and not feed.ignore_robots:
            try:
                if not self.robots.allowed(entry.link):
                    return EntryOutcome(**base, outcome=SKIPPED, reason="robots")
            except FetchError as exc:
                return dead(DeadLetterStage.PAGE_FETCH, exc.reason, str(exc), True)

        try:
            page = self.fetcher.get(entry.link, allowed_types=PAGE_TYPES, max_bytes=self.settings.max_page_bytes)
        except UnsupportedContentType as exc:
            return EntryOutcome(**base, outcome=SKIPPED, reason=f"content_type:{exc.content_type[:80]}")
        except TooLargeError:
            return EntryOutcome(**base, outcome=SKIPPED, reason="too_large")
        except HttpStatusError as exc:
            wait = f"; server asked to retry after {exc.retry_after:.0f} s" if exc.retry_after is not None else ""
            return dead(DeadLetterStage.PAGE_FETCH, exc.reason, f"{exc}{wait}", exc.retryable)
        except FetchError as exc:
            return dead(DeadLetterStage.PAGE_FETCH, exc.reason, str(exc), exc.retryable)

        try:
            extracted = self.extractor.extract(
                page.content, url=page.final_url, content_type=page.headers.get("content-type")
            )
        except ExtractionError as exc:
            return dead(DeadLetterStage.EXTRACT, exc.reason, str(exc), False)

        final_url = _canonical_or(page.final_url, url)
        canonical = choose_canonical(final_url, extracted.canonical_url, extracted.og_url)
        article_id = article_id_for(canonical)
        urls = tuple(dict.fromkeys((url, final_url, canonical)))
        prior = self.claims.known(canonical) or known.article_of(canonical)
        if prior:
            return EntryOutcome(
                **base,
                outcome=DUPLICATE,
                reason="same_canonical_url",
                duplicate_of=prior,
                method="canonical_url",
                urls=urls,
            )
        fetched_at = utcnow()
        message = article_message(
            article_id=article_id,
            canonical_url=canonical,
            entry=entry,
            feed=feed,
            page=extracted,
            fetched_at=fetched_at,
            run_id=self.run_id,
        )
        try:
            # Encoded here, in the entry's thread, so that a message over the producer's limit becomes this
            # entry's dead letter before its URL claim resolves to an article that will never be stored, and
            # the chunk's other articles are published as usual.
            encoded = self.publisher.encode(contracts.ARTICLES, article_id, message)
        except MessageTooLarge as exc:
            return dead(DeadLetterStage.PUBLISH, exc.reason, str(exc), False)
        raw = RawArticle.of(
            message=message,
            url=entry.link,
            final_url=page.final_url,
            http_status=page.status,
            content_type=page.headers.get("content-type"),
            html=page.content,
            fetched_at=fetched_at,
            html_gz=page.gzipped,
        )
        return EntryOutcome(**base, outcome=NEW, article_id=article_id, urls=urls, raw=raw, encoded=encoded)


@dataclass(frozen=True)
class _KnownUrls:
    """The ledger's URL -> article id map for one chunk's entry URLs, read in one query; others are asked singly."""

    ledger: IngestLedger
    found: dict[str, str]
    checked: frozenset[str]

    def article_of(self, url: str) -> str | None:
        if url in self.checked:
            return self.found.get(url)
        return self.ledger.known_urls([url]).get(url)


def _entry_host(entry: FeedEntry) -> str | None:
    """The host an entry's first request goes to (its robots.txt or its page), for the host window."""
    return url_host(entry.link)


def _urls_of(entries: Iterable[FeedEntry]) -> list[str]:
    """The canonical URLs of entries' links (invalid ones are left to ``_decide``, which dead-letters them)."""
    urls = []
    for entry in entries:
        if entry.link:
            with suppress(InvalidUrlError):
                urls.append(canonicalize_url(entry.link))
    return urls


def _canonical_or(url: str, fallback: str) -> str:
    try:
        return canonicalize_url(url)
    except InvalidUrlError:
        return fallback
