"""The ingest stage's entry point: what ``pipeline`` calls (the Airflow task adapters, the CLI, one-shot passes).

``ingest_session`` builds the per-process resources once (warehouse, HTTP client with its politeness
throttle and robots cache, Kafka producer); ``ingest_feeds`` polls a list of feeds with bounded concurrency
and returns one summary. The same functions serve a mapped Airflow task (one feed) and a one-shot CLI run.
"""

from __future__ import annotations

import logging
import multiprocessing.forkserver
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from ingest.admission import HostWindow, url_host
from ingest.extract_workers import Enricher, Extractor, InlineExtractor, ProcessPoolExtractor, make_extractor
from ingest.feed_dispatch import map_per_host
from ingest.feedlist import FeedSpec, load_feed_list
from ingest.http import Fetcher, HttpPolicy
from ingest.ledger import IngestLedger
from ingest.politeness import HostThrottle
from ingest.poll import FeedFailed, FeedPoller, FeedReport
from ingest.rawstore import purge_expired
from ingest.robots import RobotsCache
from newswire import contracts
from newswire.errors import SettingsError
from newswire.messaging import open_publisher
from newswire.settings import Settings
from newswire.warehouse import Cursor, Warehouse

log = logging.getLogger(__name__)


def http_policy(settings: Settings) -> HttpPolicy:
    return HttpPolicy(
        user_agent=settings.user_agent,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        max_bytes=settings.max_page_bytes,
        max_redirects=settings.max_redirects,
        allow_private_networks=settings.allow_private_networks,
    )


def configured_feeds(settings: Settings) -> list[FeedSpec]:
    if settings.feeds is None:
        raise SettingsError("no feed list: set NEWSWIRE_FEEDS (an .opml, .toml or .yaml file) or pass --feeds")
    return load_feed_list(settings.feeds)


@contextmanager
def ingest_session(
    settings: Settings,
    bootstrap: str,
    *,
    run_id: str,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    extract_workers: int | None = None,
    enrich_inline: bool = True,
    enrich: Enricher | None = None,
) -> Iterator[FeedPoller]:
    """The per-process resources of an ingest pass. ``enrich_inline`` False: an inline extractor (one worker)
    leaves language detection, embeddings and ``enrich`` to the transform
    (:class:`~ingest.extract_workers.InlineExtractor`).
    ``enrich``: what the extractor adds to each article besides (the ``pipeline`` layer passes the transform's
    feature extraction; see :func:`~ingest.extract_workers.extract_and_enrich`)."""
    workers = settings.extract_workers if extract_workers is None else extract_workers
    extractor: Extractor = (
        make_extractor(workers, fast=settings.extract_fast, embedding_model=settings.embedding_model, enrich=enrich)
        if enrich_inline or (workers or os.cpu_count() or 1) > 1
        else InlineExtractor(fast=settings.extract_fast, enrich=False)
    )
    if isinstance(extractor, ProcessPoolExtractor):
        _start_fork_server()
    try:
        warehouse = Warehouse(settings.resolved_warehouse_url)
        warehouse.migrate()
        purge_expired(warehouse, settings.raw_retention_days)
        publisher = open_publisher(bootstrap, settings, client_id="newswire-ingest")
    except BaseException:
        extractor.close()
        raise
    throttle = HostThrottle(settings.host_interval)
    entry_pool = ThreadPoolExecutor(max_workers=settings.entry_concurrency, thread_name_prefix="entry")
    try:
        with Fetcher(http_policy(settings), throttle=throttle) as fetcher:
            robots = (
                RobotsCache(fetcher, settings.user_agent, max_crawl_delay=settings.max_crawl_delay)
                if settings.respect_robots
                else None
            )
            yield FeedPoller(
                settings=settings,
                ledger=IngestLedger(warehouse),
                publisher=publisher,
                fetcher=fetcher,
                robots=robots,
                extractor=extractor,
                run_id=run_id,
                interval=interval,
                entry_pool=entry_pool,
                host_window=HostWindow(settings.entries_per_host) if settings.entries_per_host > 0 else None,
            )
    finally:
        entry_pool.shutdown(wait=True)
        extractor.close()
        publisher.close()


def _start_fork_server() -> None:
    """Start the extraction workers' fork server now, before the session's warehouse, topic and producer set-up.

    It imports trafilatura, lxml and the feature code before it forks a worker (see
    :func:`ingest.extract_workers._preload_modules`); started on demand, that import only began once the first
    page had been fetched, and every page of the run's first seconds waited for it while the second core
    idled. Started here, it runs in its own process alongside this one's set-up. Idempotent: a fork server
    already running (an earlier session of this process) is reused.
    """
    multiprocessing.forkserver.ensure_running()


@dataclass
class IngestSummary:
    run_id: str
    reports: list[FeedReport] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: Per partition of the articles topic, the offset past the last article message this run published
    #: (:meth:`~newswire.messaging.Publisher.acknowledged`): a consumer that read that far has every one.
    published: dict[int, int] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        keys = ("entries_seen", "new", "duplicates", "dead_letters", "skipped", "bytes")
        totals = {k: 0 for k in keys}
        for r in self.reports:
            d = r.as_dict()
            for k in keys:
                totals[k] += int(d[k])  # type: ignore[call-overload]
        return totals

    def line(self) -> str:
        """The one-line summary that ends every ingest log."""
        t = self.totals()
        return (
            f"ingest run {self.run_id}: feeds={len(self.reports)} failed={len(self.failures)} "
            f"entries={t['entries_seen']} new={t['new']} duplicates={t['duplicates']} "
            f"dead_letters={t['dead_letters']} skipped={t['skipped']} bytes={t['bytes']} "
            f"seconds={self.seconds:.1f}"
        )


def _feed_host(feed: FeedSpec) -> str:
    """The feed pool's host key of a feed: its URL's ``host:port`` (as the throttle spaces requests), or the URL
    itself when it has none (such a feed fails without a request, so it shares no host's bound)."""
    return url_host(feed.url) or feed.url


def ingest_feeds(
    settings: Settings,
    bootstrap: str,
    feeds: Sequence[FeedSpec],
    *,
    run_id: str,
    interval: tuple[datetime | None, datetime | None] = (None, None),
    extract_workers: int | None = None,
    on_done: Callable[[FeedSpec, FeedReport | None, FeedFailed | None], None] | None = None,
    batched: bool = False,
    flush_hooks: Sequence[Callable[[], Callable[[Cursor], None] | None]] = (),
    enrich_inline: bool = True,
    enrich: Enricher | None = None,
) -> IngestSummary:
    """Poll every feed; a failing feed is reported in ``failures`` and does not stop the others.

    The feed pool starts at most ``settings.feeds_per_host`` feeds of one host at once and spreads the list over
    its hosts (:func:`ingest.feed_dispatch.map_per_host`); ``summary.reports`` stays in list order. Not without a
    host interval: the bound exists because a spaced host serves one request per interval however many of its
    feeds hold threads; an unspaced host (a private mirror, tests) serves them all at once.

    ``on_done`` is called from the polling thread after each feed, with its report or its failure (the feed
    schedule records both). ``batched``: every ledger write waits for a flush of many feeds (see
    :class:`ingest.ledger.LedgerBuffer`), the shape for processes that share a DuckDB file; ``flush_hooks``
    add rows to each flush's transaction; ``enrich_inline``, ``enrich``: see :func:`ingest_session`.
    """
    summary = IngestSummary(run_id=run_id)
    t0 = time.monotonic()
    with ingest_session(
        settings,
        bootstrap,
        run_id=run_id,
        interval=interval,
        extract_workers=extract_workers,
        enrich_inline=enrich_inline,
        enrich=enrich,
    ) as poller:
        poller.ledger.buffer.batched = batched
        poller.ledger.buffer.hooks.extend(flush_hooks)
        poller.prefetch(feeds)
        poller.defer_bookkeeping = True

        def one(feed: FeedSpec) -> FeedReport | None:
            try:
                report = poller.poll(feed)
            except FeedFailed as exc:
                log.warning("%s", exc)
                summary.failures[feed.url] = str(exc)
                if on_done is not None:
                    on_done(feed, None, exc)
                return None
            if on_done is not None:
                on_done(feed, report, None)
            return report

        try:
            with ThreadPoolExecutor(max_workers=settings.fetch_concurrency, thread_name_prefix="feed") as pool:
                per_host = settings.feeds_per_host if settings.host_interval > 0 else 0
                reports = map_per_host(
                    pool, settings.fetch_concurrency, one, feeds, per_host=per_host, host_of=_feed_host
                )
            summary.reports.extend(r for r in reports if r is not None)
        finally:
            poller.ledger.flush()  # the deferred rows (batched: every row) not written yet
        summary.published = poller.publisher.acknowledged(contracts.ARTICLES)
    summary.seconds = time.monotonic() - t0
    log.info("%s", summary.line())
    return summary
