"""The extraction workers' own measurements (``ingest.worker_stats``): every page answered is counted once, the
encoder's counts are those of the texts it encoded, and a pool without an encoder measures no encoder."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from undeclared_page import PAGE

from bench.pipeline import worker_stages
from ingest import worker_stats
from ingest.extract import ExtractedArticle
from ingest.extract_workers import ProcessPoolExtractor
from newswire.embedding import DEFAULT_MODEL, embedding_input, encoder_for

URL = "https://huanqiuwang.example/guoji/2026/04/14/s01-04"


def _pages(count: int) -> list[bytes]:
    return [PAGE.replace("6.1级", f"{n + 1}.{n}级").encode("utf-8") for n in range(count)]


def _run(model: str, pages: list[bytes]) -> list[ExtractedArticle]:
    worker_stats.reset()
    extractor = ProcessPoolExtractor(2, embedding_model=model)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda page: extractor.extract(page, url=URL, content_type="text/html"), pages))
    finally:
        extractor.close()


def test_the_encoder_counts_what_it_encoded_in_the_workers() -> None:
    articles = _run(DEFAULT_MODEL, _pages(5))
    totals = worker_stats.totals()
    assert totals["pages"] == pytest.approx(5)
    assert totals["embedded"] == pytest.approx(5)
    encoder = encoder_for(DEFAULT_MODEL)
    assert encoder is not None
    tokens = sum(
        len(encoder.tokenizer.encode(embedding_input(a.title, a.text), add_bos=True, add_eos=True)) for a in articles
    )
    assert totals["embed_tokens"] == pytest.approx(tokens)
    assert 1 <= totals["embed_passes"] <= 5 + 1e-9
    assert totals["embed"] > 0 and totals["extract"] > 0
    assert totals["batch"] >= totals["extract"] + totals["embed"]
    # each worker's first pass is within its passes, and only a first pass computes every id it meets
    assert 0 < totals["embed_first_pages"] <= 5 + 1e-9 and totals["embed_first"] <= totals["embed"]
    assert 0 < totals["embed_new_ids"] <= tokens
    report = worker_stages(totals)
    assert report["pages"] == 5 and report["encoder"]["articles"] == 5
    assert report["encoder"]["tokens_per_article"] == pytest.approx(tokens / 5, abs=0.1)


def test_without_an_encoder_no_encoder_is_measured() -> None:
    _run("none", _pages(3))
    totals = worker_stats.totals()
    assert totals["pages"] == pytest.approx(3)
    assert "embed" not in totals and "embedded" not in totals
    assert "encoder" not in worker_stages(totals)
    assert worker_stages({}) == {}
