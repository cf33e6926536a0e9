"""Turn feed bytes we fetched ourselves into plain, validated entries.

feedparser does the format work (RSS 0.9x/1.0/2.0, Atom 0.3/1.0, encodings, xml:base, sanitising) but it
is given a byte stream only, so it never makes HTTP requests or opens local files. Around it this module
adds what unattended ingestion of hostile input needs: refusing entity declarations before any XML parser
sees them, telling an HTML page from a feed, bounding the number of entries, rejecting impossible dates
and non-web links, and reporting every recoverable oddity as a warning instead of silently guessing.
"""

from __future__ import annotations

import calendar
import codecs
import dataclasses
import hashlib
import html
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import feedparser
import lxml.etree
import lxml.html

from ingest.canonical import InvalidUrlError, canonicalize_url, web_url
from ingest.errors import FeedParseError

__all__ = [
    "FeedEntry",
    "FeedParseError",
    "ParsedFeed",
    "html_to_text",
    "normalize_language",
    "parse_feed",
    "trusted_date",
    "web_url",
]

#: Declared types that say "feed". Any other text/* or application/* type is still parsed when the body is a
#: feed (servers send text/rss+xml, application/xml-dtd, text/plain, ...), with a warning on the run.
FEED_MEDIA_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/xml",
        "text/xml",
        "application/feed+json",
        "application/json",
    }
)

# An entry dated further ahead than this is a broken clock or a placeholder, not news.
MAX_FUTURE_SKEW = timedelta(days=2)
# Dates before this are a zero timestamp (1970-01-01, or 1969 after a time-zone shift) left by a CMS bug.
EPOCH_PLACEHOLDER_BEFORE = datetime(1971, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedEntry:
    """One item of a feed, reduced to what the ingest pipeline uses; all text is plain, all dates UTC."""

    guid: str | None
    link: str | None  # absolute http(s), resolved against xml:base / the feed URL
    title: str | None
    summary: str | None  # plain text, HTML stripped
    published: datetime | None  # tz-aware UTC: published, else updated, else created/dc:date
    updated: datetime | None
    author: str | None
    tags: tuple[str, ...]
    language: str | None  # primary language subtag ('fr'), from xml:lang or the feed's language

    @property
    def key(self) -> str:
        """Identity of the entry within its feed, stable across polls.

        The canonical link wins because publishers regenerate GUIDs more often than they move articles;
        entries with neither link nor GUID fall back to a hash of their text.
        """
        if self.link:
            try:
                return canonicalize_url(self.link)
            except InvalidUrlError:
                return self.link
        if self.guid:
            return self.guid
        digest = hashlib.sha256(f"{self.title or ''}\n{self.summary or ''}".encode()).hexdigest()
        return f"hash:{digest[:32]}"


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed: channel metadata, usable entries and the warnings met on the way."""

    title: str | None
    link: str | None
    language: str | None
    format: str  # feedparser's version string: 'rss20', 'atom10', 'rss10', 'rss091u', ...
    entries: tuple[FeedEntry, ...]
    warnings: tuple[str, ...]
    next_url: str | None  # RFC 5005 paged feed: rel="next"
    prev_archive_url: str | None  # RFC 5005 archived feed: rel="prev-archive"


def parse_feed(
    content: bytes,
    *,
    url: str,
    content_type: str | None = None,
    max_entries: int = 10_000,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a fetched feed document.

    ``url`` is the address the bytes came from (after redirects); relative links resolve against it.
    ``content_type`` is the HTTP Content-Type header, whose charset feedparser weighs against the XML
    declaration. ``now`` (default: current time) bounds acceptable dates. A feed with no entries is valid.

    Raises :class:`FeedParseError` when the document is empty, an HTML page, declares XML entities, or is
    too broken for feedparser to recognise any feed in it.
    """
    if max_entries < 1:
        raise ValueError("max_entries must be positive")
    if not content or not content.strip(b" \t\r\n\f\v\x00\xef\xbb\xbf\xff\xfe"):
        raise FeedParseError(f"empty document from {url}", reason="empty_feed")
    now = now or datetime.now(UTC)
    from ingest.jsonfeed import looks_like_json, parse_json_feed  # it builds on this module's types

    if looks_like_json(content):  # no XML parser ever sees it, so no entity can be expanded either
        return _declared_type_checked(parse_json_feed(content, url=url, max_entries=max_entries, now=now), content_type)
    _refuse_entity_declarations(content, content_type, url)
    root = _sniff_root(content)
    if root is None:
        raise FeedParseError(f"no XML element in document from {url}", reason="not_a_feed")
    if root == "html":
        raise FeedParseError(f"HTML page, not a feed, at {url}", reason="not_a_feed")

    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A stream, never a str/bytes: feedparser treats strings as URLs or file paths to open.
    content = _replace_surrogate_references(content)
    try:
        result = feedparser.parse(io.BytesIO(content), response_headers=headers)
    except Exception as exc:  # a third-party parser on hostile bytes: any crash means "unusable document"
        # Found by fuzzing: e.g. a lone-surrogate character reference (&#xD800;) raises UnicodeEncodeError.
        raise FeedParseError(f"unparsable feed from {url}: {type(exc).__name__}: {exc}", reason="invalid_xml") from exc
    version = result.get("version") or ""
    raw_entries = result.get("entries") or []
    warnings: list[str] = []
    if result.get("bozo"):
        exc = result.get("bozo_exception")
        if not version and not raw_entries:
            if isinstance(exc, feedparser.NonXMLContentType) or exc is None:
                raise FeedParseError(f"no feed found in document from {url}", reason="not_a_feed")
            raise FeedParseError(f"unparsable feed from {url}: {exc}", reason="invalid_xml")
        if not isinstance(exc, feedparser.NonXMLContentType):  # the declared type is checked below
            warnings.append(f"bozo: {exc}")
    elif not version and not raw_entries:
        raise FeedParseError(f"XML document from {url} is not a feed (root <{root}>)", reason="not_a_feed")

    channel = result.get("feed") or {}
    feed_language = normalize_language(channel.get("language") or _detail_language(channel, "title"))

    if len(raw_entries) > max_entries:
        warnings.append(f"truncated to the first {max_entries} of {len(raw_entries)} entries")
        raw_entries = raw_entries[:max_entries]

    entries = [
        _build_entry(raw, position, url=url, feed_language=feed_language, now=now, warnings=warnings)
        for position, raw in enumerate(raw_entries, start=1)
    ]

    links = channel.get("links") or []
    parsed = ParsedFeed(
        title=_plain(channel, "title"),
        link=web_url(channel.get("link"), url),
        language=feed_language,
        format=version or "unknown",
        entries=tuple(entries),
        warnings=tuple(warnings),
        next_url=_rel_link(links, "next", url),
        prev_archive_url=_rel_link(links, "prev-archive", url),
    )
    return _declared_type_checked(parsed, content_type)


def _declared_type_checked(parsed: ParsedFeed, content_type: str | None) -> ParsedFeed:
    """Add a warning when the document is a feed but was declared as something else."""
    declared = (content_type or "").partition(";")[0].strip().lower()
    if not declared or declared in FEED_MEDIA_TYPES:
        return parsed
    warning = f"declared Content-Type {declared!r} is not a feed type; parsed as {parsed.format} by its content"
    return dataclasses.replace(parsed, warnings=(warning, *parsed.warnings))


def normalize_language(value: Any) -> str | None:
    """Primary language subtag in lower case ('fr-FR', 'FR', 'fr_fr' -> 'fr'); None if not a language tag."""
    if not isinstance(value, str):
        return None
    first = re.split(r"[,;\s]", value.strip(), maxsplit=1)[0]
    primary = re.split(r"[-_]", first, maxsplit=1)[0].lower()
    return primary if re.fullmatch(r"[a-z]{2,3}", primary) else None


_BLOCK_TAGS = frozenset(
    (
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
        "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
        "section", "table", "td", "th", "tr", "ul",
    )
)  # fmt: skip
_DROP_TAGS = ("script", "style", "noscript", "template")


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment on one line; block boundaries become spaces, not glued words."""
    if "<" not in markup and "&" not in markup:
        return " ".join(markup.split())
    try:
        root = lxml.html.fragment_fromstring(markup, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", markup)).split())
    lxml.etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCK_TAGS:
            element.tail = " " + (element.tail or "")
            if element.text is not None or len(element):
                element.text = " " + (element.text or "")
    return " ".join(root.text_content().split())


# -- safety checks before feedparser ---------------------------------------------------------------------

_CHAR_REFERENCE = re.compile(rb"&#([xX][0-9a-fA-F]{1,8}|[0-9]{1,10});")


def _replace_surrogate_references(content: bytes) -> bytes:
    """Turn character references to UTF-16 surrogates (``&#xD83D;``, a mangled emoji) into U+FFFD.

    They are not characters, and feedparser crashes on them; one such title must not lose the whole feed.
    """
    if b"&#" not in content:
        return content

    def fix(match: re.Match[bytes]) -> bytes:
        digits = match.group(1)
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
        return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF else match.group(0)

    return _CHAR_REFERENCE.sub(fix, content)


_CDATA_OR_COMMENT = re.compile(r"<!\[CDATA\[.*?(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)", re.S)
_ENTITY_DECL = re.compile(r"<!ENTITY", re.I)
_XML_DECL_ENCODING = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""", re.I)
_EBCDIC_XML_DECL = b"\x4c\x6f\xa7\x94"
_ASCII = "".join(map(chr, range(128)))


def _refuse_entity_declarations(content: bytes, content_type: str | None, url: str) -> None:
    """Refuse any ``<!ENTITY`` markup (billion laughs, XXE) in every way the bytes could be decoded.

    An entity declaration is legal only inside a DOCTYPE; no real feed needs one. The check looks at the
    document as ASCII (with NUL bytes removed, which also exposes UTF-16/32 markup), and again decoded with
    any declared charset that does not keep ASCII as is (UTF-7, EBCDIC), because feedparser would honour it.
    """
    for text in _decodings(content, content_type):
        if _ENTITY_DECL.search(_CDATA_OR_COMMENT.sub("", text)):
            raise FeedParseError(f"document from {url} declares XML entities; refused", reason="entity_declaration")


def _decodings(content: bytes, content_type: str | None) -> Iterable[str]:
    ascii_view = content.replace(b"\x00", b"").decode("latin-1")
    yield ascii_view
    declared = []
    match = _XML_DECL_ENCODING.match(ascii_view.lstrip("\xef\xbb\xbf\xfe\xff"))
    if match:
        declared.append(match.group(1))
    if content_type:
        charset = _charset_of(content_type)
        if charset:
            declared.append(charset)
    if content.startswith(_EBCDIC_XML_DECL):
        declared.append("cp037")
    for name in declared:
        try:
            codec = codecs.lookup(name)
        except LookupError:
            continue
        if not _keeps_ascii(codec.name):
            yield content.decode(codec.name, "replace")


def _keeps_ascii(codec_name: str) -> bool:
    """Whether every ASCII byte decodes to itself (false for UTF-7, UTF-16/32 and EBCDIC)."""
    try:
        return bytes(range(128)).decode(codec_name) == _ASCII
    except UnicodeError:
        return False


def _charset_of(content_type: str) -> str | None:
    message = Message()
    message["content-type"] = content_type
    charset = message.get_param("charset")
    return charset.strip() if isinstance(charset, str) else None


_PROLOGUE_ITEM = re.compile(r"\s+|<\?.*?(?:\?>|\Z)|<!--.*?(?:-->|\Z)|<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.S | re.I)
_DOCTYPE_HTML = re.compile(r"<!DOCTYPE\s+html\b", re.I)
_ROOT_TAG = re.compile(r"<([A-Za-z_][\w.:-]*)")
_HTML_ROOTS = frozenset({"html", "head", "body", "frameset"})
_BOMS = ("\xef\xbb\xbf", "\xff\xfe", "\xfe\xff")


def _sniff_root(content: bytes) -> str | None:
    """Local name of the root element, 'html' for any HTML page, or None when there is no markup."""
    text = content[:1_000_000].replace(b"\x00", b"").decode("latin-1")
    for bom in _BOMS:
        if text.startswith(bom):
            text = text[len(bom) :]
            break
    position = 0
    while True:
        item = _PROLOGUE_ITEM.match(text, position)
        if item is None or item.end() == position:
            break
        if _DOCTYPE_HTML.match(item.group(0)):
            return "html"
        position = item.end()
    root = _ROOT_TAG.match(text, position)
    if root is None:
        return None
    name = root.group(1).rsplit(":", 1)[-1].lower()
    return "html" if name in _HTML_ROOTS else name


# -- entry conversion ------------------------------------------------------------------------------------


def _build_entry(
    raw: Mapping[str, Any],
    position: int,
    *,
    url: str,
    feed_language: str | None,
    now: datetime,
    warnings: list[str],
) -> FeedEntry:
    """Every item becomes an entry, even one without link, guid or title: ingest records it as skipped
    (``no_identity``) so that the feed's items are all accounted for."""
    title = _plain(raw, "title")
    guid = (raw.get("id") or "").strip() or None
    raw_link = (raw.get("link") or "").strip()
    link = web_url(raw_link, url)
    if raw_link and link is None:
        warnings.append(f"entry {position}: ignored non-web link {raw_link[:200]!r}")

    label = f"entry {position}"
    published_raw = _date(raw, "published", now, label, warnings)
    updated = _date(raw, "updated", now, label, warnings)
    created = _date(raw, "created", now, label, warnings)
    summary = _plain(raw, "summary")
    if summary is None and raw.get("content"):
        summary = _plain_detail(raw["content"][0])
    return FeedEntry(
        guid=guid,
        link=link,
        title=title,
        summary=summary,
        published=published_raw or updated or created,
        updated=updated,
        author=_author(raw),
        tags=_tags(raw.get("tags") or []),
        language=normalize_language(
            _detail_language(raw, "title") or _detail_language(raw, "summary") or feed_language
        ),
    )


def _plain(container: Mapping[str, Any], field: str) -> str | None:
    """A text construct as plain text: HTML/XHTML stripped, whitespace collapsed, None when empty."""
    value = container.get(field)
    if not isinstance(value, str):
        return None
    detail = container.get(f"{field}_detail") or {}
    return _plain_detail({"value": value, "type": detail.get("type", "text/html")})


def _plain_detail(detail: Mapping[str, Any]) -> str | None:
    value = detail.get("value")
    if not isinstance(value, str):
        return None
    if (detail.get("type") or "text/html") in ("text/html", "application/xhtml+xml"):
        text = html_to_text(value)
    else:
        text = " ".join(value.split())
    return text or None


def _detail_language(container: Mapping[str, Any], field: str) -> str | None:
    detail = container.get(f"{field}_detail") or {}
    language = detail.get("language")
    return language if isinstance(language, str) else None


def _rel_link(links: Iterable[Mapping[str, Any]], rel: str, base: str) -> str | None:
    for link in links:
        if (link.get("rel") or "").lower() == rel:
            found = web_url(link.get("href"), base)
            if found:
                return found
    return None


def _date(raw: Mapping[str, Any], field: str, now: datetime, label: str, warnings: list[str]) -> datetime | None:
    parsed = _own(raw, f"{field}_parsed")
    if not isinstance(parsed, tuple):
        return None
    try:
        moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError, TypeError):
        warnings.append(f"{label}: unusable {field} date {_own(raw, field)!r}")
        return None
    return trusted_date(moment, field, now, label, warnings)


def trusted_date(moment: datetime, field: str, now: datetime, label: str, warnings: list[str]) -> datetime | None:
    """``moment`` unless it is in the future (a broken clock) or a zero timestamp (a CMS bug); then None and
    a warning."""
    if moment > now + MAX_FUTURE_SKEW:
        warnings.append(f"{label}: {field} date {moment.isoformat()} is in the future; ignored")
        return None
    if moment < EPOCH_PLACEHOLDER_BEFORE:
        warnings.append(f"{label}: {field} date {moment.isoformat()} is a zero-timestamp placeholder; ignored")
        return None
    return moment


def _own(raw: Mapping[str, Any], key: str) -> Any:
    """The entry's own value: FeedParserDict answers "updated" with the published date when it has none."""
    return dict.get(raw, key) if isinstance(raw, dict) else raw.get(key)


def _author(raw: Mapping[str, Any]) -> str | None:
    detail = raw.get("author_detail") or {}
    name = detail.get("name") if isinstance(detail, Mapping) else None
    value = name or raw.get("author")
    if not isinstance(value, str):
        return None
    text = html_to_text(value)
    return text or None


def _tags(raw_tags: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    by_folded: dict[str, str] = {}
    for tag in raw_tags:
        term = tag.get("term") or tag.get("label")
        if isinstance(term, str):
            term = " ".join(term.split())
            if term:
                by_folded.setdefault(term.casefold(), term)
    return tuple(by_folded.values())
