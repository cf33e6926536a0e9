"""Article extraction: body without boilerplate, metadata, dates, language, charsets, refusals."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools import CORPUS
from ingest.extract import (
    _CANONICAL_XPATH,
    ExtractedArticle,
    ExtractionError,
    _declared,
    decode_html,
    extract_article,
    parse_datetime,
)
from ingest.extract_workers import make_extractor
from ingest.htmltree import load_page
from newswire.errors import NewswireError

DATA = Path(__file__).parent / "data"
SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "samples" / "khan-al-assal.fr.txt"
GAZETTE_URL = "https://www.harbourgazette.co.uk/business/2024/03/14/port-workers-strike-automation"
NOW = datetime(2024, 12, 1, tzinfo=UTC)

PARAGRAPH = (
    "Le conseil municipal a voté le budget après un long débat sur les écoles, les transports et la "
    "rénovation thermique des bâtiments publics, qui absorbera près d’un tiers des investissements. "
)


def page(head: str = "", body: str = "", *, html_attrs: str = "") -> str:
    """A small but complete article page; ``body`` defaults to enough text to pass ``min_chars``."""
    body = body or f"<article><h1>Budget voté</h1><p>{PARAGRAPH * 2}</p><p>{PARAGRAPH}</p></article>"
    return f"<!DOCTYPE html><html{html_attrs}><head><title>Budget voté</title>{head}</head><body>{body}</body></html>"


def extract(document: str | bytes, **kwargs: object) -> ExtractedArticle:
    return extract_article(document, url="https://www.ville-info.example/budget-2024", now=NOW, **kwargs)  # type: ignore[arg-type]


# -- a realistic English news page -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def gazette() -> ExtractedArticle:
    content = (DATA / "news_article.html").read_bytes()
    return extract_article(content, url=GAZETTE_URL + "?utm_source=rss&utm_medium=feed", now=NOW)


def test_body_is_the_article_without_boilerplate(gazette: ExtractedArticle) -> None:
    text = gazette.text
    assert text.startswith("Dock workers at three of the country's busiest container ports walked out")
    assert text.endswith("under the supervision of the conciliation service.")
    assert "£640m would create 300 skilled maintenance jobs" in text
    assert text.count("\n") == 5  # six paragraphs
    for boilerplate in (
        "cookies",  # consent banner
        "Sport",  # navigation
        "Related stories",
        "Rail strike ends",  # related links
        "Sign up to Business Today",  # newsletter box
        "All rights reserved",  # footer
        "Share on X",
        "dataLayer",  # scripts
    ):
        assert boilerplate not in text, boilerplate


def test_headline_not_repeated_in_body(gazette: ExtractedArticle) -> None:
    assert gazette.title == "Port workers strike over automation plans"
    assert not gazette.text.startswith(gazette.title)


def test_metadata(gazette: ExtractedArticle) -> None:
    assert gazette.author == "Morag Pennington"
    assert gazette.published_at == datetime(2024, 3, 14, 7, 45, tzinfo=UTC)
    assert gazette.language == "en"
    assert gazette.site_name == "The Harbour Gazette"
    assert (
        gazette.description == "Dock workers at three ports walked out on Thursday in a dispute over driverless cranes."
    )
    assert gazette.categories == ("Business",)
    assert gazette.tags == ("Strikes", "Shipping")
    assert gazette.image == "https://www.harbourgazette.co.uk/images/2024/03/cranes.jpg"


def test_canonical_and_og_url_kept_apart_and_absolute(gazette: ExtractedArticle) -> None:
    assert gazette.canonical_url == GAZETTE_URL  # relative href in the page
    assert gazette.og_url == GAZETTE_URL + "?utm_source=og"


# -- the French sample -----------------------------------------------------------------------------------


def french_page() -> str:
    """The shared sample report laid out like a French news site: h1, h2 sub-headings, paragraphs."""
    lines = [line.strip() for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    toc, title, *rest = lines
    parts = [f'<nav class="sommaire"><p>{html.escape(toc)}</p></nav>', f"<h1>{html.escape(title)}</h1>"]
    for line in rest:
        tag = "h2" if len(line) < 60 and not line.endswith(".") else "p"
        parts.append(f"<{tag}>{html.escape(line)}</{tag}>")
    template = (DATA / "fr_article_template.html").read_text(encoding="utf-8")
    return template.replace("{{ARTICLE}}", "\n".join(parts))


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared sample not available")
def test_french_sample_article() -> None:
    lines = [line.strip() for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    url = "https://www.quotidien-soir.fr/international/article/2024/11/28/syrie-khan-al-assal_6417.html?xtor=RSS-3208"
    article = extract_article(french_page().encode("utf-8"), url=url, now=NOW)

    assert article.title == lines[1]
    assert article.language == "fr"
    assert article.author == "Service International"  # JSON-LD Organization author
    assert article.published_at == datetime(2024, 11, 28, 9, 31, tzinfo=UTC)  # +01:00 in JSON-LD
    assert article.site_name == "Le Quotidien du Soir"
    assert article.canonical_url == url.split("?")[0]
    # every body line of the report survives, in order, and nothing from the page around it
    body_lines = lines[2:]
    assert article.text.splitlines() == body_lines
    assert "12 civils ont été tués et 30 autres blessés" in article.text
    for boilerplate in ("cookies", "Accueil", "À lire aussi", "cessez-le-feu", "Mentions légales", "Sommaire"):
        assert boilerplate not in article.text


# -- refusals --------------------------------------------------------------------------------------------


def test_page_without_body_raises_no_body() -> None:
    video_page = page(
        '<meta property="og:type" content="video.other">',
        "<header><nav><a href='/'>Home</a> <a href='/news'>News</a> <a href='/video'>Video</a></nav></header>"
        "<main><div class='player' data-id='v88'>This video is unavailable in your region.</div>"
        "<p class='caption'>Watch: storm hits the coast.</p></main>"
        "<footer><a href='/privacy'>Privacy</a> © 2024 Example Media</footer>",
    )
    with pytest.raises(ExtractionError) as info:
        extract(video_page)
    assert info.value.reason == "no_body"
    assert isinstance(info.value, NewswireError)


def test_min_chars_is_the_threshold() -> None:
    assert extract(page(), min_chars=300).text
    with pytest.raises(ExtractionError):
        extract(page(), min_chars=5000)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"])
def test_non_html_raises(content: bytes) -> None:
    with pytest.raises(ExtractionError) as info:
        extract(content)
    assert info.value.reason in {"not_html", "no_body"}


# -- dates -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "body_extra", "expected"),
    [
        # article:published_time wins over JSON-LD and <time>
        (
            '<meta property="article:published_time" content="2024-06-01T08:00:00-04:00">'
            '<script type="application/ld+json">'
            '{"@type": "NewsArticle", "datePublished": "2024-05-30T00:00:00Z"}</script>',
            "",
            datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        ),
        # JSON-LD inside @graph, type given as a list
        (
            '<script type="application/ld+json">{"@graph": [{"@type": "WebPage"}, '
            '{"@type": ["ReportageNewsArticle"], "datePublished": "2024-05-30T21:15:00+02:00"}]}</script>',
            "",
            datetime(2024, 5, 30, 19, 15, tzinfo=UTC),
        ),
        # <time datetime> in the article
        ("", '<time datetime="2024-05-29T06:00:00Z">29 May</time>', datetime(2024, 5, 29, 6, 0, tzinfo=UTC)),
        # naive timestamps are taken as UTC
        (
            '<meta property="article:published_time" content="2024-05-28T10:30:00">',
            "",
            datetime(2024, 5, 28, 10, 30, tzinfo=UTC),
        ),
        # a far-future meta date is skipped in favour of the next explicit one
        (
            '<meta property="article:published_time" content="2031-01-01T00:00:00Z">'
            '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "2024-05-27"}</script>',
            "",
            datetime(2024, 5, 27, tzinfo=UTC),
        ),
    ],
)
def test_published_at_prefers_explicit_metadata(head: str, body_extra: str, expected: datetime) -> None:
    body = f"<article><h1>Budget voté</h1>{body_extra}<p>{PARAGRAPH * 2}</p><p>{PARAGRAPH}</p></article>"
    assert extract(page(head, body)).published_at == expected


def test_only_future_dates_gives_none() -> None:
    head = '<meta property="article:published_time" content="2031-01-01T00:00:00Z">'
    assert extract(page(head)).published_at is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-14T07:45:00Z", datetime(2024, 3, 14, 7, 45, tzinfo=UTC)),
        ("2024-03-14T08:45:00+01:00", datetime(2024, 3, 14, 7, 45, tzinfo=UTC)),
        ("2024-03-14", datetime(2024, 3, 14, tzinfo=UTC)),
        ("Thu, 14 Mar 2024 07:45:00 GMT", datetime(2024, 3, 14, 7, 45, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_datetime(value: str | None, expected: datetime | None) -> None:
    assert parse_datetime(value) == expected


# -- language, author, URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html_attrs", "head", "expected"),
    [
        (' lang="fr-CA"', "", "fr"),
        ("", '<meta property="og:locale" content="de_DE">', "de"),
        ("", '<meta http-equiv="Content-Language" content="es">', "es"),
        ("", '<script type="application/ld+json">{"@type": "NewsArticle", "inLanguage": "pt-BR"}</script>', "pt"),
        (' lang="en"', '<meta property="og:locale" content="fr_FR">', "en"),  # <html lang> first
        ("", "", None),
    ],
)
def test_language(html_attrs: str, head: str, expected: str | None) -> None:
    assert extract(page(head, html_attrs=html_attrs)).language == expected


def test_author_falls_back_to_json_ld_people() -> None:
    head = (
        '<script type="application/ld+json">[{"@type": "Organization", "name": "Ville Info"}, '
        '{"@type": "NewsArticle", "author": [{"@type": "Person", "name": "Claire Dubois"}, '
        '{"@type": "Person", "name": "Marc Petit"}]}]</script>'
    )
    author = extract(page(head)).author
    assert author is not None
    assert "Claire Dubois" in author and "Marc Petit" in author


def test_base_href_and_non_web_canonical() -> None:
    head = (
        '<base href="https://static.ville-info.example/fr/">'
        '<link rel="Canonical" href="budget-2024">'
        '<meta property="og:url" content="javascript:alert(1)">'
    )
    article = extract(page(head))
    assert article.canonical_url == "https://static.ville-info.example/fr/budget-2024"
    assert article.og_url is None


def test_no_canonical_declared() -> None:
    article = extract(page())
    assert article.canonical_url is None
    assert article.og_url is None


# -- decoding --------------------------------------------------------------------------------------------


def test_meta_charset_iso_8859_1_decoded_as_windows_1252() -> None:
    document = page('<meta charset="iso-8859-1">', body=f"<article><p>« Il l’a dit » {PARAGRAPH * 3}</p></article>")
    content = document.encode("cp1252")  # the curly apostrophe exists in windows-1252, not in ISO-8859-1
    article = extract(content)
    assert article.text.startswith("« Il l’a dit » Le conseil municipal a voté")


def test_wrong_meta_charset_falls_back_to_a_working_decoding() -> None:
    content = page('<meta charset="utf-8">').encode("cp1252")  # declared UTF-8, really windows-1252
    assert "a voté le budget après un long débat" in extract(content).text


def test_utf8_bytes_win_over_a_wrong_latin1_declaration() -> None:
    content = page('<meta charset="iso-8859-1">').encode("utf-8")
    article = extract(content, content_type="text/html; charset=ISO-8859-1")
    assert "a voté le budget après un long débat" in article.text


def test_http_charset_and_bom() -> None:
    document = page()
    assert decode_html(document.encode("cp1252"), "text/html; charset=windows-1252") == document
    assert decode_html(b"\xef\xbb\xbf" + document.encode("utf-8")) == document
    assert decode_html(document.encode("utf-16")) == document
    assert decode_html(document.encode("utf-16-le"), "text/html; charset=utf-16le") == document
    japanese = "<html><head><title>予算案</title></head><body><p>東京都は新しい予算案を発表した。</p></body></html>"
    assert decode_html(japanese.encode("shift_jis"), "text/html; charset=Shift_JIS") == japanese
    assert decode_html(document.encode("utf-8"), "text/html; charset=bogus-charset") == document


# -- fast mode (NEWSWIRE_EXTRACT_FAST) -------------------------------------------------------------------

# A page trafilatura's own heuristics read badly: an unrendered site template whose article body is a
# placeholder. Its fallback extractors find more text than the main pass, so the two modes differ on it.
TEMPLATE = CORPUS / "src" / "templates" / "daily-ledger.html"


def test_fast_mode_skips_the_fallback_extractors() -> None:
    content = TEMPLATE.read_bytes()
    full = extract(content, min_chars=0).text
    fast = extract(content, min_chars=0, fast=True).text
    assert len(fast) < len(full)
    assert "We value your privacy" in full and "We value your privacy" not in fast  # jusText/readability's pick


def test_fast_mode_reads_a_well_formed_article_like_the_full_mode() -> None:
    content = (DATA / "news_article.html").read_bytes()
    full = extract_article(content, url=GAZETTE_URL, now=NOW)
    fast = extract_article(content, url=GAZETTE_URL, now=NOW, fast=True)
    assert fast == full


@pytest.mark.parametrize("workers", [1, 2])
def test_the_fast_setting_reaches_the_extractor_inline_and_in_worker_processes(workers: int) -> None:
    content = TEMPLATE.read_bytes()
    for fast, expect_text in ((False, True), (True, False)):
        extractor = make_extractor(workers, fast=fast)
        try:
            if expect_text:  # the fallback text is over min_chars
                assert extractor.extract(content, url="https://ledger.example/a", content_type=None).text
            else:  # the main pass alone finds too little: a no_body refusal, as the pipeline records it
                with pytest.raises(ExtractionError) as err:
                    extractor.extract(content, url="https://ledger.example/a", content_type=None)
                assert err.value.reason == "no_body"
        finally:
            extractor.close()


def test_one_walk_finds_what_the_canonical_base_and_script_xpaths_find() -> None:
    rels = ["canonical", "CANONICAL", "Canonical", " canonical ", "alternate canonical", "canonical\talternate",
            "\ncanonical\r\n", "noncanonical", "canonical-url", "cAnOnIcAl", "canonicalx", "", "CANONİCAL"]  # fmt: skip
    links = "".join(f'<link rel="{rel}" href="/r{i}">' for i, rel in enumerate(rels))
    links += '<link href="/no-rel"><link rel="canonical"><base target="_self"><base href="/b1"><base href="/b2">'
    scripts = '<script>var a;</script><script type="application/ld+json">{}</script><script type="">x</script>'
    body = f'<p>{PARAGRAPH}</p><link rel="canonical" href="/in-body"><base href="/b3"><script type="t">y</script>'
    pages = [
        page(links + scripts, body),
        page(),
        (DATA / "news_article.html").read_text("utf-8"),
        (DATA / "fr_article_template.html").read_text("utf-8"),
    ]
    for text in pages:
        tree = load_page(text)
        assert tree is not None
        declared = _declared(tree)
        assert declared.canonical == tree.xpath(_CANONICAL_XPATH)
        assert declared.base == tree.xpath("//base/@href")
        assert declared.scripts == tree.xpath("//script[@type]")
    assert len(_declared(load_page(pages[0])).canonical) == 9  # type: ignore[arg-type]
