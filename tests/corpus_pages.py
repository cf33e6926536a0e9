"""Rendered article pages of a corpus laid out as ``CorpusServer`` serves it, for extraction tests that compare
outcomes page by page (``tests/unit/test_htmltree.py``, ``tests/unit/test_lean_metadata.py``)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from devtools.devserver import TemplateRenderer


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
