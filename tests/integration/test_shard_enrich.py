"""Shard tasks carry what the transform needs (``NEWSWIRE_SHARD_ENRICH``), and the warehouse is the same either way.

The scheduled path, as the ``newswire_ingest`` DAG calls it (``pipeline.ingest_tasks``: settings from the
environment, the enricher injected by the ``pipeline`` layer), extracting inline (``NEWSWIRE_SHARD_EXTRACT_WORKERS``
1). With the setting on, every article message a shard publishes carries the detected language, an embedding
of the configured model and clustering features the transform accepts; with it off, none of the three. The
transform then stores the same articles (languages included), duplicates and events from both topics, and its
count of carried features shows that it used them only in the first case.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hostile_server import HostileServer, ok
from topics import read_topic
from undeclared_page import PAGE

from devtools import CORPUS
from ingest.archive import ArchiveDay
from newswire import contracts
from newswire.broker import EmbeddedBroker
from newswire.embedding import DEFAULT_MODEL, encoder_for, from_message
from newswire.settings import Settings, load_settings
from newswire.warehouse import Warehouse
from pipeline import ingest_tasks
from transform.carried import FIELD, read_carried
from transform.clustering import ClusteringConfig
from transform.stage import run_transform

pytestmark = pytest.mark.integration


def _features(message: dict[str, Any], title_weight: int) -> Any:
    """The carried features the transform would use for ``message`` (read as a batch reads it), or None."""
    carried = read_carried(
        message.get(FIELD), title=message["title"], text=message["text"], language=message["language"]
    )
    return None if carried is None else carried.features(title_weight)


@pytest.fixture
def undeclared_feed() -> Iterator[str]:
    with HostileServer() as server:
        page = server.route("/page.html", ok(PAGE.encode()))
        feed = (
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Undeclared</title>'
            f"<link>{server.url('/')}</link><description>d</description><item><title>花莲地震</title>"
            f"<link>{page}</link><guid>{page}</guid>"
            f"<pubDate>{format_datetime(datetime.now(UTC), usegmt=True)}</pubDate></item></channel></rss>"
        ).encode()
        yield server.route("/feed.rss", ok(feed, "application/rss+xml"))


def scheduled_ingest(
    monkeypatch: pytest.MonkeyPatch,
    corpus: Any,
    extra_feed: str,
    home: Path,
    bootstrap: str,
    *,
    enrich: bool,
    concurrency: int | None = 1,
) -> Settings:
    """One ``newswire_ingest`` run through the task functions, its environment as the stack sets it.

    ``concurrency``: ``NEWSWIRE_FETCH_CONCURRENCY``, None for the default.
    """
    feeds = corpus.render_feed_list(home / "feeds.toml")
    feeds.write_text(
        feeds.read_text() + f'\n[[feeds]]\nname = "Undeclared"\nurl = "{extra_feed}"\nignore_robots = true\n'
    )
    env = {
        "NEWSWIRE_HOME": str(home),
        "NEWSWIRE_FEEDS": str(feeds),
        "NEWSWIRE_KAFKA_BOOTSTRAP": bootstrap,
        "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true",
        "NEWSWIRE_HOST_INTERVAL": "0",
        "NEWSWIRE_POLL_TIMEOUT": "1",
        "NEWSWIRE_INGEST_SHARDS": "2",
        # One feed at a time by default: two feeds of a site listing the same page, polled at once, may both
        # publish it before either records it (the transform then stores it once and records the copy), which
        # depends on timing, not on what the first test compares.
        "NEWSWIRE_FETCH_CONCURRENCY": None if concurrency is None else str(concurrency),
        "NEWSWIRE_SHARD_EXTRACT_WORKERS": "1",
        "NEWSWIRE_SHARD_ENRICH": str(enrich).lower(),
    }
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    run_id = f"scheduled-{enrich}-{concurrency}"
    shards = ingest_tasks.claim_shards(run_id=run_id)
    assert len(shards) == 2
    reports = [ingest_tasks.ingest_shard(shard, run_id=run_id) for shard in shards]
    assert sum(r["failed_feeds"] for r in reports) == 0 and sum(r["new"] for r in reports) > 20
    return load_settings()


def warehouse_view(settings: Settings) -> dict[str, Any]:
    """What the transform stored, by article id (the same URLs, so the same ids, in both runs)."""
    warehouse = Warehouse(settings.resolved_warehouse_url)
    events: dict[str, set[str]] = {}
    for row in warehouse.query("SELECT event_id, article_id FROM event_articles"):
        events.setdefault(row["event_id"], set()).add(row["article_id"])
    return {
        "articles": sorted((r["article_id"], r["language"]) for r in warehouse.query("SELECT * FROM articles")),
        "duplicates": sorted(
            (r["article_id"], r["duplicate_of"])
            for r in warehouse.query("SELECT article_id, duplicate_of FROM article_duplicates")
        ),
        "events": sorted(sorted(members) for members in events.values()),
    }


def test_shard_tasks_carry_language_embedding_and_features_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, corpus: Any, undeclared_feed: str, tmp_path: Path
) -> None:
    encoder = encoder_for(DEFAULT_MODEL)
    assert encoder is not None
    title_weight = ClusteringConfig().title_weight
    views, carried_counts = {}, {}
    for enrich in (True, False):
        with EmbeddedBroker() as broker:
            home = tmp_path / f"home-{enrich}"
            settings = scheduled_ingest(monkeypatch, corpus, undeclared_feed, home, broker.bootstrap, enrich=enrich)
            messages = read_topic(broker.bootstrap, settings, contracts.ARTICLES)
            assert len(messages) > 20
            for m in messages:
                embedding = from_message(m.get("embedding"))
                usable = _features(m, title_weight)
                if enrich:
                    assert embedding is not None and embedding.model == encoder.model_id
                    assert usable is not None, m["url"]
                else:
                    assert embedding is None and m.get(FIELD) is None and usable is None
            undeclared = [m for m in messages if m["url"].startswith(undeclared_feed.rsplit("/", 1)[0])]
            assert [m["language"] for m in undeclared] == (["zh"] if enrich else [None])  # else left to the transform
            summary = run_transform(settings, broker.bootstrap)
        assert summary.stats.new_articles > 20
        carried_counts[enrich] = summary.stats.features_carried
        views[enrich] = warehouse_view(settings)
    assert carried_counts == {True: views[True]["articles"].__len__(), False: 0}
    assert views[True] == views[False]
    assert "zh" in {language for _, language in views[True]["articles"]}


def test_concurrent_fetch_threads_share_the_models_and_every_article_carries_them(
    monkeypatch: pytest.MonkeyPatch, corpus: Any, undeclared_feed: str, tmp_path: Path
) -> None:
    """At the default fetch concurrency, the feeds' fetch threads share each shard's inline extractor and its
    lazily loaded models. Every article still carries its language, an embedding and usable features, and the
    shards publish the same articles as one feed at a time without enrichment. Only the published article set is
    compared: which copy of a page two feeds race to publish first, and so the duplicates, depend on timing."""
    encoder = encoder_for(DEFAULT_MODEL)
    assert encoder is not None
    title_weight = ClusteringConfig().title_weight
    published: dict[bool, set[str]] = {}
    for concurrent in (True, False):
        with EmbeddedBroker() as broker:
            settings = scheduled_ingest(
                monkeypatch,
                corpus,
                undeclared_feed,
                tmp_path / f"home-{concurrent}",
                broker.bootstrap,
                enrich=concurrent,
                concurrency=None if concurrent else 1,
            )
            assert (settings.fetch_concurrency > 1) == concurrent
            messages = read_topic(broker.bootstrap, settings, contracts.ARTICLES)
        published[concurrent] = {m["article_id"] for m in messages}
        if not concurrent:
            continue
        for m in messages:
            embedding = from_message(m.get("embedding"))
            assert embedding is not None and embedding.model == encoder.model_id, m["url"]
            usable = _features(m, title_weight)
            assert usable is not None and m["language"] is not None, m["url"]
    assert len(published[True]) > 20
    assert published[True] == published[False]


def test_the_archive_task_carries_them_too(monkeypatch: pytest.MonkeyPatch, corpus: Any, tmp_path: Path) -> None:
    """``newswire_archive``'s one task extracts inline beside the ingest shards: the same setting decides."""
    feeds = tmp_path / "feeds-archive.toml"
    feeds.write_text(corpus.render((CORPUS / "feeds-archive.toml").read_text(encoding="utf-8")), encoding="utf-8")
    day = ArchiveDay.of(corpus.today - timedelta(days=18))
    title_weight = ClusteringConfig().title_weight
    for enrich in (True, False):
        with EmbeddedBroker() as broker:
            for key, value in {
                "NEWSWIRE_HOME": str(tmp_path / f"home-{enrich}"),
                "NEWSWIRE_FEEDS": str(feeds),
                "NEWSWIRE_KAFKA_BOOTSTRAP": broker.bootstrap,
                "NEWSWIRE_ALLOW_PRIVATE_NETWORKS": "true",
                "NEWSWIRE_HOST_INTERVAL": "0",
                "NEWSWIRE_SHARD_ENRICH": str(enrich).lower(),
            }.items():
                monkeypatch.setenv(key, value)
            report = ingest_tasks.archive_day(
                selection=None, run_id=f"archive-{enrich}", interval_start=day.start, interval_end=day.end
            )
            assert report["new"] > 0 and report["failed_feeds"] == 0
            messages = read_topic(broker.bootstrap, load_settings(), contracts.ARTICLES)
        assert len(messages) == report["new"]
        for m in messages:
            usable = _features(m, title_weight)
            assert (from_message(m.get("embedding")) is not None, usable is not None) == (enrich, enrich), m["url"]
