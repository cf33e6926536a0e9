"""The page tree trafilatura reads, built with lxml's element-class lookup in C instead of in Python.

trafilatura parses with an ``lxml.html.HTMLParser``, whose element classes are chosen by
``lxml.html.HtmlElementClassLookup``: a Python method that lxml calls every time it hands Python an element
(every node an XPath returns or an iteration visits, in the tree and in each of trafilatura's copies of it),
which made it one of the largest single costs of ``extract_article`` (see the README). The only thing it adds is
special classes for form controls (``<form>``, ``<input>``, ``<select>``, ``<textarea>``, ``<label>``), whose
extra methods neither trafilatura nor ingest calls; every element here is a plain ``HtmlElement`` (comments,
processing instructions and entities keep their ``lxml.html`` classes), chosen by lxml's own C lookup.

:func:`load_page` is ``trafilatura.utils.load_html`` for a decoded page, step by step, with that parser;
copies of the tree (trafilatura copies it before extracting) keep the parser and so the lookup.
``tests/unit/test_htmltree.py`` checks that extraction gives the same articles either way.
"""

from __future__ import annotations

import logging

import lxml.html
from lxml import etree
from trafilatura.utils import is_dubious_html, repair_faulty_html

__all__ = ["load_page"]

log = logging.getLogger(__name__)


def _parser() -> lxml.html.HTMLParser:
    # trafilatura.utils.HTML_PARSER's options.
    parser = lxml.html.HTMLParser(
        collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
    )
    parser.set_element_class_lookup(
        etree.ElementDefaultClassLookup(
            element=lxml.html.HtmlElement,
            comment=lxml.html.HtmlComment,
            pi=lxml.html.HtmlProcessingInstruction,
            entity=lxml.html.HtmlEntity,
        )
    )
    return parser


_PARSER = _parser()


def load_page(text: str) -> lxml.html.HtmlElement | None:
    """The tree of a decoded page, or None when it is not HTML (as ``trafilatura.utils.load_html``)."""
    beginning = text[:50].lower()
    dubious = is_dubious_html(beginning)
    text = repair_faulty_html(text, beginning)
    tree = None
    fallback = False
    try:
        tree = lxml.html.fromstring(text, parser=_PARSER)
    except ValueError:  # "Unicode strings with encoding declaration are not supported."
        tree = _from_bytes(text)
        fallback = True
    except Exception as exc:
        log.error("lxml parsing failed: %s", exc)
    if (tree is None or len(tree) < 1) and not fallback:
        tree = _from_bytes(text)
    if tree is not None and dubious and len(tree) < 2:
        return None  # what trafilatura takes for a wrong data type: not valid HTML
    return tree


def _from_bytes(text: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.fromstring(text.encode("utf8", "surrogatepass"), parser=_PARSER)
    except Exception as exc:
        log.error("lxml parser bytestring %s", exc)
    return None
