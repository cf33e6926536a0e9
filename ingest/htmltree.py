"""The page tree that extraction reads, built with lxml's element-class lookup in C.

``lxml.html.HTMLParser`` chooses each element's Python class with ``HtmlElementClassLookup``, a Python method
that lxml calls every time it hands an element to Python: every node an XPath returns or an iteration visits,
in the tree and in each of trafilatura's copies of it. That lookup only adds special classes for form controls,
whose extra methods neither trafilatura nor ingest calls, and it is one of the larger single costs of
:func:`~ingest.extract.extract_article`. The parser here gives every element the plain ``HtmlElement`` class
through lxml's own C lookup; copies of the tree keep the parser, and so the lookup.

The parser options are trafilatura's (comments and processing instructions dropped, no default doctype, ids not
collected), so that trafilatura reads the tree it would have built. :func:`load_page` parses differently from
``trafilatura.utils.load_html`` in one respect only: the text is always handed to lxml as UTF-8 bytes, in one
pass, because lxml refuses a ``str`` that carries an encoding declaration. It keeps trafilatura's repairs of
pages libxml2 misreads and its rule for what is not HTML at all (``tests/unit/test_htmltree.py`` compares the
trees on odd inputs and the extracted articles on the fixture and synthetic pages).
"""

from __future__ import annotations

import lxml.html
from lxml import etree
from trafilatura.utils import is_dubious_html, repair_faulty_html

__all__ = ["load_page"]

_PARSER = lxml.html.HTMLParser(
    collect_ids=False, default_doctype=False, encoding="utf-8", remove_comments=True, remove_pis=True
)
_PARSER.set_element_class_lookup(
    etree.ElementDefaultClassLookup(
        element=lxml.html.HtmlElement,
        comment=lxml.html.HtmlComment,
        pi=lxml.html.HtmlProcessingInstruction,
        entity=lxml.html.HtmlEntity,
    )
)


def load_page(text: str) -> lxml.html.HtmlElement | None:
    """The tree of a decoded page, or None when it holds nothing lxml can read or does not look like HTML (no
    ``html`` near its start and fewer than two top-level elements: text or a lone fragment, not a page)."""
    head = text[:50].lower()
    try:
        tree = lxml.html.fromstring(repair_faulty_html(text, head).encode("utf-8", "surrogatepass"), parser=_PARSER)
    except (etree.ParserError, ValueError):  # an empty document, or nothing but what the parser drops
        return None
    if is_dubious_html(head) and len(tree) < 2:
        return None
    return tree
