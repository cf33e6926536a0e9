"""Article identity: URL canonicalisation, ids, site comparison and the choice of canonical URL."""

from __future__ import annotations

import hashlib
import re

import pytest

from ingest import canonical
from ingest.canonical import (
    InvalidUrlError,
    article_id_for,
    canonicalize_url,
    choose_canonical,
    registrable_domain,
    same_site,
)
from newswire.errors import NewswireError

CANONICAL_TABLE = [
    # scheme and host case, default port, fragment
    ("HTTP://WWW.Example.COM:80/News/Story.html#comments", "http://www.example.com/News/Story.html"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:8443/a", "https://example.com:8443/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    # userinfo dropped
    ("https://user:secret@example.com/a", "https://example.com/a"),
    # empty path becomes "/", trailing slash kept as is
    ("https://example.com", "https://example.com/"),
    ("https://example.com/section/", "https://example.com/section/"),
    ("https://example.com/section", "https://example.com/section"),
    # dot segments and repeated slashes
    ("https://example.com/a/./b/../c//d", "https://example.com/a/c/d"),
    ("https://example.com/a/b/..", "https://example.com/a/"),
    ("https://example.com/../../x", "https://example.com/x"),
    # percent-encoding: unreserved decoded, others upper-cased, unsafe characters encoded
    ("https://example.com/%7euser/%e2%82%ac", "https://example.com/~user/%E2%82%AC"),
    ("https://example.com/caf%C3%A9", "https://example.com/caf%C3%A9"),
    ("https://example.com/café au lait", "https://example.com/caf%C3%A9%20au%20lait"),
    ("https://example.com/100%", "https://example.com/100%25"),
    ("https://example.com/a%2Fb", "https://example.com/a%2Fb"),
    # tracking parameters removed, content parameters kept and sorted
    ("https://example.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://example.com/a"),
    ("https://example.com/a?id=42&fbclid=IwAR0abc&gclid=xyz", "https://example.com/a?id=42"),
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?p=2&story=9&xtor=RSS-3208", "https://example.com/a?p=2&story=9"),
    ("https://example.com/a?mc_cid=1&mc_eid=2&igshid=3&yclid=4&_ga=5&ref_src=twsrc", "https://example.com/a"),
    ("https://example.com/a?msclkid=1&dclid=2&cmpid=3&ocid=4&at_medium=5&at_campaign=6", "https://example.com/a"),
    ("https://example.com/a?UTM_Source=x&ID=7", "https://example.com/a?ID=7"),
    ("https://example.com/a?ns_mchannel=rss&ns_source=x&CMP=share_btn_tw", "https://example.com/a"),
    ("https://example.com/a?&&x=1&", "https://example.com/a?x=1"),
    ("https://example.com/a?", "https://example.com/a"),
    # repeated keys keep their relative order, blank values survive
    ("https://example.com/a?tag=b&x=&tag=a", "https://example.com/a?tag=b&tag=a&x="),
    # IDN hosts become punycode
    ("https://Bücher.example/straße", "https://xn--bcher-kva.example/stra%C3%9Fe"),
    ("https://пример.рф/", "https://xn--e1afmkfd.xn--p1ai/"),
    # IPv6 literal
    ("http://[2001:DB8::0:1]:8080/x", "http://[2001:db8::1]:8080/x"),
    # surrounding whitespace and line breaks inside a wrapped feed link
    ("  https://example.com/a\n/b  ", "https://example.com/a/b"),
]


@pytest.mark.parametrize(("url", "expected"), CANONICAL_TABLE)
def test_canonicalize_table(url: str, expected: str) -> None:
    assert canonicalize_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), CANONICAL_TABLE)
def test_canonicalize_is_idempotent(url: str, expected: str) -> None:
    assert canonicalize_url(expected) == expected


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("../world/story.html?b=1&a=2", "https://example.com/news/2024/index.html", "https://example.com/news/world/story.html?a=2&b=1"),
        ("/a", "https://example.com/x/y", "https://example.com/a"),
        ("//cdn.example.com/a", "https://example.com/", "https://cdn.example.com/a"),
        ("?page=2", "https://example.com/list", "https://example.com/list?page=2"),
        ("https://other.example/a", "https://example.com/", "https://other.example/a"),
    ],
)  # fmt: skip
def test_relative_urls_resolve_against_base(url: str, base: str, expected: str) -> None:
    assert canonicalize_url(url, base=base) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("mailto:desk@example.com", "unsupported_scheme"),
        ("javascript:alert(1)", "unsupported_scheme"),
        ("ftp://example.com/file", "unsupported_scheme"),
        ("/relative/without/base", "unsupported_scheme"),
        ("https://", "no_host"),
        ("https://exa mple.com/", "invalid_host"),
        ("http://example.com:99999/", "invalid_port"),
        ("http://[::1/", "invalid_host"),
    ],
)
def test_invalid_urls_raise_with_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidUrlError) as info:
        canonicalize_url(url)
    assert info.value.reason == reason
    assert isinstance(info.value, NewswireError)


def test_article_id_is_32_hex_of_sha256_and_stable() -> None:
    article_id = article_id_for("https://example.com/a")
    assert re.fullmatch(r"[0-9a-f]{32}", article_id)
    assert article_id == hashlib.sha256(b"https://example.com/a").hexdigest()[:32]
    assert article_id_for("https://example.com/b") != article_id


def test_variants_of_one_article_get_one_id() -> None:
    variants = [
        "https://www.example.com/news/story-1.html",
        "HTTPS://WWW.EXAMPLE.COM:443/news/story-1.html?utm_source=twitter#top",
        "https://www.example.com/news//./story-1.html?fbclid=abc",
    ]
    assert len({article_id_for(canonicalize_url(v)) for v in variants}) == 1


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("https://www.lemonde.fr/a", "https://lemonde.fr/b", True),
        ("https://m.bbc.co.uk/news/1", "https://www.bbc.co.uk/news/1", True),
        ("https://amp.theguardian.com/x", "https://www.theguardian.com/x", True),
        ("https://mobile.reuters.com/x", "https://www.reuters.com/x", True),
        ("https://edition.cnn.com/x", "https://www.cnn.com/x", True),
        ("https://news.bbc.co.uk/1", "https://www.bbc.co.uk/2", True),
        ("https://www.bbc.co.uk/1", "https://www.itv.co.uk/1", False),
        ("https://www.abc.net.au/news", "https://www.sbs.com.au/news", False),
        ("https://www.service-public.gouv.fr/a", "https://www.interieur.gouv.fr/a", False),
        ("https://a.blogspot.com/post", "https://b.blogspot.com/post", False),
        ("https://example.com/", "https://example.org/", False),
        ("https://example.com/", "not a url", False),
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:9000/b", True),
        ("http://127.0.0.1/a", "http://127.0.0.2/b", False),
    ],
)
def test_same_site(a: str, b: str, expected: bool) -> None:
    assert same_site(a, b) is expected
    assert same_site(b, a) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("news.bbc.co.uk", "bbc.co.uk"),
        ("www.smh.com.au", "smh.com.au"),
        ("www.interieur.gouv.fr", "interieur.gouv.fr"),
        ("www.lemonde.fr", "lemonde.fr"),
        ("edition.cnn.com", "cnn.com"),
        ("example.com", "example.com"),
        ("localhost", "localhost"),
    ],
)
def test_registrable_domain_heuristic_without_public_suffix_list(
    monkeypatch: pytest.MonkeyPatch, host: str, expected: str
) -> None:
    monkeypatch.setattr(canonical, "_public_suffix_lookup", lambda host: None)
    assert registrable_domain(host) == expected


def test_registrable_domain_handles_ip_addresses() -> None:
    assert registrable_domain("192.0.2.7") == "192.0.2.7"
    assert registrable_domain("[2001:db8::1]") == "[2001:db8::1]"


class TestChooseCanonical:
    ENTRY = "https://www.lemonde.fr/international/article/2024/11/28/syrie_6417.html?xtor=RSS-3208"

    def test_prefers_rel_canonical(self) -> None:
        got = choose_canonical(
            self.ENTRY,
            "https://www.lemonde.fr/international/article/2024/11/28/syrie-khan-al-assal_6417.html",
            "https://www.lemonde.fr/og-url.html",
        )
        assert got == "https://www.lemonde.fr/international/article/2024/11/28/syrie-khan-al-assal_6417.html"

    def test_falls_back_to_og_url(self) -> None:
        got = choose_canonical(self.ENTRY, None, "https://lemonde.fr/a.html?utm_source=og")
        assert got == "https://lemonde.fr/a.html"

    def test_resolves_relative_canonical_against_entry(self) -> None:
        got = choose_canonical(self.ENTRY, "/international/article/x.html", None)
        assert got == "https://www.lemonde.fr/international/article/x.html"

    def test_ignores_other_sites(self) -> None:
        got = choose_canonical(self.ENTRY, "https://www.agence-presse.example/original.html", None)
        assert got == "https://www.lemonde.fr/international/article/2024/11/28/syrie_6417.html"

    def test_cross_site_canonical_then_same_site_og_url(self) -> None:
        got = choose_canonical(self.ENTRY, "https://syndicator.example/x", "https://m.lemonde.fr/x.html")
        assert got == "https://m.lemonde.fr/x.html"

    def test_ignores_home_page_canonical(self) -> None:
        assert choose_canonical(self.ENTRY, "https://www.lemonde.fr/", None) == canonicalize_url(self.ENTRY)

    def test_ignores_invalid_candidates(self) -> None:
        got = choose_canonical(self.ENTRY, "javascript:void(0)", "   ")
        assert got == canonicalize_url(self.ENTRY)

    def test_no_candidates_keeps_entry_canonicalised(self) -> None:
        got = choose_canonical("HTTPS://Example.com/a?utm_campaign=x#frag", None, None)
        assert got == "https://example.com/a"

    def test_invalid_entry_url_raises(self) -> None:
        with pytest.raises(InvalidUrlError):
            choose_canonical("mailto:x@example.com", "https://example.com/a", None)
