"""A loopback HTTP server that misbehaves on purpose, and builders for the hostile documents it serves.

Real sites drip bytes, stream forever, lie about content types, loop redirects, point redirects at cloud
metadata addresses, answer 429 with Retry-After, compress bombs, and publish feeds with entity payloads,
broken XML, wrong charsets, 50,000 entries, missing fields and dates in 1970. Pipeline tests route feeds
and pages through this server to prove each case ends in a recorded reason, never a crashed run.

Routes are exact paths (``server.route(path, handler)``) or prefixes (``server.prefix(prefix, fn)``) whose
function picks a handler from the rest of the path; unknown paths get a 404. Every request is recorded.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from xml.sax.saxutils import escape

Route = Callable[[BaseHTTPRequestHandler], None]

#: How long a misbehaving route keeps misbehaving if the client never hangs up (a test safety net).
MAX_MISBEHAVIOUR_SECONDS = 30.0


class HostileServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 serving programmable routes; use as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.prefixes: list[tuple[str, Callable[[str], Route | None]]] = []
        self.requests: list[tuple[str, Mapping[str, str]]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # idle keep-alive connections are closed by the server after this

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes: without this, Nagle's algorithm holds the body back
                # for the client's delayed ACK (~40 ms per keep-alive response).
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def handle(self) -> None:
                # A client closing an idle keep-alive connection is not an error worth printing.
                with contextlib.suppress(ConnectionResetError, BrokenPipeError, TimeoutError):
                    super().handle()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.find(path)
                try:
                    if route is None:
                        respond(self, 404, b"not found", content_type="text/plain")
                    else:
                        route(self)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    self.close_connection = True  # the client gave up on purpose (caps, time budget)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False
            request_queue_size = 128

        self._httpd = Server((host, 0), Handler)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile-server", daemon=True
        )
        self._thread.start()

    # -- routing -----------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, handler: Route) -> str:
        """Serve ``handler`` at ``path``; return the absolute URL."""
        self.routes[path] = handler
        return self.url(path)

    def prefix(self, prefix: str, resolve: Callable[[str], Route | None]) -> None:
        """Serve every path under ``prefix`` with the route ``resolve(rest_of_path)`` (None: 404)."""
        self.prefixes.append((prefix, resolve))

    def find(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, resolve in self.prefixes:
            if path.startswith(prefix):
                return resolve(path[len(prefix) :])
        return None

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p.split("?", 1)[0] == path)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- responses ---------------------------------------------------------------------------------------------


def respond(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = "text/html; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> None:
    handler.send_response(status)
    if content_type is not None:
        handler.send_header("Content-Type", content_type)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    if not any(k.lower() == "content-length" for k in headers or {}):
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def ok(body: bytes, content_type: str | None = "text/html; charset=utf-8", **headers: str) -> Route:
    return lambda h: respond(h, 200, body, content_type=content_type, headers=_headers(headers))


def status(code: int, body: bytes = b"error", **headers: str) -> Route:
    """An error status, e.g. ``status(429, Retry_After="120")``."""
    return lambda h: respond(h, code, body, content_type="text/plain", headers=_headers(headers))


def redirect(location: str, code: int = 302) -> Route:
    return lambda h: respond(h, code, b"", content_type=None, headers={"Location": location})


def drip(content_type: str = "text/html", interval: float = 0.1, piece: bytes = b"<") -> Route:
    """Headers at once, then one tiny piece every ``interval`` seconds, forever: defeats read timeouts."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Connection", "close")  # no length: the body ends when the server closes
        h.end_headers()
        h.wfile.flush()
        stop = time.monotonic() + MAX_MISBEHAVIOUR_SECONDS
        while time.monotonic() < stop:
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(interval)
        h.close_connection = True

    return handler


def endless(content_type: str = "text/html", chunk: bytes = b"<p>more</p>" * 6000) -> Route:
    """A body with no length that never ends (until the client hangs up): only a size cap stops it."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True
        stop = time.monotonic() + MAX_MISBEHAVIOUR_SECONDS
        while time.monotonic() < stop:
            h.wfile.write(chunk)

    return handler


def huge(size: int, content_type: str = "text/html") -> Route:
    """Announces ``size`` bytes in Content-Length (and would send them): refused before the body."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(size))
        h.end_headers()
        h.close_connection = True
        block = b"x" * 65536
        sent = 0
        while sent < size:
            h.wfile.write(block)
            sent += len(block)

    return handler


def truncated(declared: int = 50_000, sent: bytes = b"<html><body><p>cut") -> Route:
    """Declares a length, sends a fraction and hangs up: the connection dies mid-body."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/html")
        h.send_header("Content-Length", str(declared))
        h.end_headers()
        h.wfile.write(sent)
        h.wfile.flush()
        h.close_connection = True

    return handler


@cache
def bomb_payload(decoded_size: int) -> bytes:
    """``decoded_size`` zero bytes, gzip-compressed (100 MiB compress to about 100 KiB)."""
    return gzip.compress(b"\0" * decoded_size, compresslevel=9, mtime=0)


def gzip_bomb(decoded_size: int = 100 * 1024 * 1024, content_type: str = "text/html") -> Route:
    body = bomb_payload(decoded_size)
    return lambda h: respond(h, 200, body, content_type=content_type, headers={"Content-Encoding": "gzip"})


def _headers(kwargs: Mapping[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in kwargs.items()}


# -- documents ---------------------------------------------------------------------------------------------

_WORDS = [
    "council",
    "river",
    "market",
    "minister",
    "report",
    "village",
    "harbour",
    "station",
    "budget",
    "school",
    "police",
    "storm",
    "festival",
    "museum",
    "bridge",
    "railway",
    "election",
    "hospital",
    "court",
    "farmers",
    "water",
    "energy",
    "coast",
    "mayor",
    "union",
    "strike",
    "flood",
    "vaccine",
    "airport",
    "tunnel",
    "library",
    "orchestra",
    "vineyard",
    "glacier",
    "satellite",
    "treaty",
    "ferry",
    "bakery",
    "archive",
]


_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "ta",
    "vo",
    "zi",
    "be",
    "do",
    "fu",
    "ga",
    "hi",
    "ja",
    "ku",
    "le",
    "mo",
    "na",
    "pe",
    "ro",
    "sa",
    "ti",
    "un",
    "ve",
    "wa",
    "xo",
    "ye",
    "zu",
]


def article_text(seed: str, paragraphs: int = 4, words: int = 55) -> list[str]:
    """Deterministic prose per seed, with its own made-up topic words (names, places) among common ones.

    Long enough for extraction; distinct enough that two seeds are neither near-duplicates nor one story.
    """
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    topic = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize() for _ in range(12)]
    vocabulary = topic * 2 + list(_WORDS)
    return [
        " ".join(rng.choice(vocabulary) for _ in range(words)).capitalize() + f" ({seed} {index})."
        for index in range(paragraphs)
    ]


def article_page(title: str, seed: str | None = None, *, published: str | None = "2026-01-15T09:30:00Z") -> bytes:
    """A plain news article page that trafilatura extracts (title, date, several paragraphs)."""
    body = "".join(f"<p>{escape(p)}</p>" for p in article_text(seed or title))
    date = f'<time datetime="{published}">{published}</time>' if published else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title></head><body><header><nav><a href='/'>Home</a></nav></header>"
        f"<article><h1>{escape(title)}</h1>{date}{body}</article><footer>Hostile Times</footer></body></html>"
    ).encode()


def long_page(title: str, paragraphs: int) -> bytes:
    """An article page of ``paragraphs`` distinct paragraphs (nothing folds them): its text grows ~170 bytes each,
    for messages over a size limit."""
    body = "".join(
        f"<p>Paragraph {i} of the long report: the council met again on day {i} and heard witness {i * 7} "
        f"describe the flooding of district {i % 40} in detail, street by street, for the record.</p>"
        for i in range(paragraphs)
    )
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<article><h1>{title}</h1><time datetime='2026-01-15T09:30:00Z'>15 Jan</time>{body}</article>"
        "</body></html>"
    ).encode()


def logged(route: Route, label: str, log: list[tuple[float, str]]) -> Route:
    """``route``, with the moment each request reached it logged under ``label`` (request order across hosts)."""
    lock = threading.Lock()

    def handler(h: BaseHTTPRequestHandler) -> None:
        with lock:
            log.append((time.monotonic(), label))
        route(h)

    return handler


def empty_article_page() -> bytes:
    """A page with navigation and a cookie banner but no article text: extraction yields nothing."""
    return (
        b"<!doctype html><html><head><title>Subscribe</title></head><body><nav><a href='/'>Home</a>"
        b"<a href='/login'>Log in</a></nav><div class='cookie'>We use cookies.</div></body></html>"
    )


def rss_item(
    *,
    title: str | None = None,
    link: str | None = None,
    guid: str | None = None,
    pub_date: str | None = None,
    description: str | None = None,
) -> str:
    parts = []
    if title is not None:
        parts.append(f"<title>{escape(title)}</title>")
    if link is not None:
        parts.append(f"<link>{escape(link)}</link>")
    if guid is not None:
        parts.append(f'<guid isPermaLink="false">{escape(guid)}</guid>')
    if pub_date is not None:
        parts.append(f"<pubDate>{escape(pub_date)}</pubDate>")
    if description is not None:
        parts.append(f"<description>{escape(description)}</description>")
    return "<item>" + "".join(parts) + "</item>"


def rss(items: Iterable[str], *, title: str = "Hostile Times", encoding: str | None = "utf-8") -> str:
    """An RSS 2.0 document (as text; encode it as you like, the declaration says ``encoding``)."""
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if encoding else '<?xml version="1.0"?>'
    return (
        f'{declaration}\n<rss version="2.0"><channel><title>{escape(title)}</title>'
        f"<link>http://hostile.example/</link><description>test</description>{''.join(items)}</channel></rss>"
    )


def many_items(count: int, link: Callable[[int], str]) -> Iterator[str]:
    for i in range(count):
        yield f"<item><title>Item {i}</title><link>{escape(link(i))}</link><guid>item-{i}</guid></item>"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
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
<rss version="2.0"><channel><title>&lol9;</title><link>http://x/</link>
<item><title>&lol9;</title><link>http://x/a</link></item></channel></rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><link>http://x/</link>
<item><title>&xxe;</title><link>http://x/a</link><description>&xxe;</description></item></channel></rss>"""

#: Broken, but the loose parser still recognises RSS in it: a successful poll with a "bozo" warning.
BROKEN_XML = b"<?xml version='1.0'?><rss version='2.0'><channel><<<item>>></title></rss></channel><&&&"
#: Beyond recovery: no feed can be recognised.
HOPELESS_XML = b'<?xml version="1.0"?>\n<x<y>>><<< </rss'

HTML_AS_FEED = (
    b"<!DOCTYPE html><html><head><title>Welcome</title></head>"
    b"<body><h1>Our news</h1><p>Subscribe to our newsletter!</p></body></html>"
)

EMPTY_FEED = rss([])
