"""Messages over the producer's size limit (``NEWSWIRE_MAX_MESSAGE_BYTES``) fail alone, with an accounted outcome.

Each test runs on a real embedded broker with a small limit: an article over it becomes a ``message_too_large``
dead letter while the rest of its chunk is published and stored; an event with too many members to list goes
out with its most recent members; one that cannot fit at all is dead-lettered and leaves the outbox; a dead
letter too large for the topic goes there without its payload (and cut, if need be). Limits below the
settings' 64 KiB minimum are a producer override (``max_request_size``), as only a test needs them.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cli_env import cli_env
from hostile_server import HostileServer, article_page, long_page, ok, rss, rss_item, status
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import MessageSizeTooLargeError
from story_messages import story_article_message
from topics import long_event, read_topic

import transform.stage
from ingest.feedlist import FeedSpec
from ingest.stage import ingest_feeds
from newswire import contracts
from newswire.deadletters import (
    DeadLetterReason,
    DeadLetterStage,
    dead_letter_message,
    send_dead_letter,
    upsert_dead_letter,
)
from newswire.errors import MessageTooLarge
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.reconcile import republish
from newswire.redrive import redrive_messages, select_dead_letters
from newswire.warehouse import Warehouse, utcnow
from pipeline.cli import main
from transform.eventrecords import encode_event
from transform.stage import run_transform

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


def test_an_article_over_the_limit_is_dead_lettered_and_the_rest_of_its_chunk_is_stored(
    broker: str, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer() as server:
        pages = {f"/p/{i}": ok(article_page(f"Ordinary report {i}", f"seed-{i}")) for i in range(3)}
        pages["/p/long"] = ok(long_page("The longest report", 800))
        for path, route in pages.items():
            server.route(path, route)
        items = [rss_item(title=path, link=server.url(path)) for path in pages]
        feed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        warehouse_url = f"duckdb:///{tmp_path / 'w.duckdb'}"
        settings = make_settings(warehouse_url=warehouse_url, respect_robots=False, max_message_bytes=LIMIT)

        summary = ingest_feeds(settings, broker, [FeedSpec(url=feed, name="Long reads")], run_id="oversize-1")

        assert summary.failures == {}
        totals = summary.totals()
        assert (totals["entries_seen"], totals["new"], totals["dead_letters"]) == (4, 3, 1)
        (report,) = summary.reports
        assert report.reasons == {"dead_letter:message_too_large": 1}
        warehouse = Warehouse(settings.resolved_warehouse_url)
        (dl,) = warehouse.query("SELECT stage, reason, retryable, url, message, payload FROM dead_letters")
        assert (dl["stage"], dl["reason"], dl["retryable"]) == ("publish", "message_too_large", False)
        assert dl["url"] == server.url("/p/long") and f"{LIMIT:,} bytes" in dl["message"]
        payload = dl["payload"] if isinstance(dl["payload"], dict) else json.loads(dl["payload"])
        assert payload["entry"]["link"] == server.url("/p/long")  # what a retry needs
        outcomes = {
            r["entry_url"]: r["outcome"] for r in warehouse.query("SELECT entry_url, outcome FROM feed_entries")
        }
        assert outcomes[server.url("/p/long")] == "dead_letter"

        # The topic holds the three others, and the dead letter's copy; the transform stores all three.
        published = read_topic(broker, settings, contracts.ARTICLES)
        assert sorted(m["title"] for m in published) == [f"Ordinary report {i}" for i in range(3)]
        (letter,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
        assert letter["reason"] == "message_too_large" and letter["stage"] == "publish"
        assert run_transform(settings, broker).stats.new_articles == 3
        assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 3

        # With the limit raised (producer and topics alike: the topics keep the limit they were created with, and
        # the retry's publisher reads it), an operator's retry stores it and clears the record.
        _raise_topic_limits(broker, 1024 * 1024)
        cli_env(monkeypatch, tmp_path, broker, warehouse_url, MAX_MESSAGE_BYTES=str(1024 * 1024))
        assert main(["dead-letters", "retry", "--stage", "publish"]) == 0
    assert warehouse.scalar("SELECT COUNT(*) FROM dead_letters") == 0
    assert run_transform(make_settings(warehouse_url=warehouse_url), broker).stats.new_articles == 1
    assert warehouse.scalar("SELECT COUNT(*) FROM articles") == 4


def _raise_topic_limits(broker: str, limit: int) -> None:
    """What an operator does with Kafka's tools: every topic's ``max.message.bytes`` set to ``limit``."""
    admin = KafkaAdminClient(bootstrap_servers=[broker], client_id="test-operator")
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, t.name, {"max.message.bytes": str(limit)})
            for t in contracts.ALL_TOPICS
        ]
        assert set(admin.alter_configs(resources, raise_on_unknown=False)["topic"].values()) == {"OK"}
    finally:
        admin.close()


def _publisher(broker: str, settings: Any, limit: int | None = None) -> Publisher:
    """A publisher whose producer's limit is ``limit`` (any size: an override, not the setting)."""
    ensure_topics(broker, settings)
    overrides = {} if limit is None else {"max_request_size": limit}
    return Publisher(make_producer(broker, settings, client_id="test-oversize", **overrides))


def test_the_publishers_size_check_is_the_producers_own_limit(broker: str, make_settings: Any) -> None:
    """What ``encode`` lets through the producer sends; one byte more, ``encode`` refuses, as the producer would."""
    settings = make_settings()
    publisher = _publisher(broker, settings, 4096)
    try:
        base = {
            "schema_version": 1,
            "dead_letter_id": "dl_size",
            "stage": "publish",
            "reason": "message_too_large",
            "message": "",
            "attempts": 1,
            "created_at": "2026-01-15T10:00:00Z",
        }
        empty = len(publisher.encode(contracts.DEAD_LETTERS, "dl_size", base))
        overhead = 4096 - empty  # the record's bytes beyond the value at the limit, found by search below
        fits = None
        for extra in range(overhead, 0, -1):
            try:
                value = publisher.encode(contracts.DEAD_LETTERS, "dl_size", {**base, "payload": "x" * extra})
            except MessageTooLarge as exc:
                assert exc.reason == "message_too_large" and exc.limit == 4096 and exc.size > 4096
                continue
            fits = extra
            break
        assert fits is not None and fits < overhead
        publisher.send_encoded(contracts.DEAD_LETTERS, "dl_size", value)
        assert publisher.confirm() == 1  # the largest accepted message really goes through
        too_big = json.dumps({**base, "payload": "x" * (fits + 1)}, separators=(",", ":")).encode()
        with pytest.raises(MessageSizeTooLargeError):  # and one byte more is what the producer itself refuses
            publisher.producer.send(contracts.DEAD_LETTERS.name, key=b"dl_size", value=too_big).get(timeout=10)
    finally:
        publisher.close()


def test_an_event_with_too_many_members_goes_out_with_the_most_recent_that_fit(
    broker: str, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()
    publisher = _publisher(broker, settings, 16 * 1024)
    try:
        small = long_event(3)
        assert json.loads(encode_event(publisher, small)) == small  # within the limit: unchanged

        large = long_event(400)
        encodes, parts = [], []
        real_encode, real_part = publisher.encode, contracts.encoded_part
        monkeypatch.setattr(publisher, "encode", lambda *a: encodes.append(1) or real_encode(*a))
        monkeypatch.setattr(contracts, "encoded_part", lambda v: parts.append(v) or real_part(v))
        value = encode_event(publisher, large)
        monkeypatch.undo()
        # Whole (refused), without members (the base size), then the count computed from sizes, confirmed once;
        # each member kept is sized once, and the first one that does not fit ends the count.
        assert len(encodes) == 3
        publisher.send_encoded(contracts.EVENTS, large["event_id"], value)
        assert publisher.confirm() == 1
        (sent,) = read_topic(broker, settings, contracts.EVENTS)
        kept = len(sent["articles"])
        assert 0 < kept < 400 and sent["articles_truncated"] is True
        assert sent["articles"] == large["articles"][-kept:]  # the most recent members, in load order
        assert parts == large["articles"][::-1][: kept + 1]
        assert sent["article_count"] == 400  # the count is still the whole event's
        # As many as fit: one more would not.
        with pytest.raises(MessageTooLarge):
            publisher.encode(
                contracts.EVENTS,
                large["event_id"],
                {**large, "articles": large["articles"][-(kept + 1) :], "articles_truncated": True},
            )
        # An event that does not fit even without members is refused, for the caller to record.
        big_summary = {**large, "summary": "s" * 20_000}
        with pytest.raises(MessageTooLarge):
            encode_event(publisher, big_summary)
    finally:
        publisher.close()


def test_a_decode_dead_letter_too_large_for_the_topic_goes_there_without_its_payload(
    broker: str, make_settings: Any, tmp_path: Path
) -> None:
    """The refused message's bytes (base64: a third larger) stay in the table; the topic copy says their size."""
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", max_message_bytes=LIMIT)
    raw = b'{"schema_version": 1, "text": "' + b"y" * (LIMIT - 1000) + b'"'  # under the limit, not JSON
    producer = KafkaProducer(bootstrap_servers=broker)
    producer.send(contracts.ARTICLES.name, key=b"junk", value=raw)
    producer.flush(10)
    producer.close()

    assert run_transform(settings, broker).stats.dead_letters == 1

    (row,) = Warehouse(settings.resolved_warehouse_url).query("SELECT reason, payload FROM dead_letters")
    payload = row["payload"] if isinstance(row["payload"], dict) else json.loads(row["payload"])
    assert row["reason"] == "invalid_json" and base64.b64decode(payload["value_base64"]) == raw
    (letter,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert letter["reason"] == "invalid_json"
    assert letter["payload"]["omitted"] == "message_too_large" and letter["payload"]["record_bytes"] > LIMIT


STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


def _story_messages() -> dict[str, list[dict[str, Any]]]:
    """Article messages of the labelled stories (originals and follow-ups), by story, in the corpus's order."""
    by_story: dict[str, list[dict[str, Any]]] = {}
    for line in (STORIES / "part1.jsonl").read_text().splitlines():
        d = json.loads(line) if line.strip() else None
        if d is None or d["kind"] not in ("original", "followup"):
            continue
        by_story.setdefault(d["story_id"], []).append(story_article_message(d))
    return by_story


def _send_articles(broker: str, settings: Any, messages: list[dict[str, Any]]) -> None:
    publisher = _publisher(broker, settings)
    try:
        for m in messages:
            publisher.send(contracts.ARTICLES, m["article_id"], m)
        publisher.confirm()
    finally:
        publisher.close()


def _transform_with_limit(
    settings: Any, broker: str, limit: int, monkeypatch: pytest.MonkeyPatch
) -> transform.stage.TransformSummary:
    """A real transform run whose producer's limit is ``limit`` (below the settings' minimum if need be)."""
    with monkeypatch.context() as patch:
        patch.setattr(
            transform.stage,
            "make_producer",
            lambda bootstrap, s, *, client_id, **kw: make_producer(
                bootstrap, s, client_id=client_id, max_request_size=limit, **kw
            ),
        )
        return run_transform(settings, broker)


def test_the_outbox_sends_an_event_over_the_limit_cut_and_never_sticks_on_one_that_cannot_fit(
    broker: str, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse = Warehouse(settings.resolved_warehouse_url)
    stories = _story_messages()
    story = stories["p1-s01"]
    first, later = story[:-1], story[-1]
    _send_articles(broker, settings, first)
    assert run_transform(settings, broker).stats.new_articles == len(first)

    # The event the story formed, and the size of its whole message now: the limit of the next run.
    (row,) = warehouse.query(
        "SELECT event_id, COUNT(*) AS n FROM event_articles WHERE article_id = ? GROUP BY event_id",
        [first[-1]["article_id"]],
    )
    event_id = row["event_id"]
    (current,) = [e for e in read_topic(broker, settings, contracts.EVENTS) if e["event_id"] == event_id][-1:]
    assert len(current["articles"]) >= 2 and "articles_truncated" not in current
    limit = Publisher.record_size(event_id, contracts.encode(contracts.EVENTS, current))

    # One more member: the new version is over that limit, and goes out with its most recent members.
    _send_articles(broker, settings, [later])
    summary = _transform_with_limit(settings, broker, limit, monkeypatch)
    assert summary.stats.new_articles == 1
    members = [
        r["article_id"]
        for r in warehouse.query(
            "SELECT a.article_id FROM event_articles ea JOIN articles a ON a.article_id = ea.article_id "
            "WHERE ea.event_id = ? ORDER BY a.load_order",
            [event_id],
        )
    ]
    assert members[-1] == later["article_id"] and len(members) == len(current["articles"]) + 1
    sent = [e for e in read_topic(broker, settings, contracts.EVENTS) if e["event_id"] == event_id][-1]
    assert sent["version"] == current["version"] + 1 and sent["articles_truncated"] is True
    assert sent["article_count"] == len(members)
    kept = [a["article_id"] for a in sent["articles"]]
    assert 0 < len(kept) < len(members) and kept == members[-len(kept) :]  # the newest, in load order
    assert warehouse.scalar("SELECT COUNT(*) FROM events WHERE version > published_version") == 0

    # A limit no event fits even without members (the review's 1 KiB): each new version is logged,
    # dead-lettered and marked published; the run succeeds, and the next one has nothing left to send.
    events_before = len(read_topic(broker, settings, contracts.EVENTS))
    other = stories["p1-s02"][:2]
    _send_articles(broker, settings, other)
    dead_lettering = _transform_with_limit(settings, broker, 1024, monkeypatch)
    assert dead_lettering.stats.new_articles == 2
    assert warehouse.scalar("SELECT COUNT(*) FROM events WHERE version > published_version") == 0
    letters = warehouse.query("SELECT stage, reason, retryable, payload FROM dead_letters")
    assert letters and {(d["stage"], d["reason"], d["retryable"]) for d in letters} == {
        ("publish", "message_too_large", False)
    }
    new_events = {r["event_id"]: r["version"] for r in warehouse.query("SELECT event_id, version FROM events")}
    for d in letters:
        payload = d["payload"] if isinstance(d["payload"], dict) else json.loads(d["payload"])
        assert new_events[payload["event_id"]] == payload["version"]
    assert len(read_topic(broker, settings, contracts.EVENTS)) == events_before  # none went out
    assert dead_lettering.stats.events_published == 0  # dead-lettered versions are not counted as published
    copies = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert len(copies) == len(letters) and all(c["reason"] == "message_too_large" for c in copies)
    again = _transform_with_limit(settings, broker, 1024, monkeypatch)
    assert again.stats.new_articles == 0 and again.stats.events_published == 0
    # An event's dead letter has nothing a retry could use: the retry command passes it over.
    monkeypatch.setenv("NEWSWIRE_WAREHOUSE_URL", settings.resolved_warehouse_url)
    monkeypatch.setenv("NEWSWIRE_KAFKA_BOOTSTRAP", broker)
    monkeypatch.setenv("NEWSWIRE_HOME", str(tmp_path / "home"))
    assert main(["dead-letters", "retry", "--stage", "publish"]) == 0
    assert warehouse.scalar("SELECT COUNT(*) FROM dead_letters") == len(letters)


def test_republish_at_a_lowered_limit_skips_the_message_over_it_and_sends_the_rest(
    broker: str, make_settings: Any
) -> None:
    settings = make_settings()
    stories = _story_messages()
    small = stories["p1-s01"][:2]
    big = {**stories["p1-s02"][0], "text": "Long report. " * 2000}
    publisher = _publisher(broker, settings, 8 * 1024)
    try:
        assert republish(publisher, [small[0], big, small[1]], confirm_every=2) == (2, 1)
    finally:
        publisher.close()
    assert [m["article_id"] for m in read_topic(broker, settings, contracts.ARTICLES)] == [
        m["article_id"] for m in small
    ]


def test_an_ingest_dead_letter_with_a_huge_entry_goes_to_the_topic_without_it(
    broker: str, make_settings: Any, tmp_path: Path
) -> None:
    """A feed item whose summary alone is over the limit, and whose page is gone: its ``page_fetch`` dead
    letter is sent without the entry, the table keeps it, and the chunk's article is published once."""
    with HostileServer() as server:
        server.route("/p/ok", ok(article_page("An ordinary report", "seed-ok")))
        server.route("/p/gone", status(404))
        items = [
            rss_item(title="ok", link=server.url("/p/ok")),
            rss_item(title="gone", link=server.url("/p/gone"), description="A summary that goes on. " * 4000),
        ]
        feed = server.route("/feed.xml", ok(rss(items).encode(), "application/rss+xml"))
        settings = make_settings(
            warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}", respect_robots=False, max_message_bytes=LIMIT
        )
        for run in ("huge-entry-1", "huge-entry-2"):
            summary = ingest_feeds(settings, broker, [FeedSpec(url=feed, name="Huge")], run_id=run)
            assert summary.failures == {}
    warehouse = Warehouse(settings.resolved_warehouse_url)
    (dl,) = warehouse.query("SELECT stage, payload FROM dead_letters")
    payload = dl["payload"] if isinstance(dl["payload"], dict) else json.loads(dl["payload"])
    assert dl["stage"] == "page_fetch" and len(payload["entry"]["summary"]) > LIMIT  # the table: whole
    letters = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert letters and all(
        letter["payload"]["omitted"] == "message_too_large" and letter["payload"]["record_bytes"] > LIMIT
        for letter in letters
    )
    (article,) = read_topic(broker, settings, contracts.ARTICLES)  # published once, over both runs
    assert article["title"] == "An ordinary report"


def test_a_dead_letter_too_large_even_without_its_payload_is_cut_to_fit(broker: str, make_settings: Any) -> None:
    """A long URL and a message of multi-byte characters over a (test-only) 3 KiB limit: cut, never refused."""
    settings = make_settings()
    publisher = _publisher(broker, settings, 3 * 1024)
    dl = {
        "schema_version": 1,
        "dead_letter_id": "dl_cut",
        "stage": "page_fetch",
        "reason": "http_status",
        "message": "é" * 2000,
        "retryable": True,
        "url": "https://example.org/" + "a" * 5000,
        "feed_url": "https://example.org/feed.xml",
        "attempts": 1,
        "payload": {"entry": {"summary": "x" * 10_000}},
        "created_at": "2026-01-15T10:00:00Z",
        "extra": "y" * 5000,
    }
    try:
        send_dead_letter(publisher, dl)
        assert publisher.confirm() == 1
    finally:
        publisher.close()
    (copy,) = read_topic(broker, settings, contracts.DEAD_LETTERS)
    assert copy["payload"]["omitted"] == "message_too_large" and "extra" not in copy
    assert (copy["dead_letter_id"], copy["stage"], copy["reason"]) == ("dl_cut", "page_fetch", "http_status")
    assert dl["message"].startswith(copy["message"]) and len(copy["message"]) < 2000
    assert copy["url"] is None or dl["url"].startswith(copy["url"])


def test_redrive_carries_on_past_a_message_over_the_limit_and_never_resends_the_others(
    broker: str, make_settings: Any, tmp_path: Path
) -> None:
    """Three decode dead letters whose stored bytes now pass the contract (it was fixed since); one is over the
    producer's limit. The two others are re-published and resolved; a second retry sends only that one, again
    refused, so each of the two is on the topic once."""
    settings = make_settings(warehouse_url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    ensure_topics(broker, settings)
    stories = _story_messages()
    small = stories["p1-s01"][:2]
    big = {**stories["p1-s02"][0], "text": "Long report. " * 2000}
    warehouse = Warehouse(settings.resolved_warehouse_url)
    with warehouse.transaction() as cur:
        for offset, m in enumerate((small[0], big, small[1])):
            value = contracts.encode(contracts.ARTICLES, m)
            dl = dead_letter_message(
                dead_letter_id=f"dl_{offset}",
                stage=DeadLetterStage.DECODE,
                reason=DeadLetterReason.SCHEMA_VIOLATION,
                message="refused by the contract of the day",
                retryable=False,
                url=None,
                feed_url=None,
                payload={
                    "topic": contracts.ARTICLES.name,
                    "partition": 0,
                    "offset": offset,
                    "key": m["article_id"],
                    "value_base64": base64.b64encode(value).decode("ascii"),
                },
                created_at=utcnow(),
            )
            upsert_dead_letter(cur, dict(dl), utcnow())

    publisher = _publisher(broker, settings, 8 * 1024)
    try:
        first = redrive_messages(warehouse, publisher, select_dead_letters(warehouse))
        assert (first.retried, first.resolved, first.still_failing) == (3, 2, ["dl_1"])
        (left,) = warehouse.query("SELECT dead_letter_id, reason, attempts FROM dead_letters")
        assert (left["dead_letter_id"], left["reason"], left["attempts"]) == ("dl_1", "message_too_large", 2)
        again = redrive_messages(warehouse, publisher, select_dead_letters(warehouse))
        assert (again.retried, again.resolved, again.still_failing) == (1, 0, ["dl_1"])
    finally:
        publisher.close()
    sent = [m["article_id"] for m in read_topic(broker, settings, contracts.ARTICLES)]
    assert sorted(sent) == sorted(m["article_id"] for m in small)  # each once, the big one never


def test_confirm_reports_a_size_refusal_as_message_too_large(broker: str, make_settings: Any) -> None:
    """Bytes that bypassed ``encode`` and are over the producer's limit: not retryable, not a broker outage."""
    settings = make_settings()
    publisher = _publisher(broker, settings, 4096)
    try:
        with pytest.raises(MessageTooLarge) as caught:
            publisher.send_encoded(contracts.DEAD_LETTERS, "k", b'{"x":"' + b"y" * 8000 + b'"}')
            publisher.confirm()
        assert caught.value.retryable is False and caught.value.limit == 4096
        assert publisher.confirm() == 0  # nothing left pending
    finally:
        publisher.close()
