"""One in-process ingest pass over loopback feeds concentrated on a few hosts (``newswire run``'s ingest path).

Real feed lists are lopsided: an outlet lists dozens of section feeds on one host beside many sites with one
feed each. ``python -m bench.host_skew --group 4x12 --group 100x1 --entries 4`` serves a
:class:`~bench.feedfarm.FeedFarm` with 4 hosts of 12 feeds and 100 hosts of one feed, publishes 4 entries with
their own article pages on every feed, and polls the list once with :func:`ingest.stage.ingest_feeds` and the
default settings (1 s per host, 32 feeds and 48 entries at once). It reports the pass's time and CPU, and per
group when its feeds finished (from the pass's start: median, 90th percentile, last), which shows whether the
many feeds of a few hosts hold back the others.

``--order outlets`` keeps each host's feeds together, as a feed list exported by outlet is (``newswire run``
polls in list order); ``interleaved`` orders them round-robin over hosts, as scheduled shards do.
``--warm --active 0.1`` measures a polling cycle instead: a first pass stores every feed's ETag, then 10 % of
the feeds get one or two new entries and the timed pass finds the rest unchanged (``bench.stack_cycle``'s
in-process reference, e.g. ``--group 100x100``). ``--env KEY=VALUE`` sets a setting (``NEWSWIRE_`` prefix
optional).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.feedfarm import FeedFarm


def layout(groups: Sequence[str]) -> tuple[list[int], list[str]]:
    """Feed -> host and feed -> group name for groups written ``HOSTSxFEEDS`` (feeds per host), hosts numbered
    in group order and each host's feeds listed together."""
    feed_hosts: list[int] = []
    names: list[str] = []
    host = 0
    for group in groups:
        hosts, per_host = (int(n) for n in group.lower().split("x"))
        for _ in range(hosts):
            feed_hosts.extend([host] * per_host)
            names.extend([group] * per_host)
            host += 1
    return feed_hosts, names


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ingest.feedlist import load_feed_list
    from ingest.schedule_store import interleave_hosts
    from ingest.stage import ingest_feeds
    from newswire.broker import EmbeddedBroker
    from newswire.settings import load_settings

    feed_hosts, names = layout(args.group)
    hosts = max(feed_hosts) + 1
    overrides: dict[str, Any] = {"extract_workers": args.extract_workers}
    for kv in args.env:
        key, _, value = kv.partition("=")
        overrides[key.lower().removeprefix("newswire_")] = value
    report: dict[str, Any] = {
        "groups": args.group,
        "feeds": len(feed_hosts),
        "hosts": hosts,
        "order": args.order,
        "settings": {k: str(v) for k, v in overrides.items()},
        "started_at": datetime.now(UTC).isoformat(),
        "load_before": os.getloadavg(),
    }
    work = Path(tempfile.mkdtemp(prefix="host-skew-"))
    rng = random.Random(args.seed)
    with FeedFarm(
        len(feed_hosts), hosts, network=args.network, latency=args.latency, with_entry=0, feed_hosts=feed_hosts
    ) as farm:
        feeds_file = farm.write_opml(work / "feeds.opml")
        settings = load_settings(home=work / "home", allow_private_networks=True, feeds=feeds_file, **overrides)
        listed = load_feed_list(feeds_file)
        feeds = interleave_hosts(listed) if args.order == "interleaved" else listed
        group_of = {farm.feed_url(i): names[i] for i in range(len(feed_hosts))}
        with EmbeddedBroker() as broker:
            if args.warm:
                t0 = time.monotonic()
                ingest_feeds(settings, broker.bootstrap, feeds, run_id="host-skew-warm")
                report["warm_seconds"] = round(time.monotonic() - t0, 1)
            if args.active:
                active = rng.sample(range(len(feed_hosts)), max(1, int(args.active * len(feed_hosts))))
                for index in active:
                    for _ in range(rng.randint(1, 2)):
                        farm.publish(index)
            else:
                for index in range(len(feed_hosts)):
                    for _ in range(args.entries):
                        farm.publish(index)
            done: dict[str, float] = {}
            cpu0, t0 = _cpu_seconds(), time.monotonic()

            def finished(feed: Any, _report: Any, _failure: Any) -> None:
                done[feed.url] = time.monotonic() - t0

            summary = ingest_feeds(settings, broker.bootstrap, feeds, run_id="host-skew", on_done=finished)
            seconds, cpu = time.monotonic() - t0, _cpu_seconds() - cpu0
    totals = summary.totals()
    report.update(
        seconds=round(seconds, 1),
        cpu_seconds=round(cpu, 1),
        feeds_polled=len(summary.reports),
        failed=len(summary.failures),
        new=totals["new"],
        entries_seen=totals["entries_seen"],
        busiest_host_requests_per_second=max(farm.busiest_window(0.99).values()),
    )
    finish: dict[str, dict[str, float]] = {}
    for group in args.group:
        times = [t for url, t in done.items() if group_of[url] == group]
        if times:
            finish[group] = {
                "median": _quantile(times, 0.5),
                "p90": _quantile(times, 0.9),
                "last": round(max(times), 1),
                "mean": round(statistics.fmean(times), 1),
            }
    report["finished_after_seconds"] = finish
    report["load_after"] = os.getloadavg()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.host_skew", description=__doc__.split("\n\n")[0])
    parser.add_argument("--group", action="append", help="HOSTSxFEEDS: hosts with that many feeds each (repeatable)")
    parser.add_argument("--entries", type=int, default=4, help="new entries per feed (without --active)")
    parser.add_argument("--active", type=float, default=0.0, help="fraction of feeds with 1-2 new entries instead")
    parser.add_argument("--warm", action="store_true", help="a first pass before the timed one (ETags: 304s)")
    parser.add_argument("--order", choices=("outlets", "interleaved"), default="outlets")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each response waits")
    parser.add_argument("--extract-workers", type=int, default=1, help="1: inline, as the stack's shard tasks")
    parser.add_argument("--network", default="127.0.14", help="first three octets of the loopback hosts")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="a setting, KEY=VALUE (repeatable)")
    parser.add_argument("--label", default="", help="what is measured (e.g. before / after), kept in the report")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    args.group = args.group or ["4x12", "100x1"]
    report = {"label": args.label, **run(args)}
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
