"""Thousands of tiny feeds on many loopback hosts, served from one thread: the scale fixture of scheduled polling.

Each host is its own ``address:port`` (loopback addresses ``127.0.N.1``, ``127.0.N.2``, ... with an
ephemeral port each), so per-host politeness, robots caching and sharding by host see many real hosts.
Feed *i* lives on host ``i % hosts`` (``feed_hosts[i]``: outlets with many feeds) at ``/f/<i>.rss`` and answers
``304`` to its current ETag. Every feed
starts with one entry linking to its host's shared page (so a first poll stores one article per host and
records the other entries as URL duplicates; ``with_entry=k`` gives that entry to feeds ``0..k-1`` only, and
starts the others empty);
:meth:`FeedFarm.publish` adds an entry with its own article
page to a feed at a known time, which is what freshness is measured against.

The server logs every request (host, path, monotonic time, client port), so tests can check per-host spacing
and count polls per feed, and can find the process behind a connection (:meth:`FeedFarm.client_pid`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape

_TEXT = (
    "council budget river harbour election minister court ruling storm bridge school hospital market energy "
    "grid rail strike union festival museum report audit police housing water drought farmers export tariff "
    "vaccine clinic airport runway satellite launch bank inflation rates pension reform coast erosion forest "
    "fire volunteers library archive mayor district tunnel ferry port cargo wind solar battery factory jobs"
)
_WORDS = tuple(_TEXT.split())


class Request(NamedTuple):
    host: str  # address:port the request reached
    path: str
    at: float  # time.monotonic() when the request line was read
    client_port: int
    status: int


@dataclass
class _Feed:
    index: int
    entries: list[tuple[str, str, datetime]] = field(default_factory=list)  # (guid, link path, published)
    version: int = 0


class FeedFarm:
    """Serve ``feeds`` feeds over ``hosts`` loopback hosts until :meth:`stop`; use as a context manager."""

    def __init__(
        self,
        feeds: int,
        hosts: int,
        *,
        network: str = "127.0.12",
        latency: float = 0.0,
        slow_hosts: dict[int, float] | None = None,  # host -> seconds per response, one response at a time
        initial_published: datetime | None = None,
        with_entry: int | None = None,
        seed: int = 1,
        feed_hosts: list[int] | None = None,  # feed i -> its host; default i % hosts
    ) -> None:
        if not 1 <= hosts <= 250 or feeds < hosts:
            raise ValueError(f"need 1 <= hosts <= 250 and feeds >= hosts, got {feeds} feeds on {hosts} hosts")
        if feed_hosts is not None and (len(feed_hosts) != feeds or not all(0 <= h < hosts for h in feed_hosts)):
            raise ValueError(f"feed_hosts must give each of the {feeds} feeds a host below {hosts}")
        self._feed_hosts = feed_hosts
        self.feed_count, self.host_count, self.network = feeds, hosts, network
        self.latency = latency
        self.slow_hosts = dict(slow_hosts or {})
        self.requests: list[Request] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._ports: list[int] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._pages: dict[str, bytes] = {}
        self._host_locks: dict[int, asyncio.Lock] = {}
        self._feeds = [_Feed(i) for i in range(feeds)]
        started = initial_published or datetime.now(UTC)
        for feed in self._feeds[:with_entry]:
            feed.entries.append((f"shared-{self.host_index(feed.index)}-{feed.index}", "/a/shared.html", started))

    # -- addresses -----------------------------------------------------------------------------------------

    def address(self, host: int) -> str:
        return f"{self.network}.{host + 1}"

    def host_index(self, index: int) -> int:
        """The host (0-based) that serves feed ``index``."""
        return self._feed_hosts[index] if self._feed_hosts is not None else index % self.host_count

    def base_url(self, host: int) -> str:
        return f"http://{self.address(host)}:{self._ports[host]}"

    def feed_url(self, index: int) -> str:
        return f"{self.base_url(self.host_index(index))}/f/{index}.rss"

    def host_of(self, index: int) -> str:
        return f"{self.address(self.host_index(index))}:{self._ports[self.host_index(index)]}"

    def write_opml(self, path: Path) -> Path:
        """The feed list as OPML (what a feed reader exports)."""
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0"><head><title>farm</title></head><body>']
        for i in range(self.feed_count):
            lines.append(f'<outline type="rss" text="Farm feed {i}" xmlUrl="{escape(self.feed_url(i))}"/>')
        lines.append("</body></opml>")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    # -- content -------------------------------------------------------------------------------------------

    def publish(self, index: int, at: datetime | None = None) -> str:
        """Add an entry with its own article page to feed ``index``; returns the article URL."""
        at = at or datetime.now(UTC)
        with self._lock:
            feed = self._feeds[index]
            n = len(feed.entries)
            path = f"/a/{index}-{n}.html"
            feed.entries.append((f"farm-{index}-{n}", path, at))
            feed.entries = feed.entries[-10:]
            feed.version += 1
            self._pages[f"{self.host_index(index)}{path}"] = self._article(index, n)
        return f"{self.base_url(self.host_index(index))}{path}"

    def _article(self, index: int, n: int) -> bytes:
        rng = random.Random(index * 7919 + n)
        title = " ".join(rng.choice(_WORDS) for _ in range(6)).capitalize()
        paragraphs = "".join(
            "<p>" + " ".join(rng.choice(_WORDS) for _ in range(60)).capitalize() + f". Item {index}-{n}.</p>"
            for _ in range(5)
        )
        html = (
            f"<!doctype html><html lang='en'><head><title>{title}</title></head><body><article>"
            f"<h1>{title}</h1>{paragraphs}</article></body></html>"
        )
        return html.encode()

    def _shared(self, host: int) -> bytes:
        return self._article(-1 - host, 0)

    def _rss(self, feed: _Feed) -> bytes:
        base = self.base_url(self.host_index(feed.index))
        items = "".join(
            f"<item><title>Entry {escape(guid)}</title><link>{base}{path}</link><guid>{escape(guid)}</guid>"
            f"<pubDate>{format_datetime(at, usegmt=True)}</pubDate></item>"
            for guid, path, at in feed.entries
        )
        return (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>Farm feed {feed.index}</title>'
            f"<link>{base}/</link><description>farm</description>{items}</channel></rss>"
        ).encode()

    # -- serving -------------------------------------------------------------------------------------------

    def __enter__(self) -> FeedFarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FeedFarm:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                for host in range(self.host_count):
                    server = loop.run_until_complete(
                        asyncio.start_server(
                            lambda r, w, h=host: self._serve(h, r, w), self.address(host), 0, backlog=256
                        )
                    )
                    self._servers.append(server)
                    self._ports.append(server.sockets[0].getsockname()[1])
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            for server in self._servers:
                server.close()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="feedfarm", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    async def _serve(self, host: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = writer.get_extra_info("peername")[1]
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                at = time.monotonic()
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                parts = line.decode("latin-1").split()
                path = parts[1] if len(parts) > 1 else "/"
                status, extra, body = self._respond(host, path, headers)
                if host in self.slow_hosts:  # a slow site answering one request at a time
                    async with self._host_locks.setdefault(host, asyncio.Lock()):
                        await asyncio.sleep(self.slow_hosts[host])
                elif self.latency:
                    await asyncio.sleep(self.latency)
                with self._lock:
                    self.requests.append(
                        Request(f"{self.address(host)}:{self._ports[host]}", path, at, client_port, status)
                    )
                head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Other'}\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n"
                writer.write(head.encode() + body)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _respond(self, host: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/f/") and path.endswith(".rss"):
            try:
                index = int(path[3:-4])
            except ValueError:
                return 404, {}, b""
            if index >= self.feed_count or self.host_index(index) != host:
                return 404, {}, b""
            with self._lock:
                feed = self._feeds[index]
                etag = f'"{index}-{feed.version}"'
                if headers.get("if-none-match") == etag:
                    return 304, {"ETag": etag}, b""
                body = self._rss(feed)
            return 200, {"ETag": etag, "Content-Type": "application/rss+xml"}, body
        if path == "/a/shared.html":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, self._shared(host)
        with self._lock:
            page = self._pages.get(f"{host}{path}")
        if page is not None:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page
        return 404, {"Content-Type": "text/plain"}, b"not found"

    # -- what happened -------------------------------------------------------------------------------------

    def log(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def feed_polls(self) -> dict[int, int]:
        """Polls per feed index so far."""
        counts: dict[int, int] = {}
        for r in self.log():
            if r.path.startswith("/f/"):
                index = int(r.path[3:-4])
                counts[index] = counts.get(index, 0) + 1
        return counts

    def busiest_window(self, window: float) -> dict[str, int]:
        """The most requests each host received within any ``window`` seconds.

        Robust where single gaps are not: a farm thread that falls behind for a moment reads two requests sent
        an interval apart nearly together, but cannot make a host receive more requests per window than the
        clients sent.
        """
        by_host: dict[str, list[float]] = {}
        for r in self.log():
            by_host.setdefault(r.host, []).append(r.at)
        busiest: dict[str, int] = {}
        for host, times in by_host.items():
            times.sort()
            start, best = 0, 0
            for end, moment in enumerate(times):
                while moment - times[start] > window:
                    start += 1
                best = max(best, end - start + 1)
            busiest[host] = best
        return busiest

    def min_gaps(self) -> dict[str, float]:
        """The shortest gap between two requests to each host (seconds)."""
        last: dict[str, float] = {}
        gaps: dict[str, float] = {}
        for r in sorted(self.log(), key=lambda r: r.at):
            if r.host in last:
                gaps[r.host] = min(gaps.get(r.host, float("inf")), r.at - last[r.host])
            last[r.host] = r.at
        return gaps


def client_pid(host: str) -> int | None:
    """A local process (not this one) with a connection open to ``host`` (``address:port``)."""
    import os

    import psutil

    address, _, port = host.rpartition(":")
    for conn in psutil.net_connections(kind="tcp"):
        if conn.raddr and conn.raddr.ip == address and conn.raddr.port == int(port) and conn.pid != os.getpid():
            return conn.pid
    return None
