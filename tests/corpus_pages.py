"""Rendered article pages of a corpus laid out as ``CorpusServer`` serves it, and their extraction outcomes, for
tests that compare extraction page by page (``tests/unit/test_htmltree.py``, ``tests/unit/test_lean_metadata.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

from devtools.devserver import TemplateRenderer
from ingest.extract import ExtractionError, extract_article


def corpus_pages(root: Path) -> list[tuple[bytes, str]]:
    """Every ``sites/<outlet>/**/*.html`` under ``root``, rendered for 2026-12-07, with a URL on its outlet."""
    sites = root / "sites"
    renderer = TemplateRenderer({d.name: f"https://{d.name}.example" for d in sites.iterdir()}, date(2026, 12, 7))
    return [
        (
            renderer.render(path.read_text("utf-8")).encode("utf-8"),
            f"https://{path.relative_to(sites).parts[0]}.example/{path.name}",
        )
        for path in sorted(sites.rglob("*.html"))
    ]


def extraction_outcomes(pages: Sequence[tuple[bytes, str]], now: datetime) -> list[object]:
    """``extract_article`` of each (content, URL), or its refusal as (reason, message): comparable outcomes."""
    out: list[object] = []
    for content, url in pages:
        try:
            out.append(extract_article(content, url=url, now=now))
        except ExtractionError as exc:
            out.append((exc.reason, str(exc)))
    return out
