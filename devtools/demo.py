"""``make demo``: the whole pipeline through Airflow, in-process, on the bundled sample corpus.

Serves the sample sites from loopback (fixed ports, so feed URLs and their stored ETags stay the same from
one demo to the next), starts the embedded broker, runs ``newswire_ingest`` then ``newswire_transform`` with
``dag.test()``, and prints what happened. A second demo reports no new articles: the feeds answer 304.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from devtools import CORPUS, local_airflow
from newswire.settings import load_settings, redact_url

DEFAULT_BASE_PORT = 18700


def run_demo(base_port: int = DEFAULT_BASE_PORT) -> str:
    home = Path(os.environ.get("NEWSWIRE_HOME", ".newswire")).resolve()
    os.environ["NEWSWIRE_HOME"] = str(home)
    # The sample sites live on loopback; a real deployment keeps the private-network guard on.
    os.environ.setdefault("NEWSWIRE_ALLOW_PRIVATE_NETWORKS", "true")
    os.environ.setdefault("NEWSWIRE_HOST_INTERVAL", "0.1")
    local_airflow.configure(home)

    from devtools.devserver import CorpusServer
    from newswire.broker import bootstrap_servers
    from newswire.report import format_summary, run_totals
    from newswire.warehouse import Warehouse, utcnow

    started = utcnow()
    t0 = time.monotonic()
    with CorpusServer(CORPUS, base_port=base_port) as corpus:
        feeds_file = corpus.render_feed_list(home / "demo" / "feeds.toml")
        os.environ["NEWSWIRE_FEEDS"] = str(feeds_file)
        settings = load_settings()
        with bootstrap_servers(settings) as bootstrap:
            os.environ["NEWSWIRE_KAFKA_BOOTSTRAP"] = bootstrap
            local_airflow.init_metadata_db()
            # poll_all: the demo shows a full pass (the second one: every feed answers 304), due or not.
            ingest_run = local_airflow.run_dag("newswire_ingest", run_conf={"poll_all": True})
            local_airflow.run_dag("newswire_transform")
    warehouse = Warehouse(settings.resolved_warehouse_url)
    batches = warehouse.query(
        "SELECT COALESCE(SUM(duplicates), 0) AS duplicates, COALESCE(SUM(events_changed), 0) AS events_changed "
        "FROM transform_batches WHERE started_at >= ?",
        (started,),
    )[0]
    published = warehouse.scalar(
        "SELECT COUNT(*) FROM events WHERE updated_at >= ? AND published_version = version", (started,)
    )
    summary = format_summary(
        warehouse,
        run=run_totals(warehouse, [ingest_run.run_id]),
        transform={**batches, "events_published": published},
        where=str(warehouse.path) if warehouse.dialect == "duckdb" else redact_url(warehouse.url),
    )
    return summary + f"\n  demo wall time: {time.monotonic() - t0:.1f} s"
