"""Article body and metadata from a fetched news page.

trafilatura finds the main text and most metadata. This module adds what it does not do reliably for
identity and dating: the page's own ``rel=canonical`` and ``og:url`` kept apart (trafilatura merges them
into one field), a publication timestamp taken from explicit metadata before any guessing, a language
from the page's declarations, and decoding that honours the BOM and ``<meta charset>``.

Threads: trafilatura 2.3 on lxml 6 has aborted processes with heap corruption when called from several
threads at once (upstream adbar/trafilatura issues 840 and 925). Call :func:`extract_article` from one
thread per process and use worker processes for parallelism. A module lock serialises calls made
through this module as a last line of defence, which also means threads bring no speed-up here.
"""

from __future__ import annotations

import codecs
import json
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import lxml.html
import trafilatura
from trafilatura.utils import decode_file

from ingest.canonical import web_url
from ingest.errors import ExtractionError
from ingest.feeds import normalize_language
from ingest.htmltree import load_page
from ingest.lean_metadata import lean_metadata
from newswire.embedding import Embedding

__all__ = ["ExtractedArticle", "ExtractionError", "extract_article"]

# A publication date further ahead than this is a wrong clock or an event date, not a publication date.
MAX_FUTURE_SKEW = timedelta(days=2)

# trafilatura is not thread-safe, and lean_metadata swaps its module globals for a call: every trafilatura
# extraction of the process runs under this lock (lean_metadata takes it).
_TRAFILATURA_LOCK = threading.Lock()
_CANONICAL_XPATH = (
    "//link[@href][contains(concat(' ', normalize-space(translate(@rel, 'CANONICAL', 'canonical')), ' '),"
    " ' canonical ')]/@href"
)

# htmldate's "extensive search" guesses from any date-looking text on the page (related links, copyright
# lines); explicit metadata is read first by this module, so only htmldate's structured pass is wanted.
_DATE_PARAMS: dict[str, Any] = {"extensive_search": False, "original_date": True}


@dataclass(frozen=True)
class ExtractedArticle:
    """Main text and metadata of one article page; URLs absolute, dates tz-aware UTC, language 'fr'-style."""

    text: str
    title: str | None
    author: str | None
    published_at: datetime | None
    language: str | None
    site_name: str | None
    description: str | None
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    image: str | None
    canonical_url: str | None  # <link rel="canonical">, as declared by the page (made absolute)
    og_url: str | None  # <meta property="og:url">, as declared by the page (made absolute)
    # Filled by the extraction worker after extraction (see ingest.extract_workers), not by extract_article:
    detected_language: str | None = None  # identified from the text, for pages that declare none (None otherwise)
    embedding: Embedding | None = None  # multilingual title+lead vector for story clustering
    # What the injected enrichment adds (pipeline.enrich: the transform's clustering features), carried as is
    # in the article message's ``features`` field (an opaque string); ingest does not look inside.
    features: str | None = None


def extract_article(
    html: bytes | str,
    *,
    url: str,
    min_chars: int = 200,
    content_type: str | None = None,
    now: datetime | None = None,
    fast: bool = False,
) -> ExtractedArticle:
    """Extract the article in ``html`` fetched from ``url``.

    ``content_type`` is the HTTP header; its charset is used when the page's bytes decode with it. ``now``
    (default: current time) bounds plausible publication dates. ``fast`` skips trafilatura's fallback
    extractors, which run on every page otherwise and cost a fifth to a third of the extraction time. Must run in
    one thread per process (see the module docstring). Raises :class:`ExtractionError` when the page holds
    fewer than ``min_chars`` characters of main text or is not HTML at all.
    """
    text = html if isinstance(html, str) else decode_html(html, content_type)
    tree = load_page(text)
    if tree is None:
        raise ExtractionError(f"not an HTML document: {url}", reason="not_html")
    now = now or datetime.now(UTC)
    declared = _declared(tree)
    base = web_url(_first(declared.base), url) or url
    canonical = web_url(_first(declared.canonical), base)
    og_url = web_url(_meta(tree, "og:url"), base)
    json_ld = _json_ld_article(declared.scripts)

    # Holds _TRAFILATURA_LOCK: the metadata this function reads, not the license or an empty tag search.
    with lean_metadata(_TRAFILATURA_LOCK):
        document = trafilatura.bare_extraction(
            tree,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            fast=fast,
            date_extraction_params=dict(_DATE_PARAMS),
        )
    if document is None:
        raise ExtractionError(f"no main text found: {url}", reason="no_body")
    title = _clean(document.title) or _clean(json_ld.get("headline"))
    body = _without_leading_title((document.text or "").strip(), title)
    if len(body) < min_chars:
        raise ExtractionError(f"main text too short ({len(body)} < {min_chars} chars): {url}", reason="no_body")

    return ExtractedArticle(
        text=body,
        title=title,
        author=_clean(document.author) or _json_ld_author(json_ld),
        published_at=_published_at(tree, json_ld, document.date, now),
        language=_language(tree, json_ld, document.language),
        site_name=_clean(document.sitename),
        description=_clean(document.description),
        categories=_strings(document.categories),
        tags=_strings(document.tags),
        image=web_url(document.image, base),
        canonical_url=canonical,
        og_url=og_url,
    )


# -- decoding --------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# WHATWG encoding standard: these labels mean windows-1252 in browsers, and pages rely on it.
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "ascii": "cp1252",
                   "us-ascii": "cp1252", "iso8859-1": "cp1252", "l1": "cp1252"}  # fmt: skip


def decode_html(content: bytes, content_type: str | None = None) -> str:
    """Decode page bytes: BOM, then valid UTF-8, then HTTP charset, then ``<meta charset>``, then detection.

    Declarations are often wrong: servers default to ``charset=ISO-8859-1`` over UTF-8 pages, templates
    declare UTF-8 over windows-1252 bytes. Bytes that are valid UTF-8 are practically never legacy-encoded
    text, so UTF-8 is tried before any declaration, and a declared charset is used only if it decodes.
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding, "replace")
    if b"\x00" not in content[:512]:  # UTF-16 without BOM is valid "UTF-8" too: leave it to the declarations
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            pass
    declared = []
    if content_type:
        match = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.I)
        if match:
            declared.append(match.group(1))
    match = _META_CHARSET.search(content[:8192])
    if match:
        declared.append(match.group(1).decode("ascii"))
    for label in declared:
        try:
            encoding = codecs.lookup(_WHATWG_ALIASES.get(label.lower(), label)).name
        except LookupError:
            continue
        if encoding.startswith(("utf-16", "utf-32")) and b"\x00" not in content[:512]:
            continue  # a UTF-16 label on ASCII-compatible bytes (a copy-pasted template): browsers ignore it
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    return decode_file(content)  # UTF-8, else charset detection, else UTF-8 with replacement characters


# -- head metadata ---------------------------------------------------------------------------------------


def _first(values: list[Any]) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _meta(tree: lxml.html.HtmlElement, key: str) -> str | None:
    """Content of ``<meta property|name|itemprop=key>``, matching the key case-insensitively."""
    key = key.lower()
    for element in tree.iter("meta"):
        for attribute in ("property", "name", "itemprop", "http-equiv"):
            value = element.get(attribute)
            if value and value.strip().lower() == key:
                content = (element.get("content") or "").strip()
                if content:
                    return content
    return None


@dataclass(frozen=True)
class _Declared:
    """What the page declares in ``<link>``, ``<base>`` and ``<script>`` elements, each in document order."""

    canonical: list[str]  # the href of every <link rel="canonical">: what _CANONICAL_XPATH selects
    base: list[str]  # the href of every <base> (the first web URL is the base for relative URLs)
    scripts: list[lxml.html.HtmlElement]  # every <script> with a type (JSON-LD is among them)


_XPATH_SPACE = re.compile("[ \t\r\n]+")  # what XPath's normalize-space() collapses
_CANONICAL_CASE = str.maketrans("CANOIL", "canoil")  # XPath translate(@rel, 'CANONICAL', 'canonical')


def _declared(tree: lxml.html.HtmlElement) -> _Declared:
    """One walk over the page for what three whole-page XPaths found (``_CANONICAL_XPATH``, ``//base/@href``,
    ``//script[@type]``), with their results in the same order; each XPath walked the whole page again."""
    canonical: list[str] = []
    base: list[str] = []
    scripts: list[lxml.html.HtmlElement] = []
    for element in tree.iter("link", "base", "script"):
        if element.tag == "script":
            if element.get("type") is not None:
                scripts.append(element)
            continue
        href = element.get("href")
        if href is None:
            continue
        if element.tag == "base":
            base.append(href)
        elif _is_canonical(element.get("rel")):
            canonical.append(href)
    return _Declared(canonical, base, scripts)


def _is_canonical(rel: str | None) -> bool:
    """Whether a ``rel`` value holds the token "canonical" as ``_CANONICAL_XPATH`` decides it."""
    if rel is None:
        return False
    tokens = _XPATH_SPACE.sub(" ", rel.translate(_CANONICAL_CASE).strip(" \t\r\n"))
    return " canonical " in f" {tokens} "


# -- JSON-LD ---------------------------------------------------------------------------------------------

_ARTICLE_TYPES = frozenset(
    {
        "article",
        "newsarticle",
        "reportagenewsarticle",
        "analysisnewsarticle",
        "opinionnewsarticle",
        "backgroundnewsarticle",
        "reviewnewsarticle",
        "askpublicnewsarticle",
        "blogposting",
        "liveblogposting",
        "report",
        "scholarlyarticle",
        "techarticle",
        "socialmediaposting",
    }
)


def _json_ld_article(scripts: list[lxml.html.HtmlElement]) -> Mapping[str, Any]:
    """The first Article-like object in the page's JSON-LD (searching @graph, lists and mainEntity), given the
    page's ``<script>`` elements that have a type."""
    for script in scripts:
        if "ld+json" not in script.get("type", "").lower() or not script.text:
            continue
        raw = script.text.strip()
        raw = re.sub(r"^\s*(?:<!--|<!\[CDATA\[)|(?:-->|\]\]>)\s*$", "", raw)
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            continue
        for candidate in _walk_json_ld(data, depth=0):
            if _json_ld_types(candidate) & _ARTICLE_TYPES:
                return candidate
    return {}


def _walk_json_ld(data: Any, depth: int) -> Iterator[Mapping[str, Any]]:
    if depth > 4:
        return
    if isinstance(data, list):
        for item in data:
            yield from _walk_json_ld(item, depth + 1)
    elif isinstance(data, Mapping):
        yield data
        for key in ("@graph", "mainEntity", "mainEntityOfPage"):
            if key in data:
                yield from _walk_json_ld(data[key], depth + 1)


def _json_ld_types(item: Mapping[str, Any]) -> set[str]:
    types = item.get("@type")
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list):
        return set()
    return {t.rsplit("/", 1)[-1].lower() for t in types if isinstance(t, str)}


def _json_ld_author(article: Mapping[str, Any]) -> str | None:
    authors = article.get("author")
    if authors is None:
        return None
    if not isinstance(authors, list):
        authors = [authors]
    names = []
    for author in authors:
        name = author.get("name") if isinstance(author, Mapping) else author
        name = _clean(name) if isinstance(name, str) else None
        if name and name not in names:
            names.append(name)
    return "; ".join(names) or None


# -- publication date ------------------------------------------------------------------------------------

_PUBLISHED_META_KEYS = (
    "article:published_time",
    "og:article:published_time",
    "datepublished",
    "parsely-pub-date",
    "sailthru.date",
    "dc.date.issued",
    "dcterms.issued",
    "dcterms.created",
    "dc.date",
    "pubdate",
    "publishdate",
    "publish-date",
)


def _published_at(
    tree: lxml.html.HtmlElement, json_ld: Mapping[str, Any], trafilatura_date: str | None, now: datetime
) -> datetime | None:
    """Earliest-trusted explicit publication timestamp, falling back to trafilatura's (htmldate) date."""
    for candidate in _published_candidates(tree, json_ld, trafilatura_date):
        moment = parse_datetime(candidate)
        if moment is not None and moment <= now + MAX_FUTURE_SKEW:
            return moment
    return None


def _published_candidates(
    tree: lxml.html.HtmlElement, json_ld: Mapping[str, Any], trafilatura_date: str | None
) -> Iterator[Any]:
    """The candidates in order of trust, each looked up only when every earlier one failed: most pages declare
    the date in their head, and each XPath below walks the whole page."""
    for key in _PUBLISHED_META_KEYS:
        yield _meta(tree, key)
    yield json_ld.get("datePublished")
    yield from tree.xpath("//time[@itemprop='datePublished' or @pubdate]/@datetime")
    yield from tree.xpath("(//article//time[@datetime])[1]/@datetime")
    yield trafilatura_date


def parse_datetime(value: Any) -> datetime | None:
    """ISO 8601 / RFC 2822 date or timestamp as tz-aware UTC; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text[:10]), time()) if len(text) == 10 else None
        except ValueError:
            moment = None
        if moment is None:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- language --------------------------------------------------------------------------------------------


def _language(tree: lxml.html.HtmlElement, json_ld: Mapping[str, Any], detected: str | None) -> str | None:
    root = tree.getroottree().getroot()
    in_language = json_ld.get("inLanguage")
    if isinstance(in_language, Mapping):
        in_language = in_language.get("alternateName") or in_language.get("name")
    for candidate in (
        detected,
        root.get("lang"),
        root.get("xml:lang"),
        in_language,
        _meta(tree, "content-language"),
        _meta(tree, "og:locale"),
        _meta(tree, "language"),
    ):
        language = normalize_language(candidate)
        if language:
            return language
    return None


# -- small helpers ---------------------------------------------------------------------------------------


def _without_leading_title(body: str, title: str | None) -> str:
    """Drop the headline trafilatura keeps as the body's first line.

    It is in ``title`` already, and the same story syndicated under another headline should yield the
    same body text (and content hash).
    """
    first, _, rest = body.partition("\n")
    if title and rest.strip() and " ".join(first.split()).casefold() == title.casefold():
        return rest.strip()
    return body


def _clean(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        return ()
    out: dict[str, str] = {}
    for value in values:
        text = _clean(value)
        if text:
            out.setdefault(text.casefold(), text)
    return tuple(out.values())
