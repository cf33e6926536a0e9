"""Fetcher behaviour against real loopback HTTP(S) servers: guard, redirects, caps, budgets, errors."""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import pickle
import socket
import ssl
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from types import SimpleNamespace

import pytest

from ingest.errors import (
    BlockedAddressError,
    ConnectError,
    FetchError,
    FetchTimeout,
    HttpStatusError,
    InvalidUrlError,
    MalformedResponseError,
    RedirectError,
    TlsError,
    TooLargeError,
    UnsupportedContentType,
)
from ingest.http import Fetcher, HttpPolicy, parse_retry_after
from ingest.netguard import AddressGuard, IPAddress
from ingest.politeness import HostThrottle, host_key

Route = Callable[[BaseHTTPRequestHandler], None]


class LoopbackServer:
    """A threaded HTTP/1.0 server on a loopback address with per-path handlers; records every request."""

    def __init__(
        self,
        routes: dict[str, Route],
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        keep_alive_for: float | None = None,
    ):
        self.routes = routes
        self.requests: list[tuple[str, dict[str, str], float]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            #: Requests read on this handler's connection so far, this one included (keep-alive reuse shows as > 1).
            requests_on_connection = 0

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.requests_on_connection += 1
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, time.monotonic()))
                route = server.routes.get(self.path.split("?")[0])
                try:
                    if route is None:
                        respond(self, 404, b"not found")
                    else:
                        route(self)
                except OSError:
                    pass  # the client hung up on purpose (caps, timeouts)

        if keep_alive_for is not None:  # HTTP/1.1 with persistent connections closed after that idle time
            Handler.protocol_version = "HTTP/1.1"
            Handler.timeout = keep_alive_for

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 64  # concurrent tests must not hit SYN retransmits on a full backlog

        self.httpd = Server((host, 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True
        self.thread.start()

    def url(self, path: str = "/", host: str | None = None, scheme: str = "http") -> str:
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers and status != 304:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def serve() -> Iterator[Callable[..., LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def start(routes: dict[str, Route], **kwargs: object) -> LoopbackServer:
        server = LoopbackServer(routes, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def private_ok(**overrides: object) -> HttpPolicy:
    return HttpPolicy(allow_private_networks=True, **overrides)  # type: ignore[arg-type]


def loopback_is_public(*hosts: str) -> AddressGuard:
    """A guard where only 127.0.0.1 counts as public and ``hosts`` resolve to it: a simulated internet."""
    names = set(hosts)

    def resolver(host: str) -> list[IPAddress]:
        if host in names:
            return [ip_address("127.0.0.1")]
        raise AssertionError(f"unexpected lookup of {host}")

    return AddressGuard(resolver=resolver, is_public=lambda address: address == ip_address("127.0.0.1"))


def ok(body: bytes = b"hello", **headers: str) -> Route:
    return lambda h: respond(h, 200, body, **headers)


def redirect(location: str, status: int = 302) -> Route:
    return lambda h: respond(h, status, b"", Location=location)


def hang_up(*, reset: bool = False) -> Route:
    """Reads the request and closes the connection without a response byte: a FIN, or a reset (RST) with ``reset``."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        if reset:
            h.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.request.close()

    return handler


def when_reused(first: Route, later: Route) -> Route:
    """``first`` for a connection's first request, ``later`` for any later one on that kept-alive connection.

    ``later=hang_up()`` is what a client sees when the server's idle timeout closes the connection just as the
    client sends on it."""
    return lambda h: (later if getattr(h, "requests_on_connection", 1) > 1 else first)(h)


# --- the SSRF guard through the fetcher --------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.7", "169.254.169.254"])
def test_private_destinations_are_refused_without_any_request(serve, host):
    server = serve({"/": ok()})
    with Fetcher(HttpPolicy()) as fetcher, pytest.raises(BlockedAddressError) as caught:
        fetcher.get(f"http://{host}:{server.port}/")
    assert caught.value.reason == "blocked_address"
    assert caught.value.retryable is False
    assert caught.value.url == f"http://{host}:{server.port}/"
    assert server.requests == []


def test_simulated_public_host_connects_to_checked_address_and_keeps_host_header(serve):
    server = serve({"/page": ok(b"<p>story</p>", Content_Type="text/html; charset=ISO-8859-1")})
    lookups: list[str] = []
    base = loopback_is_public("news.test")

    def counting_resolver(host: str) -> list[IPAddress]:
        lookups.append(host)
        return list(base.resolver(host))

    guard = AddressGuard(resolver=counting_resolver, is_public=base.is_public)
    with Fetcher(HttpPolicy(), guard=guard) as fetcher:
        result = fetcher.get(server.url("/page", host="news.test"))
    assert result.status == 200
    assert result.content == b"<p>story</p>"
    assert result.content_type == "text/html"
    assert result.charset == "iso-8859-1"
    assert server.requests[0][1]["host"] == f"news.test:{server.port}"
    assert lookups == ["news.test"]  # resolved once, by the guard; httpx never resolved it again


def test_redirect_from_public_host_to_private_address_is_refused(serve):
    internal = serve({"/secret": ok(b"metadata")}, host="127.0.0.2")
    public = serve({"/start": redirect(internal.url("/secret"))})
    with Fetcher(HttpPolicy(), guard=loopback_is_public()) as fetcher, pytest.raises(BlockedAddressError) as caught:
        fetcher.get(public.url("/start"))
    assert caught.value.url == internal.url("/secret")
    assert public.url("/start") in str(caught.value)
    assert len(public.requests) == 1
    assert internal.requests == []


def test_proxy_environment_is_ignored(serve, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://10.255.255.1:3128")
    server = serve({"/": ok(b"direct")})
    with Fetcher(private_ok()) as fetcher:
        assert fetcher.get(server.url("/")).content == b"direct"


# --- redirects ---------------------------------------------------------------------------------------


def test_relative_redirects_are_followed_and_recorded(serve):
    server = serve({"/a": redirect("/b", 301), "/b": redirect("c?x=1#frag", 308), "/c": ok(b"done")})
    with Fetcher(private_ok()) as fetcher:
        result = fetcher.get(server.url("/a"))
    assert result.content == b"done"
    assert result.final_url == server.url("/c?x=1")
    assert result.redirects == (server.url("/a"), server.url("/b"))
    assert result.url == server.url("/a")


def test_redirect_loop_is_detected(serve):
    server = serve({"/a": redirect("/b"), "/b": redirect("/a")})
    with Fetcher(private_ok()) as fetcher, pytest.raises(RedirectError) as caught:
        fetcher.get(server.url("/a"))
    assert caught.value.reason == "redirect_loop"
    assert len(server.requests) == 2


def test_too_many_redirects(serve):
    routes = {f"/r{i}": redirect(f"/r{i + 1}") for i in range(10)}
    server = serve(routes)
    with Fetcher(private_ok(max_redirects=3)) as fetcher, pytest.raises(RedirectError) as caught:
        fetcher.get(server.url("/r0"))
    assert caught.value.reason == "too_many_redirects"
    assert len(server.requests) == 4


def test_redirect_to_non_http_scheme_is_invalid(serve):
    server = serve({"/a": redirect("file:///etc/passwd")})
    with Fetcher(private_ok()) as fetcher, pytest.raises(InvalidUrlError):
        fetcher.get(server.url("/a"))


@pytest.mark.parametrize("url", ["ftp://example.com/feed", "not a url", "http:///nohost", "javascript:alert(1)"])
def test_non_http_urls_are_rejected(url):
    with Fetcher(HttpPolicy()) as fetcher, pytest.raises(InvalidUrlError) as caught:
        fetcher.get(url)
    assert caught.value.retryable is False


# --- conditional GET ---------------------------------------------------------------------------------


def test_etag_round_trip_gives_304_result(serve):
    def feed(handler: BaseHTTPRequestHandler) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            respond(handler, 304, ETag='"v1"')
        else:
            respond(handler, 200, b"<rss/>", ETag='"v1"', Content_Type="application/rss+xml")

    server = serve({"/feed": feed})
    with Fetcher(private_ok()) as fetcher:
        first = fetcher.get(server.url("/feed"))
        second = fetcher.get(server.url("/feed"), etag=first.etag)
    assert first.status == 200 and first.etag == '"v1"' and not first.not_modified
    assert second.status == 304 and second.not_modified and second.content == b""


def test_last_modified_is_sent_and_unsafe_validators_are_dropped(serve):
    server = serve({"/feed": ok()})
    with Fetcher(private_ok()) as fetcher:
        fetcher.get(server.url("/feed"), last_modified="Wed, 21 Oct 2015 07:28:00 GMT", etag='"x"\r\nEvil: 1')
    sent = server.requests[0][1]
    assert sent["if-modified-since"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert "if-none-match" not in sent and "evil" not in sent


# --- status errors and Retry-After ---------------------------------------------------------------------


def test_503_with_retry_after_seconds(serve):
    server = serve({"/": lambda h: respond(h, 503, b"busy", Retry_After="120")})
    with Fetcher(private_ok()) as fetcher, pytest.raises(HttpStatusError) as caught:
        fetcher.get(server.url("/"))
    assert caught.value.status == 503
    assert caught.value.retryable is True
    assert caught.value.retry_after == 120.0


def test_429_with_retry_after_http_date(serve):
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)
    server = serve({"/": lambda h: respond(h, 429, Retry_After=format_datetime(when, usegmt=True))})
    with Fetcher(private_ok()) as fetcher, pytest.raises(HttpStatusError) as caught:
        fetcher.get(server.url("/"))
    assert caught.value.retryable is True
    assert caught.value.retry_after is not None and 80 <= caught.value.retry_after <= 91


def test_404_is_not_retryable_and_has_no_retry_after(serve):
    server = serve({})
    with Fetcher(private_ok()) as fetcher, pytest.raises(HttpStatusError) as caught:
        fetcher.get(server.url("/missing"))
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (404, False, None)


def test_parse_retry_after_forms():
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Mon, 01 Jan 2024 12:02:00 GMT", now=now) == 120.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None) is None


# --- content type and size caps ------------------------------------------------------------------------


def test_content_type_refused_before_body_is_read(serve):
    def slow_body(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", "5")
        handler.end_headers()
        time.sleep(3)
        handler.wfile.write(b"<html")

    server = serve({"/": slow_body})
    started = time.monotonic()
    with Fetcher(private_ok()) as fetcher, pytest.raises(UnsupportedContentType) as caught:
        fetcher.get(server.url("/"), allowed_types=["application/rss+xml", "application/atom+xml"])
    assert time.monotonic() - started < 1.5
    assert caught.value.content_type == "text/html"
    assert caught.value.reason == "content_type"


def test_allowed_types_accept_wildcards_and_missing_type(serve):
    server = serve({"/xml": ok(b"<a/>", Content_Type="Text/XML; charset=utf-8"), "/none": ok(b"raw")})
    with Fetcher(private_ok()) as fetcher:
        assert fetcher.get(server.url("/xml"), allowed_types=["text/*"]).content == b"<a/>"
        assert fetcher.get(server.url("/none"), allowed_types=["application/json"]).content == b"raw"


def test_content_length_above_cap_fails_before_reading(serve):
    server = serve({"/": ok(b"x" * 5000)})
    with Fetcher(private_ok(max_bytes=1000)) as fetcher, pytest.raises(TooLargeError) as caught:
        fetcher.get(server.url("/"))
    assert "Content-Length 5000" in str(caught.value)
    assert caught.value.limit == 1000


def test_body_without_content_length_is_capped_while_streaming(serve):
    def unframed(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"y" * 1000)

    server = serve({"/": unframed})
    with Fetcher(private_ok()) as fetcher:
        with pytest.raises(TooLargeError):
            fetcher.get(server.url("/"), max_bytes=10_000)
        assert len(fetcher.get(server.url("/"), max_bytes=100_000).content) == 100_000


def test_gzip_bomb_is_stopped_at_the_cap_with_bounded_memory(serve):
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 64 * 1024
    server = serve({"/": ok(bomb, Content_Encoding="gzip")})
    with Fetcher(private_ok(max_bytes=1024 * 1024)) as fetcher:
        tracemalloc.start()
        try:
            with pytest.raises(TooLargeError) as caught:
                fetcher.get(server.url("/"))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert "decoded body" in str(caught.value)
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, a common server bug
        ("gzip", lambda data: gzip.compress(data[:3000]) + gzip.compress(data[3000:])),  # two members
    ],
)
def test_compressed_bodies_are_decoded(serve, encoding, encode):
    text = b"<item>news</item>" * 400
    server = serve({"/": ok(encode(text), Content_Encoding=encoding)})
    with Fetcher(private_ok()) as fetcher:
        assert fetcher.get(server.url("/")).content == text


def _member_with_comment(data: bytes, comment: bytes) -> bytes:
    """A valid gzip member of ``data`` whose header carries ``comment`` (FCOMMENT), which decodes to nothing."""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    header = b"\x1f\x8b\x08\x10" + b"\0\0\0\0" + b"\x00\xff" + comment + b"\0"
    trailer = struct.pack("<II", zlib.crc32(data), len(data))
    return header + deflater.compress(data) + deflater.flush() + trailer


@pytest.mark.parametrize(
    ("encoding", "encode", "kept"),
    [
        ("gzip", gzip.compress, True),
        ("x-gzip", lambda data: gzip.compress(data, compresslevel=1), True),
        ("gzip", lambda data: _member_with_comment(data, b""), False),  # an optional header field, even empty
        ("gzip", lambda data: _member_with_comment(data, b"c" * 200_000), False),  # padded far beyond the page
        ("gzip", lambda data: gzip.compress(data, compresslevel=0), False),  # "stored": larger than the page
        ("gzip", lambda data: gzip.compress(data)[:-8], False),  # truncated: no trailer, so never checked
        ("gzip", lambda data: gzip.compress(data[:3000]) + gzip.compress(data[3000:]), False),  # two members
        ("gzip", lambda data: gzip.compress(data) + b"\0\0junk", False),  # bytes after the member
        ("deflate", zlib.compress, False),
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data)), False),  # two layers
        ("identity", lambda data: data, False),
    ],
)
def test_one_gzip_member_is_kept_as_sent(serve, encoding, encode, kept):
    text = b"<p>news</p>" * 900
    sent = encode(text)
    server = serve({"/": ok(sent, Content_Encoding=encoding)})
    with Fetcher(private_ok()) as fetcher:
        result = fetcher.get(server.url("/"))
    assert result.content == text
    if kept:
        assert result.gzipped == sent
        assert gzip.decompress(result.gzipped) == text
    else:
        assert result.gzipped is None


def test_bogus_content_encoding_is_ignored_but_unsupported_compression_is_refused(serve):
    server = serve({"/junk": ok(b"plain", Content_Encoding="UTF-8"), "/br": ok(b"\x1b", Content_Encoding="br")})
    with Fetcher(private_ok()) as fetcher:
        assert fetcher.get(server.url("/junk")).content == b"plain"
        with pytest.raises(MalformedResponseError) as caught:
            fetcher.get(server.url("/br"))
    assert caught.value.retryable is False


def test_corrupt_gzip_is_a_malformed_response(serve):
    server = serve({"/": ok(b"this is not gzip at all", Content_Encoding="gzip")})
    with Fetcher(private_ok()) as fetcher, pytest.raises(MalformedResponseError):
        fetcher.get(server.url("/"))


# --- time limits ---------------------------------------------------------------------------------------


def drip_body(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain")
    handler.end_headers()
    for _ in range(50):
        handler.wfile.write(b"x")
        time.sleep(0.2)


def drip_headers(handler: BaseHTTPRequestHandler) -> None:
    handler.wfile.write(b"HTTP/1.0 200 OK\r\n")
    for index in range(50):
        handler.wfile.write(f"X-Slow-{index}: 1\r\n".encode())
        time.sleep(0.2)


@pytest.mark.parametrize("route", [drip_body, drip_headers])
def test_total_time_budget_defeats_slow_drip(serve, route):
    server = serve({"/": route})
    policy = private_ok(total_timeout=0.7, read_timeout=5.0)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(FetchTimeout) as caught:
        fetcher.get(server.url("/"))
    took = time.monotonic() - started
    assert 0.6 <= took < 1.5
    assert caught.value.retryable is True
    assert "budget" in str(caught.value)


def test_read_timeout_applies_to_a_silent_server(serve):
    server = serve({"/": lambda h: time.sleep(2)})
    with Fetcher(private_ok(read_timeout=0.3)) as fetcher, pytest.raises(FetchTimeout):
        fetcher.get(server.url("/"))


def test_keep_alive_connections_are_reused_and_dropped_ones_replaced(serve):
    ports: list[int] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        ports.append(handler.client_address[1])
        respond(handler, 200, b"ok")

    server = serve({"/": record}, keep_alive_for=0.2)
    with Fetcher(private_ok()) as fetcher:
        fetcher.get(server.url("/"))
        fetcher.get(server.url("/"))
        time.sleep(0.5)  # the server closes the idle connection; the pool must notice, not fail
        assert fetcher.get(server.url("/")).content == b"ok"
    assert ports[0] == ports[1]
    assert ports[2] != ports[0]


def _paths(server: LoopbackServer) -> list[str]:
    return [path for path, _, _ in server.requests]


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_a_get_sent_on_a_kept_alive_connection_the_server_closed_is_sent_again(serve, reset):
    ports: list[int] = []

    def record(handler: BaseHTTPRequestHandler) -> None:
        ports.append(handler.client_address[1])
        respond(handler, 200, handler.path.encode())

    server = serve({"/first": record, "/page": when_reused(record, hang_up(reset=reset))}, keep_alive_for=5.0)
    with Fetcher(private_ok()) as fetcher:
        assert fetcher.get(server.url("/first")).content == b"/first"
        result = fetcher.get(server.url("/page"))
    assert (result.status, result.content) == (200, b"/page")
    assert _paths(server) == ["/first", "/page", "/page"]
    assert len(ports) == 2 and ports[0] != ports[1]  # answered on a new connection


@pytest.mark.parametrize(
    ("reset", "error"), [(False, MalformedResponseError), (True, ConnectError)], ids=["fin", "rst"]
)
def test_a_new_connection_hung_up_on_is_the_page_failure_and_not_sent_again(serve, reset, error):
    server = serve({"/page": hang_up(reset=reset)}, keep_alive_for=5.0)
    with Fetcher(private_ok()) as fetcher, pytest.raises(error):
        fetcher.get(server.url("/page"))
    assert _paths(server) == ["/page"]


def _page_after_first(serve, page: Route, error: type[FetchError]) -> tuple[list[str], FetchError]:
    """GET /first (a new connection), then /page on the kept-alive connection, where ``page`` answers it: the paths
    the server saw, and the ``error`` /page must fail with."""
    server = serve({"/first": ok(b"1"), "/page": page}, keep_alive_for=5.0)
    with Fetcher(private_ok()) as fetcher:
        fetcher.get(server.url("/first"))
        with pytest.raises(error) as caught:
            fetcher.get(server.url("/page"))
    return _paths(server), caught.value


def test_a_get_is_sent_again_once_at_most(serve):
    # Hung up on, on the reused connection and then on the new one.
    assert _page_after_first(serve, hang_up(), MalformedResponseError)[0] == ["/first", "/page", "/page"]


def test_a_kept_alive_connection_that_dies_after_answering_is_not_sent_again(serve):
    def half_a_status_line(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200")
        handler.wfile.flush()
        handler.close_connection = True

    page = when_reused(ok(b"2"), half_a_status_line)
    assert _page_after_first(serve, page, MalformedResponseError)[0] == ["/first", "/page"]


def test_a_dead_kept_alive_connection_is_not_sent_again_past_the_budget(serve, monkeypatch):
    import ingest.http

    offset = [0.0]
    clock = SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0], sleep=time.sleep)
    monkeypatch.setattr(ingest.http, "time", clock)  # the fetcher's clock only; sockets keep real time

    def budget_spent_then_hang_up(handler: BaseHTTPRequestHandler) -> None:
        offset[0] += 120.0  # past the 60 s total budget when the connection dies
        hang_up()(handler)

    page = when_reused(ok(b"2"), budget_spent_then_hang_up)
    assert _page_after_first(serve, page, FetchTimeout)[0] == ["/first", "/page"]


def test_a_second_try_that_cannot_connect_is_a_connect_error(serve):
    def stop_listening_then_hang_up(handler: BaseHTTPRequestHandler) -> None:
        handler.server.socket.shutdown(socket.SHUT_RDWR)  # stops listening: the second try's connection is refused
        hang_up()(handler)

    paths, error = _page_after_first(serve, when_reused(ok(b"2"), stop_listening_then_hang_up), ConnectError)
    assert paths == ["/first", "/page"]
    assert "cannot connect" in error.detail


def test_many_hosts_fetched_at_once_keep_their_connections_alive(serve):
    """Threads fetching from more hosts than one pool kept alive: each host's few connections are reused.

    With one pool for every host, its keep-alive bound closed a connection on almost every request here."""
    ports: dict[int, set[int]] = {}
    lock = threading.Lock()

    def record(handler: BaseHTTPRequestHandler) -> None:
        with lock:
            ports.setdefault(handler.server.server_address[1], set()).add(handler.client_address[1])
        respond(handler, 200, b"ok")

    servers = [serve({"/": record}, keep_alive_for=5.0) for _ in range(20)]
    urls = [server.url("/") for _ in range(10) for server in servers]
    with Fetcher(private_ok()) as fetcher, ThreadPoolExecutor(max_workers=24) as pool:
        assert all(r.content == b"ok" for r in pool.map(fetcher.get, urls))
    assert len(ports) == 20
    # 24 threads over 20 hosts: a host has at most a few requests in flight, so a few connections at most.
    assert sum(len(p) for p in ports.values()) <= 60


def test_origin_pools_are_bounded_and_never_close_a_pool_in_use(serve):
    from ingest.http import _GuardedBackend, _OriginPools

    gate = threading.Event()

    def slow(handler: BaseHTTPRequestHandler) -> None:
        gate.wait(5)
        respond(handler, 200, b"slow")

    busy = serve({"/": slow}, keep_alive_for=5.0)
    others = [serve({"/": ok(b"ok")}, keep_alive_for=5.0) for _ in range(3)]
    transport = _OriginPools(
        ssl.create_default_context(), _GuardedBackend(AddressGuard(allow_private_networks=True)), max_origins=2
    )
    with Fetcher(private_ok()) as fetcher:
        fetcher._transport.close()
        fetcher._transport = transport
        with ThreadPoolExecutor(max_workers=1) as pool:
            in_flight = pool.submit(fetcher.get, busy.url("/"))
            while transport.origins == 0:
                time.sleep(0.01)
            for server in others:  # three more origins: the pool of the one in flight must survive them
                assert fetcher.get(server.url("/")).content == b"ok"
                assert transport.origins <= 2
            gate.set()
            assert in_flight.result(5).content == b"slow"
        assert fetcher.get(others[0].url("/")).content == b"ok"
    assert transport.origins == 0  # closing the fetcher closed every pool
    with pytest.raises(RuntimeError):
        fetcher.get(others[0].url("/"))


def test_budget_exhausted_before_connecting_is_a_timeout():
    from ingest.http import _DEADLINE, _GuardedBackend

    backend = _GuardedBackend(AddressGuard(allow_private_networks=True))
    token = _DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(FetchTimeout):
            backend.connect_tcp("127.0.0.1", 9, timeout=1)
    finally:
        _DEADLINE.reset(token)


def test_connection_refused_is_retryable_connect_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Fetcher(private_ok()) as fetcher, pytest.raises(ConnectError) as caught:
        fetcher.get(f"http://127.0.0.1:{port}/")
    assert caught.value.retryable is True
    assert caught.value.url == f"http://127.0.0.1:{port}/"


def test_concurrent_gets_share_one_fetcher(serve):
    server = serve({f"/{i}": ok(str(i).encode()) for i in range(16)})
    results: dict[int, bytes] = {}
    with Fetcher(private_ok()) as fetcher:

        def work(index: int) -> None:
            results[index] = fetcher.get(server.url(f"/{index}")).content

        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
    assert results == {i: str(i).encode() for i in range(16)}


# --- TLS: connect to the checked IP, verify the certificate for the host name -------------------------


def _tls_material(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key, issuer_name, issuer_key, *, ca: bool):  # type: ignore[no-untyped-def]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Newswire Test CA")])
    ca_cert = build("Newswire Test CA", ca_key, ca_name, ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = build("news.test", leaf_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(
        leaf_cert.public_bytes(pem)
        + leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "leaf.pem")
    client_context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    return server_context, client_context


def test_https_uses_sni_and_verifies_certificate_for_the_hostname(serve, tmp_path):
    server_context, client_context = _tls_material(tmp_path)
    names: list[str | None] = []
    server_context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = serve({"/": ok(b"secure")}, tls=server_context)
    guard = loopback_is_public("news.test", "other.test")
    with Fetcher(HttpPolicy(), guard=guard, ssl_context=client_context) as fetcher:
        result = fetcher.get(server.url("/", host="news.test", scheme="https"))
        assert result.content == b"secure"
        assert names == ["news.test"]
        with pytest.raises(TlsError) as caught:
            fetcher.get(server.url("/", host="other.test", scheme="https"))
    assert caught.value.reason == "tls"
    assert server.requests[0][1]["host"] == f"news.test:{server.port}"


# --- errors ------------------------------------------------------------------------------------------


def test_fetch_errors_survive_pickling_with_their_attributes():
    original = HttpStatusError("https://example.com/", 503, retry_after=12.5)
    clone = pickle.loads(pickle.dumps(original))
    assert type(clone) is HttpStatusError
    assert (clone.url, clone.status, clone.retry_after, clone.reason, clone.retryable) == (
        "https://example.com/",
        503,
        12.5,
        "http_status",
        True,
    )
    assert str(clone) == str(original)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (403, False), (408, True), (425, True), (429, True), (500, True), (502, True), (599, True)],
)
def test_status_retryability(status, retryable):
    error = HttpStatusError("https://example.com/", status)
    assert error.retryable is retryable
    assert isinstance(error, FetchError)


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        HttpPolicy(total_timeout=0)
    with pytest.raises(ValueError):
        HttpPolicy(max_bytes=-1)
    with pytest.raises(ValueError):
        HttpPolicy(user_agent="bad\r\nheader")


# --- politeness --------------------------------------------------------------------------------------


def test_throttle_spaces_requests_to_the_same_host_only():
    throttle = HostThrottle(0.15)
    started = time.monotonic()
    for _ in range(3):
        throttle.wait("https://news.example/a")
    assert time.monotonic() - started >= 0.29
    other_started = time.monotonic()
    assert throttle.wait("https://other.example/") == 0.0
    assert throttle.wait("http://news.example/b") == 0.0  # port 80 is a different host:port than 443
    assert time.monotonic() - other_started < 0.05


def test_throttle_is_thread_safe_and_orders_concurrent_callers():
    throttle = HostThrottle(0.1)
    stamps: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        throttle.wait("https://busy.example/")
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    stamps.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert len(stamps) == 5
    assert min(gaps) >= 0.09


def test_throttle_with_fake_clock_reserves_consecutive_slots():
    now = [100.0]
    slept: list[float] = []
    throttle = HostThrottle(2.0, clock=lambda: now[0], sleep=slept.append)
    assert [throttle.wait("https://a.example/x") for _ in range(3)] == [0.0, 2.0, 4.0]
    assert slept == [2.0, 4.0]
    assert host_key("HTTPS://A.example:443/x") == host_key("https://a.example/y") == "a.example:443"


def test_fetcher_applies_the_throttle_to_every_request(serve):
    server = serve({"/a": redirect("/b"), "/b": ok()})
    with Fetcher(private_ok(), throttle=HostThrottle(0.2)) as fetcher:
        fetcher.get(server.url("/a"))
    first, second = (stamp for _path, _headers, stamp in server.requests)
    assert second - first >= 0.18
