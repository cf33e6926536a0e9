"""Article identity: one canonical URL (and id) per article, however a feed or page spells its address.

The same story reaches us as ``HTTP://Example.com:80/a/../story?utm_source=rss#top`` from one feed and
``http://example.com/story`` from another. Deduplication downstream keys on :func:`article_id_for` of the
canonical URL, so this module must be deterministic, conservative (never merge two different articles by
dropping a query parameter that selects content) and network-free.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import idna

from ingest.errors import InvalidUrlError

__all__ = [
    "TRACKING_PARAMS",
    "InvalidUrlError",
    "article_id_for",
    "canonicalize_url",
    "choose_canonical",
    "registrable_domain",
    "same_site",
    "web_url",
]


# Query parameters that only say how a reader arrived (campaign, click and share trackers). Compared
# case-insensitively on the decoded name. Deliberately absent: names that some sites use to select content
# (id, p, story, ref, cid, src, from, page, mod, amp, output...).
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # ad-click identifiers
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "srsltid",
        "igshid",
        "igsh",
        "ef_id",
        "s_kwcid",
        "rb_clickid",
        # Google Analytics / Mailchimp / HubSpot / Marketo / Vero / Olytics
        "_ga",
        "_gl",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "vero_id",
        "vero_conv",
        "oly_anon_id",
        "oly_enc_id",
        # news publishers: AT Internet (xtor, used by most French sites), comScore (ns_*), BBC, Guardian,
        # NYT, WSJ, Microsoft Start, Yahoo consent redirects, Twitter/Facebook share helpers
        "xtor",
        "xts",
        "xtref",
        "ns_mchannel",
        "ns_source",
        "ns_campaign",
        "ns_linkname",
        "ns_fee",
        "ocid",
        "cmpid",
        "cmp",
        "intcmp",
        "icid",
        "ito",
        "smid",
        "smtyp",
        "emc",
        "soc_src",
        "soc_trk",
        "ncid",
        "sr_share",
        "ref_src",
        "ref_url",
        "s_cid",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "fb_action_ids",
        "fb_action_types",
        "fb_ref",
        "fb_source",
        "action_object_map",
        "action_type_map",
        "action_ref_map",
        "__twitter_impression",
        "spm",
        "trk",
        "trkcampaign",
        "wt.mc_id",
        "wt.tsrc",
        "mbid",
    }
)

# Whole families of tracking parameters (Google UTM, AT Internet at_*, Matomo/Piwik, Hubspot campaigns,
# Salesforce Marketing Cloud, GA-style ga_*).
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "at_", "pk_", "mtm_", "piwik_", "hmb_", "sfmc_", "ga_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ASCII_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
# Characters allowed verbatim in a path / query component (RFC 3986 pchar plus "/" and "?"); anything
# else (space, quotes, non-ASCII...) is percent-encoded as UTF-8.
_PATH_SAFE = frozenset("/:@!$&'()*+,;=%") | _UNRESERVED
_QUERY_SAFE = _PATH_SAFE | frozenset("?")
_STRIP_CHARS = " \t\r\n\f\v\x00"


@lru_cache(maxsize=16_384)
def canonicalize_url(url: str, base: str | None = None) -> str:
    """Return the canonical form of ``url`` (resolved against ``base`` if given).

    Raises :class:`InvalidUrlError` for anything that is not an absolute http(s) URL with a valid host.
    The result is stable: ``canonicalize_url(canonicalize_url(u)) == canonicalize_url(u)``. Cached: ingest
    asks for the same few URLs of an entry about a dozen times (ledger, claims, canonical choice).
    """
    raw = (url or "").strip(_STRIP_CHARS)
    # Browsers drop embedded tabs/newlines (WHATWG URL); feeds wrap long links across lines.
    raw = re.sub(r"[\t\r\n]", "", raw)
    if not raw:
        raise InvalidUrlError(url or "", "empty URL", reason="empty")
    if base:
        try:
            raw = urljoin(base.strip(_STRIP_CHARS), raw)
        except ValueError as exc:  # either side may be malformed, e.g. an unbalanced IPv6 bracket
            raise InvalidUrlError(url, f"malformed URL against base {base!r}: {exc}", reason="invalid_host") from exc
    try:
        parts = urlsplit(raw)
    except ValueError as exc:  # e.g. unbalanced IPv6 brackets
        raise InvalidUrlError(url, f"malformed URL: {exc}", reason="invalid_host") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidUrlError(url, "not an http(s) URL", reason="unsupported_scheme")
    host = _canonical_host(parts.hostname or "", url)
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidUrlError(url, "invalid port", reason="invalid_port") from exc
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _normalize_path(parts.path)
    query = _normalize_query(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def article_id_for(canonical_url: str) -> str:
    """32 hex chars identifying an article: 128 bits keep collisions out of reach for any real corpus."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


def registrable_domain(host: str) -> str:
    """The part of ``host`` a single owner controls (``news.bbc.co.uk`` -> ``bbc.co.uk``).

    Uses the public-suffix list bundled with the ``tld`` package (a trafilatura dependency, read from disk,
    never downloaded) and falls back to a heuristic for multi-part country suffixes when it is unavailable
    or does not know the host. IP addresses and single-label hosts are returned unchanged.
    """
    host = host.lower().rstrip(".")
    if not host or "." not in host or _is_ip(host):
        return host
    known = _public_suffix_lookup(host)
    return known if known else _guess_registrable_domain(host)


def same_site(a: str, b: str) -> bool:
    """Whether two URLs belong to the same publisher (same registrable domain).

    ``www.``/``m.``/``amp.``/``mobile.`` variants of a host are the same site, as are sibling sub-domains of
    one registrable domain (``edition.cnn.com`` and ``www.cnn.com``), but ``a.blogspot.com`` and
    ``b.blogspot.com`` are not. Unparsable URLs are never the same site as anything.
    """
    host_a, host_b = _host_of(a), _host_of(b)
    if not host_a or not host_b:
        return False
    host_a, host_b = _strip_mobile_prefixes(host_a), _strip_mobile_prefixes(host_b)
    if host_a == host_b:
        return True
    return registrable_domain(host_a) == registrable_domain(host_b)


def web_url(value: object, base: str) -> str | None:
    """``value`` made absolute against ``base`` if it is an http(s) URL with a valid host, else None.

    For links found in documents (feed entries, sitemap locations, a page's ``<base href>``): the URL as
    written, not canonicalised; only its validity is checked.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        absolute = urljoin(base, value.strip())
        canonicalize_url(absolute)
    except (InvalidUrlError, ValueError):
        return None
    return absolute


def choose_canonical(entry_url: str, page_canonical: str | None, og_url: str | None) -> str:
    """Pick the URL that identifies the article: the page's rel=canonical, else og:url, else the entry URL.

    A page's own claim is trusted only when it stays on the same site (a syndicated copy pointing at
    another publisher, or a hostile page claiming someone else's URL, keeps its own identity) and when it
    does not point at the site's home page while the entry does not (a common CMS misconfiguration that
    would merge every article of a site into one). Raises :class:`InvalidUrlError` only if ``entry_url``
    itself is invalid.
    """
    entry = canonicalize_url(entry_url)
    for candidate in (page_canonical, og_url):
        if not candidate or not candidate.strip():
            continue
        try:
            claimed = canonicalize_url(candidate, base=entry)
        except InvalidUrlError:
            continue
        if not same_site(entry, claimed):
            continue
        if _is_home_page(claimed) and not _is_home_page(entry):
            continue
        return claimed
    return entry


# -- helpers -------------------------------------------------------------------------------------------


def _canonical_host(hostname: str, original: str) -> str:
    """Lower-case, IDNA-encoded host; IPv6 literals re-bracketed. urlsplit has already dropped userinfo."""
    host = hostname.strip().rstrip(".")
    if not host:
        raise InvalidUrlError(original, "URL has no host", reason="no_host")
    if ":" in host:  # IPv6 literal (urlsplit strips the brackets)
        try:
            return f"[{ipaddress.IPv6Address(host.split('%')[0]).compressed}]"
        except ValueError as exc:
            raise InvalidUrlError(original, "invalid IPv6 host", reason="invalid_host") from exc
    labels = []
    for label in unquote(host).split("."):
        if label.isascii():
            label = label.lower()
        else:
            try:
                label = idna.encode(label, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise InvalidUrlError(original, "invalid internationalised host", reason="invalid_host") from exc
        if not _ASCII_LABEL.match(label) or len(label) > 63:
            raise InvalidUrlError(original, f"invalid host {hostname!r}", reason="invalid_host")
        labels.append(label)
    return ".".join(labels)


def _normalize_percent(component: str, safe: frozenset[str]) -> str:
    """Decode escapes of unreserved characters, upper-case the rest, encode what must be encoded."""

    def fix_escape(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    component = _LONE_PERCENT.sub("%25", component)
    component = _PERCENT_ESCAPE.sub(fix_escape, component)
    out = []
    for char in component:
        if char in safe:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _normalize_path(path: str) -> str:
    path = re.sub(r"/{2,}", "/", path) or "/"
    if not path.startswith("/"):
        path = "/" + path
    # Decode first: "%2e%2E" is "..", and removing dot segments before decoding would leave one behind that
    # a second canonicalisation removes (found by fuzzing: the result must be a fixed point).
    return _remove_dot_segments(_normalize_percent(path, _PATH_SAFE))


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, keeping a trailing slash exactly when the input implies one."""
    output: list[str] = []
    segments = path.split("/")[1:]  # path starts with "/"
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _is_tracking_param(name: str) -> bool:
    key = unquote(name.replace("+", " ")).strip().lower()
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES)


def _normalize_query(query: str) -> str:
    """Drop tracking parameters and empty pairs; sort the rest by name (stably: repeats keep their order)."""
    if not query:
        return ""
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        name = pair.split("=", 1)[0]
        if _is_tracking_param(name):
            continue
        pairs.append(_normalize_percent(pair, _QUERY_SAFE))
    pairs.sort(key=lambda pair: pair.split("=", 1)[0])
    return "&".join(pairs)


def _host_of(url: str) -> str:
    try:
        return urlsplit(canonicalize_url(url)).hostname or ""
    except InvalidUrlError:
        return ""


_MOBILE_PREFIXES = ("www.", "m.", "amp.", "mobile.")


def _strip_mobile_prefixes(host: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _MOBILE_PREFIXES:
            if host.startswith(prefix) and host.count(".") >= 2:
                host = host[len(prefix) :]
                stripped = True
    return host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_home_page(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path in ("", "/") and not parts.query


def _public_suffix_lookup(host: str) -> str | None:
    try:
        from tld import get_fld
    except ImportError:  # pragma: no cover - tld ships with trafilatura
        return None
    try:
        return get_fld(host, fail_silently=True, fix_protocol=True)
    except Exception:  # tld raises assorted errors on odd hosts; the heuristic covers them
        return None


# Second-level labels under which country registries sell names (co.uk, com.au, gouv.fr, ac.jp, ...).
_SECOND_LEVEL_LABELS = frozenset(
    {
        "co",
        "com",
        "net",
        "org",
        "gov",
        "gouv",
        "govt",
        "edu",
        "ac",
        "ne",
        "or",
        "go",
        "gob",
        "gv",
        "mil",
        "nic",
        "sch",
        "ltd",
        "plc",
        "nhs",
        "asso",
        "nom",
        "info",
        "biz",
        "web",
        "press",
        "news",
        "lg",
        "ed",
        "gr",
        "gen",
        "firm",
        "ind",
        "res",
    }
)


def _guess_registrable_domain(host: str) -> str:
    """Heuristic registrable domain: three labels under ``<sld>.<cc>`` suffixes (co.uk, com.au), else two."""
    labels = host.split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL_LABELS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])
