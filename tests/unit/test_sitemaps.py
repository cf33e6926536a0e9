"""Sitemap parsing (urlsets, indexes, Google News, gzip, hostile XML) and the day filter of a sitemap walk."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from ingest.errors import ConnectError, HttpStatusError
from ingest.sitemaps import (
    SitemapError,
    collect_sitemap_entries,
    parse_sitemap,
    parse_w3c_datetime,
    sitemap_roots,
)
from newswire.errors import NewswireError

SITE = "https://www.example-news.org"
DAY = (datetime(2024, 11, 20, tzinfo=UTC), datetime(2024, 11, 21, tzinfo=UTC))


def urlset(*rows: str, news: bool = False) -> bytes:
    ns = ' xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"' if news else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"{ns}>'
        + "".join(rows)
        + "</urlset>"
    ).encode()


def url(loc: str, lastmod: str | None = None) -> str:
    return f"<url><loc>{loc}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</url>"


def news_url(loc: str, published: str, title: str = "A title", language: str = "en-GB") -> str:
    return (
        f"<url><loc>{loc}</loc><news:news><news:publication><news:name>Example</news:name>"
        f"<news:language>{language}</news:language></news:publication>"
        f"<news:publication_date>{published}</news:publication_date><news:title>{title}</news:title>"
        "<news:keywords>Floods, Weather</news:keywords></news:news></url>"
    )


def index(*children: tuple[str, str | None]) -> bytes:
    rows = "".join(
        f"<sitemap><loc>{loc}</loc>" + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "") + "</sitemap>"
        for loc, lastmod in children
    )
    return (
        '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        + rows
        + "</sitemapindex>"
    ).encode()


def loader(documents: dict[str, bytes | Exception], calls: list[str] | None = None) -> Callable[[str], bytes]:
    def load(target: str) -> bytes:
        if calls is not None:
            calls.append(target)
        found = documents.get(target, HttpStatusError(target, 404))
        if isinstance(found, Exception):
            raise found
        return found

    return load


# -- parsing ---------------------------------------------------------------------------------------------


def test_google_news_urlset_gives_publication_date_title_language_and_keywords() -> None:
    parsed = parse_sitemap(
        urlset(news_url(f"{SITE}/a", "2024-11-20T14:20:00+01:00", "Floods &amp; rain"), news=True),
        url=f"{SITE}/news.xml",
    )
    (item,) = parsed.urls
    assert parsed.kind == "urlset"
    assert item.published == datetime(2024, 11, 20, 13, 20, tzinfo=UTC)
    assert item.moment == item.published
    assert (item.title, item.language, item.keywords) == ("Floods & rain", "en", ("Floods", "Weather"))
    entry = item.to_entry()
    assert (entry.link, entry.published, entry.title) == (f"{SITE}/a", item.published, "Floods & rain")


def test_urlset_resolves_relative_locations_and_skips_unusable_ones() -> None:
    parsed = parse_sitemap(
        urlset(url("/b", "2024-11-20"), url("javascript:alert(1)"), "<url><lastmod>2024-11-20</lastmod></url>"),
        url=f"{SITE}/sitemap.xml",
    )
    assert [u.loc for u in parsed.urls] == [f"{SITE}/b"]
    assert parsed.urls[0].lastmod == datetime(2024, 11, 20, tzinfo=UTC)
    assert len(parsed.warnings) == 2


def test_sitemap_index_lists_children_with_lastmod() -> None:
    parsed = parse_sitemap(index((f"{SITE}/s1.xml", "2024-11-19T10:00:00Z"), (f"{SITE}/s2.xml", None)), url=SITE)
    assert parsed.kind == "sitemapindex"
    assert [(c.loc, c.lastmod) for c in parsed.sitemaps] == [
        (f"{SITE}/s1.xml", datetime(2024, 11, 19, 10, tzinfo=UTC)),
        (f"{SITE}/s2.xml", None),
    ]


def test_gzipped_sitemap_is_decompressed_within_the_cap() -> None:
    body = gzip.compress(urlset(url(f"{SITE}/a", "2024-11-20")))
    assert [u.loc for u in parse_sitemap(body, url=f"{SITE}/s.xml.gz").urls] == [f"{SITE}/a"]
    bomb = gzip.compress(b"<urlset>" + b" " * 2_000_000 + b"</urlset>")
    with pytest.raises(SitemapError) as info:
        parse_sitemap(bomb, url=f"{SITE}/bomb.xml.gz", max_bytes=100_000)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><urlset>&b;</urlset>',
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><urlset/>',
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE u [<!ENTITY x "y">]><urlset/>'.encode("utf-16"),
    ],
)
def test_doctype_and_entities_are_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(SitemapError) as info:
        parse_sitemap(body, url=f"{SITE}/evil.xml")
    assert info.value.reason == "entity_declaration"
    assert isinstance(info.value, NewswireError)


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"<html><body>Not found</body></html>", "not_a_sitemap"), (b"<urlset><url>", "invalid_xml")],
)
def test_documents_that_are_not_sitemaps_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(SitemapError) as info:
        parse_sitemap(body, url=SITE)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-11-20", datetime(2024, 11, 20, tzinfo=UTC)),
        ("2024-11", datetime(2024, 11, 1, tzinfo=UTC)),
        ("2024-11-20T23:30Z", datetime(2024, 11, 20, 23, 30, tzinfo=UTC)),
        ("2024-11-20T23:30:15.25-05:00", datetime(2024, 11, 21, 4, 30, 15, 250000, tzinfo=UTC)),
        ("2024-11-20T08:00:00", datetime(2024, 11, 20, 8, tzinfo=UTC)),
        ("yesterday", None),
        ("2024-13-45", None),
        ("", None),
    ],
)
def test_w3c_datetimes(text: str, expected: datetime | None) -> None:
    assert parse_w3c_datetime(text) == expected


# -- walking ---------------------------------------------------------------------------------------------


def test_walk_keeps_the_days_urls_and_skips_children_last_modified_before_the_day() -> None:
    calls: list[str] = []
    documents: dict[str, bytes | Exception] = {
        f"{SITE}/index.xml": index(
            (f"{SITE}/news.xml", "2024-11-22T09:00:00Z"),
            (f"{SITE}/old.xml", "2024-11-19T23:59:59Z"),
            (f"{SITE}/undated.xml", None),
        ),
        f"{SITE}/news.xml": urlset(
            news_url(f"{SITE}/in-1", "2024-11-20T00:00:00Z"),
            news_url(f"{SITE}/late", "2024-11-21T00:00:00Z"),
            news_url(f"{SITE}/in-2", "2024-11-20T23:59:59Z"),
            news=True,
        ),
        f"{SITE}/undated.xml": urlset(
            url(f"{SITE}/in-3", "2024-11-20T12:00:00Z"),
            url(f"{SITE}/in-1?utm_source=x", "2024-11-20T12:00:00Z"),  # the same article again
            url(f"{SITE}/no-date"),
            url("https://elsewhere.example.com/in-day", "2024-11-20T12:00:00Z"),
        ),
    }
    harvest = collect_sitemap_entries([f"{SITE}/index.xml"], loader(documents, calls), start=DAY[0], end=DAY[1])
    assert [e.link for e in harvest.entries] == [f"{SITE}/in-1", f"{SITE}/in-2", f"{SITE}/in-3"]
    assert f"{SITE}/old.xml" not in calls and harvest.skipped_by_lastmod == 1
    assert harvest.undated == 1
    assert not harvest.errors


def test_missing_sitemaps_are_warnings_and_server_errors_are_retryable_errors() -> None:
    documents: dict[str, bytes | Exception] = {
        f"{SITE}/index.xml": index((f"{SITE}/gone.xml", None), (f"{SITE}/busy.xml", None), (f"{SITE}/down.xml", None)),
        f"{SITE}/busy.xml": HttpStatusError(f"{SITE}/busy.xml", 503, retry_after=120.0),
        f"{SITE}/down.xml": ConnectError(f"{SITE}/down.xml", "connection refused"),
    }
    harvest = collect_sitemap_entries([f"{SITE}/index.xml"], loader(documents), start=DAY[0], end=DAY[1])
    assert len(harvest.errors) == 2 and harvest.retry_after == 120.0
    assert any("gone.xml" in w for w in harvest.warnings)


def test_walk_is_bounded_in_documents_and_depth_and_survives_loops() -> None:
    documents: dict[str, bytes | Exception] = {
        f"{SITE}/a.xml": index((f"{SITE}/b.xml", None)),
        f"{SITE}/b.xml": index((f"{SITE}/a.xml", None), (f"{SITE}/c.xml", None)),
        f"{SITE}/c.xml": index((f"{SITE}/d.xml", None)),
        f"{SITE}/d.xml": urlset(url(f"{SITE}/deep", "2024-11-20")),
    }
    calls: list[str] = []
    harvest = collect_sitemap_entries(
        [f"{SITE}/a.xml"], loader(documents, calls), start=DAY[0], end=DAY[1], max_depth=2
    )
    assert calls == [f"{SITE}/a.xml", f"{SITE}/b.xml", f"{SITE}/c.xml"]
    assert not harvest.entries and any("deeper" in w for w in harvest.warnings)
    limited = collect_sitemap_entries([f"{SITE}/a.xml"], loader(documents), start=DAY[0], end=DAY[1], max_documents=1)
    assert limited.sitemaps == [f"{SITE}/a.xml"]


def test_roots_come_from_robots_txt_else_the_conventional_location() -> None:
    assert sitemap_roots(f"{SITE}/feed.xml", [f"{SITE}/s.xml", f"{SITE}/s.xml"]) == [f"{SITE}/s.xml"]
    assert sitemap_roots(f"{SITE}/rss/world.xml", []) == [f"{SITE}/sitemap.xml"]
