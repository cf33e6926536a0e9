"""What handing a page to an extraction worker costs on top of extracting it: the per-page IPC overhead.

The same synthetic pages (``bench.synthetic``, the pages ``bench.pipeline`` serves) are extracted

* ``inline``: :func:`ingest.extract_workers.extract_and_enrich` in this process, one after the other;
* ``workers``: through :func:`ingest.extract_workers.make_extractor` with ``--workers`` processes, one page at a
  time from one thread, so the difference per page is the round trip (send the page, get the article back);
* ``workers_busy_parent``: the same while another thread of this process runs Python code without pause, as
  the transform thread of ``newswire run`` does: every step of the round trip that needs this process's GIL
  then waits for it (on a 2-core machine the busy thread also takes a core from the workers);
* ``transport_*``: the same three with each page replaced by as many bytes of a non-HTML document, which the
  extractor refuses in well under a millisecond: what remains is the transport of a page-sized request.

The embedding is off (``embedding_model`` "none") in every mode, so only extraction, language identification
and the transport are timed. Run ``python -m bench.extract_ipc [--pages 120] [--workers 2] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bench.report import emit


def sample_pages(count: int) -> list[tuple[bytes, str]]:
    """``count`` rendered article pages of a synthetic corpus, with their URLs."""
    from bench.synthetic import CorpusSpec, generate_corpus
    from devtools.devserver import TemplateRenderer

    with tempfile.TemporaryDirectory(prefix="nw-bench-ipc-") as tmp:
        corpus = generate_corpus(Path(tmp), CorpusSpec(articles=count, feeds=4, near_duplicate_share=0.0))
        sites = {outlet: f"http://{outlet}.example" for outlet in corpus.outlets}
        renderer = TemplateRenderer(sites, date(2026, 12, 1))
        return [
            (renderer.render(path.read_text("utf-8")).encode("utf-8"), f"{sites[page.outlet]}/{page.path}")
            for page, path in corpus.page_files()
        ]


def _timed(pages: Sequence[tuple[bytes, str]], extract: Callable[[bytes, str], object]) -> float:
    from ingest.extract import ExtractionError

    t0 = time.perf_counter()
    for content, url in pages:
        with contextlib.suppress(ExtractionError):  # a refused page costs what it cost, like any other
            extract(content, url)
    return time.perf_counter() - t0


class _BusyThread:
    """A thread that runs Python bytecode until stopped (it holds the GIL as a CPU-bound thread does)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, name="busy", daemon=True)

    def _spin(self) -> None:
        total = 0
        while not self._stop.is_set():
            for i in range(10_000):
                total += i * i
        self.total = total

    def __enter__(self) -> _BusyThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(pages: Sequence[tuple[bytes, str]], workers: int, rounds: int) -> dict[str, Any]:
    from ingest.extract_workers import extract_and_enrich, make_extractor

    def inline(content: bytes, url: str) -> object:
        return extract_and_enrich(content, url=url, content_type=None, fast=False, embedding_model="none")

    for content, url in pages[:3]:
        _timed([(content, url)], inline)  # warm-up: lazy imports and caches
    not_html = [(b"%PDF-1.4\n" + b"x" * max(0, len(content) - 9), url) for content, url in pages]
    modes = ("inline", "workers", "workers_busy_parent")
    times: dict[str, list[float]] = {name: [] for mode in modes for name in (mode, f"transport_{mode}")}
    extractor = make_extractor(workers, embedding_model="none")
    try:
        threads = [
            threading.Thread(
                target=_timed, args=(pages[:2], lambda c, u: extractor.extract(c, url=u, content_type=None))
            )
            for _ in range(workers)
        ]
        for thread in threads:  # every worker started and warm before timing
            thread.start()
        for thread in threads:
            thread.join()

        def pooled(content: bytes, url: str) -> object:
            return extractor.extract(content, url=url, content_type=None)

        for _ in range(rounds):  # alternated, so that drifts of the machine's load hit every mode alike
            for prefix, sample in (("", pages), ("transport_", not_html)):
                times[f"{prefix}inline"].append(_timed(sample, inline))
                times[f"{prefix}workers"].append(_timed(sample, pooled))
                with _BusyThread():
                    times[f"{prefix}workers_busy_parent"].append(_timed(sample, pooled))
    finally:
        extractor.close()
    per_page = {mode: 1000 * min(values) / len(pages) for mode, values in times.items()}
    return {
        "pages": len(pages),
        "workers": workers,
        "rounds": rounds,
        "ms_per_page": {mode: round(value, 2) for mode, value in per_page.items()},
        "page_bytes_mean": round(sum(len(content) for content, _ in pages) / len(pages)),
        "overhead_ms_per_page": {
            f"{prefix}{mode}": round(per_page[f"{prefix}{mode}"] - per_page[f"{prefix}inline"], 2)
            for prefix in ("", "transport_")
            for mode in ("workers", "workers_busy_parent")
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extract_ipc", description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="each mode this many times; the fastest counts")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(sample_pages(args.pages), args.workers, args.rounds)
    emit(report, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
