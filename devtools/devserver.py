"""Loopback HTTP server that plays the bundled news corpus as a set of independent news sites.

Tests and the local demo need real HTTP (status codes, validators, compression, robots.txt, distinct hosts for
per-host politeness) without touching the network, and feed dates that stay "recent" whatever day the suite runs.
So every outlet directory under ``ROOT/sites/`` gets its own ``ThreadingHTTPServer`` on an ephemeral loopback port,
and text files are templates whose placeholders are filled in per request:

``{{site:OUTLET}}``
    base URL of that outlet's server, e.g. ``http://127.0.0.1:41234``.
``{{rfc822:D}}`` / ``{{rfc822:D:HH:MM}}``
    RFC 822 date (``Mon, 25 Nov 2024 14:20:00 GMT``) ``D`` days from ``today`` (negative = past), UTC.
``{{iso:D}}`` / ``{{iso:D:HH:MM}}``
    the same moment in ISO 8601 (``2024-11-25T14:20:00Z``).
``{{date:D}}`` / ``{{dmy:D}}``
    the calendar day alone, ``2024-11-25`` / ``25/11/2024`` (visible dates on English / French pages).

Run ``python -m devtools.devserver ROOT`` to browse a corpus locally.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from email.message import Message
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from newswire.errors import NewswireError

__all__ = [
    "CorpusError",
    "CorpusServer",
    "RequestRecord",
    "ServerNotRunning",
    "TemplateError",
    "TemplateRenderer",
    "main",
]

_log = logging.getLogger(__name__)

TEMPLATE_SUFFIXES = frozenset({".html", ".htm", ".xml", ".rss", ".atom", ".rdf", ".opml", ".txt", ".toml", ".json"})

_CONTENT_TYPES: Mapping[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".rdf": "application/rdf+xml; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".toml": "application/toml; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_CACHE_CONTROL = "public, max-age=60"
# serve_forever's shutdown latency; the stdlib's 0.5 s, times one server per outlet, made every stop() slow.
_POLL_INTERVAL = 0.05


class CorpusError(NewswireError):
    """The corpus or the server cannot do what was asked (bad root, unknown outlet, bad arguments)."""


class TemplateError(CorpusError):
    """A corpus file holds a placeholder that cannot be filled; a fixture bug, never served half-rendered."""


class ServerNotRunning(CorpusError):
    """URLs only exist while the servers are bound, because every start picks fresh ephemeral ports."""


class RequestRecord(NamedTuple):
    """One request as a site saw it, so tests can check what a client sent (conditional headers, UA...)."""

    outlet: str
    method: str
    path: str
    """The request target as sent, query string included."""
    headers: dict[str, str]
    """Header names lower-cased, because HTTP header names are case-insensitive."""


class TemplateRenderer:
    """Fills corpus placeholders; kept apart from the server so fixtures can be rendered without sockets."""

    _PLACEHOLDER = re.compile(r"\{\{([a-z0-9]+):([^{}\s]*)\}\}")
    _MOMENT = re.compile(r"^([+-]?\d{1,4})(?::(\d{2}):(\d{2}))?$")

    def __init__(self, sites: Mapping[str, str], today: date) -> None:
        self._sites = dict(sites)
        self._today = today

    def render(self, text: str) -> str:
        return self._PLACEHOLDER.sub(self._substitute, text)

    def moment(self, arg: str) -> datetime:
        """``D`` or ``D:HH:MM`` as an aware UTC datetime, ``D`` days from ``today``."""
        match = self._MOMENT.match(arg)
        if match is None:
            raise TemplateError(f"expected D or D:HH:MM after the colon, got {arg!r}")
        days, hours, minutes = match.group(1), match.group(2), match.group(3)
        hour, minute = (int(hours), int(minutes)) if hours is not None else (0, 0)
        if hour > 23 or minute > 59:
            raise TemplateError(f"time of day out of range in {arg!r}")
        midnight = datetime.combine(self._today, clock(0), UTC)
        return midnight + timedelta(days=int(days), hours=hour, minutes=minute)

    def _substitute(self, match: re.Match[str]) -> str:
        kind, arg = match.group(1), match.group(2)
        if kind == "site":
            try:
                return self._sites[arg]
            except KeyError:
                raise TemplateError(f"unknown outlet {arg!r} in {match.group(0)}") from None
        if kind == "rfc822":
            return format_datetime(self.moment(arg), usegmt=True)
        if kind == "iso":
            return self.moment(arg).strftime("%Y-%m-%dT%H:%M:%SZ")
        if kind == "date":
            return self.moment(arg).strftime("%Y-%m-%d")
        if kind == "dmy":
            return self.moment(arg).strftime("%d/%m/%Y")
        raise TemplateError(f"unknown placeholder kind {kind!r} in {match.group(0)}")


@dataclass(frozen=True)
class _Resource:
    """A file as served: its bytes, and their gzip encoding when the type is compressible.

    The encoding is made once, when the file is loaded, not per response: in a benchmark, compressing every
    page as it was served took CPU from the pipeline being measured (static sites and CDNs serve pre-compressed
    files the same way). A preloaded resource (:meth:`CorpusServer.preload`) keeps only the compressed bytes,
    much smaller than the page, and decompresses them for the rare client that does not accept gzip.
    """

    plain: bytes | None
    content_type: str
    digest: str
    gzipped: bytes | None = None

    @property
    def body(self) -> bytes:
        if self.plain is not None:
            return self.plain
        assert self.gzipped is not None
        return gzip.decompress(self.gzipped)

    @property
    def compressible(self) -> bool:
        return _compressible(self.content_type)


def _compressible(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0]
    return kind.startswith("text/") or kind.endswith(("xml", "json", "toml"))


@dataclass(frozen=True)
class _Redirect:
    location: str


class _Site:
    """Maps request targets to files of one outlet directory, rendering templates with a small cache."""

    def __init__(self, outlet: str, directory: Path, renderer: TemplateRenderer) -> None:
        self.outlet = outlet
        self.directory = directory.resolve()
        self._renderer = renderer
        self._cache: dict[Path, tuple[tuple[int, int], _Resource]] = {}
        self._lock = threading.Lock()

    def lookup(self, target: str) -> _Resource | _Redirect | None:
        split = urlsplit(target)
        parts = _safe_parts(split.path)
        if parts is None:
            return None
        candidate = self.directory.joinpath(*parts)
        try:
            candidate = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError, RuntimeError, OSError):
            return None
        if not candidate.is_relative_to(self.directory):
            return None
        if candidate.is_dir():
            if not split.path.endswith("/"):
                query = f"?{split.query}" if split.query else ""
                return _Redirect(f"{split.path}/{query}")
            candidate = candidate / "index.html"
            if not candidate.is_file():
                return None
        elif split.path.endswith("/"):
            return None
        return self._load(candidate)

    def preload(self) -> int:
        """Load every template file of the site into the cache, keeping only the compressed bytes of those
        that have them; returns how many files were loaded."""
        count = 0
        for path in sorted(self.directory.rglob("*")):
            servable = _safe_parts(path.relative_to(self.directory).as_posix()) is not None  # no hidden files
            if servable and path.suffix.lower() in TEMPLATE_SUFFIXES and path.is_file():
                self._load(path, compact=True)
                count += 1
        return count

    def _load(self, path: Path, *, compact: bool = False) -> _Resource:
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        raw = path.read_bytes()
        suffix = path.suffix.lower()
        if suffix in TEMPLATE_SUFFIXES:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise TemplateError(f"{path} is not UTF-8: {exc}") from exc
            raw = self._renderer.render(text).encode("utf-8")
        content_type = _CONTENT_TYPES.get(suffix, _DEFAULT_CONTENT_TYPE)
        # Level 6, as common web servers use: level 9 costs much more CPU for a few percent fewer bytes.
        gzipped = gzip.compress(raw, compresslevel=6, mtime=0) if raw and _compressible(content_type) else None
        resource = _Resource(
            plain=None if compact and gzipped is not None else raw,
            content_type=content_type,
            digest=hashlib.sha256(raw).hexdigest()[:20],
            gzipped=gzipped,
        )
        with self._lock:
            self._cache[path] = (stamp, resource)
        return resource


def _safe_parts(url_path: str) -> list[str] | None:
    """Path segments of a request path, or None when it tries to leave the site or reach hidden files."""
    decoded = unquote(url_path)
    if "\x00" in decoded or "\\" in decoded:
        return None
    parts: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment.startswith("."):
            return None
        parts.append(segment)
    return parts


def _accepts_gzip(header: str | None) -> bool:
    if not header:
        return False
    verdicts: dict[str, bool] = {}
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        verdicts[coding.strip().lower()] = quality > 0
    for coding in ("gzip", "x-gzip"):
        if coding in verdicts:
            return verdicts[coding]
    return verdicts.get("*", False)


def _not_modified(headers: Message, etags: Sequence[str], last_modified: datetime) -> bool:
    """RFC 9110 section 13.2.2: If-None-Match wins over If-Modified-Since; weak comparison for ETags."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        if "*" in tags:
            return True
        opaque = {tag.removeprefix("W/") for tag in tags}
        return any(etag in opaque for etag in etags)
    if_modified_since = headers.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified <= since


class _OutletServer(ThreadingHTTPServer):
    """One outlet's HTTP server; tracks its handler threads and open connections so close() leaves none behind.

    The stdlib joins only non-daemon handler threads on close; ours are daemon (a server someone forgot to stop
    must not keep the interpreter alive) and joined here instead.
    """

    daemon_threads = True
    site: _Site
    """Assigned by CorpusServer.start() once every port is known, before serving begins."""

    def __init__(self, address: tuple[str, int], corpus: CorpusServer) -> None:
        self.corpus = corpus
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._handle_in_thread, args=(request, client_address), name="corpus-request", daemon=True
        )
        with self._lock:
            self._handlers.add(thread)
        thread.start()

    def _handle_in_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._handlers.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-response is normal (timeouts, cancelled fetches): no traceback for that."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            _log.debug("%s: client %s went away: %s", self.site.outlet, client_address, error)
        else:
            _log.error("%s: error while serving %s", self.site.outlet, client_address, exc_info=True)

    def track(self, connection: socket.socket) -> None:
        with self._lock:
            if not self._closing:
                self._connections.add(connection)
                return
        _shut(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def server_close(self) -> None:
        """Close the listening socket, end every open connection, and wait for every handler thread."""
        with self._lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            _shut(connection)
        super().server_close()
        with self._lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join()


class _OutletServer6(_OutletServer):
    address_family = socket.AF_INET6


def _shut(connection: socket.socket) -> None:
    """End a connection from our side; the peer may already have closed it, which is fine."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Serves one request like a plain static news site would (keep-alive, validators, gzip)."""

    server: _OutletServer
    protocol_version = "HTTP/1.1"
    server_version = "NewswireCorpus/1.0"
    sys_version = ""
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: object) -> None:
        _log.debug("%s %s", self.server.site.outlet, format % args)

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def do_POST(self) -> None:
        self._method_not_allowed()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _method_not_allowed(self) -> None:
        self._record()
        # Whatever body the client sent stays unread, so this connection cannot carry another request.
        self.close_connection = True
        extra = {"Allow": "GET, HEAD", "Connection": "close"}
        self._send_page(HTTPStatus.METHOD_NOT_ALLOWED, "Method not allowed", extra)

    def _record(self) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.corpus._record(RequestRecord(self.server.site.outlet, self.command, self.path, headers))

    def _serve(self, *, with_body: bool) -> None:
        self._record()
        corpus = self.server.corpus
        if corpus.latency:
            time.sleep(corpus.latency)
        try:
            found = self.server.site.lookup(self.path)
        except (TemplateError, OSError):
            _log.exception("cannot serve %s for %s", self.path, self.server.site.outlet)
            self._send_page(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error", {}, with_body)
            return
        if found is None:
            self._send_page(HTTPStatus.NOT_FOUND, "Page not found", {}, with_body)
        elif isinstance(found, _Redirect):
            self._send_page(HTTPStatus.MOVED_PERMANENTLY, "Moved", {"Location": found.location}, with_body)
        else:
            self._send_resource(found, with_body)

    def _send_resource(self, resource: _Resource, with_body: bool) -> None:
        last_modified = datetime.combine(self.server.corpus.today, clock(0), UTC)
        plain_tag, gzip_tag = f'"{resource.digest}"', f'"{resource.digest}-gzip"'
        use_gzip = resource.gzipped is not None and _accepts_gzip(self.headers.get("Accept-Encoding"))
        headers = {
            "ETag": gzip_tag if use_gzip else plain_tag,
            "Last-Modified": format_datetime(last_modified, usegmt=True),
            "Cache-Control": _CACHE_CONTROL,
        }
        if resource.compressible:
            headers["Vary"] = "Accept-Encoding"
        if _not_modified(self.headers, (plain_tag, gzip_tag), last_modified):
            self._send(HTTPStatus.NOT_MODIFIED, headers, b"", with_body=False)
            return
        body = resource.body
        if use_gzip:
            assert resource.gzipped is not None
            body = resource.gzipped
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = resource.content_type
        headers["Content-Length"] = str(len(body))
        self._send(HTTPStatus.OK, headers, body, with_body)

    def _send_page(self, status: HTTPStatus, title: str, extra: Mapping[str, str], with_body: bool = True) -> None:
        body = (
            f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{status.value} {title}</title>"
            f"</head><body><h1>{title}</h1></body></html>\n"
        ).encode()
        headers = {
            **extra,
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(body)),
            "Cache-Control": "no-store",
        }
        self._send(status, headers, body, with_body)

    def _send(self, status: HTTPStatus, headers: Mapping[str, str], body: bytes, with_body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)


class CorpusServer:
    """Serves every outlet of a corpus on its own loopback port; use as a context manager.

    Each outlet being a distinct host:port matters: clients rate-limit, cache robots.txt and deduplicate per
    host, so a single server with path prefixes would hide the bugs these fixtures exist to catch.

    Ports are ephemeral by default (tests run in parallel without clashes). ``base_port`` pins them instead,
    outlet *i* in sorted order on ``base_port + i``, so URLs and ETags survive a restart (the demo relies on it).
    """

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        today: date | None = None,
        latency: float = 0.0,
        base_port: int | None = None,
    ) -> None:
        self.root = Path(root)
        self._sites_dir = self.root / "sites"
        if not self._sites_dir.is_dir():
            raise CorpusError(f"{self.root} has no sites/ directory: not a corpus root")
        self._outlets = sorted(
            entry.name for entry in self._sites_dir.iterdir() if entry.is_dir() and not entry.name.startswith(".")
        )
        if not self._outlets:
            raise CorpusError(f"{self._sites_dir} holds no outlet directories")
        if latency < 0:
            raise CorpusError(f"latency must be >= 0 seconds, got {latency}")
        if base_port is not None and not 1 <= base_port <= 65535 - len(self._outlets):
            raise CorpusError(f"base_port must leave room for {len(self._outlets)} ports below 65536, got {base_port}")
        self.base_port = base_port
        self.host = host
        self.today = today if today is not None else datetime.now(UTC).date()
        self.latency = latency
        self.request_log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._servers: dict[str, _OutletServer] = {}
        self._threads: list[threading.Thread] = []
        self._renderer: TemplateRenderer | None = None

    def __enter__(self) -> CorpusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def outlets(self) -> list[str]:
        return list(self._outlets)

    @property
    def running(self) -> bool:
        return bool(self._servers)

    def start(self) -> CorpusServer:
        """Bind one port per outlet and serve in background threads; a second call is a no-op."""
        if self._servers:
            return self
        server_class = _OutletServer6 if ":" in self.host else _OutletServer
        try:
            for index, outlet in enumerate(self._outlets):
                port = 0 if self.base_port is None else self.base_port + index
                self._servers[outlet] = server_class((self.host, port), self)
        except OSError as exc:
            self._close_all()
            raise CorpusError(f"cannot bind a port on {self.host}: {exc}") from exc
        self._renderer = TemplateRenderer({o: self.base_url(o) for o in self._outlets}, self.today)
        for outlet, server in self._servers.items():
            server.site = _Site(outlet, self._sites_dir / outlet, self._renderer)
        for outlet, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever, args=(_POLL_INTERVAL,), name=f"corpus-{outlet}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every server and join every thread it started, idle keep-alive connections included."""
        for server in self._servers.values():
            server.shutdown()
        self._close_all()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._renderer = None

    def _close_all(self) -> None:
        for server in self._servers.values():
            server.server_close()
        self._servers.clear()

    def base_url(self, outlet: str) -> str:
        if outlet not in self._outlets:
            raise CorpusError(f"unknown outlet {outlet!r}; known: {', '.join(self._outlets)}")
        server = self._servers.get(outlet)
        if server is None:
            raise ServerNotRunning("start() the corpus server before asking for URLs")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{server.server_address[1]}"

    def url(self, outlet: str, path: str) -> str:
        return f"{self.base_url(outlet)}/{path.lstrip('/')}"

    def render(self, text: str) -> str:
        """Fill placeholders in ``text`` with this running server's URLs and dates."""
        if self._renderer is None:
            raise ServerNotRunning("start() the corpus server before rendering templates")
        return self._renderer.render(text)

    def preload(self) -> int:
        """Render and compress every template file of every outlet now, so that serving them later costs no
        rendering or compression (a benchmark calls it before the measured run); returns the files loaded."""
        if not self._servers:
            raise ServerNotRunning("start() the server before preloading it")
        return sum(server.site.preload() for server in self._servers.values())

    def render_feed_list(self, dest: Path) -> Path:
        """Write ``feeds.toml`` with concrete URLs to ``dest``: a file path, or a directory (existing, or any path
        without a suffix) to put ``feeds.toml`` in. Returns the path written."""
        return self._render_root_file("feeds.toml", Path(dest))

    def render_opml(self, dest: Path) -> Path:
        """Write the OPML export of all feeds (``feeds.opml``) with concrete URLs, like render_feed_list."""
        return self._render_root_file("feeds.opml", Path(dest))

    def _render_root_file(self, name: str, dest: Path) -> Path:
        source = self.root / name
        if not source.is_file():
            raise CorpusError(f"{source} does not exist")
        target = dest / name if dest.is_dir() or not dest.suffix else dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.render(source.read_text(encoding="utf-8")), encoding="utf-8")
        return target

    def _record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self.request_log.append(record)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a corpus until Ctrl-C, printing each outlet's base URL."""
    parser = argparse.ArgumentParser(prog="python -m devtools.devserver", description=main.__doc__)
    parser.add_argument("root", type=Path, help="corpus directory (the one holding sites/ and feeds.toml)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--today", type=date.fromisoformat, help="day the relative dates count from (UTC)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each response")
    parser.add_argument("--base-port", type=int, help="serve outlet i (sorted) on BASE_PORT + i instead of any port")
    parser.add_argument("--feed-list", type=Path, help="also write the rendered feeds.toml to this path")
    args = parser.parse_args(argv)
    # Started from a script or a background job, SIGINT may arrive ignored; Ctrl-C and SIGTERM must still stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server = CorpusServer(
            args.root, host=args.host, today=args.today, latency=args.latency, base_port=args.base_port
        )
        with server:
            width = max(len(outlet) for outlet in server.outlets)
            for outlet in server.outlets:
                print(f"{outlet:<{width}}  {server.base_url(outlet)}/", flush=True)
            if args.feed_list is not None:
                print(f"feed list: {server.render_feed_list(args.feed_list)}", flush=True)
            print("serving; press Ctrl-C to stop", flush=True)
            threading.Event().wait()
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
