"""ingest.lean_metadata: the same articles and the same trafilatura metadata but the license, with less work."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trafilatura
from trafilatura import metadata as trafilatura_metadata

import ingest.extract
from bench.synthetic import CorpusSpec, generate_corpus
from devtools import CORPUS
from ingest.extract import extract_article
from ingest.htmltree import load_page
from ingest.lean_metadata import _href_pattern, lean_metadata
from tests.corpus_pages import corpus_pages, extraction_outcomes

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
TEXT = "<p>" + "The harbour authority confirmed the new schedule after a long night of talks. " * 6 + "</p>"
LOCK = threading.Lock()  # stands for ingest.extract's: these tests run trafilatura on one thread
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
    with lean_metadata(LOCK) if lean else contextlib.nullcontext():
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
    with pytest.raises(RuntimeError), lean_metadata(LOCK):
        assert trafilatura_metadata.extract_license is not before[1]
        assert LOCK.locked()  # the swap is visible only under the lock every trafilatura call takes
        raise RuntimeError("extraction failed")
    assert (trafilatura_metadata.extract_catstags, trafilatura_metadata.extract_license) == before
    assert not LOCK.locked()


def test_the_block_restores_what_it_found_on_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the functions of import time: a patch made before the block (here a test's) survives it, and the
    tag search the block lets through is the one found on entry."""
    seen: list[str] = []
    full = trafilatura_metadata.extract_catstags

    def recorded(metatype: str, tree: object) -> list[str]:
        seen.append(metatype)
        return full(metatype, tree)

    monkeypatch.setattr(trafilatura_metadata, "extract_catstags", recorded)
    for text in (PAGES[0], PAGES[8]):  # tag links; no link at all
        _document_fields(text, lean=True)
    assert trafilatura_metadata.extract_catstags is recorded
    assert seen.count("tag") == 1  # the page with tag links only
    assert "category" in seen


# What the tag shortcut assumes of trafilatura: re-check these after a trafilatura upgrade.


def test_every_tag_xpath_of_trafilatura_selects_links_with_an_href() -> None:
    # So a page with no <a href> matching the pattern leaves extract_catstags("tag") nothing to keep.
    paths = [expr.path for expr in trafilatura_metadata.TAGS_XPATHS]
    assert paths
    assert all(path.rstrip().endswith("//a[@href]") for path in paths), paths


HREFS = [
    "/tag/harbour/",
    "/tags/harbour/",
    "/tagy/harbour/",
    "/tagies/harbour/",
    "https://news.example/section/tag/harbour/?page=2",
    "/tag/harbour",  # no slash after the word
    "/Tag/harbour/",  # case
    "/tagged/harbour/",
    "/tagss/harbour/",
    "tag/harbour/",  # no slash before it
    "/topics/harbour/",
    "/ta/harbour/",
    "?q=/tag/x/",
]


@pytest.mark.parametrize("href", HREFS)
def test_the_href_pattern_keeps_the_links_trafilatura_keeps(href: str) -> None:
    tree = load_page(_page(f'<div class="tags"><a href="{href}">Harbour</a></div>'))
    kept_by_trafilatura = trafilatura_metadata.extract_catstags("tag", tree) != []
    assert bool(_href_pattern("tag").search(href)) == kept_by_trafilatura


def test_the_href_pattern_cases_include_both_outcomes() -> None:
    matches = {bool(_href_pattern("tag").search(href)) for href in HREFS}
    assert matches == {True, False}


def test_trafilatura_has_no_fallback_for_tags() -> None:
    # Keywords, a section, Open Graph tags, links in tag blocks that are no tag paths: no article:tag meta and
    # no tag link, so trafilatura's own function finds no tag (categories, by contrast, fall back to <meta>).
    head = (
        '<meta name="keywords" content="harbour, strike">'
        '<meta name="news_keywords" content="harbour">'
        '<meta property="article:section" content="Ports">'
        '<meta property="og:type" content="article">'
        '<meta name="subject" content="Shipping">'
    )
    body = '<div class="tags"><a href="/topics/harbour/">Harbour</a></div><div class="meta"><a href="/x">X</a></div>'
    tree = load_page(_page(body, head=head))
    assert trafilatura_metadata.extract_catstags("tag", tree) == []
    assert trafilatura_metadata.extract_catstags("category", tree) != []


def test_extract_article_takes_the_lean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """``extract_article`` runs trafilatura inside the block: a license search that would fail is never
    consulted, and the module's functions are the ones it found afterwards."""

    def no_license_search(tree: object) -> str:
        raise AssertionError("extract_license was consulted")

    monkeypatch.setattr(trafilatura_metadata, "extract_license", no_license_search)
    catstags = trafilatura_metadata.extract_catstags
    html = (DATA / "news_article.html").read_bytes()
    article = extract_article(html, url="https://news.example/a", now=NOW)
    assert article.text
    assert trafilatura_metadata.extract_license is no_license_search
    assert trafilatura_metadata.extract_catstags is catstags
    assert not ingest.extract._TRAFILATURA_LOCK.locked()
    # Without the block the same call does consult it (so the assertion above could fail).
    monkeypatch.setattr(ingest.extract, "lean_metadata", lambda lock: lock)
    with pytest.raises(AssertionError, match="extract_license was consulted"):
        extract_article(html, url="https://news.example/a", now=NOW)


def test_extract_article_gives_the_same_articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [((DATA / "news_article.html").read_bytes(), "https://news.example/a")]
    pages += [(text.encode(), f"https://news.example/p{i}") for i, text in enumerate(PAGES)]
    pages += corpus_pages(CORPUS)
    pages += corpus_pages(generate_corpus(tmp_path / "synthetic", CorpusSpec(articles=60, feeds=4, seed=11)).root)

    lean = extraction_outcomes(pages, NOW)
    monkeypatch.setattr(ingest.extract, "lean_metadata", lambda lock: lock)  # the lock alone
    assert extraction_outcomes(pages, NOW) == lean
    extracted = [a for a in lean if not isinstance(a, tuple)]
    assert len(extracted) > 100
    assert any(a.tags for a in extracted)  # type: ignore[attr-defined]
