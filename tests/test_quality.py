"""Quality floors for near-duplicate detection and story clustering on the labelled story corpus.

The floors sit a little under the values measured by ``python -m bench.quality`` (446 articles, 98
stories: duplicates F1 1.0; clusters B-cubed P 0.996 / R 0.977 / F1 0.986; cross-language pairs joined
97%, 2 of 544 wrong; pairs of one story in a Latin and a non-Latin script (zh, ja, ru, ar) joined 64 of 65, none
wrong; parts 4 and 5, Malaysian and Indonesian stories in English, Malay, Indonesian and Chinese: English-Malay
pairs joined 27 of 27, 2 wrong, both from one missed hard negative of part 5; part 6, figures written otherwise in
each script: B-cubed F1 1.0), so a regression in text normalisation, entity cues, embeddings or scoring fails here,
while a few more hard cases in the corpus do not.
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
    order_spread,
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
    assert report.clusters.f1 >= 0.96
    assert report.clusters.precision >= 0.98
    assert report.clusters.recall >= 0.95


def test_cross_language_stories_mostly_join_without_false_joins(report: QualityReport) -> None:
    cross = report.cross_language
    assert cross["gold_pairs"] > 0
    assert cross["recall"] >= 0.90
    assert cross["precision"] >= 0.97


def test_cross_script_stories_join_and_hard_negatives_stay_apart(report: QualityReport) -> None:
    script = report.cross_language["cross_script"]
    assert script["gold_pairs"] >= 30  # English/French vs. Chinese, Russian, Arabic reports of one story
    assert script["gold_pairs_joined"] / script["gold_pairs"] >= 0.90
    assert script["wrong_share"] <= 0.02
    assert report.cross_language["precision"] >= 0.98  # wrong cross-language joins <= 2 %
    for pair in ("EN-ZH", "EN-RU", "AR-EN", "FR-ZH"):
        assert report.cross_language["by_language_pair"][pair]["recall"] >= 0.85, pair


def test_english_and_french_stories_do_not_regress(report: QualityReport) -> None:
    # Without the multilingual part, as measured before embeddings: B-cubed F1 0.980, duplicates F1 1.0.
    latin = evaluate([item for item in load_corpus() if not item.doc.article_id.startswith("p3-")])
    assert latin.clusters.f1 >= 0.98 and latin.clusters.precision >= 0.99
    assert latin.duplicates.f1 >= 0.99


def test_english_and_malay_reports_join_and_malaysian_hard_negatives_stay_apart(report: QualityReport) -> None:
    # Malay is not among the encoder's languages: these joins rest on names, numbers and Malay dates
    # ("5 Mac", "24 Ogos", "tiga orang maut") read through transform/data/malay.json. Read with the built-in
    # rules only, a Pahang flood joined Kelantan's and a Johor migrant boat Sabah's.
    pairs = report.cross_language["by_language_pair"]
    en_ms = pairs["EN-MS"]
    assert en_ms["gold_pairs"] >= 15
    assert en_ms["recall"] >= 0.85
    # the wrong pairs all come from part 5's second data centre (below); part 4's are checked through its events
    assert en_ms["predicted_pairs_wrong"] <= 2
    assert pairs["MS-MS"]["predicted_pairs_wrong"] <= 1 and pairs["MS-ZH"]["recall"] >= 0.85
    part4 = report.parts["p4"]
    assert part4["stories"] >= 8 and part4["clusters"]["f1"] >= 0.95 and part4["duplicates"]["f1"] >= 0.99
    mixed = [entry for entry in report.errors["mixed_events"] if any(s.startswith("p4-") for s in entry["stories"])]
    assert mixed == []  # no Malaysian story shares an event with another story, of part 4 or any other


def test_malay_money_places_and_sequels_join_and_stay_apart(report: QualityReport) -> None:
    # Part 5: amounts written "RM1.2 bilion", "USD2 bilion", "Rp 3 triliun" beside English "RM1.2 billion",
    # "US$2 billion", "Rp 3 trillion"; "Pulau Pinang", "Jawa Barat" beside "Penang", "West Java"; and hard
    # negatives of the same kind days later that name the first story's figure ("nine days after announcing
    # RM1.2 billion for Kelantan") or announce themselves as another incident ("Satu lagi kebakaran kilang di Pulau
    # Pinang": read with the English novelty words only, it joined the first fire's event).
    part5 = report.parts["p5"]
    assert part5["stories"] >= 10 and part5["clusters"]["f1"] >= 0.93 and part5["clusters"]["recall"] >= 0.99
    mixed = [entry for entry in report.errors["mixed_events"] if any(s.startswith("p5-") for s in entry["stories"])]
    # Known miss: the second Johor data centre (its English report names the first one's US$2 billion, its company
    # and town, nine days later) joins the first one's event in English and so in Malay; every other hard negative
    # of the part stays apart, the Penang factory fire announced "Satu lagi kebakaran kilang" among them.
    assert [sorted(entry["stories"]) for entry in mixed] in ([], [["p5-s07", "p5-s08"]])
    pairs = report.cross_language["by_language_pair"]
    assert pairs["EN-ID"]["gold_pairs"] >= 3 and pairs["EN-ID"]["recall"] >= 0.99
    assert pairs["EN-MS"]["gold_pairs"] >= 25 and pairs["EN-MS"]["recall"] >= 0.95


def test_figures_written_otherwise_in_each_script_join_and_hard_negatives_stay_apart(report: QualityReport) -> None:
    # Part 6: English spells counts out ("killing twelve workers", "Forty-two miners") where Chinese, Japanese,
    # Russian and Arabic reports write digits ("12人死亡", "8500億円", "Погибли 9 горняков", "مصرع ١٤ شخصا"); hard
    # negatives of the same kind days later, whose English reports name the first story's toll or sum. Read with the
    # Latin-script digit forms only, it scored B-cubed F1 0.74: three hard negatives shared an event with their
    # first story, and six stories split by script (transform/amounts.py).
    part6 = report.parts["p6"]
    assert part6["stories"] >= 8 and part6["clusters"]["f1"] >= 0.95 and part6["clusters"]["precision"] >= 0.99
    mixed = [entry for entry in report.errors["mixed_events"] if any(s.startswith("p6-") for s in entry["stories"])]
    assert mixed == []
    pairs = report.cross_language["by_language_pair"]
    assert pairs["EN-JA"]["gold_pairs"] >= 3 and pairs["EN-JA"]["recall"] >= 0.99
    assert pairs["AR-EN"]["recall"] >= 0.99 and pairs["EN-RU"]["recall"] >= 0.99
    assert report.cross_language["cross_script"]["predicted_pairs_wrong"] == 0


def test_order_of_arrival_changes_no_part_by_more_than_a_hundredth() -> None:
    # Issue 14: three arrival orders within 0.01 B-cubed. Each batch is clustered in canonical order, so the spread
    # is measured per part of the corpus as well as over the whole (python -m bench.quality --shuffles 3).
    corpus = [item for item in load_corpus() if item.doc.article_id.startswith(("p4-", "p5-"))]
    spread = order_spread(corpus, 3)["canonical"]
    assert spread["spread"] <= 0.01
    assert all(part["spread"] <= 0.01 for part in spread["parts"].values())


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
    assert data["parts"]["p1"]["articles"] == 20 and data["parts"]["p1"]["clusters"]["f1"] > 0


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
