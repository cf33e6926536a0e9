"""ingest.lean_metadata: the same articles and the same trafilatura metadata but the license, with less work."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trafilatura
from trafilatura import metadata as trafilatura_metadata

import ingest.extract
from bench.synthetic import CorpusSpec, generate_corpus
from devtools import CORPUS
from ingest.htmltree import load_page
from ingest.lean_metadata import lean_metadata
from tests.corpus_pages import corpus_pages, extraction_outcomes

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
TEXT = "<p>" + "The harbour authority confirmed the new schedule after a long night of talks. " * 6 + "</p>"
LICENSED = '<footer><a href="https://creativecommons.org/licenses/by-sa/4.0/">CC BY-SA 4.0</a></footer>'


def _page(body: str, head: str = "") -> str:
    return f"<html><head><title>Harbour talks</title>{head}</head><body><article>{TEXT}</article>{body}</body></html>"


# Tag links where trafilatura's XPaths look (and where they do not), singular and plural paths, an
# article:tag meta (no tag search at all), a page with no link, and a licensed footer.
PAGES = [
    _page('<div class="tags"><a href="/tag/harbour/">Harbour</a><a href="/tags/strike/">Strike</a></div>'),
    _page('<div class="entry-meta"><a href="https://x.example/tagy/ports/">Ports</a></div>'),
    _page('<p class="entry-tags-list"><a href="/tagies/a/">A</a></p>' + LICENSED),
    _page('<nav><a href="/tag/harbour/">Harbour</a></nav>'),  # a tag link outside every tag XPath
    _page('<div class="tags"><a href="/topics/harbour">Harbour</a></div>'),  # a tag block, no tag path
    _page("", head='<meta property="article:tag" content="ports">'),
    _page(LICENSED),
    _page('<a rel="license" href="/licence">All rights reserved</a>'),
    _page(""),
]


def _document_fields(text: str, *, lean: bool) -> dict[str, object]:
    tree = load_page(text)
    with lean_metadata() if lean else contextlib.nullcontext():
        document = trafilatura.bare_extraction(tree, url="https://news.example/a", with_metadata=True)
    assert document is not None
    fields = document.as_dict()
    for tree_field in ("body", "commentsbody"):  # trees compare by identity: their text instead
        element = fields.pop(tree_field, None)
        fields[tree_field] = None if element is None else " ".join(element.itertext())
    return fields


@pytest.mark.parametrize("text", PAGES, ids=range(len(PAGES)))
def test_trafilatura_document_is_the_same_but_the_license(text: str) -> None:
    lean, full = _document_fields(text, lean=True), _document_fields(text, lean=False)
    assert lean.pop("license") is None
    full.pop("license")
    assert lean == full


def test_the_tag_search_still_runs_where_a_link_could_be_a_tag() -> None:
    assert _document_fields(PAGES[0], lean=True)["tags"] == ["Harbour", "Strike"]
    assert _document_fields(PAGES[2], lean=True)["tags"] == ["A"]
    assert _document_fields(PAGES[6], lean=False)["license"] == "CC BY-SA 4.0"  # what the scope leaves out


def test_functions_are_restored_after_the_block_even_on_error() -> None:
    before = (trafilatura_metadata.extract_catstags, trafilatura_metadata.extract_license)
    with pytest.raises(RuntimeError), lean_metadata():
        assert trafilatura_metadata.extract_license is not before[1]
        raise RuntimeError("extraction failed")
    assert (trafilatura_metadata.extract_catstags, trafilatura_metadata.extract_license) == before


def test_extract_article_gives_the_same_articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [((DATA / "news_article.html").read_bytes(), "https://news.example/a")]
    pages += [(text.encode(), f"https://news.example/p{i}") for i, text in enumerate(PAGES)]
    pages += corpus_pages(CORPUS)
    pages += corpus_pages(generate_corpus(tmp_path / "synthetic", CorpusSpec(articles=60, feeds=4, seed=11)).root)

    lean = extraction_outcomes(pages, NOW)
    monkeypatch.setattr(ingest.extract, "lean_metadata", contextlib.nullcontext)
    assert extraction_outcomes(pages, NOW) == lean
    extracted = [a for a in lean if not isinstance(a, tuple)]
    assert len(extracted) > 100
    assert any(a.tags for a in extracted)  # type: ignore[attr-defined]
