"""Cost of the multilingual embeddings: the encoder per article, and the transform stage with and without them.

* encoder: milliseconds per article for the USE Multilingual v3 encoder, by input length (title + lead of
  0, 200, 400 and 800 characters of the labelled corpus), with the C ``sentencepiece`` tokenizer (what the
  pipeline uses) and with the package's own pure-Python one; with the cached forward pass
  (``newswire.embedding_forward``, what the pipeline uses) and with the package's own (``*_package_forward``);
  with the input cut to 80 tokens (``use-multilingual-v3-80tok``, ``*_80tok``);
  one article per call (what an extraction worker does) and in batches (what the transform does for messages
  without a vector); the first pass over the sample (a fresh cache) and the load time;
* ``--transform N``: the transform stage alone (embedded broker, fresh DuckDB warehouse, new consumer group)
  over N synthetic articles already on the topic, three ways: messages carrying their embedding (as ingest
  sends them), messages without one (the transform embeds them), and ``NEWSWIRE_EMBEDDING_MODEL=none``
  (words and cues only, the stage as it was before embeddings).

Run ``python -m bench.embedding [--transform 1000]``; the JSON report goes to ``bench/results/embedding.json``.
The numbers are CPU-bound: run it on an otherwise idle machine (the report records the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import newswire.embedding as embedding
from bench.quality import load_corpus, synthetic_stream
from bench.transform import article_message
from newswire import contracts
from newswire.broker import EmbeddedBroker
from newswire.embedding import DEFAULT_MODEL, SHORT_MODEL, UseMultilingualEncoder, embed_articles, to_message
from newswire.messaging import Publisher, ensure_topics, make_producer
from newswire.settings import load_settings
from transform.stage import run_transform

RESULTS = Path(__file__).resolve().parent / "results" / "embedding.json"
LEADS = (0, 200, 400, 800)


def _per_article_ms(encoder: UseMultilingualEncoder, pairs: Sequence[tuple[str, str]], batch: int) -> dict[str, float]:
    """Wall and CPU milliseconds per article (CPU time is the steadier figure on a shared machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(pairs), batch):
        embed_articles(encoder, pairs[start : start + batch])
    return {
        "wall": round(1000 * (time.perf_counter() - started) / len(pairs), 2),
        "cpu": round(1000 * (time.process_time() - cpu) / len(pairs), 2),
    }


def encoder_costs(sample: int) -> dict[str, Any]:
    corpus = load_corpus()
    step = max(1, len(corpus) // sample)
    pairs = [(item.doc.title, item.doc.text) for item in corpus[::step]][:sample]
    out: dict[str, Any] = {"articles": len(pairs)}
    for name, fast, cached, model in (
        ("sentencepiece", True, True, DEFAULT_MODEL),
        ("sentencepiece_package_forward", True, False, DEFAULT_MODEL),
        ("pure_python", False, True, DEFAULT_MODEL),
        ("sentencepiece_80tok", True, True, SHORT_MODEL),  # the input cut to SHORT_MAX_TOKENS tokens
    ):
        started = time.perf_counter()
        encoder = UseMultilingualEncoder(fast_tokenizer=fast, cached_forward=cached, name=model)
        encoder.encode(["warm-up"])
        rows: dict[str, Any] = {"load_seconds": round(time.perf_counter() - started, 2)}
        inputs = [embedding.embedding_input(t, x) for t, x in pairs]
        # The first pass over the sample, six at a time as a worker's batch: with the cached forward pass, every
        # token id is computed once here (the cost of a fresh worker's first articles); the figures below are
        # those of ids seen before.
        rows["ms_first_pass_batched_6"] = _per_article_ms(encoder, pairs, 6)
        encoder.encode(inputs)  # pages in the weights and caches
        cpu = time.process_time()
        for text in inputs:
            encoder.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
        rows["tokenize_only_cpu_ms"] = round(1000 * (time.process_time() - cpu) / len(inputs), 3)
        original = embedding.LEAD_CHARS
        try:
            for lead in LEADS:
                embedding.LEAD_CHARS = lead
                chars = statistics.mean(len(embedding.embedding_input(t, x)) for t, x in pairs)
                rows[f"lead_{lead}"] = {
                    "input_chars": round(chars),
                    "ms_one_by_one": _per_article_ms(encoder, pairs, 1),
                    "ms_batched_32": _per_article_ms(encoder, pairs, 32),
                }
        finally:
            embedding.LEAD_CHARS = original
        out[name] = rows
    return out


def transform_alone(count: int) -> dict[str, Any]:
    docs = synthetic_stream(load_corpus(), count)
    plain = [article_message(doc) for doc in docs]
    encoder = embedding.encoder_for(DEFAULT_MODEL)
    assert encoder is not None
    vectors = embed_articles(encoder, [(m["title"], m["text"]) for m in plain])
    carrying = [{**m, "embedding": to_message(v)} for m, v in zip(plain, vectors, strict=True)]
    out: dict[str, Any] = {"articles": count}
    with tempfile.TemporaryDirectory(prefix="nw-embed-bench-") as workdir:
        for name, messages, model in (
            ("words_and_cues_only", plain, "none"),
            ("embeddings_in_messages", carrying, DEFAULT_MODEL),
            ("embeddings_computed_by_transform", plain, DEFAULT_MODEL),
        ):
            out[name] = _timed_transform(Path(workdir), name, messages, model)
            print(name, out[name], flush=True)
    return out


def _timed_transform(workdir: Path, name: str, messages: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """One variant on its own broker (a fresh, empty topic) and warehouse."""
    with EmbeddedBroker() as broker:
        settings = load_settings(
            home=workdir / name,
            warehouse_url=f"duckdb:///{workdir / name}.duckdb",
            consumer_group=f"bench-{name}",
            embedding_model=model,
            topic_partitions=1,
        )
        ensure_topics(broker.bootstrap, settings)
        publisher = Publisher(make_producer(broker.bootstrap, settings, client_id="bench"))
        for m in messages:
            publisher.send(contracts.ARTICLES, m["article_id"], m)
        publisher.confirm()
        publisher.close()
        cpu = time.process_time()
        summary = run_transform(settings, broker.bootstrap)
        cpu = time.process_time() - cpu
    processed = summary.stats.new_articles + summary.stats.duplicates
    return {
        "messages": summary.stats.messages,
        "seconds": round(summary.seconds, 2),
        "articles_per_s": round(processed / summary.seconds, 1),
        "cpu_seconds": round(cpu, 2),
        "articles_per_cpu_s": round(processed / cpu, 1),
        "events_changed": summary.stats.events_changed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.embedding", description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=96, help="corpus articles timed per configuration")
    parser.add_argument("--transform", type=int, default=0, help="also time the transform over N articles")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"load_average_before": os.getloadavg(), "cpus": os.cpu_count()}
    report["encoder"] = encoder_costs(args.sample)
    print(json.dumps(report["encoder"], indent=1), flush=True)
    if args.transform:
        report["transform_alone"] = transform_alone(args.transform)
    report["load_average_after"] = os.getloadavg()
    report["numpy_version"] = np.__version__
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    print(f"report: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
