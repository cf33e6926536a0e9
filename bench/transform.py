"""Transform core speed, without a broker: decode + dedup + cluster + load of a synthetic stream, in-process.

``bench.pipeline`` measures the transform through Kafka (consumer group join, polls, offset commits); this
harness times what the transform itself does with a batch, so that a change to decoding, features or the
warehouse writes shows up without the broker's fixed waits, on DuckDB or PostgreSQL:

* ``transform``: N synthetic articles (:func:`bench.quality.synthetic_stream`, messages carrying their
  embedding as ingest sends them) encoded as on the topic, then decoded and applied batch by batch with
  :class:`transform.batch.BatchProcessor` on a fresh warehouse; articles/s and a cProfile top list. Two
  phases: ``computed``, messages without clustering features (as shard tasks that extract inline send them:
  the transform computes them), and ``carried``, the same messages with the ``features`` the extraction
  workers add (``pipeline.enrich``), which is what ``newswire run`` now publishes; ``--features`` picks one;
* ``--rebuild``: ``rebuild_events`` over every stored article afterwards (the window spans the whole stream),
  on the last phase's warehouse.

Run ``python -m bench.transform [--articles 2000] [--warehouse-url URL] [--features both|computed|carried]
[--profile] [--rebuild] [--hold-seconds S]``; each phase reports its wall and CPU rates and the target of
issue 15 for its warehouse (:mod:`bench.targets`). The stream's embeddings are computed once per size and cached
under the system temp directory; the carried features are computed before the clock starts (their cost is the
workers'). Batches are held together as ``run_transform`` holds them (:mod:`transform.span`).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import targets
from bench.report import emit
from newswire import contracts
from newswire.warehouse import Warehouse
from transform.clustering import ClusteringConfig
from transform.consumer import Incoming
from transform.documents import ArticleDoc

CACHE = Path(tempfile.gettempdir()) / "newswire-bench-transform"


class NullPublisher:
    """Stands in for :class:`newswire.messaging.Publisher`: events are encoded (schema-checked) and dropped."""

    def __init__(self) -> None:
        self.sent = 0

    def encode(self, topic: contracts.Topic, key: str, message: dict[str, Any]) -> bytes:
        return contracts.encode(topic, message)

    def send(self, topic: contracts.Topic, key: str, message: dict[str, Any]) -> None:
        self.send_encoded(topic, key, self.encode(topic, key, message))

    def send_encoded(self, topic: contracts.Topic, key: str, value: bytes) -> None:
        self.sent += 1

    def confirm(self) -> None:
        return None

    def close(self) -> None:
        return None


def article_message(doc: ArticleDoc) -> dict[str, Any]:
    """The ``newswire.articles`` message ingest would send for ``doc`` (without embedding)."""
    host = f"outlet-{hashlib.sha256(doc.source.encode()).hexdigest()[:8]}.example"
    url = f"https://{host}/{doc.article_id}"
    return {
        "schema_version": 1,
        "article_id": hashlib.sha256(url.encode()).hexdigest()[:32],
        "url": url,
        "canonical_url": url,
        "feed_url": f"https://{host}/feed.xml",
        "source": doc.source,
        "title": doc.title,
        "text": doc.text,
        "content_hash": hashlib.sha256(doc.text.encode()).hexdigest()[:32],
        "fetched_at": contracts.iso(doc.published_at),
        "published_at": contracts.iso(doc.published_at),
        "language": doc.language,
        "categories": [],
        "tags": [],
    }


def stream_messages(count: int, *, embeddings: bool = True, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` article messages of the synthetic stream; with ``embeddings``, each carries its vector."""
    from bench.quality import load_corpus, synthetic_stream

    messages = [article_message(doc) for doc in synthetic_stream(load_corpus(), count, seed=seed)]
    if not embeddings:
        return messages
    from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for, to_message

    CACHE.mkdir(parents=True, exist_ok=True)
    # The stream is built from the labelled corpus, and the cache is shared by every checkout on the machine:
    # keyed by what is embedded, so a corpus with another part (or a checkout without it) never reads vectors
    # of other texts.
    texts = hashlib.sha256(json.dumps([[m["title"], m["text"]] for m in messages]).encode()).hexdigest()[:16]
    path = CACHE / f"stream-{count}-{seed}-{DEFAULT_MODEL}-{texts}.json"
    if path.exists():
        vectors = json.loads(path.read_text("utf-8"))
    else:
        encoder = encoder_for(DEFAULT_MODEL)
        assert encoder is not None
        vectors = [to_message(v) for v in embed_articles(encoder, [(m["title"], m["text"]) for m in messages])]
        path.write_text(json.dumps(vectors), "utf-8")
    return [{**m, "embedding": v} for m, v in zip(messages, vectors, strict=True)]


def with_carried_features(messages: Sequence[dict[str, Any]], config: ClusteringConfig) -> list[dict[str, Any]]:
    """The messages with the ``features`` an extraction worker adds for a transform of ``config``."""
    from ingest.extract import ExtractedArticle
    from pipeline.enrich import feature_enricher

    enrich = feature_enricher(config)
    out = []
    for m in messages:
        page = ExtractedArticle(
            text=m["text"], title=m["title"], author=None, published_at=None, language=m["language"],
            site_name=None, description=None, categories=(), tags=(), image=None, canonical_url=None, og_url=None,
        )  # fmt: skip
        out.append({**m, "features": enrich(page)})
    return out


def records(messages: Sequence[dict[str, Any]]) -> list[tuple[str, bytes]]:
    """The messages as they sit on the topic: (key, JSON bytes)."""
    return [(m["article_id"], contracts.encode(contracts.ARTICLES, m)) for m in messages]


def incoming(batch: Sequence[tuple[str, bytes]], offset: int) -> list[Incoming]:
    """Decode a batch exactly as :class:`transform.consumer.ArticleConsumer` does."""
    out = []
    for i, (key, value) in enumerate(batch):
        message, error = None, None
        try:
            message = contracts.decode(contracts.ARTICLES, value)
        except contracts.ContractError as exc:
            error = exc
        out.append(Incoming(contracts.ARTICLES.name, 0, offset + i, key, value, message, error))
    return out


def fresh_warehouse(url: str | None, workdir: Path) -> Warehouse:
    """A new empty warehouse: a DuckDB file in ``workdir``, or a new schema of the PostgreSQL URL."""
    if url is None:
        url = f"duckdb:///{workdir / 'bench.duckdb'}"
    elif url.startswith("postgres"):
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}schema=bench_{uuid.uuid4().hex[:10]}"
    warehouse = Warehouse(url)
    warehouse.migrate()
    return warehouse


def run_batches(
    warehouse: Warehouse,
    topic: Sequence[tuple[str, bytes]],
    *,
    batch_size: int = 500,
    config: ClusteringConfig | None = None,
    hold_seconds: float | None = None,
) -> dict[str, Any]:
    """Decode and process ``topic`` in batches as ``run_transform`` does, the warehouse held across full
    batches for ``hold_seconds`` (default: the setting's default, ``transform_hold_seconds``); stats, events
    sent and how many hold spans the run took."""
    from newswire.settings import Settings
    from transform.batch import BatchProcessor, BatchStats
    from transform.span import WarehouseSpan

    if hold_seconds is None:
        hold_seconds = float(Settings.model_fields["transform_hold_seconds"].default)
    publisher = NullPublisher()
    processor = BatchProcessor(warehouse, publisher, config=config or ClusteringConfig())  # type: ignore[arg-type]
    total = BatchStats()
    with WarehouseSpan(warehouse, hold_seconds) as span:
        for start in range(0, len(topic), batch_size):
            batch = incoming(topic[start : start + batch_size], start)
            span.before_batch()
            total.add(processor.process(batch, f"batch-{start}"))
            span.after_batch(backlog=len(batch) == batch_size and start + batch_size < len(topic))
    return {"stats": total.__dict__, "events_sent": publisher.sent, "hold_spans": span.spans}


def _profile_top(profiler: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def _phase(
    url: str | None,
    topic: Sequence[tuple[str, bytes]],
    *,
    batch: int,
    config: ClusteringConfig,
    profile: bool,
    top: int,
    hold_seconds: float | None = None,
) -> tuple[dict[str, Any], Warehouse, Path]:
    workdir = Path(tempfile.mkdtemp(prefix="nw-bench-transform-"))
    warehouse = fresh_warehouse(url, workdir)
    profiler = cProfile.Profile() if profile else None
    # The messages were encoded (and so validated) here; a transform process never saw them before.
    contracts.reset_validators()
    t0, cpu0 = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = run_batches(warehouse, topic, batch_size=batch, config=config, hold_seconds=hold_seconds)
    if profiler:
        profiler.disable()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    # CPU seconds of the whole process (DuckDB's own threads included): steadier than the wall time on a shared
    # host, and what the transform would take of one core with the host to itself.
    result.update(
        seconds=round(seconds, 2),
        articles_per_s=round(len(topic) / seconds, 1),
        cpu_seconds=round(cpu, 2),
        articles_per_cpu_s=round(len(topic) / cpu, 1) if cpu else None,
    )
    if profiler:
        print(_profile_top(profiler, top))
    return result, warehouse, workdir


def _backend(url: str | None) -> str:
    """The warehouse backend a URL names (the targets differ per backend); no URL is the default DuckDB file."""
    return "postgres" if url and url.startswith("postgres") else "duckdb"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transform", description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--warehouse-url", help="postgresql://… (a fresh schema is made); default: a DuckDB file")
    parser.add_argument(
        "--features",
        choices=("both", "computed", "carried"),
        default="both",
        help="messages without clustering features, with those the extraction workers add, or both in turn",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the transform, print the top entries")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--hold-seconds",
        type=float,
        help="warehouse hold span across full batches (transform_hold_seconds; default: its default; 0: none)",
    )
    parser.add_argument("--rebuild", action="store_true", help="then time rebuild_events over every article")
    parser.add_argument(
        "--no-embeddings", action="store_true", help="messages without vectors, words and cues only (model 'none')"
    )
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    messages = stream_messages(args.articles, embeddings=not args.no_embeddings)
    config = ClusteringConfig(embedding_model="none") if args.no_embeddings else ClusteringConfig()
    phases = ("computed", "carried") if args.features == "both" else (args.features,)
    report: dict[str, Any] = {"articles": len(messages), "warehouse": _backend(args.warehouse_url)}
    warehouse, workdir = None, None
    for phase in phases:
        topic = records(messages if phase == "computed" else with_carried_features(messages, config))
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        result, warehouse, workdir = _phase(
            args.warehouse_url,
            topic,
            batch=args.batch,
            config=config,
            profile=args.profile,
            top=args.top,
            hold_seconds=args.hold_seconds,
        )
        backend = report["warehouse"]
        result["target"] = targets.target(
            f"transform + load alone ({backend})", result["articles_per_s"], targets.TRANSFORM_RATE[backend],
            "articles/s", True,
        )  # fmt: skip
        report[phase] = result
        verdict = {True: "PASS", False: "FAIL", None: "-"}[result["target"]["passed"]]
        print(
            f"{phase}: {result['articles_per_s']} articles/s ({result['seconds']} s; "
            f"{result['articles_per_cpu_s']} articles per CPU second, {result['cpu_seconds']} s); "
            f"target {result['target']['target']} on {backend}: {verdict}",
            file=sys.stderr,
            flush=True,
        )
    assert warehouse is not None and workdir is not None
    if args.rebuild:
        from transform.rebuild import rebuild_events

        t0 = time.perf_counter()
        everything = (datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        stats = rebuild_events(warehouse, None, *everything, config=config)
        report["rebuild"] = {**stats.as_dict(), "wall_seconds": round(time.perf_counter() - t0, 2)}
    shutil.rmtree(workdir, ignore_errors=True)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
