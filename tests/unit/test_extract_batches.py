"""Extraction workers hold several pages at once and encode the waiting ones together: each caller still gets its
own article with its own vector, a lone page goes alone, and a worker that dies holding several pages loses none
of them and fails only the page that killed it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from undeclared_page import PAGE

from ingest.extract import ExtractedArticle, ExtractionError, extract_article
from ingest.extract_workers import (
    MAX_IN_FLIGHT,
    ProcessPoolExtractor,
    extract_and_enrich,
    extract_and_enrich_many,
)
from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for

URL = "https://huanqiuwang.example/guoji/2026/04/14/s01-04"
POISON = "9.9级"


def _pages(count: int) -> list[bytes]:
    """Distinct pages (their magnitudes differ), so that a page answered to the wrong caller shows."""
    return [PAGE.replace("6.1级", f"{n % 9 + 1}.{n // 9}级").encode("utf-8") for n in range(count)]


def _slow(article: ExtractedArticle) -> str:
    """An enricher that keeps the worker busy, so that pages pile up in its pipe."""
    time.sleep(0.25)
    return "slow"


def _poison(article: ExtractedArticle) -> str:
    """Kills its worker on the poison page (a native crash), after keeping it busy on the others."""
    if POISON in (article.title or ""):
        os._exit(3)
    time.sleep(0.1)
    return "ok"


def _extract_all(
    extractor: ProcessPoolExtractor, pages: Sequence[bytes], threads: int
) -> list[ExtractedArticle | ExtractionError]:
    def one(page: bytes) -> ExtractedArticle | ExtractionError:
        try:
            return extractor.extract(page, url=URL, content_type="text/html")
        except ExtractionError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, pages))


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_waiting_pages_are_encoded_together_each_with_its_own_vector() -> None:
    pages = _pages(MAX_IN_FLIGHT + 1)
    extractor = ProcessPoolExtractor(1, enrich=_slow)
    try:
        got = _extract_all(extractor, pages, threads=len(pages))
        batches = dict(extractor.batch_sizes)
    finally:
        extractor.close()
    # One worker, busy on the first page while the others arrive: they are answered in batches.
    assert sum(batches.values()) == len(pages) and max(batches) > 1, batches
    encoder = encoder_for(DEFAULT_MODEL)
    assert encoder is not None
    for page, article in zip(pages, got, strict=True):
        assert isinstance(article, ExtractedArticle) and article.features == "slow"
        assert article.text == extract_article(page, url=URL, content_type="text/html").text  # its own page
        assert article.embedding is not None
        (alone,) = embed_articles(encoder, [(article.title, article.text)])
        # the batch's vector is the one encoding the article alone gives, but for float32 rounding
        assert np.allclose(article.embedding.array(), alone.array(), rtol=0, atol=1.3e-4)


def test_a_lone_page_is_answered_alone_without_waiting_for_others() -> None:
    extractor = ProcessPoolExtractor(2)
    try:
        extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")  # the worker is up and warm
        started = time.monotonic()
        article = extractor.extract(_pages(2)[1], url=URL, content_type="text/html")
        elapsed = time.monotonic() - started
        batches = dict(extractor.batch_sizes)
    finally:
        extractor.close()
    assert article.embedding is not None
    assert batches == {1: 2}
    assert elapsed < 2.0  # one page's work: no timer waits for a batch to fill


def test_a_worker_killed_with_pages_in_flight_loses_none_of_them() -> None:
    pages = _pages(2 * MAX_IN_FLIGHT)
    extractor = ProcessPoolExtractor(2, embedding_model="none", enrich=_slow)
    results: list[ExtractedArticle | ExtractionError] = []
    try:
        runner = threading.Thread(target=lambda: results.extend(_extract_all(extractor, pages, threads=len(pages))))
        runner.start()
        _wait_for(lambda: len(extractor._all) == 2 and all(worker.load >= 3 for worker in extractor._all))
        victim = extractor._all[0]
        os.kill(victim.process.pid, signal.SIGKILL)  # the OOM killer, with several pages in its pipe
        runner.join(60)
        assert not runner.is_alive()
        assert victim not in extractor._all
    finally:
        extractor.close()
    # Every page is answered once, with its own article: the dead worker's pages were tried again elsewhere.
    assert [getattr(article, "text", None) for article in results] == [
        extract_article(page, url=URL, content_type="text/html").text for page in pages
    ]


def test_a_page_that_kills_its_worker_fails_alone_and_its_batch_is_answered() -> None:
    pages = _pages(5)
    pages[2] = PAGE.replace("6.1级", POISON).encode("utf-8")
    extractor = ProcessPoolExtractor(1, embedding_model="none", enrich=_poison)
    try:
        results = _extract_all(extractor, pages, threads=len(pages))
    finally:
        extractor.close()
    for index, (page, result) in enumerate(zip(pages, results, strict=True)):
        if index == 2:
            assert isinstance(result, ExtractionError) and result.reason == "worker_crashed"
        else:
            assert isinstance(result, ExtractedArticle)
            assert result.text == extract_article(page, url=URL, content_type="text/html").text


def test_every_page_of_a_batch_keeps_its_own_outcome() -> None:
    good = PAGE.encode("utf-8")
    outcomes = extract_and_enrich_many(
        [(good, URL, "text/html"), (b"<html><body><p>short</p></body></html>", URL, "text/html"), (good, URL, None)],
        fast=False,
        embedding_model=DEFAULT_MODEL,
    )
    assert isinstance(outcomes[1], ExtractionError) and outcomes[1].reason == "no_body"
    first, third = outcomes[0], outcomes[2]
    assert isinstance(first, ExtractedArticle) and isinstance(third, ExtractedArticle)
    # The same page twice in one pass gets one vector: the encoder's text-dependent layers run per text, so a
    # copy's place in the pass cannot change how its rows are computed.
    assert first.embedding is not None and first.embedding == third.embedding
    single = extract_and_enrich(good, url=URL, content_type="text/html", fast=False, embedding_model=DEFAULT_MODEL)
    assert single.embedding is not None and single.detected_language == first.detected_language == "zh"
    # Alone, the page is encoded in a pass of its own: the same vector up to float rounding.
    a, b = (np.frombuffer(e.vector, dtype=np.float16).astype(np.float64) for e in (first.embedding, single.embedding))
    assert single.embedding.model == first.embedding.model
    assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) >= 0.9999


def test_an_encoder_that_fails_on_one_text_fails_that_page_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import newswire.embedding as embedding

    class Picky:
        model_id = "picky"

        def encode(self, texts: Sequence[str]) -> np.ndarray:
            if any(POISON in text for text in texts):
                raise ValueError("cannot encode that")
            return np.ones((len(texts), 4))

    monkeypatch.setitem(embedding._encoders, "sentence-transformers:picky", Picky())
    pages = _pages(3)
    pages[1] = PAGE.replace("6.1级", POISON).encode("utf-8")
    outcomes = extract_and_enrich_many(
        [(page, URL, "text/html") for page in pages], fast=False, embedding_model="sentence-transformers:picky"
    )
    assert isinstance(outcomes[1], ValueError)
    for index in (0, 2):
        article = outcomes[index]
        assert isinstance(article, ExtractedArticle) and article.embedding is not None
        assert article.embedding.model == "picky"


def test_replies_a_worker_wrote_before_it_ended_reach_their_callers() -> None:
    """Stopping a worker nobody is reading from (``close()``, or ``_retire`` after another thread's broken pipe)
    must not drop the replies it wrote before it ended: each still reaches its caller, none fails."""
    import multiprocessing

    from ingest.extract_workers import _Worker

    pages = _pages(3)
    worker = _Worker(multiprocessing.get_context("forkserver"), False, "none", None)
    requests = [worker.send(page, URL, "text/html") for page in pages]
    # The worker answers every page it holds, then reads end-of-file and exits; no thread reads the replies.
    worker.stop(timeout=60)
    assert not worker.process.is_alive()
    replies = [worker.receive(request) for request in requests]
    assert [status for status, *_ in replies] == ["ok"] * len(pages)
    assert [value.text for _, value, *_ in replies] == [
        extract_article(page, url=URL, content_type="text/html").text for page in pages
    ]
    assert not worker._replies_open  # the replies end is closed once drained


def _idle(pid: int) -> bool:
    """Whether the worker process is blocked reading its requests pipe: it has answered every page it was sent."""
    with open(f"/proc/{pid}/wchan") as wchan:
        return "pipe_read" in wchan.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/wchan"), reason="needs /proc/<pid>/wchan (Linux)")
def test_replies_left_in_the_readers_buffer_survive_a_killed_worker() -> None:
    """A worker killed while idle after answering (the OOM killer), then stopped as ``_retire`` does: the replies
    read into the buffer along with the first one, and those still in the pipe, reach their callers."""
    import multiprocessing

    from ingest.extract_workers import _Worker

    pages = _pages(4)
    worker = _Worker(multiprocessing.get_context("forkserver"), False, "none", None)
    requests = [worker.send(page, URL, "text/html") for page in pages]
    status, *_ = worker.receive(requests[0])
    assert status == "ok"
    _wait_for(lambda: _idle(worker.process.pid))
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join(10)
    worker.stop(timeout=0)
    replies = [worker.receive(request) for request in requests[1:]]
    assert [status for status, *_ in replies] == ["ok"] * (len(pages) - 1)
    assert [value.text for _, value, *_ in replies] == [
        extract_article(page, url=URL, content_type="text/html").text for page in pages[1:]
    ]
    with pytest.raises(BrokenPipeError):
        worker.send(pages[0], URL, "text/html")
