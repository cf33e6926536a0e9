from __future__ import annotations

import threading

from ingest.claims import UrlClaims


def test_first_claimant_owns_and_later_ones_get_its_result() -> None:
    claims = UrlClaims()
    owner, slot = claims.claim("https://a.test/1")
    assert owner
    got: list[str | None] = []
    waiter = threading.Thread(target=lambda: got.append(claims.wait(claims.claim("https://a.test/1")[1], 5)))
    waiter.start()
    claims.resolve(slot, "art-1", also=["https://a.test/canonical-1"])
    waiter.join(5)
    assert got == ["art-1"]
    # After the owner finished, a claim is answered at once, for the URL and for the URLs it also reached.
    for url in ("https://a.test/1", "https://a.test/canonical-1"):
        again, resolved = claims.claim(url)
        assert not again and claims.wait(resolved, 0) == "art-1" and claims.known(url) == "art-1"


def test_a_failed_owner_leaves_the_entry_to_whoever_comes_next() -> None:
    claims = UrlClaims()
    _, slot = claims.claim("https://a.test/2")
    claims.resolve(slot, None)
    owner, later = claims.claim("https://a.test/2")
    assert not owner and claims.wait(later, 0) is None  # None: the caller processes the entry itself
    assert claims.known("https://a.test/2") is None


def test_finished_claims_keep_no_per_url_event() -> None:
    claims = UrlClaims()
    for n in range(1000):
        _, slot = claims.claim(f"https://a.test/{n}")
        claims.resolve(slot, f"art-{n}", also=[f"https://a.test/c/{n}"])
    assert not claims._pending  # only the url -> id map remains: what a 20,000-article run holds
    assert claims.known("https://a.test/c/999") == "art-999"


def test_another_owners_url_is_released_but_stays_that_owners() -> None:
    claims = UrlClaims()
    _, first = claims.claim("https://a.test/x")
    _, second = claims.claim("https://b.test/y")
    claims.resolve(first, "art-x", also=["https://b.test/y"])  # x's canonical URL is the page b is fetching
    assert claims.wait(claims.claim("https://b.test/y")[1], 0) == "art-x"
    claims.resolve(second, "art-x")
    assert claims.known("https://b.test/y") == "art-x"
