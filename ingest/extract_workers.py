"""Where article extraction runs: inline (one at a time) or in a pool of worker processes.

trafilatura/lxml is not thread-safe (heap corruption with as few as two threads, upstream issues 840 and
925), so the only way to use several cores is several processes. Fetching stays in threads of the parent,
overlapping network waits with extraction in the workers. Workers start with ``forkserver`` because the
parent already runs Kafka and HTTP threads, which a plain ``fork`` would copy in an unknown state.

The workers also identify the language of the text and embed its title and lead (``newswire.embedding``):
that is CPU work of the same kind, and here it runs on every core instead of on the transform's one thread.
The encoder is loaded once per worker process, on its first page.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Protocol

from ingest.extract import ExtractedArticle, ExtractionError, extract_article
from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for
from newswire.langid import detect_language


class Extractor(Protocol):
    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle: ...

    def close(self) -> None: ...


def extract_and_enrich(
    content: bytes, *, url: str, content_type: str | None, fast: bool, embedding_model: str
) -> ExtractedArticle:
    """:func:`extract_article`, then the detected language and the embedding (``embedding_model`` "none": no
    embedding)."""
    article = extract_article(content, url=url, content_type=content_type, fast=fast)
    encoder = encoder_for(embedding_model)
    embedding = embed_articles(encoder, [(article.title, article.text)])[0] if encoder is not None else None
    return replace(article, detected_language=detect_language(article.title, article.text), embedding=embedding)


class InlineExtractor:
    """Extraction in the calling process, serialised: right for one Airflow task polling one feed.

    ``enrich`` False leaves language detection and the embedding to the transform: for shard task processes
    (``NEWSWIRE_SHARD_EXTRACT_WORKERS`` 1), several of which run at once on one machine, each of which would
    otherwise load the language identifier and the sentence encoder. Their articles reach the transform
    without a detected language or an embedding, and the transform, one process, computes both in batches
    (``transform.batch``: ``with_language``, ``_missing_embeddings``).
    """

    def __init__(self, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL, enrich: bool = True) -> None:
        self._lock = threading.Lock()
        self.fast = fast
        self.embedding_model = embedding_model
        self.enrich = enrich

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        with self._lock:
            if not self.enrich:
                return extract_article(content, url=url, content_type=content_type, fast=self.fast)
            return extract_and_enrich(
                content, url=url, content_type=content_type, fast=self.fast, embedding_model=self.embedding_model
            )

    def close(self) -> None:
        pass


def _extract_in_worker(
    content: bytes, url: str, content_type: str | None, fast: bool, embedding_model: str
) -> ExtractedArticle:
    return extract_and_enrich(content, url=url, content_type=content_type, fast=fast, embedding_model=embedding_model)


class ProcessPoolExtractor:
    """Extraction spread over worker processes; each worker extracts one page at a time."""

    def __init__(self, workers: int, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL) -> None:
        self.workers = workers
        self.fast = fast
        self.embedding_model = embedding_model
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        try:
            return self._pool.submit(
                _extract_in_worker, content, url, content_type, self.fast, self.embedding_model
            ).result()
        except BrokenProcessPool as exc:
            # A page that kills its worker (native crash, OOM) is that page's failure, not the run's.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver")
            )
            raise ExtractionError(f"extraction worker died on {url}: {exc}", reason="worker_crashed") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_extractor(workers: int, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL) -> Extractor:
    """``workers`` 0 = one per CPU; 1 = inline. ``fast``: see :func:`ingest.extract.extract_article`;
    ``embedding_model``: ``NEWSWIRE_EMBEDDING_MODEL``."""
    count = workers or (os.cpu_count() or 1)
    if count <= 1:
        return InlineExtractor(fast=fast, embedding_model=embedding_model)
    return ProcessPoolExtractor(count, fast=fast, embedding_model=embedding_model)
