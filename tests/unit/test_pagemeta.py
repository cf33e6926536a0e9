"""ingest.pagemeta gives what trafilatura's extract_metadata gives, except the license, and leaves the tree alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import lxml.html
import pytest
from trafilatura.metadata import extract_metadata
from trafilatura.utils import load_html

from bench.synthetic import CorpusSpec, generate_corpus
from devtools import CORPUS
from devtools.devserver import TemplateRenderer
from ingest.extract import _DATE_PARAMS, decode_html
from ingest.pagemeta import page_metadata

DATA = Path(__file__).parent / "data"
FIELDS = (
    "title",
    "author",
    "url",
    "hostname",
    "description",
    "sitename",
    "date",
    "categories",
    "tags",
    "image",
    "pagetype",
    "language",
    "filedate",
)


def _rendered(root: Path) -> Iterator[tuple[str, str]]:
    sites = root / "sites"
    renderer = TemplateRenderer({d.name: f"https://{d.name}.example" for d in sites.iterdir()}, date(2026, 12, 7))
    for path in sorted(sites.rglob("*.html")):
        yield renderer.render(path.read_text("utf-8")), f"https://{path.relative_to(sites).parts[0]}.example/"


def _pages(tmp: Path) -> list[tuple[str, str]]:
    pages = [(decode_html((DATA / name).read_bytes()), "https://news.example/a") for name in ("news_article.html",)]
    pages += list(_rendered(CORPUS))
    pages += list(_rendered(generate_corpus(tmp / "synthetic", CorpusSpec(articles=40, feeds=4, seed=3)).root))
    # Pages whose links name categories and tags, where trafilatura's own expressions must run.
    links = '<div class="entry-meta"><a href="/category/world/">World</a> <a href="/tags/port/">Port</a></div>'
    pages.append(
        (f"<html><head><title>T</title></head><body>{links}<p>{'Text. ' * 80}</p></body></html>", "https://x.example/")
    )
    section = '<meta property="article:section" content="Business">'
    pages.append(
        (f"<html><head>{section}</head><body><p>{'Words here. ' * 60}</p></body></html>", "https://y.example/")
    )
    return pages


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    return _pages(tmp_path_factory.mktemp("pagemeta"))


def test_same_fields_as_trafilatura_except_the_license(pages: list[tuple[str, str]]) -> None:
    assert len(pages) > 100
    with_links = 0
    for text, url in pages:
        ours = page_metadata(load_html(text), url, dict(_DATE_PARAMS))
        theirs = extract_metadata(load_html(text), url, dict(_DATE_PARAMS), False, None)
        for name in FIELDS:
            assert getattr(ours, name) == getattr(theirs, name), (url, name)
        assert ours.license is None
        with_links += bool(theirs.tags)
    assert with_links  # the branch that runs trafilatura's expressions was taken at least once


def test_the_tree_extraction_reads_afterwards_is_unchanged(pages: list[tuple[str, str]]) -> None:
    for text, url in pages[:30]:
        tree = load_html(text)
        before = lxml.html.tostring(tree)
        page_metadata(tree, url, dict(_DATE_PARAMS))
        assert lxml.html.tostring(tree) == before, url
