"""trafilatura's page metadata, without the work whose result ingest never reads.

``trafilatura.bare_extraction(..., with_metadata=True)`` runs ``trafilatura.metadata.extract_metadata`` on the
page before extracting the text. On news pages a good part of its time goes to two things:

* the license (``extract_license``): links and footers scanned for Creative Commons cues. Nothing in ingest
  reads it;
* categories and tags (``extract_catstags``): up to ten XPath expressions over the whole tree (some with
  regular-expression tests on every element's class), each of whose links is kept only when its ``href``
  contains ``/category/``, ``/tag/`` or a plural of them. When no link of the page has such an ``href``, no
  expression can yield anything, so :func:`page_metadata` looks at the links' targets once and skips the
  expressions; a page that has such links gets trafilatura's own function.

Everything else is trafilatura's function step by step, calling its own helpers, so the fields ingest uses
(title, author, date, site name, description, categories, tags, image, URL, language) are the ones
``with_metadata=True`` gives. ``tests/unit/test_pagemeta.py`` compares the two on the project's fixture pages
and synthetic benchmark pages, and checks that neither changes the tree that extraction reads afterwards.
It follows trafilatura 2.3; a release that changes ``extract_metadata`` shows there first.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from lxml.html import HtmlElement
from trafilatura.metadata import (
    META_URL,
    check_authors,
    examine_meta,
    extract_author,
    extract_catstags,
    extract_domain,
    extract_meta_json,
    extract_sitename,
    extract_title,
    extract_url,
    find_date,
)
from trafilatura.settings import Document
from trafilatura.utils import line_processing

__all__ = ["page_metadata"]

log = logging.getLogger(__name__)

# What extract_catstags requires of a link's href for each kind, as trafilatura builds it.
_CATEGORY_HREF = re.compile("/" + "category".rstrip("y") + "(?:y|ies|s)?/")
_TAG_HREF = re.compile("/" + "tag".rstrip("y") + "(?:y|ies|s)?/")
# extract_catstags' fallback for categories when no link qualifies.
_SECTION_META = './/head//meta[@property="article:section" or contains(@name, "subject")][@content]'


def page_metadata(
    tree: HtmlElement,
    url: str | None,
    date_params: dict[str, Any],
    author_blacklist: set[str] | None = None,
) -> Document:
    """``trafilatura.metadata.extract_metadata(tree, url, date_params)`` without the license (left None) and
    without evaluating the category and tag expressions where no link could pass their filter."""
    author_blacklist = author_blacklist or set()
    date_config = {**date_params}

    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception as exc:  # as trafilatura does: a bug in its JSON-LD reader is no reason to lose the page
        log.warning("error in JSON metadata extraction: %s", exc)
    if not metadata.title:
        metadata.title = extract_title(tree)
    if metadata.author and author_blacklist:
        metadata.author = check_authors(metadata.author, author_blacklist)
    if not metadata.author:
        metadata.author = extract_author(tree)
    if metadata.author and author_blacklist:
        metadata.author = check_authors(metadata.author, author_blacklist)
    if not metadata.url:
        metadata.url = extract_url(tree, url)
    if metadata.url:
        metadata.hostname = extract_domain(metadata.url, fast=True)
    date_config["url"] = metadata.url
    metadata.date = find_date(tree, **date_config)
    if not metadata.sitename:
        metadata.sitename = extract_sitename(tree)
    if metadata.sitename:
        metadata.sitename = metadata.sitename.lstrip("@")
        if metadata.sitename and "." not in metadata.sitename and not metadata.sitename[0].isupper():
            metadata.sitename = metadata.sitename.title()
    elif metadata.url:
        match = META_URL.match(metadata.url)
        if match:
            metadata.sitename = match[1]

    if not metadata.categories or not metadata.tags:
        # One string of every link target: the patterns hold no newline, so a match never spans two targets.
        hrefs = "\n".join(tree.xpath("//a/@href"))
        if not metadata.categories:
            metadata.categories = (
                extract_catstags("category", tree) if _CATEGORY_HREF.search(hrefs) else _section_categories(tree)
            )
        if not metadata.tags:
            metadata.tags = extract_catstags("tag", tree) if _TAG_HREF.search(hrefs) else []

    metadata.filedate = date_config.get("max_date")
    metadata.clean_and_trim()
    return metadata


def _section_categories(tree: HtmlElement) -> list[str]:
    """What ``extract_catstags("category", tree)`` returns when no link's target names a category."""
    results = [element.attrib["content"] for element in tree.xpath(_SECTION_META)]
    return [r for r in dict.fromkeys(line_processing(x) for x in results if x) if r]
