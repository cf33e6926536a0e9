"""newswire_archive's library: collect the entries a site published on one day, and ingest those not yet stored.

A feed document lists a site's latest entries only, so a day in the past is found in the feed's history:

* RFC 5005 paged feeds (``rel="next"``) and archived feeds (``rel="prev-archive"``), followed page by page;
* WordPress-style pagination (``?paged=N``, else ``?page=N``) when the feed has no paging links: tried on the
  second page, kept only if it returns entries the first page did not have;
* the site's sitemaps (:mod:`ingest.sitemaps`): robots.txt ``Sitemap:`` lines, indexes, Google News sitemaps.

A walk stops once a document holds an entry published before the day (feeds list newest first), at the
end of the pages, or after :data:`MAX_PAGES` documents. The documents are kept in a :class:`PageCache` on
disk under ``NEWSWIRE_HOME``, shared by the task processes of a backfill, so the runs for neighbouring days
read the same pages once: the first document of a feed for minutes (it changes as the site publishes), later
pages for an hour, RFC 5005 archive documents for a week (the RFC makes them stable).

Entries found are handed to :meth:`ingest.poll.FeedPoller.process_entries` (the same robots, fetch, extract,
publish and ledger path as polling, so re-running a day adds nothing), through an :class:`ArchiveLedger` that
leaves retries of the feed's dead letters to the regular poll and, when asked to refetch, treats the day's
stored pages as not stored yet.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingest.errors import ArchiveError, FetchError, HttpStatusError
from ingest.extract_workers import Enricher
from ingest.feedlist import FeedSpec, feed_from_dict
from ingest.feeds import FeedEntry, FeedParseError, parse_feed
from ingest.http import Fetcher
from ingest.ledger import IngestLedger, KnownEntry, LedgerBuffer
from ingest.poll import FEED_TYPES, NOT_FEED_TYPES, FeedFailed, FeedPoller
from ingest.robots import RobotsCache
from ingest.sitemaps import SitemapHarvest, collect_sitemap_entries, sitemap_roots
from ingest.stage import ingest_session
from newswire.broker import bootstrap_servers
from newswire.settings import Settings, load_settings
from newswire.timestamps import as_utc
from newswire.warehouse import Warehouse

__all__ = [
    "ArchiveDay",
    "ArchiveFetcher",
    "ArchiveLedger",
    "CachedDocument",
    "DayHarvest",
    "FeedWalk",
    "PageCache",
    "archive_feed",
    "collect_day",
    "plan_feeds",
    "walk_feed",
]

log = logging.getLogger(__name__)

CACHE_DIR = "archive-cache"
HEAD_TTL = 10 * 60
PAGE_TTL = 60 * 60
ARCHIVE_TTL = 7 * 24 * 3600
SITEMAP_TTL = 60 * 60
#: Cache entries older than this are deleted when a task starts.
CACHE_MAX_AGE = 8 * 24 * 3600
MAX_PAGES = 100
PAGE_PARAMETERS = ("paged", "page")
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5"
SITEMAP_ACCEPT = "application/xml, text/xml;q=0.9, */*;q=0.5"
SITEMAP_TYPES = (
    "application/xml",
    "text/xml",
    "application/x-gzip",
    "application/gzip",
    "application/octet-stream",
    "text/plain",
)


# -- the day -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveDay:
    """The window a run collects: ``[start, end)`` in UTC, normally one calendar day."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None or self.end <= self.start:
            raise ArchiveError(f"an archive window is a non-empty UTC interval, got {self.start} .. {self.end}")

    @classmethod
    def of(cls, day: date) -> ArchiveDay:
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @classmethod
    def from_interval(cls, start: datetime | str | None, end: datetime | str | None) -> ArchiveDay:
        """The run's data interval; an empty or missing one (a manual run) means the UTC day before it."""
        start_at, end_at = as_utc(start), as_utc(end)
        if start_at is not None and end_at is not None and end_at > start_at:
            return cls(start_at, end_at)
        anchor = start_at or end_at or datetime.now(UTC)
        return cls.of((anchor - timedelta(days=1)).date())

    @property
    def label(self) -> str:
        if self.end - self.start == timedelta(days=1) and self.start.time() == datetime.min.time():
            return self.start.date().isoformat()
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    def holds(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end


# -- the page cache ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedDocument:
    """A fetched feed or sitemap document; ``status`` 404/410 remembers that it does not exist."""

    url: str
    final_url: str
    status: int
    content: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None
    fetched_at: float  # epoch seconds

    def fresh(self, ttl: float, now: float) -> bool:
        return now - self.fetched_at < ttl


class PageCache:
    """Documents on disk, one body file and one JSON metadata file per URL, written atomically.

    Several Airflow task processes use one cache at once: :meth:`lock` serialises the fetch of one URL across
    them (the second waits, then reads what the first stored), and a reader never sees half a file because
    every file is renamed into place, metadata last.
    """

    def __init__(self, root: Path, *, clock: Any = time.time) -> None:
        self.root = Path(root)
        self._clock = clock
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive page cache {self.root}: {exc}") from exc

    def _base(self, url: str) -> Path:
        return self.root / hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]

    def get(self, url: str) -> CachedDocument | None:
        base = self._base(url)
        try:
            meta = json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))
            content = base.with_suffix(".body").read_bytes()
        except (OSError, ValueError):
            return None
        if meta.get("url") != url or len(content) != meta.get("size"):
            return None  # hash collision or a body replaced after this metadata: treat as a miss
        return CachedDocument(
            url=url,
            final_url=meta["final_url"],
            status=int(meta["status"]),
            content=content,
            content_type=meta.get("content_type"),
            etag=meta.get("etag"),
            last_modified=meta.get("last_modified"),
            fetched_at=float(meta["fetched_at"]),
        )

    def put(self, document: CachedDocument) -> None:
        base = self._base(document.url)
        meta = {
            "url": document.url,
            "final_url": document.final_url,
            "status": document.status,
            "content_type": document.content_type,
            "etag": document.etag,
            "last_modified": document.last_modified,
            "fetched_at": document.fetched_at,
            "size": len(document.content),
        }
        suffix = f".{os.getpid()}.tmp"
        body_tmp, meta_tmp = Path(f"{base}.body{suffix}"), Path(f"{base}.json{suffix}")
        body_tmp.write_bytes(document.content)
        body_tmp.replace(base.with_suffix(".body"))
        meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
        meta_tmp.replace(base.with_suffix(".json"))

    @contextlib.contextmanager
    def lock(self, url: str) -> Iterator[None]:
        """Hold an exclusive lock on ``url`` across processes (advisory, released when the block ends)."""
        with open(self._base(url).with_suffix(".lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def prune(self, max_age: float = CACHE_MAX_AGE) -> int:
        """Delete entries not refreshed for ``max_age`` seconds (and stray temporary files); returns how many."""
        cutoff = self._clock() - max_age
        removed = 0
        for path in self.root.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and (path.suffix in (".json", ".body", ".lock", ".tmp")):
                    path.unlink()
                    removed += path.suffix == ".json"
        return removed


class ArchiveFetcher:
    """Fetches feed and sitemap documents through the page cache, revalidating stale ones (ETag/Last-Modified).

    Counts what really went over the network (``bytes_fetched``, ``fetched``) apart from cache hits, so the
    run summary says what a backfill cost the sites.
    """

    def __init__(self, fetcher: Fetcher, cache: PageCache, *, max_bytes: int, clock: Any = time.time) -> None:
        self._fetcher = fetcher
        self._cache = cache
        self._max_bytes = max_bytes
        self._clock = clock
        self.bytes_fetched = 0
        self.fetched = 0
        self.cache_hits = 0

    def get(
        self, url: str, *, ttl: float, accept: str = FEED_ACCEPT, allowed_types: Sequence[str] = FEED_TYPES
    ) -> CachedDocument:
        """The document at ``url``; raises ``FetchError`` (a remembered 404/410 raises ``HttpStatusError``)."""
        with self._cache.lock(url):
            cached = self._cache.get(url)
            now = self._clock()
            if cached is not None and cached.fresh(ttl, now):
                self.cache_hits += 1
                return _checked(cached)
            validators = cached if cached is not None and cached.status == 200 else None
            try:
                result = self._fetcher.get(
                    url,
                    etag=validators.etag if validators else None,
                    last_modified=validators.last_modified if validators else None,
                    accept=accept,
                    allowed_types=allowed_types,
                    refused_types=NOT_FEED_TYPES if tuple(allowed_types) == FEED_TYPES else None,
                    max_bytes=self._max_bytes,
                )
            except HttpStatusError as exc:
                if exc.status in (404, 410):
                    self._cache.put(CachedDocument(url, url, exc.status, b"", None, None, None, now))
                raise
            self.fetched += 1
            self.bytes_fetched += len(result.content)
            if result.not_modified and validators is not None:
                document = dataclasses.replace(validators, fetched_at=now)
            else:
                document = CachedDocument(
                    url=url,
                    final_url=result.final_url,
                    status=200,
                    content=result.content,
                    content_type=result.headers.get("content-type"),
                    etag=result.etag,
                    last_modified=result.last_modified,
                    fetched_at=now,
                )
            self._cache.put(document)
            return document

    def load_sitemap(self, url: str) -> bytes:
        return self.get(url, ttl=SITEMAP_TTL, accept=SITEMAP_ACCEPT, allowed_types=SITEMAP_TYPES).content


def _checked(document: CachedDocument) -> CachedDocument:
    if document.status != 200:
        raise HttpStatusError(document.url, document.status, detail=f"HTTP status {document.status} (cached)")
    return document


# -- walking a feed's history ------------------------------------------------------------------------------


@dataclass
class FeedWalk:
    """What walking one feed back to a day found."""

    entries: list[FeedEntry] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    pagination: str | None = None  # next | prev-archive | ?paged= | ?page= | None (one document)
    reached_day_start: bool = False  # a document went back past the day: the day is fully covered
    warnings: list[str] = field(default_factory=list)
    error: FetchError | FeedParseError | None = None  # the walk could not start or was cut short


def walk_feed(
    loader: ArchiveFetcher, feed_url: str, day: ArchiveDay, *, max_entries: int = 500, max_pages: int = MAX_PAGES
) -> FeedWalk:
    """Follow ``feed_url``'s pages back in time and return its entries published within ``day``."""
    walk = FeedWalk()
    seen: set[str] = set()
    url: str | None = feed_url
    ttl = HEAD_TTL
    page = 1
    parameter: str | None = None
    untried = list(PAGE_PARAMETERS)
    while url is not None:
        if len(walk.documents) >= max_pages:
            walk.warnings.append(f"stopped after {max_pages} documents")
            break
        if url in walk.documents:
            walk.warnings.append(f"paging loops back to {url}")
            break
        try:
            document = loader.get(url, ttl=ttl)
            parsed = parse_feed(
                document.content, url=document.final_url, content_type=document.content_type, max_entries=max_entries
            )
        except HttpStatusError as exc:
            if page > 1 and exc.status in (404, 410):
                break  # past the last page (WordPress answers 404 beyond it)
            walk.error = exc
            break
        except (FetchError, FeedParseError) as exc:
            walk.error = exc
            break
        walk.documents.append(url)
        walk.warnings.extend(f"{url}: {w}" for w in parsed.warnings)
        fresh = [e for e in parsed.entries if e.key not in seen]
        if page > 1 and not fresh:
            walk.documents.pop()  # it added nothing: the same entries again, or none
            if parameter is not None and page == 2 and untried:
                # The site ignores this pagination parameter (same entries again): try the next convention.
                parameter = untried.pop(0)
                url = _with_query(feed_url, {parameter: "2"})
                continue
            if page == 2:
                walk.pagination = None
            break
        seen.update(e.key for e in fresh)
        walk.entries.extend(e for e in fresh if day.holds(e.published))
        dated = [e.published for e in parsed.entries if e.published is not None]
        if dated and min(dated) < day.start:
            walk.reached_day_start = True
            break
        if not parsed.entries:
            break
        if parsed.prev_archive_url:
            url, ttl, walk.pagination = parsed.prev_archive_url, ARCHIVE_TTL, "prev-archive"
        elif parsed.next_url:
            url, ttl, walk.pagination = parsed.next_url, PAGE_TTL, "next"
        elif page == 1 or parameter is not None:
            if parameter is None:
                parameter = untried.pop(0)
            url, ttl = _with_query(feed_url, {parameter: str(page + 1)}), PAGE_TTL
            walk.pagination = f"?{parameter}="
        else:
            url = None
        page += 1
    if walk.pagination and len(walk.documents) < 2:
        walk.pagination = None  # no second page was ever read
    return walk


def _with_query(url: str, values: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in values]
    query.extend(values.items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


# -- one feed's day ----------------------------------------------------------------------------------------


@dataclass
class DayHarvest:
    """The entries of one feed (and, if it reads them, its site's sitemaps) for one day."""

    walk: FeedWalk
    sitemap_documents: list[str] = field(default_factory=list)
    sitemap_entries: int = 0
    errors: list[str] = field(default_factory=list)
    retry_after: float | None = None
    warnings: list[str] = field(default_factory=list)
    entries: list[FeedEntry] = field(default_factory=list)


def collect_day(
    feed: FeedSpec,
    day: ArchiveDay,
    loader: ArchiveFetcher,
    robots: RobotsCache | None,
    *,
    sitemaps: bool = True,
    max_entries: int = 500,
) -> DayHarvest:
    """Walk the feed, then (``sitemaps``) the site's sitemaps; entries found twice are kept once."""
    walk = walk_feed(loader, feed.url, day, max_entries=max_entries)
    harvest = DayHarvest(walk=walk, warnings=list(walk.warnings))
    if walk.error is not None:
        harvest.errors.append(f"feed history: {walk.error}")
        harvest.retry_after = getattr(walk.error, "retry_after", None)
    elif not walk.reached_day_start and walk.documents:
        harvest.warnings.append(f"the feed's history does not reach back to {day.label} (read {len(walk.documents)})")
    found: dict[str, FeedEntry] = {}
    for entry in walk.entries:
        found.setdefault(entry.key, entry)
    if sitemaps:
        listed: list[str] = []
        robots_failed = False
        if robots is not None:
            try:
                listed = robots.sitemaps(feed.url)
            except FetchError as exc:
                # Without robots.txt we do not know the sitemaps, nor whether we may read them: retry later.
                robots_failed = True
                harvest.errors.append(f"robots.txt: {exc}")
                harvest.retry_after = _later(harvest.retry_after, getattr(exc, "retry_after", None))
        if not robots_failed:
            site = harvest_sitemaps(loader, feed.url, listed, day)
            harvest.sitemap_documents = site.sitemaps
            harvest.sitemap_entries = len(site.entries)
            harvest.errors.extend(site.errors)
            harvest.retry_after = _later(harvest.retry_after, site.retry_after)
            harvest.warnings.extend(site.warnings)
            for entry in site.entries:
                found.setdefault(entry.key, entry)
    harvest.entries = sorted(found.values(), key=lambda e: (e.published or day.start, e.key))
    return harvest


def harvest_sitemaps(loader: ArchiveFetcher, feed_url: str, listed: Iterable[str], day: ArchiveDay) -> SitemapHarvest:
    """The day's URLs from the sitemaps robots.txt lists for the feed's site (or its ``/sitemap.xml``)."""
    listed = list(listed)
    roots = sitemap_roots(feed_url, listed)
    return collect_sitemap_entries(
        roots, loader.load_sitemap, start=day.start, end=day.end, optional=() if listed else roots
    )


def _later(a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return max(values) if values else None


# -- the ledger as an archive run sees it ------------------------------------------------------------------


class ArchiveLedger(IngestLedger):
    """The ingest ledger, with two archive-run policies.

    Retries of the feed's dead-lettered entries are left to the regular poll (an archive run processes the
    day's entries, nothing else). With ``refetch_keys`` (the day's entry keys), those entries and the articles
    their URLs are stored under count as not stored yet, so their pages are fetched and published again (same
    article ids: the transform stage replays or updates them, never doubles them).
    """

    def __init__(
        self, warehouse: Warehouse, *, refetch_keys: Iterable[str] = (), buffer: LedgerBuffer | None = None
    ) -> None:
        super().__init__(warehouse, buffer=buffer)
        self._refetch = frozenset(refetch_keys)
        self._forgotten: frozenset[str] | None = None

    def retry_candidates(self, feed_url: str, max_attempts: int) -> list[dict[str, Any]]:
        return []

    def known_entries(self, feed_url: str, keys: Iterable[str]) -> dict[str, KnownEntry]:
        known = super().known_entries(feed_url, keys)
        return {k: v for k, v in known.items() if k not in self._refetch}

    def known_urls(self, urls: Iterable[str]) -> dict[str, str]:
        found = super().known_urls(urls)
        if not self._refetch:
            return found
        if self._forgotten is None:
            self._forgotten = frozenset(super().known_urls(self._refetch).values())
        return {url: article for url, article in found.items() if article not in self._forgotten}


# -- the task ----------------------------------------------------------------------------------------------


def plan_feeds(feeds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The feeds of a run, each marked ``sitemaps`` if it is the first of its site (sitemaps are per site)."""
    planned = []
    sites: set[str] = set()
    for feed in feeds:
        parts = urlsplit(str(feed["url"]))
        site = f"{parts.scheme}://{parts.netloc}".lower()
        planned.append({**feed, "sitemaps": site not in sites})
        sites.add(site)
    return planned


def archive_feed(
    feed: Mapping[str, Any],
    *,
    run_id: str,
    interval_start: datetime | str | None,
    interval_end: datetime | str | None,
    refetch: bool = False,
) -> dict[str, Any]:
    """Collect and ingest one feed's entries of the run's day; raise ``FeedFailed`` (retry) on fetch failures.

    What was found is ingested before a failure is raised, so a retry only has the rest to do.
    """
    settings = load_settings()
    day = ArchiveDay.from_interval(interval_start, interval_end)
    cache = PageCache(settings.home / CACHE_DIR)
    cache.prune()
    with (
        bootstrap_servers(settings) as bootstrap,
        ingest_session(settings, bootstrap, run_id=run_id, interval=(day.start, day.end), extract_workers=1) as poller,
    ):
        return _archive_one(poller, feed, day, cache, settings, run_id=run_id, refetch=refetch)


def archive_feeds(
    feeds: Sequence[Mapping[str, Any]],
    *,
    run_id: str,
    interval_start: datetime | str | None,
    interval_end: datetime | str | None,
    refetch: bool = False,
    extract_workers: int | None = 1,
    enrich: Enricher | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Archive the day of many feeds in one process (one session, feeds concurrently, hosts interleaved):
    the reports of the feeds done, and the failing feeds with their error. A failing feed does not stop the
    others; broker and warehouse failures propagate."""
    from ingest.schedule_store import interleave_hosts

    settings = load_settings()
    day = ArchiveDay.from_interval(interval_start, interval_end)
    cache = PageCache(settings.home / CACHE_DIR)
    cache.prune()
    by_url = {str(f["url"]): f for f in feeds}
    ordered = [by_url[f.url] for f in interleave_hosts([feed_from_dict(dict(f)) for f in feeds])]
    reports: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    with (
        bootstrap_servers(settings) as bootstrap,
        ingest_session(
            settings,
            bootstrap,
            run_id=run_id,
            interval=(day.start, day.end),
            extract_workers=extract_workers,
            enrich_inline=settings.shard_enrich,  # as an ingest shard: here, or left to the transform
            enrich=enrich,  # inline only with enrich_inline; always in worker processes (extract_workers > 1)
        ) as poller,
    ):
        # Rows of many feeds per transaction, the file not held across fetches (see ingest.ledger.LedgerBuffer):
        # archive tasks share the DuckDB file with the ingest shards polling meanwhile.
        poller.ledger.buffer.batched = True
        poller.defer_bookkeeping = True

        def one(feed: Mapping[str, Any]) -> None:
            try:
                reports.append(_archive_one(poller, feed, day, cache, settings, run_id=run_id, refetch=refetch))
            except FeedFailed as exc:
                log.warning("%s", exc)
                failures[str(feed["url"])] = str(exc)

        try:
            with ThreadPoolExecutor(max_workers=settings.fetch_concurrency, thread_name_prefix="archive") as pool:
                list(pool.map(one, ordered))
        finally:
            poller.ledger.flush()
    return reports, failures


def _archive_one(
    poller: FeedPoller,
    feed: Mapping[str, Any],
    day: ArchiveDay,
    cache: PageCache,
    settings: Settings,
    *,
    run_id: str,
    refetch: bool,
) -> dict[str, Any]:
    spec = feed_from_dict(dict(feed))
    t0 = time.monotonic()
    loader = ArchiveFetcher(poller.fetcher, cache, max_bytes=settings.max_feed_bytes)
    robots = poller.robots or RobotsCache(poller.fetcher, settings.user_agent, max_crawl_delay=settings.max_crawl_delay)
    harvest = collect_day(
        spec,
        day,
        loader,
        robots,
        sitemaps=bool(feed.get("sitemaps", True)),
        max_entries=settings.max_entries_per_feed,
    )
    ledger = ArchiveLedger(
        poller.ledger.warehouse,
        refetch_keys=[e.key for e in harvest.entries] if refetch else (),
        buffer=poller.ledger.buffer,  # the session's: a batched session writes every feed's rows together
    )
    report = dataclasses.replace(poller, ledger=ledger).process_entries(
        spec, harvest.entries, bytes_fetched=loader.bytes_fetched, warnings=harvest.warnings
    )
    for warning in harvest.warnings:
        log.warning("archive %s %s: %s", spec.url, day.label, warning)
    result: dict[str, Any] = {
        **report.as_dict(),
        "day": day.label,
        "feed_documents": len(harvest.walk.documents),
        "pagination": harvest.walk.pagination,
        "reached_day_start": harvest.walk.reached_day_start,
        "sitemap_documents": len(harvest.sitemap_documents),
        "sitemap_entries": harvest.sitemap_entries,
        "fetched": loader.fetched,
        "cache_hits": loader.cache_hits,
        "seconds": round(time.monotonic() - t0, 3),
    }
    result["summary"] = (
        f"archive {run_id} day={day.label} feed={spec.url}: documents={result['feed_documents']} "
        f"({result['pagination'] or 'single'}) sitemaps={result['sitemap_documents']} fetched={loader.fetched} "
        f"cached={loader.cache_hits} entries={result['entries_seen']} new={result['new']} "
        f"duplicates={result['duplicates']} dead_letters={result['dead_letters']} skipped={result['skipped']} "
        f"bytes={result['bytes']} seconds={result['seconds']}"
    )
    log.info("%s", result["summary"])
    if harvest.errors:
        raise FeedFailed(spec.url, "archive_fetch", "; ".join(harvest.errors[:3]), True, harvest.retry_after)
    return result
