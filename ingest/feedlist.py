"""The operator's list of feeds to poll, from OPML, TOML or YAML.

Operators export OPML from their feed reader or keep a hand-edited TOML/YAML file. Whatever the format, the
list is validated completely before any polling starts, and every error names the file and the entry so a
typo is fixed in one edit instead of being discovered at 3 a.m. as a feed that silently never polls.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lxml.etree
import yaml

from ingest.canonical import InvalidUrlError, canonicalize_url
from ingest.errors import FeedListError
from ingest.feeds import normalize_language

__all__ = ["FeedListError", "FeedSpec", "load_feed_list"]

# A feed list is a small hand-made file; anything larger is a mistake (or an attack on the parser).
MAX_FEED_LIST_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class FeedSpec:
    """One feed to poll, as configured by the operator."""

    url: str
    name: str
    language: str | None = None  # primary subtag, 'fr'; what the feed is expected to publish in
    tags: tuple[str, ...] = ()
    poll_interval_minutes: int | None = None
    ignore_robots: bool = False


def feed_to_dict(feed: FeedSpec) -> dict[str, Any]:
    """A feed as JSON (an Airflow XCom, an archive plan entry); :func:`feed_from_dict` reads it back."""
    return {
        "url": feed.url,
        "name": feed.name,
        "language": feed.language,
        "tags": list(feed.tags),
        "poll_interval_minutes": feed.poll_interval_minutes,
        "ignore_robots": feed.ignore_robots,
    }


def feed_from_dict(data: dict[str, Any]) -> FeedSpec:
    return FeedSpec(
        url=data["url"],
        name=data["name"],
        language=data.get("language"),
        tags=tuple(data.get("tags") or ()),
        poll_interval_minutes=data.get("poll_interval_minutes"),
        ignore_robots=bool(data.get("ignore_robots")),
    )


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
_SPEC_KEYS = frozenset({"url", "name", "language", "tags", "poll_interval_minutes", "ignore_robots"})


def load_feed_list(path: Path) -> list[FeedSpec]:
    """Read and validate a feed list; the format follows the extension (.opml/.xml, .toml, .yaml/.yml).

    Raises :class:`FeedListError` on the first problem found (unreadable file, syntax error, invalid entry,
    duplicate URL, or a list with no feeds at all).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    readers = {
        ".opml": _read_opml,
        ".xml": _read_opml,
        ".toml": _read_toml,
        ".yaml": _read_yaml,
        ".yml": _read_yaml,
    }
    if suffix not in readers:
        raise FeedListError(
            f"{path}: unsupported feed list format {suffix!r} (use .opml, .toml or .yaml)",
            reason="unsupported_format",
        )
    try:
        size = path.stat().st_size
        if size > MAX_FEED_LIST_BYTES:
            raise FeedListError(f"{path}: {size} bytes is too large for a feed list", reason="syntax")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FeedListError(f"{path}: feed list not found", reason="not_found") from exc
    except OSError as exc:
        raise FeedListError(f"{path}: cannot read feed list: {exc.strerror or exc}", reason="not_found") from exc

    specs: list[FeedSpec] = []
    seen: dict[str, str] = {}  # canonical URL -> label of the entry that declared it
    for label, raw in readers[suffix](data, path):
        spec = _validate(raw, label, path)
        key = canonicalize_url(spec.url)
        if key in seen:
            raise FeedListError(f"{path}: {label} has the same URL as {seen[key]}: {spec.url}", reason="duplicate_url")
        seen[key] = label
        specs.append(spec)
    if not specs:
        raise FeedListError(f"{path}: no feeds in feed list", reason="empty")
    return specs


# -- validation ------------------------------------------------------------------------------------------


def _validate(raw: Mapping[str, Any], label: str, path: Path) -> FeedSpec:
    def fail(problem: str) -> FeedListError:
        return FeedListError(f"{path}: {label}: {problem}", reason="invalid_entry")

    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(_SPEC_KEYS))})")
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise fail("missing url")
    url = url.strip()
    try:
        canonicalize_url(url)
    except InvalidUrlError as exc:
        raise fail(f"invalid url {url!r}: {exc}") from exc

    name = raw.get("name")
    if name is None or (isinstance(name, str) and not name.strip()):
        name = urlsplit(url).hostname or url
    if not isinstance(name, str):
        raise fail(f"name must be a string, got {type(name).__name__}")

    language = raw.get("language")
    if language is not None:
        if not isinstance(language, str) or not _LANGUAGE_TAG.fullmatch(language.strip()):
            raise fail(f"language must be a language tag like 'fr' or 'en-GB', got {language!r}")
        language = normalize_language(language)

    tags = raw.get("tags", ())
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags):
        raise fail("tags must be a list of strings")

    interval = raw.get("poll_interval_minutes")
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0):
        raise fail(f"poll_interval_minutes must be a positive integer, got {interval!r}")

    ignore_robots = raw.get("ignore_robots", False)
    if not isinstance(ignore_robots, bool):
        raise fail(f"ignore_robots must be true or false, got {ignore_robots!r}")

    return FeedSpec(
        url=url,
        name=" ".join(name.split()),
        language=language,
        tags=_unique(tags),
        poll_interval_minutes=interval,
        ignore_robots=ignore_robots,
    )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    out: dict[str, str] = {}
    for value in values:
        text = " ".join(value.split())
        if text:
            out.setdefault(text.casefold(), text)
    return tuple(out.values())


# -- TOML / YAML -----------------------------------------------------------------------------------------


def _entries_from_list(feeds: Any, path: Path, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(feeds, list):
        raise FeedListError(f"{path}: {where} must be a list of feeds", reason="syntax")
    for index, item in enumerate(feeds, start=1):
        if isinstance(item, str):  # YAML shorthand: "- https://example.com/feed.xml"
            item = {"url": item}
        if not isinstance(item, Mapping):
            raise FeedListError(f"{path}: feed #{index}: expected a table/mapping", reason="invalid_entry")
        name = item.get("name") or item.get("url")
        yield f"feed #{index} ({name!r})", item


def _read_toml(data: bytes, path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise FeedListError(f"{path}: invalid TOML: {exc}", reason="syntax") from exc
    unknown = sorted(set(document) - {"feeds"})
    if unknown:
        raise FeedListError(
            f"{path}: unknown top-level key(s) {', '.join(unknown)} (expected [[feeds]])", reason="syntax"
        )
    return _entries_from_list(document.get("feeds", []), path, "[[feeds]]")


def _read_yaml(data: bytes, path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise FeedListError(f"{path}: invalid YAML: {exc}", reason="syntax") from exc
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise FeedListError(f"{path}: expected a mapping with a 'feeds:' list at the top level", reason="syntax")
    unknown = sorted(str(key) for key in set(document) - {"feeds"})
    if unknown:
        raise FeedListError(f"{path}: unknown top-level key(s) {', '.join(unknown)} (expected feeds:)", reason="syntax")
    return _entries_from_list(document.get("feeds") or [], path, "feeds:")


# -- OPML ------------------------------------------------------------------------------------------------

_DECLARATION = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.I)


def _read_opml(data: bytes, path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Outlines carrying an ``xmlUrl``, at any depth; enclosing folder outlines become tags.

    No DTD is ever needed in OPML, so DOCTYPE/ENTITY declarations are refused before parsing (billion
    laughs, external entities), and the parser itself resolves no entities and touches no network.
    """
    if _DECLARATION.search(data.replace(b"\x00", b"")):
        raise FeedListError(f"{path}: DOCTYPE/ENTITY declarations are not allowed in OPML", reason="entity_declaration")
    parser = lxml.etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        root = lxml.etree.fromstring(data, parser=parser)
    except lxml.etree.XMLSyntaxError as exc:
        raise FeedListError(f"{path}: invalid OPML: {exc}", reason="syntax") from exc
    if _local(root.tag) != "opml":
        raise FeedListError(f"{path}: root element is <{_local(root.tag)}>, expected <opml>", reason="syntax")
    body = next((child for child in root if _local(child.tag) == "body"), None)
    if body is None:
        raise FeedListError(f"{path}: OPML has no <body>", reason="syntax")
    return _walk_outlines(body, folders=())


def _walk_outlines(parent: lxml.etree._Element, folders: tuple[str, ...]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for outline in parent:
        if not isinstance(outline.tag, str) or _local(outline.tag) != "outline":
            continue
        attributes = {key.lower(): value for key, value in outline.attrib.items() if isinstance(key, str)}
        title = (attributes.get("title") or attributes.get("text") or "").strip()
        xml_url = (attributes.get("xmlurl") or "").strip()
        if xml_url:
            tags = [*folders, *_opml_categories(attributes.get("category", ""))]
            entry: dict[str, Any] = {"url": xml_url, "name": title or None, "tags": tags}
            if attributes.get("language"):
                entry["language"] = attributes["language"].strip()
            yield f"outline {title or xml_url!r} (line {outline.sourceline})", entry
        yield from _walk_outlines(outline, (*folders, title) if title and not xml_url else folders)


def _opml_categories(value: str) -> list[str]:
    """OPML 2 ``category``: comma-separated, slash-delimited paths ("/News/World,Tech") -> path segments."""
    return [segment.strip() for item in value.split(",") for segment in item.split("/") if segment.strip()]


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""
