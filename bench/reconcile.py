"""How long reconcile takes when the topic lost many articles: ``python -m bench.reconcile``.

A warehouse (DuckDB file, or a fresh schema on PostgreSQL with ``--postgres DSN``) is filled with ``--stored``
raw articles that the transform already stored (an ``articles`` row each) and ``--pending`` raw articles it
never saw, as a broker restart leaves them; each message carries a ~4,000-character body, like a real
article. Then, against an empty embedded broker, it times:

* the status query (``newswire status``: pending count, oldest age, stale and unrecoverable counts);
* a full reconcile pass (find, read the stored messages, publish, wait for the broker's acknowledgements);
* a second pass with nothing left to find, after the articles were marked stored (its cost every transform run).

Prints one JSON object. Figures belong in the README / closing notes, not in code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from newswire.broker import EmbeddedBroker
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.reconcile import pending, reconcile
from newswire.settings import load_settings
from newswire.warehouse import Warehouse

SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fu", "ga", "hi", "ja", "ku", "le")


def message(i: int, fetched_at: datetime) -> dict[str, Any]:
    url = f"https://news{i % 50}.example/story/{i}"
    rng = random.Random(i)
    words = ("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(900))
    text = " ".join(words)[:4000]
    return {
        "schema_version": 1,
        "article_id": hashlib.sha256(url.encode()).hexdigest()[:32],
        "url": url,
        "canonical_url": url,
        "feed_url": f"https://news{i % 50}.example/rss.xml",
        "feed_name": "Bench",
        "source": f"news{i % 50}.example",
        "title": f"Story {i}",
        "text": text,
        "content_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
        "fetched_at": fetched_at.isoformat(),
        "published_at": fetched_at.isoformat(),
        "language": "en",
        "categories": [],
        "tags": [],
    }


def fill(warehouse: Warehouse, *, stored: int, pending_count: int) -> None:
    now = datetime.now(UTC)
    t0 = now - timedelta(hours=2)
    with warehouse.transaction() as cur:
        for start in range(0, stored + pending_count, 500):
            raws, entries, articles = [], [], []
            for i in range(start, min(start + 500, stored + pending_count)):
                at = t0 + timedelta(milliseconds=i)
                m = message(i, at)
                raws.append(
                    (m["article_id"], m["url"], m["url"], m["feed_url"], 200, "text/html", json.dumps(m), at, at)
                )
                entries.append((m["feed_url"], m["url"], m["url"], m["article_id"], "new", at, at, "bench"))
                if i < stored:
                    articles.append((m["article_id"], m["url"], m["url"], m["title"], m["text"], at, i))
            cur.insert_rows(
                "INSERT INTO raw_articles (article_id, url, final_url, feed_url, http_status, content_type, message, "
                "fetched_at, stored_at)",
                raws,
                chunk=100,
            )
            cur.insert_rows(
                "INSERT INTO feed_entries (feed_url, entry_key, entry_url, article_id, outcome, first_seen_at, "
                "last_attempt_at, run_id)",
                entries,
            )
            if articles:
                cur.insert_rows(
                    "INSERT INTO articles (article_id, url, canonical_url, title, text, loaded_at, load_order)",
                    articles,
                    chunk=100,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--stored", type=int, default=20_000)
    parser.add_argument("--postgres", help="PostgreSQL DSN (a fresh schema is created and dropped)")
    args = parser.parse_args()
    schema = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            schema = f"bench_reconcile_{uuid.uuid4().hex[:8]}"
            url = f"{args.postgres}?schema={schema}"
        else:
            url = f"duckdb:///{Path(tmp) / 'w.duckdb'}"
        settings = load_settings(home=Path(tmp) / "home", warehouse_url=url)
        warehouse = Warehouse(settings.resolved_warehouse_url)
        warehouse.migrate()
        t = time.perf_counter()
        fill(warehouse, stored=args.stored, pending_count=args.pending)
        filled = time.perf_counter() - t
        try:
            with EmbeddedBroker() as broker:
                ensure_topics(broker.bootstrap, settings)
                publisher = Publisher(make_producer(broker.bootstrap, settings, client_id="bench"))
                try:
                    t = time.perf_counter()
                    report = pending(warehouse, settings.pending_max_age)
                    status_seconds = time.perf_counter() - t
                    summary = reconcile(warehouse, publisher, grace=settings.reconcile_grace)
                    with warehouse.transaction() as cur:  # as if the transform had stored them all
                        cur.execute(
                            "INSERT INTO articles (article_id, url, canonical_url, loaded_at, load_order) "
                            "SELECT article_id, url, url, stored_at, 0 FROM raw_articles r WHERE NOT EXISTS "
                            "(SELECT 1 FROM articles a WHERE a.article_id = r.article_id)"
                        )
                    idle = reconcile(warehouse, publisher, grace=settings.reconcile_grace)
                finally:
                    publisher.close()
        finally:
            if schema:
                import psycopg

                with psycopg.connect(args.postgres, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(
        json.dumps(
            {
                "warehouse": "postgresql" if args.postgres else "duckdb",
                "stored": args.stored,
                "pending": args.pending,
                "fill_seconds": round(filled, 2),
                "status_query_seconds": round(status_seconds, 3),
                "status": report.line(),
                "reconcile": summary.line(),
                "reconcile_articles_per_second": round(summary.republished / summary.seconds)
                if summary.seconds
                else None,
                "idle_reconcile": idle.line(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
