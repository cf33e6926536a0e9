"""Sitemaps as a source of article URLs for one day: robots.txt ``Sitemap:`` lines, indexes, Google News.

A feed lists a site's latest entries only; its sitemaps list (nearly) everything, with a date per URL: the
Google News ``news:publication_date`` when the site has a news sitemap, else ``lastmod``. That is what lets a
backfill find the articles of a past day that no feed document still carries.

Sitemaps are hostile input like feeds: a document declaring a DOCTYPE or entities is refused before any XML
parser sees it (billion laughs, XXE), sizes are capped by the fetcher while streaming and again after gunzip
(``.xml.gz`` sitemaps served as files), and a walk is bounded in documents and nesting depth.

Pruning: a child of a sitemap index whose ``lastmod`` is before the day cannot list an article published that
day (adding the URL would have modified it), so it is not fetched. Sites that never update ``lastmod`` on their
indexes simply get no pruning: a child without ``lastmod`` is always read.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree

from ingest.canonical import InvalidUrlError, canonicalize_url, web_url
from ingest.errors import FetchError, HttpStatusError, SitemapError
from ingest.feeds import FeedEntry, normalize_language

__all__ = [
    "ParsedSitemap",
    "SitemapChild",
    "SitemapError",
    "SitemapHarvest",
    "SitemapUrl",
    "collect_sitemap_entries",
    "parse_sitemap",
    "parse_w3c_datetime",
]

log = logging.getLogger(__name__)

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
#: The protocol's own limit per document; a larger one is truncated with a warning.
MAX_URLS = 50_000
#: Documents one walk may read, and how deep indexes may nest (index -> index -> urlset).
MAX_DOCUMENTS = 200
MAX_DEPTH = 3
#: Where to look when robots.txt names no sitemap (the protocol's and WordPress's default locations).
FALLBACK_PATHS = ("/sitemap.xml",)

_GZIP_MAGIC = b"\x1f\x8b"
_DOCTYPE_OR_ENTITY = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.I)
_W3C_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")

Loader = Callable[[str], bytes]
"""Returns a document's bytes (already decoded from any Content-Encoding); raises ``FetchError``."""


@dataclass(frozen=True)
class SitemapUrl:
    """One ``<url>`` of a urlset; dates are tz-aware UTC."""

    loc: str
    lastmod: datetime | None = None
    published: datetime | None = None  # news:publication_date
    title: str | None = None  # news:title
    language: str | None = None  # news:language, primary subtag
    keywords: tuple[str, ...] = ()

    @property
    def moment(self) -> datetime | None:
        """When the article appeared: its publication date when the sitemap says, else its last change."""
        return self.published or self.lastmod

    def to_entry(self) -> FeedEntry:
        return FeedEntry(
            guid=None,
            link=self.loc,
            title=self.title,
            summary=None,
            published=self.moment,
            updated=self.lastmod,
            author=None,
            tags=self.keywords,
            language=self.language,
        )


@dataclass(frozen=True)
class SitemapChild:
    """One ``<sitemap>`` of a sitemap index."""

    loc: str
    lastmod: datetime | None = None


@dataclass(frozen=True)
class ParsedSitemap:
    kind: str  # "urlset" | "sitemapindex"
    urls: tuple[SitemapUrl, ...] = ()
    sitemaps: tuple[SitemapChild, ...] = ()
    warnings: tuple[str, ...] = ()


def parse_sitemap(
    content: bytes, *, url: str, max_bytes: int = 50 * 1024 * 1024, max_urls: int = MAX_URLS
) -> ParsedSitemap:
    """Parse a sitemap or sitemap index (plain or gzipped bytes). ``url`` resolves relative locations."""
    if content.startswith(_GZIP_MAGIC):
        content = _gunzip(content, max_bytes, url)
    if _DOCTYPE_OR_ENTITY.search(content.replace(b"\x00", b"")):
        raise SitemapError(f"sitemap {url} declares a DOCTYPE or entities; refused", reason="entity_declaration")
    parser = lxml.etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        root = lxml.etree.fromstring(content, parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise SitemapError(f"unparsable sitemap {url}: {exc}", reason="invalid_xml") from exc
    if root is None:
        raise SitemapError(f"empty sitemap document {url}", reason="invalid_xml")
    kind = lxml.etree.QName(root).localname
    warnings: list[str] = []
    if kind == "urlset":
        urls = []
        for node in _children(root, "url"):
            if len(urls) >= max_urls:
                warnings.append(f"truncated to the first {max_urls} URLs")
                break
            item = _url(node, url, warnings)
            if item is not None:
                urls.append(item)
        return ParsedSitemap("urlset", urls=tuple(urls), warnings=tuple(warnings))
    if kind == "sitemapindex":
        children = []
        for node in _children(root, "sitemap"):
            loc = web_url(_text(node, "loc"), url)
            if loc is None:
                warnings.append("index entry without a usable <loc> skipped")
                continue
            children.append(SitemapChild(loc, _date(_text(node, "lastmod"), warnings)))
        return ParsedSitemap("sitemapindex", sitemaps=tuple(children[:max_urls]), warnings=tuple(warnings))
    raise SitemapError(f"{url} is not a sitemap (root <{kind}>)", reason="not_a_sitemap")


def parse_w3c_datetime(text: str | None) -> datetime | None:
    """A W3C Datetime (``2024-11-25``, ``2024-11-25T14:20Z``, ``…T14:20:00.5+01:00``) in UTC, or None.

    Dates without a time are midnight UTC; times without a zone are taken as UTC (the protocol requires a
    zone; sites that omit it are almost always in UTC or close enough for a day filter).
    """
    if not text:
        return None
    value = text.strip()
    match = _W3C_DATE.match(value)
    if match:
        year, month, day = int(match.group(1)), int(match.group(2) or 1), int(match.group(3) or 1)
        try:
            return datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            return None
    value = value.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class SitemapHarvest:
    """What one walk found: the URLs dated within the window, and what it cost."""

    entries: list[FeedEntry] = field(default_factory=list)
    sitemaps: list[str] = field(default_factory=list)  # the documents read
    skipped_by_lastmod: int = 0  # index children not read because their lastmod is before the window
    undated: int = 0  # URLs without any date: they cannot be placed on a day
    errors: list[str] = field(default_factory=list)  # transient failures: retry the walk later
    retry_after: float | None = None  # the longest Retry-After a failing server asked for
    warnings: list[str] = field(default_factory=list)


def collect_sitemap_entries(
    roots: Iterable[str],
    load: Loader,
    *,
    start: datetime,
    end: datetime,
    max_bytes: int = 50 * 1024 * 1024,
    max_documents: int = MAX_DOCUMENTS,
    max_depth: int = MAX_DEPTH,
    same_site_only: bool = True,
    optional: Iterable[str] = (),
) -> SitemapHarvest:
    """Walk sitemaps from ``roots`` and return the URLs dated in ``[start, end)`` as feed entries.

    A root or child that is missing (404/410) or not a sitemap is skipped with a warning; transient failures
    (5xx, timeouts) are recorded in ``errors`` so the caller can retry. ``same_site_only`` drops URLs on
    another host than their sitemap (the protocol forbids them unless robots.txt cross-submits them).
    ``optional`` roots are guesses (no robots.txt line named them): their absence is not worth a warning.
    """
    harvest = SitemapHarvest()
    guesses = set(optional)
    seen_docs: set[str] = set()
    seen_urls: set[str] = set()
    queue: list[tuple[str, int]] = [(root, 0) for root in dict.fromkeys(roots)]
    while queue:
        doc_url, depth = queue.pop(0)
        if doc_url in seen_docs:
            continue
        if len(seen_docs) >= max_documents:
            harvest.warnings.append(f"stopped after {max_documents} sitemap documents")
            break
        seen_docs.add(doc_url)
        try:
            parsed = parse_sitemap(load(doc_url), url=doc_url, max_bytes=max_bytes)
        except HttpStatusError as exc:
            if exc.retryable:
                harvest.errors.append(f"sitemap {doc_url}: {exc}")
                if exc.retry_after is not None:
                    harvest.retry_after = max(harvest.retry_after or 0.0, exc.retry_after)
            elif doc_url in guesses and exc.status in (404, 410):
                pass  # the site has no sitemap where sites usually put one: nothing to report
            else:
                harvest.warnings.append(f"sitemap {doc_url}: {exc}")
            continue
        except FetchError as exc:
            (harvest.errors if exc.retryable else harvest.warnings).append(f"sitemap {doc_url}: {exc}")
            continue
        except SitemapError as exc:
            harvest.warnings.append(f"sitemap {doc_url}: {exc}")
            continue
        harvest.sitemaps.append(doc_url)
        harvest.warnings.extend(f"sitemap {doc_url}: {w}" for w in parsed.warnings)
        if parsed.kind == "sitemapindex":
            if depth + 1 > max_depth:
                harvest.warnings.append(f"sitemap {doc_url}: nested deeper than {max_depth}; children skipped")
                continue
            for child in parsed.sitemaps:
                if child.lastmod is not None and child.lastmod < start:
                    harvest.skipped_by_lastmod += 1
                    continue
                queue.append((child.loc, depth + 1))
            continue
        origin = _origin(doc_url)
        for item in parsed.urls:
            if same_site_only and _origin(item.loc) != origin:
                continue
            moment = item.moment
            if moment is None:
                harvest.undated += 1
                continue
            if not start <= moment < end:
                continue
            key = _key(item.loc)
            if key in seen_urls:
                continue
            seen_urls.add(key)
            harvest.entries.append(item.to_entry())
    return harvest


def sitemap_roots(site_url: str, robots_sitemaps: Iterable[str]) -> list[str]:
    """The sitemaps to start from: robots.txt's, else the conventional ``/sitemap.xml`` of the site."""
    listed = list(dict.fromkeys(robots_sitemaps))
    if listed:
        return listed
    return [urljoin(site_url, path) for path in FALLBACK_PATHS]


# -- helpers ---------------------------------------------------------------------------------------------


def _gunzip(content: bytes, max_bytes: int, url: str) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(content, max_bytes + 1)
    except zlib.error as exc:
        raise SitemapError(f"sitemap {url}: bad gzip data: {exc}", reason="invalid_xml") from exc
    if len(out) > max_bytes or decompressor.unconsumed_tail:
        raise SitemapError(f"sitemap {url} decompresses to more than {max_bytes} bytes", reason="too_large")
    return out


def _children(node: Any, name: str) -> Iterable[Any]:
    for child in node:
        if isinstance(child.tag, str) and lxml.etree.QName(child).localname == name:
            yield child


def _first(node: Any, name: str, namespace: str | None = None) -> Any:
    for child in node:
        if not isinstance(child.tag, str):
            continue
        qname = lxml.etree.QName(child)
        if qname.localname == name and (namespace is None or qname.namespace == namespace):
            return child
    return None


def _text(node: Any, name: str, namespace: str | None = None) -> str | None:
    child = _first(node, name, namespace)
    if child is None or child.text is None:
        return None
    text = " ".join(child.text.split())
    return text or None


def _url(node: Any, base: str, warnings: list[str]) -> SitemapUrl | None:
    loc = web_url(_text(node, "loc"), base)
    if loc is None:
        warnings.append("url entry without a usable <loc> skipped")
        return None
    news = _first(node, "news", NEWS_NS)
    published = title = language = None
    keywords: tuple[str, ...] = ()
    if news is not None:
        published = _date(_text(news, "publication_date", NEWS_NS), warnings)
        title = _text(news, "title", NEWS_NS)
        publication = _first(news, "publication", NEWS_NS)
        if publication is not None:
            language = normalize_language(_text(publication, "language", NEWS_NS))
        raw_keywords = _text(news, "keywords", NEWS_NS)
        if raw_keywords:
            keywords = tuple(k.strip() for k in raw_keywords.split(",") if k.strip())
    return SitemapUrl(
        loc=loc,
        lastmod=_date(_text(node, "lastmod"), warnings),
        published=published,
        title=title,
        language=language,
        keywords=keywords,
    )


def _date(text: str | None, warnings: list[str]) -> datetime | None:
    if text is None:
        return None
    moment = parse_w3c_datetime(text)
    if moment is None:
        warnings.append(f"unusable date {text[:60]!r}")
        return None
    if moment > datetime.now(UTC) + timedelta(days=2):
        warnings.append(f"date {text[:60]!r} is in the future; ignored")
        return None
    return moment


def _origin(url: str) -> str:
    """Scheme-less site identity: ``www.`` and the scheme do not make another site (http->https moves)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host


def _key(url: str) -> str:
    try:
        return canonicalize_url(url)
    except InvalidUrlError:
        return url
