"""robots.txt compliance (RFC 9309), cached per origin.

``urllib.robotparser`` is not used: it applies the first matching rule instead of the longest, ignores the
``*`` and ``$`` wildcards nearly every large news site uses (``Disallow: /*?print=``), and matches user
agents by substring. This module implements the RFC's matching with a linear-time wildcard matcher (a
hostile robots.txt cannot trigger regex backtracking).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ingest.errors import (
    BlockedAddressError,
    FetchError,
    HttpStatusError,
    InvalidUrlError,
    RedirectError,
    RobotsUnavailable,
)
from ingest.http import Fetcher
from ingest.politeness import release_admission

__all__ = ["RobotsCache", "RobotsRules", "parse_robots", "product_token"]

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TOKEN = re.compile(r"[A-Za-z_-]+")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_LOCK_STRIPES = 64


def product_token(user_agent: str) -> str:
    """The lower-cased product token a robots.txt ``User-agent`` line is matched against (``newswire``)."""
    match = _TOKEN.match(user_agent.strip())
    return match.group(0).lower() if match else ""


@dataclass(frozen=True)
class _Rule:
    allow: bool
    pattern: str  # normalized, including any '*' and trailing '$'
    parts: tuple[str, ...]
    anchored: bool

    @classmethod
    def parse(cls, allow: bool, raw: str) -> _Rule:
        pattern = _normalize(raw)
        if not pattern.startswith(("/", "*")):
            pattern = "/" + pattern
        anchored = pattern.endswith("$")
        body = pattern[:-1] if anchored else pattern
        return cls(allow, pattern, tuple(body.split("*")), anchored)

    def matches(self, path: str) -> bool:
        """Glob match where '*' is any run of characters and a trailing '$' anchors the end.

        Leftmost placement of each literal part is optimal for '*'-separated globs, so one pass of
        ``str.find`` decides the match: O(len(path) * len(pattern)) at worst, no backtracking.
        """
        parts = self.parts
        if len(parts) == 1:
            return path == parts[0] if self.anchored else path.startswith(parts[0])
        if not path.startswith(parts[0]):
            return False
        position = len(parts[0])
        for literal in parts[1:-1]:
            found = path.find(literal, position)
            if found < 0:
                return False
            position = found + len(literal)
        last = parts[-1]
        if self.anchored:
            return len(path) - len(last) >= position and path.endswith(last)
        return path.find(last, position) >= 0


@dataclass(frozen=True)
class RobotsRules:
    """The rules of one robots.txt that apply to one product token, plus the file's sitemaps."""

    rules: tuple[_Rule, ...] = ()
    sitemaps: tuple[str, ...] = ()
    #: Seconds between requests the file asks of this agent (``Crawl-delay``, not in RFC 9309 but widely used).
    crawl_delay: float | None = None

    def allowed(self, url: str) -> bool:
        """RFC 9309 decision for ``url``'s path and query: longest matching rule wins, allow wins ties."""
        parts = urlsplit(url)
        path = _normalize(parts.path or "/")
        if parts.query:
            path += "?" + _normalize(parts.query)
        if path == "/robots.txt":
            return True
        best: _Rule | None = None
        for rule in self.rules:
            if not rule.matches(path):
                continue
            if (
                best is None
                or len(rule.pattern) > len(best.pattern)
                or (len(rule.pattern) == len(best.pattern) and rule.allow)
            ):
                best = rule
        return best is None or best.allow


ALLOW_ALL = RobotsRules()


def parse_robots(text: str, user_agent: str, *, base_url: str = "") -> RobotsRules:
    """Rules applying to ``user_agent``'s product token: its own groups if any name it, else the ``*`` groups.

    Groups naming the same agent are merged, as the RFC requires; ``Sitemap`` lines are collected from
    anywhere in the file and resolved against ``base_url``.
    """
    token = product_token(user_agent)
    groups: list[tuple[set[str], list[_Rule]]] = []
    sitemaps: list[str] = []
    agents: set[str] | None = None
    rules: list[_Rule] = []
    delays: dict[int, float] = {}  # group index -> its Crawl-delay
    saw_rule = False
    for raw_line in text.lstrip("\ufeff").splitlines():
        line = raw_line.split("#", 1)[0].strip()
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower().replace(" ", "").replace("_", "-")
        value = value.strip()
        if key in ("user-agent", "useragent"):
            if agents is None or saw_rule:
                agents, rules, saw_rule = set(), [], False
                groups.append((agents, rules))
            agent = "*" if value.startswith("*") else product_token(value)
            if agent:
                agents.add(agent)
        elif key in ("allow", "disallow"):
            if agents is None:
                continue  # rules before any User-agent line belong to no group
            saw_rule = True
            if value:  # an empty Disallow allows everything, an empty Allow means nothing
                rules.append(_Rule.parse(key == "allow", value))
        elif key == "crawl-delay":
            if agents is None:
                continue
            saw_rule = True
            delay = _seconds(value)
            if delay is not None:
                delays[len(groups) - 1] = delay
        elif key in ("sitemap", "site-map"):
            location = urljoin(base_url, value) if base_url else value
            if urlsplit(location).scheme in ("http", "https") and location not in sitemaps:
                sitemaps.append(location)
    applicable = [i for i, (names, _) in enumerate(groups) if token and token in names]
    if not applicable:
        applicable = [i for i, (names, _) in enumerate(groups) if "*" in names]
    delay = max((delays[i] for i in applicable if i in delays), default=None)
    return RobotsRules(tuple(rule for i in applicable for rule in groups[i][1]), tuple(sitemaps), delay)


def _seconds(value: str) -> float | None:
    """A Crawl-delay value in seconds (``10``, ``0.5``), or None when it is not a finite non-negative number."""
    try:
        seconds = float(value.split()[0]) if value.split() else -1.0
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None


@dataclass(frozen=True)
class _Entry:
    expires_at: float
    rules: RobotsRules | None = None
    failure: str | None = None
    retry_after: float | None = None


class RobotsCache:
    """Answers "may we fetch this URL?" from each origin's robots.txt, fetched once per ``ttl`` seconds.

    A 4xx robots.txt (or an endless redirect) means no restrictions (RFC 9309). A 5xx, 429 or network
    failure raises :class:`RobotsUnavailable`, cached for only ``failure_ttl`` seconds (longer if the server
    sent Retry-After, never longer than ``ttl``). Concurrent lookups for one origin fetch it once.
    """

    def __init__(
        self,
        fetcher: Fetcher,
        user_agent: str,
        ttl: float = 3600,
        *,
        failure_ttl: float = 60.0,
        max_bytes: int = 512 * 1024,
        max_origins: int = 10_000,
        max_crawl_delay: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or failure_ttl <= 0:
            raise ValueError("ttl and failure_ttl must be positive")
        self._fetcher = fetcher
        self._user_agent = user_agent
        self._ttl = float(ttl)
        self._failure_ttl = min(float(failure_ttl), self._ttl)
        self._max_bytes = max_bytes
        self._max_origins = max_origins
        self._max_crawl_delay = max(0.0, float(max_crawl_delay))
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._fetch_locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))

    def allowed(self, url: str) -> bool:
        """Whether robots.txt lets our user agent fetch ``url``. Raises :class:`RobotsUnavailable`."""
        return self.rules(url).allowed(url)

    def sitemaps(self, url: str) -> list[str]:
        """The ``Sitemap:`` URLs listed in the robots.txt of ``url``'s origin."""
        return list(self.rules(url).sitemaps)

    def rules(self, url: str) -> RobotsRules:
        """The cached (or freshly fetched) rules of ``url``'s origin."""
        robots_url = robots_url_for(url)
        entry = self._cached(robots_url)
        if entry is None:
            fetch_lock = self._fetch_locks[zlib.crc32(robots_url.encode()) % _LOCK_STRIPES]
            if not fetch_lock.acquire(blocking=False):
                # Another entry is fetching this origin's robots.txt (maybe asleep in its host's Crawl-delay):
                # waiting behind it is not waiting for a request slot, so the admission places go back first.
                release_admission()
                fetch_lock.acquire()
            try:
                entry = self._cached(robots_url)  # another thread may have fetched it meanwhile
                if entry is None:
                    entry = self._load(robots_url)
                    self._store(robots_url, entry)
            finally:
                fetch_lock.release()
        if entry.rules is None:
            detail = entry.failure or "robots.txt unavailable"
            raise RobotsUnavailable(robots_url, detail, retry_after=entry.retry_after)
        return entry.rules

    def _cached(self, key: str) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def _store(self, key: str, entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_origins:
                self._entries.popitem(last=False)

    def _load(self, robots_url: str) -> _Entry:
        now = self._clock()
        try:
            result = self._fetcher.get(robots_url, accept="text/plain, */*;q=0.5", max_bytes=self._max_bytes)
        except (BlockedAddressError, InvalidUrlError):
            raise  # about the origin itself, not robots.txt; the page fetch would fail the same way
        except HttpStatusError as exc:
            if exc.status == 429 or exc.status >= 500:
                return self._failure(now, f"robots.txt answered HTTP {exc.status}", exc.retry_after)
            return _Entry(now + self._ttl, rules=ALLOW_ALL)
        except RedirectError:
            return _Entry(now + self._ttl, rules=ALLOW_ALL)
        except FetchError as exc:
            return self._failure(now, f"robots.txt fetch failed: {exc.detail} [{exc.reason}]", None)
        text = result.content.decode("utf-8", errors="replace")
        rules = parse_robots(text, self._user_agent, base_url=result.final_url)
        self._honour_crawl_delay(robots_url, rules.crawl_delay)
        return _Entry(now + self._ttl, rules=rules)

    def _honour_crawl_delay(self, robots_url: str, delay: float | None) -> None:
        """Space this host's requests by its Crawl-delay (capped), on top of the throttle's own interval."""
        throttle = getattr(self._fetcher, "throttle", None)
        if throttle is None or not delay or not self._max_crawl_delay:
            return
        honoured = min(delay, self._max_crawl_delay)
        throttle.set_host_interval(robots_url, honoured)
        logger.info("%s asks Crawl-delay %g s: requests to its host spaced %g s apart", robots_url, delay, honoured)

    def _failure(self, now: float, detail: str, retry_after: float | None) -> _Entry:
        hold = self._failure_ttl if retry_after is None else min(max(retry_after, self._failure_ttl), self._ttl)
        return _Entry(now + hold, failure=detail, retry_after=retry_after)


def robots_url_for(url: str) -> str:
    """``scheme://host[:port]/robots.txt`` of ``url``'s origin (credentials and default ports dropped)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise InvalidUrlError(url, "robots.txt applies only to absolute http(s) URLs")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidUrlError(url, "invalid port") from exc
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}/robots.txt"


def _normalize(value: str) -> str:
    """RFC 9309 comparison form: non-ASCII percent-encoded, escapes of unreserved characters decoded."""
    encoded = "".join(_encode_char(c) for c in value)
    return _PERCENT.sub(_decode_unreserved, encoded)


def _encode_char(char: str) -> str:
    if " " < char < "\x7f":
        return char
    return "".join(f"%{byte:02X}" for byte in char.encode("utf-8", errors="surrogatepass"))


def _decode_unreserved(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else f"%{match.group(1).upper()}"
