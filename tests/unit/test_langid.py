"""Language identification for articles that declare no language (ingest workers, transform fallback)."""

from __future__ import annotations

import json
from pathlib import Path

from newswire.langid import detect_language
from transform.batch import canonical_order, with_language

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


def test_every_labelled_article_of_the_multilingual_corpus_is_identified() -> None:
    docs = [json.loads(line) for p in sorted(STORIES.glob("*.jsonl")) for line in p.read_text("utf-8").splitlines()]
    docs = [d for d in docs if d["doc_id"].startswith("p3-") or d["doc_id"].endswith("-01")]
    assert {d["language"] for d in docs} >= {"en", "fr", "zh", "ru", "ar"}
    wrong = [(d["doc_id"], d["language"], detect_language(d["title"], d["text"])) for d in docs]
    wrong = [item for item in wrong if item[1] != item[2]]
    assert wrong == []


def test_malay_is_ms_and_indonesian_is_id_not_confused() -> None:
    # Close relatives that share most function words: each gets its own tables in transform/data/malay.json
    parts = ("part4.jsonl", "part5.jsonl")
    docs = [json.loads(line) for part in parts for line in (STORIES / part).read_text("utf-8").splitlines()]
    docs = [d for d in docs if d["language"] in ("ms", "id")]
    assert {d["language"] for d in docs} == {"ms", "id"} and len(docs) >= 25
    assert [(d["doc_id"], detect_language(d["title"], d["text"])) for d in docs] == [
        (d["doc_id"], d["language"]) for d in docs
    ]


def test_mandarin_is_zh_not_a_regional_variety() -> None:
    text = "俄罗斯中央银行4月24日宣布，将关键利率上调150个基点至18%。"
    assert detect_language("俄罗斯央行加息150个基点", text) == "zh"


def test_too_little_text_gives_no_language() -> None:
    assert detect_language("", "") is None
    assert detect_language("AFP", "12:30 — 4,5 %") is None


def test_transform_fills_a_missing_language_and_keeps_a_declared_one() -> None:
    base = {"title": "Землетрясение на Тайване", "text": "Землетрясение магнитудой 6,1 произошло во вторник утром."}
    assert with_language({**base, "language": None})["language"] == "ru"
    assert with_language({**base, "language": "bg"})["language"] == "bg"


def test_a_batch_is_clustered_in_publication_order_then_id() -> None:
    def m(article_id: str, published: str | None, fetched: str = "2026-04-14T09:00:00Z") -> dict[str, object]:
        return {"article_id": article_id, "published_at": published, "fetched_at": fetched}

    batch = [m("b", "2026-04-14T02:00:00Z"), m("c", None, "2026-04-14T01:00:00Z"), m("a", "2026-04-14T02:00:00Z")]
    assert [x["article_id"] for x in canonical_order(batch)] == ["c", "a", "b"]
    assert canonical_order(list(reversed(batch))) == canonical_order(batch)
