"""Extraction workers identify the language and embed the article; the message carries both."""

from __future__ import annotations

from datetime import UTC, datetime
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from undeclared_page import PAGE

from ingest.extract import ExtractedArticle
from ingest.extract_workers import _preload_modules, make_extractor
from ingest.feedlist import FeedSpec
from ingest.feeds import FeedEntry
from ingest.messages import article_message
from newswire import contracts
from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for, from_message
from pipeline.enrich import feature_enricher
from transform.carried import carried_features

URL = "https://huanqiuwang.example/guoji/2026/04/14/s01-04"


def _message(page: ExtractedArticle) -> dict[str, Any]:
    """The article message ingest builds for ``page`` reached through a feed entry without a title."""
    entry = FeedEntry(guid="g", link=URL, title=None, summary=None, published=None, updated=None, author=None,
                      tags=(), language=None)  # fmt: skip
    return article_message(
        article_id="a" * 32,
        canonical_url=URL,
        entry=entry,
        feed=FeedSpec(url="https://huanqiuwang.example/rss", name="Huanqiu"),
        page=page,
        fetched_at=datetime(2026, 4, 14, 3, tzinfo=UTC),
        run_id="run",
    )


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_detect_the_language_and_embed_title_and_lead(workers: int) -> None:
    extractor = make_extractor(workers)
    try:
        page = extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
    finally:
        extractor.close()
    assert page.language is None and page.detected_language == "zh"
    assert page.embedding is not None
    encoder = encoder_for(DEFAULT_MODEL)
    assert encoder is not None and page.embedding.model == encoder.model_id
    expected = embed_articles(encoder, [(page.title, page.text)])[0]
    assert np.allclose(page.embedding.array(), expected.array(), atol=2e-3)  # same vector from the worker

    message = _message(page)
    contracts.validate(contracts.ARTICLES, message)
    assert message["language"] == "zh"
    assert from_message(message["embedding"]) == page.embedding


def test_embedding_can_be_turned_off() -> None:
    extractor = make_extractor(1, embedding_model="none")
    page = extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
    assert page.embedding is None and page.detected_language == "zh"


def test_a_page_that_declares_its_language_is_not_identified_again() -> None:
    declared = PAGE.replace("<html>", '<html lang="zh-CN">', 1)
    assert declared != PAGE
    extractor = make_extractor(1, embedding_model="none")
    page = extractor.extract(declared.encode("utf-8"), url=URL, content_type="text/html")
    assert page.language == "zh" and page.detected_language is None
    assert _message(page)["language"] == "zh"


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_add_the_transforms_features_and_the_message_carries_them(workers: int) -> None:
    from pipeline.enrich import feature_enricher
    from transform.carried import read_carried

    extractor = make_extractor(workers, embedding_model="none", enrich=feature_enricher())
    try:
        page = extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
    finally:
        extractor.close()
    assert page.features == carried_features(page.title, page.text, "zh", title_weight=2)
    message = _message(page)
    decoded = contracts.decode(contracts.ARTICLES, contracts.encode(contracts.ARTICLES, message))
    carried = read_carried(decoded["features"], title=decoded["title"], text=decoded["text"], language="zh")
    features = carried.features(2) if carried is not None else None
    assert features is not None and features.counts  # the transform will use them


def _fail(article: object) -> dict[str, object]:
    raise ValueError("a bug in the enrichment")


def test_a_failing_enrichment_leaves_the_article_without_features() -> None:
    extractor = make_extractor(2, embedding_model="none", enrich=_fail)
    try:
        page = extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
    finally:
        extractor.close()
    assert page.features is None and page.text


def _die(article: object) -> dict[str, object]:
    import os

    os._exit(3)


def test_a_worker_that_dies_fails_its_page_only_and_is_replaced() -> None:
    from ingest.extract import ExtractionError

    dying = make_extractor(2, embedding_model="none", enrich=_die)
    try:
        for _ in range(3):  # more deaths than workers: every one is replaced
            with pytest.raises(ExtractionError) as err:
                dying.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
            assert err.value.reason == "worker_crashed"
    finally:
        dying.close()
    extractor = make_extractor(2, embedding_model="none")
    try:
        with pytest.raises(ExtractionError) as err:  # a refused page is the page's error, the worker lives on
            extractor.extract(b"<html><body><p>short</p></body></html>", url=URL, content_type="text/html")
        assert err.value.reason == "no_body"
        assert extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html").text
    finally:
        extractor.close()


def test_a_worker_killed_while_idle_costs_no_page_and_ctrl_c_kills_none() -> None:
    import os
    import signal
    import time

    from ingest.extract_workers import ProcessPoolExtractor

    extractor = make_extractor(2, embedding_model="none")
    assert isinstance(extractor, ProcessPoolExtractor)
    try:
        assert extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html").text
        (worker,) = extractor._all
        os.kill(worker.process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole process group
        time.sleep(0.3)
        assert worker.process.is_alive()
        os.kill(worker.process.pid, signal.SIGKILL)  # the OOM killer, while the worker waits for a page
        worker.process.join(5)
        # The next page finds the dead worker's pipe broken before it is delivered: it goes to another worker.
        assert extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html").text
        assert worker not in extractor._all
    finally:
        extractor.close()
    with pytest.raises(RuntimeError, match="closed"):
        extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")


def test_many_threads_share_the_workers_and_each_gets_its_own_page() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ingest.extract import extract_article

    pages = [PAGE.replace("6.1级", f"{n}.{n}级").encode("utf-8") for n in range(1, 13)]
    expected = [extract_article(p, url=URL, content_type="text/html").text for p in pages]
    extractor = make_extractor(2, embedding_model="none")
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            got = list(pool.map(lambda p: extractor.extract(p, url=URL, content_type="text/html").text, pages))
    finally:
        extractor.close()
    assert got == expected and len(set(got)) == len(pages)


def test_the_features_follow_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from newswire.settings import load_settings
    from pipeline.enrich import enricher_for

    monkeypatch.setenv("NEWSWIRE_EXTRACT_FEATURES", "false")
    assert enricher_for(load_settings(home=tmp_path)) is None
    monkeypatch.delenv("NEWSWIRE_EXTRACT_FEATURES")
    enrich = enricher_for(load_settings(home=tmp_path))  # on by default
    assert enrich is not None
    page = make_extractor(1, embedding_model="none").extract(PAGE.encode("utf-8"), url=URL, content_type=None)
    assert page.features is None  # inline extraction without an enricher adds none
    assert enrich(page) == carried_features(page.title, page.text, "zh", title_weight=2)


def test_a_page_larger_than_the_pipe_goes_through_whole() -> None:
    from ingest.extract import extract_article

    padding = "<!-- " + "x" * (3 << 20) + " -->"  # three times the enlarged pipe: partial writes and a large frame
    page = PAGE.replace("<body>", f"<body>{padding}").encode("utf-8")
    extractor = make_extractor(2, embedding_model="none")
    try:
        got = extractor.extract(page, url=URL, content_type="text/html")
    finally:
        extractor.close()
    assert got.text == extract_article(page, url=URL, content_type="text/html").text


def test_the_fork_server_preloads_the_worker_and_enricher_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = ["__main__", "ingest.extract_workers", "pipeline.enrich"]
    assert _preload_modules(None, "none") == ["__main__", "ingest.extract_workers"]
    assert _preload_modules(feature_enricher(), "none") == expected
    assert _preload_modules(None, DEFAULT_MODEL) == ["__main__", "ingest.extract_workers", "ingest.encoder_preload"]
    # A sentence-transformers model would start torch's threads in the fork server: its workers load it instead.
    assert "ingest.encoder_preload" not in _preload_modules(None, "sentence-transformers:any/model")
    # The pool must hand that list to the fork server before the server is started for its first worker: the
    # server imports its preload list only when it starts. The list the server would start with is recorded.
    server = forkserver._forkserver
    monkeypatch.setattr(server, "_preload_modules", ["__main__"])  # the default; restored after the test
    seen: list[list[str]] = []
    start = server.ensure_running

    def ensure_running() -> None:
        seen.append(list(server._preload_modules))
        start()

    monkeypatch.setattr(server, "ensure_running", ensure_running)
    extractor = make_extractor(2, embedding_model="none", enrich=feature_enricher())
    try:
        page = extractor.extract(PAGE.encode("utf-8"), url=URL, content_type="text/html")
    finally:
        extractor.close()
    assert page.features is not None
    assert seen and seen[0] == expected


_PROBE = '''
import os

def loaded_by(article):
    """Runs in a worker, after its page was embedded: which process loaded the encoder it used."""
    from newswire.embedding import DEFAULT_MODEL, encoder_for

    return f"{encoder_for(DEFAULT_MODEL).loaded_by} {os.getpid()} {os.getppid()}"
'''

_RUN = """
import os
import sys

from undeclared_page import PAGE

from ingest.extract_workers import make_extractor
from newswire.embedding import DEFAULT_MODEL
from probe import loaded_by

if __name__ == "__main__":  # the fork server imports this module as its __main__
    extractor = make_extractor(2, embedding_model=DEFAULT_MODEL, enrich=loaded_by)
    try:
        pages = [
            extractor.extract(PAGE.encode(), url=f"https://x.example/{i}", content_type="text/html") for i in range(4)
        ]
    finally:
        extractor.close()
    assert not sys.modules["newswire.embedding"]._encoders  # the pool's own process loaded none
    for page in pages:
        assert page.embedding is not None
        print(page.features, os.getpid())
"""


def test_workers_share_the_encoder_their_fork_server_loaded(tmp_path: Path) -> None:
    """A fresh process (so a fresh fork server): its workers embed with an encoder loaded by the fork server
    (their parent), not by themselves, and the pool's own process never loads one."""
    import os
    import subprocess
    import sys

    (tmp_path / "probe.py").write_text(_PROBE, "utf-8")
    (tmp_path / "run.py").write_text(_RUN, "utf-8")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(repo), str(repo / "tests")])}
    env.pop("NEWSWIRE_FORKSERVER_EMBEDDING_MODEL", None)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "run.py")], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert len(lines) == 4
    for loader, worker, worker_parent, pool_process in lines:
        assert loader == worker_parent  # the fork server loaded it, before forking this worker
        assert loader not in (worker, pool_process)
