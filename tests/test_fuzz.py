"""Fuzzing the two parsers that see raw hostile text first: feed parsing and URL canonicalisation.

Property: whatever the bytes, ``parse_feed`` returns a feed or raises :class:`FeedParseError`, and
``canonicalize_url`` returns a URL or raises :class:`InvalidUrlError`; any other exception is a bug that
would crash a poll. Canonicalisation must also be idempotent (article ids depend on it).

Bounded for CI: a fixed number of examples per property and a per-example deadline, no example database.
Run longer locally with ``NEWSWIRE_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingest.canonical import InvalidUrlError, article_id_for, canonicalize_url
from ingest.feeds import FeedParseError, parse_feed

EXAMPLES = int(os.environ.get("NEWSWIRE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=2),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- URLs ----------------------------------------------------------------------------------------------------

schemes = st.sampled_from(["http", "https", "HTTP", "HtTpS", "ftp", "javascript", "data", "", "http:/", "feed"])
hosts = st.one_of(
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.com.",
            "www.example.co.uk",
            "m.example.org",
            "xn--caf-dma.fr",
            "café.fr",
            "例え.jp",
            "127.0.0.1",
            "[::1]",
            "[2001:db8::1]",
            "[::ffff:10.0.0.1]",
            "0x7f.1",
            "user:pw@example.com",
            "-bad-.com",
            "a..b",
            "",
            "[",
            "%65xample.com",
            "exa mple.com",
        ]
    ),
    st.from_regex(r"[a-zA-Z0-9\-\.]{1,30}", fullmatch=True),
    st.text(min_size=1, max_size=20),
)
ports = st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.sampled_from([":", ":80", ":abc"]))
segments = st.one_of(
    st.sampled_from([".", "..", "", "%2e%2E", "%2F", "%zz", "a%20b", "~user", "ünï", "a;b=c", "index.html", "%00"]),
    st.text(max_size=8),
)
paths = st.lists(segments, max_size=6).map(lambda parts: "/" + "/".join(parts))
params = st.tuples(
    st.sampled_from(["utm_source", "UTM_Medium", "fbclid", "gclid", "id", "p", "page", "q", "", "a b", "%75tm_x"]),
    st.text(max_size=6),
)
queries = st.one_of(st.just(""), st.lists(params, max_size=5).map(lambda ps: "?" + "&".join(f"{k}={v}" for k, v in ps)))
fragments = st.one_of(st.just(""), st.text(max_size=6).map(lambda f: "#" + f))
urls = st.one_of(
    st.builds(lambda s, h, p, pa, q, f: f"{s}://{h}{p}{pa}{q}{f}", schemes, hosts, ports, paths, queries, fragments),
    st.text(max_size=80),
    st.sampled_from(["//example.com/a", "/relative/path", "?only=query", "#frag", " \t\nhttp://x.com/ a\n"]),
)
bases = st.one_of(st.none(), st.just("https://news.example.com/section/feed.xml"), urls)


@FUZZ
@given(url=urls, base=bases)
@example(url="http://example.com/%2e%2E", base=None)  # found by fuzzing: encoded dot segments
@example(url="http://example.com/", base="A://[")  # found by fuzzing: malformed base crashed urljoin
def test_canonicalize_url_only_raises_invalid_url_and_is_idempotent(url: str, base: str | None) -> None:
    try:
        canonical = canonicalize_url(url, base=base)
    except InvalidUrlError:
        return
    assert canonicalize_url(canonical) == canonical
    assert canonical.startswith(("http://", "https://"))
    assert "#" not in canonical
    assert len(article_id_for(canonical)) == 32


# -- feeds ---------------------------------------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "&amp;",
            "&lt;b&gt;bold&lt;/b&gt;",
            "&nbsp;",
            "&#0;",
            "&#xD800;",
            "&undefined;",
            "<![CDATA[<p>x</p>]]>",
            "<b>markup</b>",
            "]]>",
            "\x00",
            "\ufeff",
            "<script>alert(1)</script>",
        ]
    ),
)
dates = st.one_of(
    st.sampled_from(
        [
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Fri, 01 Jan 3000 00:00:00 GMT",
            "Mon, 31 Feb 2025 25:61:61 +9999",
            "2025-01-15T09:30:00Z",
            "0000-00-00",
            "yesterday",
            "9999999999999999999",
            "",
        ]
    ),
    st.text(max_size=20),
)


def _element(tag: str, value: str) -> str:
    return f"<{tag}>{value}</{tag}>"


rss_items = st.builds(
    lambda title, link, guid, date, desc: (
        "<item>"
        + "".join(
            _element(tag, value)
            for tag, value in (
                ("title", title),
                ("link", link),
                ("guid", guid),
                ("pubDate", date),
                ("description", desc),
            )
            if value is not None
        )
        + "</item>"
    ),
    st.one_of(st.none(), texts),
    st.one_of(st.none(), urls),
    st.one_of(st.none(), texts),
    st.one_of(st.none(), dates),
    st.one_of(st.none(), texts),
)
atom_entries = st.builds(
    lambda title, href, date, base: (
        f'<entry xml:base="{base}"><title type="html">{title}</title>'
        f'<link rel="alternate" href="{href}"/><updated>{date}</updated><id>{href}</id></entry>'
    ),
    texts,
    urls,
    dates,
    urls,
)
declarations = st.sampled_from(
    [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<?xml version="1.0" encoding="iso-8859-1"?>',
        '<?xml version="1.0" encoding="utf-16"?>',
        '<?xml version="1.0" encoding="bogus-charset"?>',
        '<?xml version="1.1"?>',
        "",
        "<!DOCTYPE rss>",
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">',
    ]
)
documents = st.one_of(
    st.builds(
        lambda decl, items, lang: (
            f'{decl}<rss version="2.0"><channel><title>t</title><link>http://x.example/</link>'
            f"<language>{lang}</language>{''.join(items)}</channel></rss>"
        ),
        declarations,
        st.lists(rss_items, max_size=6),
        texts,
    ),
    st.builds(
        lambda decl, entries: (
            f'{decl}<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{"".join(entries)}</feed>'
        ),
        declarations,
        st.lists(atom_entries, max_size=5),
    ),
    st.builds(lambda decl, body: f"{decl}<html><body>{body}</body></html>", declarations, texts),
    st.builds(lambda decl, junk: decl + junk, declarations, st.text(max_size=200)),
)
encodings = st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252", "utf-8-sig"])
content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/rss+xml",
            "application/atom+xml; charset=utf-8",
            "text/xml; charset=iso-8859-1",
            "text/html",
            "text/plain; charset=utf-7",
            "application/octet-stream",
            "application/xml; charset=bogus",
        ]
    ),
)


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="replace") if encoding != "utf-16" else text.encode("utf-16", "surrogatepass")


@FUZZ
@given(document=documents, encoding=encodings, content_type=content_types, truncate=st.integers(0, 400))
def test_parse_feed_only_raises_feed_parse_error_on_structured_input(
    document: str, encoding: str, content_type: str | None, truncate: int
) -> None:
    data = _encode(document, encoding)
    if truncate:
        data = data[: max(1, len(data) - truncate)]  # feeds cut off mid-document
    _parse(data, content_type)


@FUZZ
@given(data=st.binary(max_size=2000), content_type=content_types)
def test_parse_feed_only_raises_feed_parse_error_on_random_bytes(data: bytes, content_type: str | None) -> None:
    _parse(data, content_type)


def test_surrogate_character_references_do_not_lose_the_feed() -> None:
    """Found by fuzzing: feedparser raised UnicodeEncodeError on ``&#xD800;``, which crashed the whole poll."""
    document = (
        b'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<entry><title type="html">Smile &#xD83D;&#56832; &#x263A;</title><link href="http://example.com/a"/>'
        b"</entry></feed>"
    )
    feed = parse_feed(document, url="https://news.example.com/feed.xml")
    assert [e.title for e in feed.entries] == ["Smile \ufffd\ufffd \u263a"]


def _parse(data: bytes, content_type: str | None) -> None:
    try:
        feed = parse_feed(data, url="https://news.example.com/feed.xml", content_type=content_type, max_entries=50)
    except FeedParseError as exc:
        assert exc.reason in {"empty_feed", "not_a_feed", "invalid_xml", "invalid_json", "entity_declaration"}
        return
    assert len(feed.entries) <= 50
    for entry in feed.entries:
        assert entry.link is None or entry.link.lower().startswith(("http://", "https://"))
        assert entry.key  # every entry can be recorded in the ledger
