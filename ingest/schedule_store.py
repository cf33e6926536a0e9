"""The ``feed_schedule`` table: which feeds are due, who is polling them, and what their last poll decided.

A ``newswire_ingest`` run first :meth:`ScheduleStore.sync`\\ s the table with the feed list (new feeds due at
once, removed ones kept with ``in_list`` FALSE), then :meth:`ScheduleStore.claim` s the due feeds under a
fresh token, split into shards; every shard task polls only the feeds claimed for its index and records each
feed's next poll (:meth:`ScheduleStore.record`), which releases the claim. Claims expire, so the feeds of a
shard killed mid-run are due again after ``claim_ttl``; a second run overlapping the first never claims a
feed the first still holds. The interval policy itself is in :mod:`ingest.schedule_policy`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest.feedlist import FeedSpec
from ingest.politeness import host_key
from ingest.schedule_policy import FeedSchedule, ServerHints
from newswire.warehouse import Cursor, Warehouse

#: A feed due within this margin of a run counts as due now: jitter must not make a feed whose interval
#: equals the run period skip a whole run.
DUE_GRACE = timedelta(seconds=60)

_COLUMNS = (
    "feed_url, host, in_list, min_interval_seconds, interval_seconds, next_poll_at, last_polled_at, last_outcome, "
    "last_reason, consecutive_failures, permanent_failures, last_new_entries_at, hints, disabled_at, "
    "disabled_reason, claim_token, claim_shard, claimed_until, added_at, removed_at"
)


def plan_shards(urls: Iterable[str], shards: int) -> list[list[str]]:
    """Split feed URLs into at most ``shards`` groups, every host's feeds in one group (so one process spaces
    all requests to a host), groups balanced by feed count: largest host first into the lightest shard.
    Deterministic for a given set of URLs."""
    by_host: dict[str, list[str]] = defaultdict(list)
    for url in sorted(set(urls)):
        by_host[host_key(url)].append(url)
    count = max(1, min(shards, len(by_host)))
    groups: list[list[str]] = [[] for _ in range(count)]
    for _host, members in sorted(by_host.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lightest = min(range(count), key=lambda i: (len(groups[i]), i))
        groups[lightest].extend(members)
    return [g for g in groups if g]


def interleave_hosts(feeds: Sequence[FeedSpec]) -> list[FeedSpec]:
    """Feeds ordered round-robin over their hosts, so concurrent pollers start on different hosts instead of
    queueing behind one host's spacing."""
    by_host: dict[str, list[FeedSpec]] = defaultdict(list)
    for feed in feeds:
        by_host[host_key(feed.url)].append(feed)
    queues = list(by_host.values())
    out: list[FeedSpec] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


@dataclass(frozen=True)
class Claim:
    token: str
    shards: dict[int, int]  # shard index -> feeds claimed

    @property
    def feeds(self) -> int:
        return sum(self.shards.values())


class ScheduleStore:
    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def sync(self, feeds: Sequence[FeedSpec], now: datetime) -> dict[str, int]:
        """Match the table to the feed list: added feeds due at once, removed ones out of the list (history kept)."""
        wanted = {f.url: f for f in feeds}
        with self.warehouse.transaction() as cur:
            rows = cur.execute("SELECT feed_url, in_list, min_interval_seconds FROM feed_schedule").fetchall()
            known = {url: (bool(in_list), minimum) for url, in_list, minimum in rows}
            added = [(url, host_key(url), True, _min_seconds(f), now) for url, f in wanted.items() if url not in known]
            cur.insert_rows(
                "INSERT INTO feed_schedule (feed_url, host, in_list, min_interval_seconds, added_at)",
                added,
                "ON CONFLICT (feed_url) DO NOTHING",
            )
            back = [u for u, (listed, _) in known.items() if u in wanted and not listed]
            gone = [u for u, (listed, _) in known.items() if u not in wanted and listed]
            if back:
                cur.execute_in(
                    "UPDATE feed_schedule SET in_list = TRUE, removed_at = NULL, next_poll_at = NULL "
                    "WHERE feed_url IN {in}",
                    back,
                )
            if gone:
                cur.execute_in(
                    "UPDATE feed_schedule SET in_list = FALSE, removed_at = ?, claim_token = NULL, "
                    "claimed_until = NULL WHERE feed_url IN {in}",
                    gone,
                    (now,),
                )
            changed = [
                (_min_seconds(wanted[u]), u)
                for u, (_, minimum) in known.items()
                if u in wanted and _min_seconds(wanted[u]) != minimum
            ]
            cur.executemany("UPDATE feed_schedule SET min_interval_seconds = ? WHERE feed_url = ?", changed)
        return {"added": len(added), "removed": len(gone), "returned": len(back), "listed": len(wanted)}

    def claim(self, token: str, now: datetime, ttl: timedelta, shards: int, *, every_feed: bool = False) -> Claim:
        """Claim every due, listed, enabled feed not claimed by a live run, split into shards by host
        (``every_feed``: due or not).

        The UPDATE re-checks that each row is still unclaimed, and the result is read back by token: on
        PostgreSQL a concurrent claimer blocks on the rows and then skips them, on DuckDB the single writer
        serializes the two; either way no feed ends up in two live claims. A retried claim task (same token)
        takes its own live claims again.
        """
        with self.warehouse.transaction() as cur:
            due = [
                row[0]
                for row in cur.execute(
                    "SELECT feed_url FROM feed_schedule WHERE in_list AND disabled_reason IS NULL "
                    "AND (next_poll_at IS NULL OR next_poll_at <= ? OR ?) "
                    "AND (claimed_until IS NULL OR claimed_until <= ? OR claim_token = ?) "
                    "ORDER BY next_poll_at NULLS FIRST, feed_url",
                    (now + DUE_GRACE, every_feed, now, token),
                ).fetchall()
            ]
            for index, group in enumerate(plan_shards(due, shards)):
                cur.execute_in(
                    "UPDATE feed_schedule SET claim_token = ?, claim_shard = ?, claimed_until = ? "
                    "WHERE (claimed_until IS NULL OR claimed_until <= ? OR claim_token = ?) AND feed_url IN {in}",
                    group,
                    (token, index, now + ttl, now, token),
                )
            rows = cur.execute(
                "SELECT claim_shard, COUNT(*) FROM feed_schedule WHERE claim_token = ? GROUP BY claim_shard",
                (token,),
            ).fetchall()
        return Claim(token, {int(shard): int(n) for shard, n in rows})

    def claimed(self, token: str, shard: int, now: datetime, ttl: timedelta) -> list[str]:
        """The feeds still held by ``token`` for ``shard`` (a retried shard skips those already recorded);
        their claims are renewed for another ``ttl``."""
        with self.warehouse.transaction() as cur:
            cur.execute(
                "UPDATE feed_schedule SET claimed_until = ? WHERE claim_token = ? AND claim_shard = ? "
                "AND claimed_until IS NOT NULL",
                (now + ttl, token, shard),
            )
            rows = cur.execute(
                "SELECT feed_url FROM feed_schedule WHERE claim_token = ? AND claim_shard = ? "
                "AND claimed_until IS NOT NULL ORDER BY feed_url",
                (token, shard),
            ).fetchall()
        return [r[0] for r in rows]

    def states(self, urls: Sequence[str]) -> dict[str, FeedSchedule]:
        with self.warehouse.read() as cur:
            rows = cur.select_in(
                "SELECT feed_url, interval_seconds, next_poll_at, consecutive_failures, permanent_failures, "
                "last_new_entries_at, disabled_reason, hints FROM feed_schedule WHERE feed_url IN {in}",
                list(urls),
            )
        return {r["feed_url"]: _state(r) for r in rows}

    def record(self, decisions: Sequence[tuple[str, str, str | None, FeedSchedule]], token: str, now: datetime) -> None:
        """Store each feed's new schedule (``(url, outcome, reason, state)``) and release ``token``'s claims on
        them; a claim another run took over meanwhile stays with that run."""
        if not decisions:
            return
        with self.warehouse.transaction() as cur:
            self.write(cur, decisions, token, now)

    @staticmethod
    def write(
        cur: Cursor, decisions: Sequence[tuple[str, str, str | None, FeedSchedule]], token: str, now: datetime
    ) -> None:
        """:meth:`record` inside a transaction the caller holds (a batched shard's ledger flush)."""
        rows = []
        latest = {d[0]: d for d in decisions}  # one row per feed and statement (upserts refuse repeats)
        for url, outcome, reason, s in latest.values():
            rows.append(
                (
                    url,
                    host_key(url),
                    s.interval.total_seconds() if s.interval is not None else None,
                    s.next_poll_at,
                    now,
                    outcome,
                    (reason or "")[:500] or None,
                    s.consecutive_failures,
                    s.permanent_failures,
                    s.last_new_entries_at,
                    json.dumps(s.document_hints.to_json()),
                    now if s.disabled_reason else None,
                    s.disabled_reason,
                    token,
                    now,
                )
            )
        if not rows:
            return
        cur.insert_rows(
            "INSERT INTO feed_schedule (feed_url, host, interval_seconds, next_poll_at, last_polled_at, "
            "last_outcome, last_reason, consecutive_failures, permanent_failures, last_new_entries_at, hints, "
            "disabled_at, disabled_reason, claim_token, added_at)",
            rows,
            "ON CONFLICT (feed_url) DO UPDATE SET interval_seconds = excluded.interval_seconds, "
            "next_poll_at = excluded.next_poll_at, last_polled_at = excluded.last_polled_at, "
            "last_outcome = excluded.last_outcome, last_reason = excluded.last_reason, "
            "consecutive_failures = excluded.consecutive_failures, "
            "permanent_failures = excluded.permanent_failures, "
            "last_new_entries_at = excluded.last_new_entries_at, hints = excluded.hints, "
            "disabled_at = COALESCE(feed_schedule.disabled_at, excluded.disabled_at), "
            "disabled_reason = excluded.disabled_reason, "
            "claimed_until = CASE WHEN feed_schedule.claim_token = excluded.claim_token THEN NULL "
            "ELSE feed_schedule.claimed_until END",
        )

    def enable(self, url: str, now: datetime) -> bool:
        """Re-enable a disabled feed: failures forgotten, due at once. False if the feed is unknown."""
        with self.warehouse.transaction() as cur:
            found = cur.execute("SELECT COUNT(*) FROM feed_schedule WHERE feed_url = ?", (url,)).scalar()
            if not found:
                return False
            cur.execute(
                "UPDATE feed_schedule SET disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0, "
                "permanent_failures = 0, next_poll_at = ? WHERE feed_url = ?",
                (now, url),
            )
        return True

    def listing(self) -> list[dict[str, Any]]:
        """Every feed's schedule row (listed or not), for ``newswire feeds``."""
        with self.warehouse.read() as cur:
            return cur.execute(f"SELECT {_COLUMNS} FROM feed_schedule ORDER BY feed_url").dicts()

    def overdue(self, now: datetime) -> dict[str, Any]:
        """How many listed, enabled feeds are past their next poll, and by how much (seconds)."""
        with self.warehouse.read() as cur:
            rows = cur.execute(
                "SELECT next_poll_at FROM feed_schedule WHERE in_list AND disabled_reason IS NULL "
                "AND next_poll_at IS NOT NULL AND next_poll_at < ?",
                (now - DUE_GRACE,),
            ).fetchall()
            never = cur.execute(
                "SELECT COUNT(*) FROM feed_schedule WHERE in_list AND disabled_reason IS NULL AND next_poll_at IS NULL"
            ).scalar()
            disabled = cur.execute(
                "SELECT COUNT(*) FROM feed_schedule WHERE in_list AND disabled_reason IS NOT NULL"
            ).scalar()
        lags = sorted((now - r[0]).total_seconds() for r in rows)
        return {
            "overdue": len(lags),
            "never_polled": int(never or 0),
            "disabled": int(disabled or 0),
            "max_overdue_seconds": round(lags[-1], 1) if lags else 0.0,
            "median_overdue_seconds": round(lags[len(lags) // 2], 1) if lags else 0.0,
        }


def describe(row: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """One ``feed_schedule`` row as ``newswire feeds`` shows it: a state, minutes, a relative next poll."""
    if row["disabled_reason"]:
        state = "disabled"
    elif not row["in_list"]:
        state = "removed"
    elif row["last_polled_at"] is None:
        state = "new"
    elif row["consecutive_failures"]:
        state = "failing"
    else:
        state = "ok"
    due_at = row["next_poll_at"]
    listed = state not in ("disabled", "removed")
    due = listed and (due_at is None or due_at <= now + DUE_GRACE)
    if not listed:
        relative = "-"
    elif due_at is None or due_at <= now:
        late = (now - due_at).total_seconds() / 60 if due_at is not None else 0.0
        relative = "now" if late < 1 else f"{late:.0f}m late"
    else:
        relative = f"in {(due_at - now).total_seconds() / 60:.0f}m"
    seconds = row["interval_seconds"]
    return {
        "feed_url": row["feed_url"],
        "state": state,
        "due": due,
        "interval_minutes": round(seconds / 60, 1) if seconds is not None else None,
        "next_poll_at": due_at,
        "next_poll": relative,
        "last_polled_at": row["last_polled_at"],
        "last_outcome": row["last_outcome"],
        "consecutive_failures": int(row["consecutive_failures"] or 0),
        "last_new_entries_at": row["last_new_entries_at"],
        "reason": row["disabled_reason"] or row["last_reason"],
        "claimed": row["claimed_until"] is not None and row["claimed_until"] > now,
    }


def _min_seconds(feed: FeedSpec) -> float | None:
    return feed.poll_interval_minutes * 60.0 if feed.poll_interval_minutes else None


def _state(row: Mapping[str, Any]) -> FeedSchedule:
    seconds = row["interval_seconds"]
    return FeedSchedule(
        interval=timedelta(seconds=seconds) if seconds is not None else None,
        next_poll_at=row["next_poll_at"],
        consecutive_failures=int(row["consecutive_failures"] or 0),
        permanent_failures=int(row["permanent_failures"] or 0),
        last_new_entries_at=row["last_new_entries_at"],
        disabled_reason=row["disabled_reason"],
        document_hints=ServerHints.from_json(json.loads(row["hints"]) if row["hints"] else None),
    )
