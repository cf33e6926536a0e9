"""newswire_archive's library: walking feed history (RFC 5005, WordPress pagination), sitemaps, the page cache,
ingesting a day exactly once, refetching, and rebuilding a day's events from the warehouse."""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools import CORPUS
from ingest.archive import (
    HEAD_TTL,
    ArchiveDay,
    ArchiveError,
    ArchiveFetcher,
    ArchiveLedger,
    PageCache,
    archive_feed,
    collect_day,
    plan_feeds,
    walk_feed,
)
from ingest.feedlist import FeedSpec, load_feed_list
from ingest.http import Fetcher, HttpPolicy
from ingest.poll import FeedFailed
from ingest.robots import RobotsCache
from newswire.warehouse import Warehouse
from transform.clustering import ClusteringConfig
from transform.rebuild import RebuildError, rebuild_events, window_of

ARCHIVE: dict[str, Any] = tomllib.loads((CORPUS / "EXPECTED-archive.toml").read_text(encoding="utf-8"))
AGENT = "Newswire/0.1 (+https://github.com/newswire/newswire; news ingestion bot)"


def published(article: dict[str, Any], today: date) -> datetime:
    day, clock = article["published"].split()
    hour, minute = map(int, clock.split(":"))
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=UTC) + timedelta(days=int(day))


def expected_paths(today: date, days: range, sources: set[str] | None = None) -> set[tuple[str, str]]:
    """(outlet, path) of the archive articles published on the given days (relative to ``today``)."""
    wanted = set()
    for article in ARCHIVE["articles"]:
        moment = published(article, today)
        if (moment.date() - today).days in days and (sources is None or sources & set(article["sources"])):
            wanted.add((article["outlet"], article["path"]))
    return wanted


def day_of(today: date, offset: int) -> ArchiveDay:
    return ArchiveDay.of(today + timedelta(days=offset))


@pytest.fixture
def archive_feeds(corpus: Any, tmp_path: Path) -> list[FeedSpec]:
    path = tmp_path / "feeds-archive.toml"
    path.write_text(corpus.render((CORPUS / "feeds-archive.toml").read_text(encoding="utf-8")), encoding="utf-8")
    return load_feed_list(path)


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(HttpPolicy(user_agent=AGENT, allow_private_networks=True)) as client:
        yield client


def loader_for(fetcher: Fetcher, root: Path, **kwargs: Any) -> ArchiveFetcher:
    return ArchiveFetcher(fetcher, PageCache(root), max_bytes=5_000_000, **kwargs)


def path_of(url: str) -> str:
    return urlsplit(url).path


# -- the day ---------------------------------------------------------------------------------------------


def test_archive_day_is_the_data_interval_or_the_day_before_an_empty_one() -> None:
    start, end = datetime(2024, 11, 20, tzinfo=UTC), datetime(2024, 11, 21, tzinfo=UTC)
    assert ArchiveDay.from_interval(start, end) == ArchiveDay(start, end)
    assert ArchiveDay.from_interval("2024-11-20T00:00:00+00:00", "2024-11-21T00:00:00Z") == ArchiveDay(start, end)
    # A manual run (zero-length interval) collects the UTC day before it.
    manual = datetime(2024, 11, 21, 15, 30, tzinfo=UTC)
    assert ArchiveDay.from_interval(manual, manual) == ArchiveDay(start, end)
    assert ArchiveDay.from_interval(start, end).label == "2024-11-20"
    assert window_of(manual, manual) == (start, end)
    with pytest.raises(ArchiveError):
        ArchiveDay(end, start)


def test_plan_marks_one_feed_per_site_for_sitemaps() -> None:
    feeds = [
        {"url": "https://a.example/rss/world.xml", "name": "A world"},
        {"url": "https://a.example/rss/business.xml", "name": "A business"},
        {"url": "https://b.example/feed", "name": "B"},
    ]
    assert [f["sitemaps"] for f in plan_feeds(feeds)] == [True, False, True]


# -- walking feed history over the sample corpus ---------------------------------------------------------


def test_rfc5005_paged_feed_is_followed_back_past_the_day(
    corpus: Any, archive_feeds: list[FeedSpec], fetcher: Fetcher, tmp_path: Path
) -> None:
    paged = next(f for f in archive_feeds if "paged" in f.tags)
    day = day_of(corpus.today, -20)
    walk = walk_feed(loader_for(fetcher, tmp_path / "cache"), paged.url, day)
    assert walk.pagination == "next" and walk.reached_day_start and walk.error is None
    assert len(walk.documents) == 3  # page 3 holds the first entry older than the day
    assert {path_of(e.link or "") for e in walk.entries} == {
        p for _, p in expected_paths(corpus.today, range(-20, -19))
    }
    # A day covered by the first page stops there.
    recent = walk_feed(loader_for(fetcher, tmp_path / "cache2"), paged.url, day_of(corpus.today, -6))
    assert len(recent.documents) == 1 and len(recent.entries) == 1


def test_rfc5005_archived_feed_walks_prev_archive_documents(
    corpus: Any, archive_feeds: list[FeedSpec], fetcher: Fetcher, tmp_path: Path
) -> None:
    archived = next(f for f in archive_feeds if "archived" in f.tags)
    walk = walk_feed(loader_for(fetcher, tmp_path / "cache"), archived.url, day_of(corpus.today, -19))
    assert walk.pagination == "prev-archive" and walk.reached_day_start
    assert [path_of(d) for d in walk.documents] == [
        "/feeds/uk-regions.atom",
        "/feeds/uk-regions/archive-3.atom",
        "/feeds/uk-regions/archive-2.atom",
        "/feeds/uk-regions/archive-1.atom",
    ]
    wanted = expected_paths(corpus.today, range(-19, -18), {"archived_feed"})
    assert {path_of(e.link or "") for e in walk.entries} == {p for _, p in wanted} and wanted


def test_a_day_gets_its_sitemap_only_articles_and_each_article_once(
    corpus: Any, archive_feeds: list[FeedSpec], fetcher: Fetcher, tmp_path: Path
) -> None:
    archived = next(f for f in archive_feeds if "archived" in f.tags)
    loader = loader_for(fetcher, tmp_path / "cache")
    robots = RobotsCache(fetcher, AGENT)
    for offset in (-18, -2):
        harvest = collect_day(archived, day_of(corpus.today, offset), loader, robots)
        wanted = {p for o, p in expected_paths(corpus.today, range(offset, offset + 1)) if o == "meridian-wire"}
        assert sorted(path_of(e.link or "") for e in harvest.entries) == sorted(wanted), offset
        assert not harvest.errors
    # Day -2: the bridge story is in the feed, the news sitemap and a post sitemap: one entry.
    assert harvest.sitemap_entries >= 2
    # The post sitemap whose lastmod is 16 days old is not read for day -2.
    assert not any(d.endswith("posts-1.xml") for d in harvest.sitemap_documents)


def test_the_page_cache_serves_neighbouring_days_and_revalidates_a_stale_head(
    corpus: Any, archive_feeds: list[FeedSpec], fetcher: Fetcher, tmp_path: Path
) -> None:
    paged = next(f for f in archive_feeds if "paged" in f.tags)
    first = loader_for(fetcher, tmp_path / "cache")
    walk_feed(first, paged.url, day_of(corpus.today, -18))
    assert first.fetched == 2 and first.cache_hits == 0
    # Another task process of the same backfill, the next day: everything comes from the cache on disk.
    second = loader_for(fetcher, tmp_path / "cache")
    walk = walk_feed(second, paged.url, day_of(corpus.today, -17))
    assert second.fetched == 0 and second.cache_hits == 2 and len(walk.entries) == 1
    # Minutes later the feed's first page is stale: revalidated with its ETag (304, no body), pages kept.
    later = loader_for(fetcher, tmp_path / "cache", clock=lambda: time.time() + HEAD_TTL + 1)
    before = len(corpus.request_log)
    walk_feed(later, paged.url, day_of(corpus.today, -17))
    sent = corpus.request_log[before:]
    assert later.fetched == 1 and later.bytes_fetched == 0
    assert [r.path for r in sent] == ["/feeds/cornwall.rss"] and "if-none-match" in sent[0].headers


# -- WordPress-style pagination --------------------------------------------------------------------------


class WordPressFeed(BaseHTTPRequestHandler):
    """A feed of 8 posts, 3 per page, with no paging links: pages by ``?paged=N`` (or ``?page=N``)."""

    parameter: str | None = "paged"  # which query parameter pages; None: the site has no pagination
    posts: ClassVar[list[tuple[str, int]]] = [(f"Post {i}", i * 2 + 1) for i in range(8)]  # days ago: 1, 3, ..

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        page = int(query.get(self.parameter, ["1"])[0]) if self.parameter else 1
        chunk = self.posts[(page - 1) * 3 : page * 3]
        if not chunk:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
        items = "".join(
            f"<item><title>{title}</title><link>http://{self.headers['Host']}/{title.replace(' ', '-')}/</link>"
            f"<pubDate>{format_datetime(now - timedelta(days=days), usegmt=True)}</pubDate></item>"
            for title, days in chunk
        )
        body = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>WP</title><link>http://x/</link>'
            f"<generator>https://wordpress.org/?v=6.6</generator>{items}</channel></rss>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def wordpress(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (WordPressFeed,), {"parameter": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed/"
    server.shutdown()
    server.server_close()
    thread.join()


def _days_ago(n: int) -> ArchiveDay:
    return ArchiveDay.of(datetime.now(UTC).date() - timedelta(days=n))


@pytest.mark.parametrize("wordpress", ["paged", "page"], indirect=True)
def test_wordpress_pagination_is_discovered_and_followed(wordpress: str, fetcher: Fetcher, tmp_path: Path) -> None:
    walk = walk_feed(loader_for(fetcher, tmp_path / "cache"), wordpress, _days_ago(11))
    assert [e.title for e in walk.entries] == ["Post 5"]
    assert walk.reached_day_start and walk.error is None
    name = "paged" if walk.pagination == "?paged=" else "page"
    assert walk.pagination == f"?{name}=" and walk.documents[-1].endswith(f"?{name}=3")
    # Past the last page the site answers 404: the walk ends there, without an error.
    oldest = walk_feed(loader_for(fetcher, tmp_path / "cache"), wordpress, _days_ago(30))
    assert oldest.entries == [] and oldest.error is None and not oldest.reached_day_start


@pytest.mark.parametrize("wordpress", [None], indirect=True)
def test_a_feed_without_history_stops_after_trying_both_conventions(
    wordpress: str, fetcher: Fetcher, tmp_path: Path
) -> None:
    loader = loader_for(fetcher, tmp_path / "cache")
    harvest = collect_day(FeedSpec(url=wordpress, name="WP"), _days_ago(11), loader, None, sitemaps=False)
    assert harvest.entries == [] and harvest.walk.pagination is None and not harvest.errors
    assert loader.fetched == 3  # the feed, ?paged=2 and ?page=2 (both the same first page)
    assert any("does not reach back" in w for w in harvest.warnings)


# -- ingesting a day -------------------------------------------------------------------------------------


@pytest.fixture
def archive_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, broker: str) -> Warehouse:
    url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
    for key, value in {
        "NEWSWIRE_HOME": str(tmp_path / "home"),
        "NEWSWIRE_KAFKA_BOOTSTRAP": broker,
        "NEWSWIRE_WAREHOUSE_URL": url,
        "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSWIRE_HOST_INTERVAL": "0",
        "NEWSWIRE_TOPIC_PARTITIONS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    return Warehouse(url)


def _run_days(feeds: list[FeedSpec], today: date, offsets: range, run: str, **kwargs: Any) -> list[dict[str, Any]]:
    reports = []
    planned = plan_feeds([{"url": f.url, "name": f.name, "tags": list(f.tags)} for f in feeds])
    for offset in offsets:
        day = day_of(today, offset)
        for feed in planned:
            reports.append(
                archive_feed(feed, run_id=f"{run}-{offset}", interval_start=day.start, interval_end=day.end, **kwargs)
            )
    return reports


def test_a_backfill_ingests_exactly_the_days_articles_once(
    corpus: Any, archive_feeds: list[FeedSpec], archive_env: Warehouse, make_settings: Any, broker: str
) -> None:
    today = corpus.today
    reports = _run_days(archive_feeds, today, range(-20, -16), "backfill")
    rows = archive_env.query(
        "SELECT entry_url, outcome, published_at FROM feed_entries WHERE outcome = 'new' ORDER BY entry_url"
    )
    got = {path_of(r["entry_url"]) for r in rows}
    wanted = expected_paths(today, range(-20, -16))
    assert got == {p for _, p in wanted}
    assert {s for a in ARCHIVE["articles"] if (a["outlet"], a["path"]) in wanted for s in a["sources"]} >= {
        "paged_feed",
        "archived_feed",
        "posts_sitemap",
    }
    assert sum(r["new"] for r in reports) == len(wanted)
    assert all("summary" in r and r["summary"].startswith("archive backfill-") for r in reports)
    runs = archive_env.query("SELECT run_id, interval_start, interval_end, entries_seen FROM ingest_runs")
    assert len(runs) == 8 and all(r["interval_end"] - r["interval_start"] == timedelta(days=1) for r in runs)

    # The same backfill again ("All Runs"): nothing new, nothing recorded twice.
    again = _run_days(archive_feeds, today, range(-20, -16), "again")
    assert sum(r["new"] for r in again) == 0 and sum(r["entries_seen"] for r in again) == 0
    assert archive_env.scalar("SELECT COUNT(*) FROM feed_entries") == len(rows)

    # Refetch: the day's stored pages are fetched and published again, under the same article ids.
    urls_before = archive_env.scalar("SELECT COUNT(*) FROM article_urls")
    refetched = _run_days(archive_feeds, today, range(-18, -17), "refetch", refetch=True)
    assert sum(r["new"] for r in refetched) == len(expected_paths(today, range(-18, -17)))
    assert archive_env.scalar("SELECT COUNT(*) FROM article_urls") == urls_before

    # Rebuilding the events of a day from the warehouse: idempotent, and it follows the clustering code.
    from transform.stage import run_transform

    settings = make_settings(warehouse_url=archive_env.url, kafka_bootstrap=broker, topic_partitions=1)
    run_transform(settings, settings.kafka_bootstrap)
    assert archive_env.scalar("SELECT COUNT(*) FROM articles") == len(wanted)
    day = day_of(today, -18)
    membership = "SELECT article_id, event_id FROM event_articles ORDER BY article_id"
    original = archive_env.query(membership)
    day_ids = [
        r["article_id"]
        for r in archive_env.query(
            "SELECT article_id FROM articles WHERE published_at >= ? AND published_at < ?", (day.start, day.end)
        )
    ]
    stats = rebuild_events(archive_env, None, day.start, day.end)
    assert stats.articles == len(day_ids) == 2 and stats.events_changed == 0  # same code, same events
    assert archive_env.query(membership) == original
    # An eager clusterer over the whole backfill window puts stories together...
    window = (day_of(today, -20).start, day_of(today, -17).end)
    eager = ClusteringConfig(threshold=0.01, merge_threshold=0.01)
    merged = rebuild_events(archive_env, None, *window, config=eager)
    assert merged.articles == len(wanted) and merged.moved >= 1 and merged.events_changed >= 1
    assert merged.events_after < merged.events_before
    emptied = archive_env.query("SELECT event_id, merged_into, version FROM events WHERE article_count = 0")
    live = {r["event_id"] for r in archive_env.query(membership)}
    assert emptied and all(e["merged_into"] in live for e in emptied)
    assert rebuild_events(archive_env, None, *window, config=eager).events_changed == 0
    # ...and the shipped clusterer, replayed over the same window in load order, gives back the original events.
    back = rebuild_events(archive_env, None, *window)
    assert back.events_changed >= 1 and archive_env.query(membership) == original
    revived = archive_env.query(
        "SELECT merged_into, article_count, version FROM events WHERE event_id = ?", (emptied[0]["event_id"],)
    )[0]
    assert revived["merged_into"] is None and revived["article_count"] > 0
    assert revived["version"] > emptied[0]["version"]
    with pytest.raises(RebuildError):
        rebuild_events(archive_env, None, day.end, day.start)


class Unavailable(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Retry-After", "120")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_failing_feed_history_fails_its_task_with_the_servers_retry_after(archive_env: Warehouse) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
        day = ArchiveDay.of(datetime.now(UTC).date() - timedelta(days=3))
        with pytest.raises(FeedFailed) as info:
            archive_feed(
                {"url": url, "name": "Down", "ignore_robots": True, "sitemaps": True},
                run_id="failing",
                interval_start=day.start,
                interval_end=day.end,
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert info.value.retryable and info.value.retry_after == 120.0 and url in str(info.value)
    (run,) = archive_env.query("SELECT status, entries_seen FROM ingest_runs WHERE run_id = 'failing'")
    assert run["entries_seen"] == 0


def test_archive_ledger_leaves_retries_to_polling_and_forgets_refetched_pages(tmp_path: Path) -> None:
    warehouse = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.migrate()
    with warehouse.transaction() as cur:
        cur.execute(
            "INSERT INTO article_urls (url, article_id, first_seen_at) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)",
            (
                "https://a.example/x",
                "id-x",
                datetime.now(UTC),
                "https://a.example/amp/x",
                "id-x",
                datetime.now(UTC),
                "https://a.example/y",
                "id-y",
                datetime.now(UTC),
            ),
        )
    plain = ArchiveLedger(warehouse)
    assert plain.retry_candidates("https://a.example/feed", 5) == []
    assert plain.known_urls(["https://a.example/x"]) == {"https://a.example/x": "id-x"}
    refetch = ArchiveLedger(warehouse, refetch_keys=["https://a.example/amp/x"])
    assert refetch.known_urls(["https://a.example/x", "https://a.example/y"]) == {"https://a.example/y": "id-y"}
