"""What is in the warehouse, in numbers: the summary printed by the demo, ``newswire run`` and ``status``.

Also the accounting invariant: for every ingest run and feed, entries seen = new + duplicates + dead letters
+ skipped. It is one query, so an operator can check it in SQL as easily as the tests do.
"""

from __future__ import annotations

from typing import Any

from newswire.warehouse import Warehouse

INVARIANT_SQL = (
    "SELECT run_id, feed_url, entries_seen, new_articles, duplicates, dead_letters, skipped "
    "FROM ingest_runs WHERE entries_seen <> new_articles + duplicates + dead_letters + skipped"
)


def accounting_violations(warehouse: Warehouse) -> list[dict[str, Any]]:
    """Ingest runs whose entries are not fully accounted for (should always be empty)."""
    return warehouse.query(INVARIANT_SQL)


def totals(warehouse: Warehouse) -> dict[str, int]:
    q = warehouse.scalar
    return {
        "feeds": int(q("SELECT COUNT(*) FROM feeds")),
        "entries": int(q("SELECT COUNT(*) FROM feed_entries")),
        "articles": int(q("SELECT COUNT(*) FROM articles")),
        "duplicates": int(q("SELECT COUNT(*) FROM article_duplicates")),
        "events": int(q("SELECT COUNT(*) FROM events WHERE merged_into IS NULL")),
        "multi_article_events": int(q("SELECT COUNT(*) FROM events WHERE merged_into IS NULL AND article_count > 1")),
        "dead_letters": int(q("SELECT COUNT(*) FROM dead_letters")),
        "skipped": int(q("SELECT COUNT(*) FROM feed_entries WHERE outcome = 'skipped'")),
    }


def run_totals(warehouse: Warehouse, run_ids: list[str]) -> dict[str, int]:
    """Ingest counters summed over the given run ids (one demo = one ingest run)."""
    if not run_ids:
        return {}
    marks = ",".join("?" * len(run_ids))
    rows = warehouse.query(
        "SELECT COUNT(*) AS feeds, COALESCE(SUM(entries_seen), 0) AS entries, "
        "COALESCE(SUM(new_articles), 0) AS new, COALESCE(SUM(duplicates), 0) AS duplicates, "
        "COALESCE(SUM(dead_letters), 0) AS dead_letters, COALESCE(SUM(skipped), 0) AS skipped, "
        "COALESCE(SUM(CASE WHEN status = 'not_modified' THEN 1 ELSE 0 END), 0) AS not_modified, "
        "COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS failed "
        f"FROM ingest_runs WHERE run_id IN ({marks})",
        run_ids,
    )
    return {k: int(v) for k, v in rows[0].items()}


def format_summary(warehouse: Warehouse, *, run: dict[str, int], transform: dict[str, Any], where: str) -> str:
    t = totals(warehouse)
    lines = [
        "Newswire run summary",
        f"  feeds polled        {run.get('feeds', 0)} ({run.get('not_modified', 0)} not modified, "
        f"{run.get('failed', 0)} failed)",
        f"  entries seen        {run.get('entries', 0)}",
        f"  new articles        {run.get('new', 0)}",
        f"  duplicates dropped  {run.get('duplicates', 0)} at ingest (same URL), "
        f"{transform.get('duplicates', 0)} at transform (same or near-same text)",
        f"  skipped by policy   {run.get('skipped', 0)}",
        f"  dead letters        {run.get('dead_letters', 0)}",
        f"  events changed      {transform.get('events_changed', 0)} "
        f"(published {transform.get('events_published', 0)} event messages)",
        "Warehouse totals",
        f"  articles {t['articles']}, duplicates {t['duplicates']}, events {t['events']} "
        f"({t['multi_article_events']} with several articles), dead letters {t['dead_letters']}",
        f"  warehouse: {where}",
        '  look at it: newswire sql "SELECT title, article_count, sources FROM events ORDER BY article_count DESC"',
    ]
    return "\n".join(lines)
