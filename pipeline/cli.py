"""``newswire``: the command line for operators, analysts and downstream developers.

Every command validates the settings first and exits non-zero with a one-paragraph message on bad
configuration or an unreachable broker/warehouse, instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newswire.errors import NewswireError, SettingsError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _settings(args: argparse.Namespace, **extra: Any) -> Any:
    from newswire.settings import load_settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "warehouse", None):
        overrides["warehouse_url"] = args.warehouse
    if getattr(args, "bootstrap", None):
        overrides["kafka_bootstrap"] = args.bootstrap
    return load_settings(**overrides)


def cmd_run(args: argparse.Namespace) -> int:
    """One ingest pass and one transform pass, with the library code the DAGs call."""
    from ingest.stage import configured_feeds
    from newswire.broker import bootstrap_servers
    from newswire.report import format_summary, run_totals
    from newswire.settings import redact_url
    from newswire.warehouse import Warehouse
    from pipeline.passes import run_passes

    settings = _settings(args, feeds=Path(args.feeds) if args.feeds else None)
    feeds = configured_feeds(settings)
    run_id = f"cli__{time.strftime('%Y%m%dT%H%M%S')}__{uuid.uuid4().hex[:6]}"
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    with bootstrap_servers(settings) as bootstrap:
        passes = run_passes(settings, bootstrap, feeds, run_id=run_id, overlap=not args.sequential)
    ingest, transform = passes.ingest, passes.transform
    s = transform.stats
    print(ingest.line())
    print(transform.line())
    print(
        format_summary(
            warehouse,
            run=run_totals(warehouse, [run_id]),
            transform={
                "duplicates": s.duplicates,
                "events_changed": s.events_changed,
                "events_published": s.events_published,
            },
            where=redact_url(settings.resolved_warehouse_url),  # printed: never the password
        )
    )
    for url, error in sorted(ingest.failures.items()):
        print(f"  failed feed: {url}: {error}")
    return 0


def _require_devtools(command: str) -> None:
    """``up``/``down``/``status``/``demo`` run the development tools, which the production image leaves out."""
    try:
        import devtools  # noqa: F401
    except ImportError:
        raise NewswireError(
            f"newswire {command} needs the development tools (the devtools package of a checkout, installed by "
            "make install); this installation does not include them"
        ) from None


def cmd_demo(args: argparse.Namespace) -> int:
    _require_devtools("demo")
    from devtools.demo import run_demo

    print(run_demo(base_port=args.port))
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    """Run the embedded broker in the foreground; other processes find it through NEWSWIRE_HOME."""
    from newswire.broker import EmbeddedBroker, forget_embedded_broker, record_embedded_broker
    from newswire.messaging import ensure_topics

    settings = _settings(args)
    broker = EmbeddedBroker(port=args.port).start()
    record_embedded_broker(settings.home, broker)
    try:
        ensure_topics(broker.bootstrap, settings)
        print(f"embedded broker on {broker.bootstrap} (pid {broker.pid}); Ctrl-C stops it", flush=True)
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        while not stop:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        forget_embedded_broker(settings.home, broker)
        broker.stop()
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    """Print a topic's messages as they arrive (the example downstream consumer)."""
    from newswire import contracts
    from newswire.broker import running_embedded_broker
    from newswire.messaging import make_consumer

    settings = _settings(args)
    contracts.topic_by_name(args.topic)
    bootstrap = settings.kafka_bootstrap or running_embedded_broker(settings.home)
    if not bootstrap:
        raise NewswireError("no broker: set NEWSWIRE_KAFKA_BOOTSTRAP or start one (newswire broker / make up)")
    consumer = make_consumer(
        bootstrap,
        settings,
        group_id=args.group,
        topics=[args.topic],
        auto_offset_reset="earliest" if args.from_beginning else "latest",
        enable_auto_commit=args.group is not None,
    )
    seen = 0
    deadline = time.monotonic() + args.timeout if args.timeout else None
    try:
        while args.max is None or seen < args.max:
            if deadline is not None and time.monotonic() > deadline:
                break
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    value = r.value.decode("utf-8", "replace") if r.value else None
                    print(
                        json.dumps(
                            {
                                "partition": r.partition,
                                "offset": r.offset,
                                "key": r.key.decode() if r.key else None,
                                "value": json.loads(value) if value else None,
                            },
                            ensure_ascii=False,
                        ),
                        flush=True,
                    )
                    seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from newswire import contracts

    topics = [contracts.topic_by_name(args.topic)] if args.topic else list(contracts.ALL_TOPICS)
    out = {t.name: contracts.schema_for(t) for t in topics}
    print(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2, ensure_ascii=False))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    applied = warehouse.migrate()
    print(f"{warehouse!r}: schema version {warehouse.schema_version()} (applied now: {applied or 'none'})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from newswire.reconcile import pending
    from newswire.report import accounting_violations, totals
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    print(json.dumps(totals(warehouse), indent=2))
    print(_overdue_line(warehouse))
    bad = accounting_violations(warehouse)
    waiting = pending(warehouse, settings.pending_max_age)
    print(waiting.line())
    if bad:
        print(f"ACCOUNTING VIOLATIONS: {len(bad)} run/feed rows do not add up", file=sys.stderr)
    if not waiting.ok:
        print(f"ACCOUNTING VIOLATIONS: {waiting.line()} (run `newswire reconcile`, then a transform)", file=sys.stderr)
    if bad or not waiting.ok:
        return EXIT_ERROR
    print(
        "accounting invariant holds: entries seen = new + duplicates + dead letters + skipped, "
        "and every new entry is in the warehouse or pending for less than "
        f"{settings.pending_max_age:g} s"
    )
    return 0


def _overdue_line(warehouse: Any) -> str:
    """How late scheduled polling runs: listed, enabled feeds past their next poll, and by how much."""
    from ingest.schedule_store import ScheduleStore
    from newswire.warehouse import utcnow

    try:
        o = ScheduleStore(warehouse).overdue(utcnow())
    except Exception:  # a warehouse from before the feed schedule (schema < 5): nothing scheduled yet
        return "feeds overdue: no feed schedule yet (run `newswire migrate`)"
    return (
        f"feeds overdue: {o['overdue']} (max {o['max_overdue_seconds'] / 60:.1f} min, median "
        f"{o['median_overdue_seconds'] / 60:.1f} min late); never polled: {o['never_polled']}; "
        f"disabled: {o['disabled']}"
    )


def cmd_feeds(args: argparse.Namespace) -> int:
    """The feed schedule: each feed's state, interval, next poll, last outcome; or re-enable one feed."""
    from ingest.schedule_store import ScheduleStore, describe
    from newswire.warehouse import Warehouse, utcnow

    settings = _settings(args)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    store = ScheduleStore(warehouse)
    now = utcnow()
    if args.action == "enable":
        if not args.url:
            raise SettingsError("newswire feeds enable needs the feed's URL")
        if not store.enable(args.url, now):
            raise SettingsError(f"no feed {args.url!r} in the feed schedule (see `newswire feeds`)")
        print(f"enabled {args.url}: due now")
        return 0
    rows = [describe(r, now) for r in store.listing()]
    if args.due:
        rows = [r for r in rows if r["due"]]
    if args.failing:
        rows = [r for r in rows if r["consecutive_failures"] > 0]
    if args.disabled:
        rows = [r for r in rows if r["state"] == "disabled"]
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str, ensure_ascii=False))
        return 0
    print(f"{'STATE':<9} {'INTERVAL':>9} {'NEXT POLL':>10} {'LAST':<13} {'FAIL':>4}  FEED")
    for r in rows:
        interval = f"{r['interval_minutes']:.0f} min" if r["interval_minutes"] is not None else "-"
        print(
            f"{r['state']:<9} {interval:>9} {r['next_poll']:>10} {(r['last_outcome'] or '-'):<13} "
            f"{r['consecutive_failures']:>4}  {r['feed_url']}" + (f"  ({r['reason']})" if r["reason"] else "")
        )
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Read-only look into the warehouse (one statement, results as JSON lines)."""
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    for row in Warehouse(settings.resolved_warehouse_url).query(args.query):
        print(json.dumps(row, default=str, ensure_ascii=False))
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    warehouse = Warehouse(settings.resolved_warehouse_url)
    if args.action == "list":
        rows = warehouse.query(
            "SELECT dead_letter_id, stage, reason, retryable, attempts, url, feed_url, last_attempt_at, message "
            "FROM dead_letters ORDER BY last_attempt_at DESC"
        )
        for row in rows:
            print(json.dumps(row, default=str, ensure_ascii=False))
        print(f"{len(rows)} dead letter(s)", file=sys.stderr)
    elif args.action == "retry":
        return _retry_dead_letters(args, settings, warehouse)
    return 0


def _retry_dead_letters(args: argparse.Namespace, settings: Any, warehouse: Any) -> int:
    """Re-drive dead letters: ingest entries and feeds are fetched again, undecodable messages re-validated."""
    from ingest.feedlist import load_feed_list
    from ingest.redrive import redrive_ingest
    from newswire.deadletters import DeadLetterStage
    from newswire.messaging import open_publisher
    from newswire.redrive import RedriveResult, redrive_messages, select_dead_letters
    from pipeline.enrich import enricher_for

    rows = select_dead_letters(warehouse, ids=args.ids or (), stage=args.stage)
    if not rows:
        print("no dead letters to retry", file=sys.stderr)
        return 0
    feeds = load_feed_list(settings.feeds) if settings.feeds else []
    decode = [r for r in rows if r["stage"] == DeadLetterStage.DECODE]
    ingest = [r for r in rows if r["stage"] != DeadLetterStage.DECODE]
    result = RedriveResult()
    with _publishing_broker(settings) as (bootstrap, owned):
        if ingest:
            run_id = f"retry__{time.strftime('%Y%m%dT%H%M%S')}__{uuid.uuid4().hex[:6]}"
            result.add(
                redrive_ingest(settings, bootstrap, ingest, run_id=run_id, feeds=feeds, enrich=enricher_for(settings))
            )
        if decode:
            publisher = open_publisher(bootstrap, settings, client_id="newswire-redrive")
            try:
                result.add(redrive_messages(warehouse, publisher, decode))
            finally:
                publisher.close()
        _transform_if_owned(settings, bootstrap, owned)
    print(result.line())
    for dead_letter_id in result.still_failing:
        print(f"  still failing: {dead_letter_id}")
    return 0


@contextlib.contextmanager
def _publishing_broker(settings: Any) -> Iterator[tuple[str, bool]]:
    """The broker to publish to, and whether this command started it.

    Messages published to a broker this command owns would die with it, so commands that publish run a
    transform pass before it stops (as ``newswire run`` does); with a shared broker the scheduled
    transform picks them up.
    """
    from newswire.broker import bootstrap_servers, running_embedded_broker

    shared = settings.kafka_bootstrap or running_embedded_broker(settings.home)
    if shared:
        yield shared, False
        return
    with bootstrap_servers(settings) as bootstrap:
        yield bootstrap, True


def _transform_if_owned(settings: Any, bootstrap: str, owned: bool) -> None:
    if owned:
        from transform.stage import run_transform

        print(run_transform(settings, bootstrap).line())


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-publish stored raw articles to newswire.articles (recovery without the broker's history)."""
    from ingest.rawstore import replay
    from newswire.messaging import open_publisher
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    since, until = _utc_datetime(args.since), _utc_datetime(args.until) if args.until else None
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    with _publishing_broker(settings) as (bootstrap, owned):
        publisher = open_publisher(bootstrap, settings, client_id="newswire-replay")
        try:
            summary = replay(warehouse, publisher, since, until)
        finally:
            publisher.close()
        print(summary.line())
        _transform_if_owned(settings, bootstrap, owned)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Re-publish stored raw articles the warehouse does not hold (what the topic lost), oldest first."""
    from newswire.messaging import open_publisher
    from newswire.reconcile import reconcile
    from newswire.warehouse import Warehouse

    settings = _settings(args)
    if args.grace is not None and not args.grace >= 0:
        raise SettingsError(f"--grace must be a number of seconds >= 0, got {args.grace}")
    if args.grace is not None:
        settings = settings.model_copy(update={"reconcile_grace": args.grace})
    warehouse = Warehouse(settings.resolved_warehouse_url)
    warehouse.migrate()
    with _publishing_broker(settings) as (bootstrap, owned):
        if owned:  # a broker this command started dies with it: the transform pass it runs reconciles first
            from transform.stage import run_transform

            transformed = run_transform(settings, bootstrap)
            print(transformed.reconciled.line())
            print(transformed.line())
            return 0
        publisher = open_publisher(bootstrap, settings, client_id="newswire-reconcile")
        try:
            print(reconcile(warehouse, publisher, grace=settings.reconcile_grace).line())
        finally:
            publisher.close()
    return 0


def _utc_datetime(text: str) -> datetime:
    """``2026-01-31`` or an ISO 8601 date-time; naive values are UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SettingsError(f"not an ISO date or date-time: {text!r} (e.g. 2026-01-31 or 2026-01-31T12:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_up(args: argparse.Namespace) -> int:
    """Start the local stack: embedded broker, Airflow components, DAGs unpaused (``make up``)."""
    _require_devtools("up")
    from devtools.stack import DAG_IDS, StackConfig, default_home, up
    from devtools.stack_executor import ExecutorConfig

    unknown = sorted(set(args.paused) - set(DAG_IDS))
    if unknown:
        print(f"newswire up: --paused {', '.join(unknown)}: not one of {', '.join(DAG_IDS)}", file=sys.stderr)
        return 2
    config = StackConfig(
        home=default_home(),
        port=args.port,
        sample=args.sample,
        sample_base_port=args.sample_port,
        timeout=args.timeout,
        host_interval=0.2 if args.sample else None,
        executor=ExecutorConfig(args.executor, workers=args.workers, worker_concurrency=args.worker_concurrency),
        paused=tuple(args.paused),
    )
    up(config)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Stop every process the local stack started (``make down``)."""
    _require_devtools("down")
    from devtools.stack import default_home, down

    down(default_home(), timeout=args.timeout)
    return 0


def cmd_stack_status(args: argparse.Namespace) -> int:
    """Processes, health and memory of the local stack; exit 1 unless every process runs."""
    _require_devtools("status")
    from devtools.stack import default_home, status

    report = status(default_home())
    for line in report.lines():
        print(line)
    return 0 if report.running and all(report.running.values()) else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswire",
        description="News feeds -> Kafka -> deduplicated event records. Settings come from NEWSWIRE_* "
        "environment variables or the TOML file named by NEWSWIRE_CONFIG.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--warehouse", help="warehouse URL (overrides NEWSWIRE_WAREHOUSE_URL)")
        p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides NEWSWIRE_KAFKA_BOOTSTRAP)")

    p = sub.add_parser("run", help="one ingest pass and one transform pass over a feed list")
    p.add_argument("--feeds", help="feed list file (.opml, .toml, .yaml); default NEWSWIRE_FEEDS")
    p.add_argument(
        "--sequential",
        action="store_true",
        help="transform only after ingest finished (default: the transform consumes while ingest publishes)",
    )
    common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="run both DAGs in-process on the bundled sample corpus")
    p.add_argument("--port", type=int, default=18700, help="first loopback port of the sample sites")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker in the foreground")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("tail", help="print a topic's messages as they arrive (example consumer)")
    p.add_argument("topic", help="newswire.articles, newswire.events or newswire.dead-letters")
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest retained message")
    p.add_argument("--group", help="consumer group (commits offsets); default: none, nothing committed")
    p.add_argument("--max", type=int, help="stop after this many messages")
    p.add_argument("--timeout", type=float, help="stop after this many seconds")
    common(p)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser("schema", help="print the JSON Schema of a topic's messages")
    p.add_argument("topic", nargs="?", help="topic name (default: all)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("migrate", help="create or upgrade the warehouse schema")
    common(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("status", help="warehouse totals and the accounting invariant")
    common(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("feeds", help="the feed schedule: state, interval, next poll; `feeds enable URL`")
    p.add_argument("action", nargs="?", choices=["list", "enable"], default="list")
    p.add_argument("url", nargs="?", help="the feed to enable")
    p.add_argument("--due", action="store_true", help="only feeds due now")
    p.add_argument("--failing", action="store_true", help="only feeds whose last poll(s) failed")
    p.add_argument("--disabled", action="store_true", help="only disabled feeds")
    p.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    common(p)
    p.set_defaults(func=cmd_feeds)

    p = sub.add_parser("sql", help="run a read query against the warehouse, print JSON lines")
    p.add_argument("query")
    common(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("dead-letters", help="show (list) or re-drive (retry) dead letters")
    p.add_argument("action", choices=["list", "retry"])
    p.add_argument("--id", dest="ids", action="append", help="retry only this dead letter (repeatable)")
    p.add_argument(
        "--stage", help="retry only this stage: page_fetch, extract, feed_fetch, feed_parse, publish, decode"
    )
    common(p)
    p.set_defaults(func=cmd_dead_letters)

    p = sub.add_parser("replay", help="re-publish stored raw articles to newswire.articles")
    p.add_argument("--since", required=True, help="first fetch time to replay (ISO date or date-time, UTC)")
    p.add_argument("--until", help="replay articles fetched before this time (default: now)")
    common(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("reconcile", help="re-publish stored articles the warehouse lacks (the topic lost them)")
    p.add_argument(
        "--grace",
        type=float,
        help="only articles stored more than this many seconds ago (default NEWSWIRE_RECONCILE_GRACE; "
        "0 after a known broker loss)",
    )
    common(p)
    p.set_defaults(func=cmd_reconcile)

    p = sub.add_parser("up", help="start the local stack: broker + Airflow api-server, scheduler, ... (make up)")
    p.add_argument("--port", type=int, default=8080, help="port of the Airflow UI and API (default 8080)")
    p.add_argument("--sample", action="store_true", help="also serve the bundled sample sites and poll them")
    p.add_argument("--sample-port", type=int, default=18700, help="first loopback port of the sample sites")
    p.add_argument(
        "--paused",
        action="append",
        default=[],
        metavar="DAG_ID",
        help="create this DAG paused and leave it paused (repeatable), e.g. newswire_archive to keep the daily "
        "catch-up from running",
    )
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for a healthy stack")
    p.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="Airflow executor: local (SQLite, default) or celery (Redis broker NEWSWIRE_CELERY_BROKER_URL, "
        "PostgreSQL metadata DB NEWSWIRE_AIRFLOW_DATABASE_URL)",
    )
    p.add_argument("--workers", type=int, default=2, help="Celery workers to start (--executor celery; default 2)")
    p.add_argument(
        "--worker-concurrency", type=int, default=2, help="tasks each Celery worker runs at once (default 2)"
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop every process the local stack started (make down)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds of grace before killing")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("stack-status", help="is the local stack running: processes, health, memory")
    p.set_defaults(func=cmd_stack_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except NewswireError as exc:
        print(f"newswire {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
