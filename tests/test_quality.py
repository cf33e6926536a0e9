"""Quality floors for near-duplicate detection and story clustering on the labelled story corpus.

The floors sit a little under the values measured by ``python -m bench.quality`` (337 articles, 60
stories: duplicates F1 1.0; clusters B-cubed P 1.0 / R 0.960 / F1 0.980; cross-language pairs joined
94%, none wrong), so a regression in text normalisation, entity cues or scoring fails here, while a
few more hard cases in the corpus do not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.quality import (
    CORPUS_DIR,
    QualityReport,
    bcubed,
    evaluate,
    load_corpus,
    main,
    pairwise,
    synthetic_stream,
)

pytestmark = pytest.mark.skipif(not any(CORPUS_DIR.glob("*.jsonl")), reason="labelled corpus not present")


@pytest.fixture(scope="module")
def report() -> QualityReport:
    return evaluate(load_corpus())


def test_duplicate_detection_floor(report: QualityReport) -> None:
    assert report.duplicates_gold > 0
    assert report.duplicates.f1 >= 0.98
    assert report.duplicates.precision >= 0.98


def test_story_clustering_floor(report: QualityReport) -> None:
    assert report.clusters.f1 >= 0.95
    assert report.clusters.precision >= 0.97
    assert report.clusters.recall >= 0.93


def test_cross_language_stories_mostly_join_without_false_joins(report: QualityReport) -> None:
    cross = report.cross_language
    assert cross["gold_pairs"] > 0
    assert cross["recall"] >= 0.90
    assert cross["precision"] >= 0.97


def test_harness_cli_writes_a_json_report(tmp_path: Path) -> None:
    lines = (CORPUS_DIR / "part1.jsonl").read_text("utf-8").splitlines()[:20]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "subset.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    output = tmp_path / "quality.json"
    assert main(["--corpus", str(corpus), "--output", str(output)]) == 0
    data = json.loads(output.read_text("utf-8"))
    assert data["articles"] == 20
    assert {"precision", "recall", "f1"} <= set(data["clusters"])
    assert data["parameters"]["clustering"]["threshold"] > 0


def test_synthetic_stream_is_ordered_and_sized() -> None:
    docs = synthetic_stream(load_corpus(), 300)
    assert len(docs) == 300
    assert len({d.article_id for d in docs}) == 300
    assert [d.published_at for d in docs] == sorted(d.published_at for d in docs)


# --- the metrics themselves (a wrong metric would make every number above meaningless) -----------


def test_bcubed_on_a_known_example() -> None:
    gold = {"a": "x", "b": "x", "c": "y", "d": "y"}
    assert bcubed(gold, gold).f1 == 1.0
    merged = bcubed(gold, {k: "one" for k in gold})
    assert (merged.precision, merged.recall) == (0.5, 1.0)
    split = bcubed(gold, {k: k for k in gold})
    assert (split.precision, split.recall) == (1.0, 0.5)


def test_pairwise_on_a_known_example() -> None:
    gold = {"a": "g1", "b": "g1", "c": "g1", "d": "d"}
    predicted = {"a": "p", "b": "p", "c": "c", "d": "p"}  # finds a-b, misses a-c and b-c, adds a-d and b-d
    result = pairwise(gold, predicted)
    assert result.precision == pytest.approx(1 / 3, abs=1e-4)
    assert result.recall == pytest.approx(1 / 3, abs=1e-4)
