"""ingest.htmltree parses as trafilatura's load_html does, and extraction on its trees gives the same articles."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import lxml.html
import pytest
from trafilatura.utils import load_html

import ingest.extract
from bench.synthetic import CorpusSpec, generate_corpus
from devtools import CORPUS
from ingest.extract import decode_html
from ingest.htmltree import load_page
from tests.corpus_pages import corpus_pages, extraction_outcomes

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 12, 7, tzinfo=UTC)
ODD = [
    "",
    "just some text, no markup at all",
    "<p>one fragment</p>",
    '<?xml version="1.0" encoding="utf-8"?><html><body><p>declared</p></body></html>',
    "<!DOCTYPE html>\n<html/>\n<body><p>self-closing html</p></body>",
    "<html><body><form><input name=q value=x><select><option>a</select><textarea>t</textarea></form></body></html>",
    "<html><body>\x00\x0bcontrol characters<!-- a comment --><?pi x?></body></html>",
]


def _serialised(tree: lxml.html.HtmlElement | None) -> bytes | None:
    return None if tree is None else lxml.html.tostring(tree)


def test_same_trees_as_trafilatura() -> None:
    for text in [*ODD, decode_html((DATA / "news_article.html").read_bytes())]:
        ours, theirs = load_page(text), load_html(text)
        assert _serialised(ours) == _serialised(theirs), text[:60]
        if ours is not None:
            assert all(type(e) is lxml.html.HtmlElement for e in ours.iter() if isinstance(e.tag, str))


def test_extraction_gives_the_same_articles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [((DATA / "news_article.html").read_bytes(), "https://news.example/a")]
    pages += corpus_pages(CORPUS)[::2]
    pages += corpus_pages(generate_corpus(tmp_path / "synthetic", CorpusSpec(articles=30, feeds=3, seed=5)).root)

    ours = extraction_outcomes(pages, NOW)
    monkeypatch.setattr(ingest.extract, "load_page", load_html)
    assert extraction_outcomes(pages, NOW) == ours
    assert sum(not isinstance(a, tuple) for a in ours) > 40
