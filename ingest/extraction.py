"""Where article extraction runs: inline (one at a time) or in a pool of worker processes.

trafilatura/lxml is not thread-safe (heap corruption with as few as two threads, upstream issues 840 and
925), so the only way to use several cores is several processes. Fetching stays in threads of the parent,
overlapping network waits with extraction in the workers. Workers start with ``forkserver`` because the
parent already runs Kafka and HTTP threads, which a plain ``fork`` would copy in an unknown state.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from ingest.extract import ExtractedArticle, ExtractionError, extract_article


class Extractor(Protocol):
    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle: ...

    def close(self) -> None: ...


class InlineExtractor:
    """Extraction in the calling process, serialised: right for one Airflow task polling one feed."""

    def __init__(self, *, fast: bool = False) -> None:
        self._lock = threading.Lock()
        self.fast = fast

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        with self._lock:
            return extract_article(content, url=url, content_type=content_type, fast=self.fast)

    def close(self) -> None:
        pass


def _extract_in_worker(content: bytes, url: str, content_type: str | None, fast: bool) -> ExtractedArticle:
    return extract_article(content, url=url, content_type=content_type, fast=fast)


class ProcessPoolExtractor:
    """Extraction spread over worker processes; each worker extracts one page at a time."""

    def __init__(self, workers: int, *, fast: bool = False) -> None:
        self.workers = workers
        self.fast = fast
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        try:
            return self._pool.submit(_extract_in_worker, content, url, content_type, self.fast).result()
        except BrokenProcessPool as exc:
            # A page that kills its worker (native crash, OOM) is that page's failure, not the run's.
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("forkserver")
            )
            raise ExtractionError("worker_crashed", f"extraction worker died on {url}: {exc}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def make_extractor(workers: int, *, fast: bool = False) -> Extractor:
    """``workers`` 0 = one per CPU; 1 = inline. ``fast``: see :func:`ingest.extract.extract_article`."""
    count = workers or (os.cpu_count() or 1)
    return InlineExtractor(fast=fast) if count <= 1 else ProcessPoolExtractor(count, fast=fast)
