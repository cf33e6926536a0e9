"""Where article extraction runs: inline (one at a time) or in a pool of worker processes.

trafilatura/lxml is not thread-safe (heap corruption with as few as two threads, upstream issues 840 and
925), so the only way to use several cores is several processes. Fetching stays in threads of the parent,
overlapping network waits with extraction in the workers. Workers start with ``forkserver`` because the
parent already runs Kafka and HTTP threads, which a plain ``fork`` would copy in an unknown state.

The workers also identify the language of the text when the page declares none, and embed its title and lead
(``newswire.embedding``): that is CPU work of the same kind, and here it runs on every core instead of on the
transform's one thread.
The encoder is loaded once per worker process, on its first page. An injected ``enrich`` callable (the
``pipeline`` layer passes the transform's feature extraction, which ``ingest`` may not import) runs after
them, and what it returns travels with the article (:attr:`ExtractedArticle.features`).

Talking to a worker: each has a pair of pipes (requests in, replies out), enlarged so that a page usually goes
in one write and the article comes back in one read. The fetch thread that wants a page extracted writes one
frame to an idle worker (URL and content type, then the page bytes as they are, never pickled) and blocks
reading the reply (the GIL is released while it waits); the settings and ``enrich`` reach each worker once, at
its start. A ``concurrent.futures`` pool pickled the page into every call and routed it through two more
threads of the parent (a queue feeder, a manager thread that unpickles the result). Every such hop, and every
blocking system call, gives the parent's GIL back, and taking it again waits for whichever thread holds it:
in ``newswire run``, the transform thread, most of the time. ``python -m bench.extract_ipc`` measures it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import threading
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ingest.extract import ExtractedArticle, ExtractionError, extract_article
from newswire.embedding import DEFAULT_MODEL, embed_articles, encoder_for
from newswire.langid import detect_language

log = logging.getLogger(__name__)

# Adds an opaque string to an extracted article (None: nothing to add). Must be picklable (a module-level
# function or a partial of one) to reach worker processes; it must not raise for any article it is given.
Enricher = Callable[[ExtractedArticle], str | None]


class Extractor(Protocol):
    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle: ...

    def close(self) -> None: ...


def extract_and_enrich(
    content: bytes,
    *,
    url: str,
    content_type: str | None,
    fast: bool,
    embedding_model: str,
    enrich: Enricher | None = None,
) -> ExtractedArticle:
    """:func:`extract_article`, then the detected language, the embedding (``embedding_model`` "none": no
    embedding) and what ``enrich`` adds.

    The language is identified only for a page that declares none: a page's own language comes first wherever
    the article's language is chosen (the message, the carried features), so the identified one would never be
    read."""
    article = extract_article(content, url=url, content_type=content_type, fast=fast)
    encoder = encoder_for(embedding_model)
    embedding = embed_articles(encoder, [(article.title, article.text)])[0] if encoder is not None else None
    detected = None if article.language else detect_language(article.title, article.text)
    article = replace(article, detected_language=detected, embedding=embedding)
    if enrich is None:
        return article
    try:
        features = enrich(article)
    except Exception:  # the article is still good: the consumer computes what was not carried
        log.exception("enrichment failed for %s; the article goes without it", url)
        return article
    return replace(article, features=features)


class InlineExtractor:
    """Extraction in the calling process, serialised: what a shard task uses (``NEWSWIRE_SHARD_EXTRACT_WORKERS`` 1).

    ``enrich`` (``NEWSWIRE_SHARD_ENRICH`` for shard tasks): the detected language, the embedding and what
    ``enricher`` adds are computed here too (:func:`extract_and_enrich`), in as many task processes as run at once,
    each loading the language identifier and the encoder once, on its first article (a shard whose feeds all
    answer 304 loads neither). False leaves the three to the transform, one process (``transform.batch``:
    ``with_language``, ``_missing_embeddings``, the clusterer), and keeps the task process smaller.
    """

    def __init__(
        self,
        *,
        fast: bool = False,
        embedding_model: str = DEFAULT_MODEL,
        enrich: bool = True,
        enricher: Enricher | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.fast = fast
        self.embedding_model = embedding_model
        self.enrich = enrich
        self.enricher = enricher

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        with self._lock:
            if not self.enrich:
                return extract_article(content, url=url, content_type=content_type, fast=self.fast)
            return extract_and_enrich(
                content,
                url=url,
                content_type=content_type,
                fast=self.fast,
                embedding_model=self.embedding_model,
                enrich=self.enricher,
            )

    def close(self) -> None:
        pass


# Pipes are enlarged to this (Linux allows up to /proc/sys/fs/pipe-max-size, 1 MiB by default), so that a
# page or an article goes in one write and one read: each system call that blocks gives the GIL back, and in a
# busy parent taking it again can wait a whole switch interval.
_PIPE_BYTES = 1 << 20
_HEADER = struct.Struct("<II")  # request: (pickled url and content type, page bytes); reply: (pickle, 0)


def _enlarge(fd: int) -> None:
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        with contextlib.suppress(OSError):  # not allowed or not a pipe: smaller writes, same bytes
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _write_frame(fd: int, head: bytes, body: bytes = b"") -> None:
    """One length-prefixed frame in one gathered write: ``body`` (page bytes) goes as is, never copied."""
    parts = [_HEADER.pack(len(head), len(body)), head, body]
    written = os.writev(fd, parts)
    total = sum(map(len, parts))
    if written < total:  # the pipe could not take it all at once (a page larger than the pipe): the rest in turn
        rest = memoryview(b"".join(parts))[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _read_into(fd: int, view: memoryview, have: int, size: int) -> int:
    while have < size:
        got = os.readv(fd, [view[have:size]])
        if not got:
            raise EOFError("the other end of the pipe is gone")
        have += got
    return have


def _read_frame(fd: int, buffer: bytearray) -> tuple[bytes, bytes]:
    """The (head, body) of the next frame; EOFError when the writer is gone.

    Reads into ``buffer``, allocated once per pipe end, as much as the pipe holds at once (usually the whole
    frame in one system call): a fresh large buffer per read would be allocated and shrunk on every page, in the
    many threads that fetch pages, and the allocator keeps such memory. Only one frame is ever in flight on a
    pipe, so reading ahead never takes part of the next one.
    """
    view = memoryview(buffer)
    have = os.readv(fd, [view])
    if not have:
        raise EOFError("the other end of the pipe is gone")
    have = _read_into(fd, view, have, _HEADER.size)
    head_size, body_size = _HEADER.unpack_from(buffer)
    size = _HEADER.size + head_size + body_size
    if size > len(buffer):  # a frame larger than the buffer: the rest goes into one of its own size
        view = memoryview(bytearray(size))
        view[:have] = memoryview(buffer)[:have]
    _read_into(fd, view, have, size)
    split = _HEADER.size + head_size
    return bytes(view[_HEADER.size : split]), bytes(view[split:size])


def _serve(
    requests: Connection, replies: Connection, fast: bool, embedding_model: str, enrich: Enricher | None
) -> None:
    """A worker process: read a page with its URL and content type, answer with the article or the error, until
    the parent closes its end."""
    # Ctrl-C reaches the whole process group: the parent decides what an interrupt stops, and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    rfd, wfd = requests.fileno(), replies.fileno()
    buffer = bytearray(_PIPE_BYTES)
    while True:
        try:
            head, content = _read_frame(rfd, buffer)
        except (EOFError, OSError):
            return
        url, content_type = pickle.loads(head)
        try:
            article = extract_and_enrich(
                content, url=url, content_type=content_type, fast=fast, embedding_model=embedding_model, enrich=enrich
            )
        except ExtractionError as exc:
            reply: tuple[str, Any, str | None] = ("refused", str(exc), exc.reason)
        except Exception as exc:  # a bug, not the page's fault: re-raised in the parent as it was here
            reply = ("raised", _picklable(exc), None)
        else:
            reply = ("ok", article, None)
        try:
            _write_frame(wfd, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            return


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"extraction worker error: {exc!r}")
    return exc


class _Worker:
    """One worker process and its two pipes (requests in, replies out)."""

    def __init__(self, context: Any, fast: bool, embedding_model: str, enrich: Enricher | None) -> None:
        child_requests, self._requests = context.Pipe(duplex=False)
        self._replies, child_replies = context.Pipe(duplex=False)
        for end in (self._requests, self._replies):
            _enlarge(end.fileno())
        self.process = context.Process(
            target=_serve,
            args=(child_requests, child_replies, fast, embedding_model, enrich),
            name="newswire-extract",
            daemon=True,
        )
        self.process.start()
        child_requests.close()
        child_replies.close()
        self._buffer = bytearray(_PIPE_BYTES)  # replies are read into it (one caller at a time per worker)

    def send(self, content: bytes, url: str, content_type: str | None) -> None:
        _write_frame(self._requests.fileno(), pickle.dumps((url, content_type)), content)

    def receive(self) -> tuple[str, Any, str | None]:
        head, _ = _read_frame(self._replies.fileno(), self._buffer)
        return pickle.loads(head)  # type: ignore[no-any-return]

    def stop(self, timeout: float) -> None:
        self._requests.close()  # the worker reads end-of-file and returns
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._replies.close()


def _preload_modules(enrich: Enricher | None) -> list[str]:
    """What the fork server imports once, before it forks any worker: this module (trafilatura, lxml, the
    language identifier) and the enricher's (the transform's feature extraction), beside ``__main__`` (the fork
    server's default). Each worker then starts with them imported, instead of importing them itself, at the start
    of a run, on the cores the first pages wait for. Only the first pool of a process sets it: the fork server
    keeps what it imported when it started."""
    modules = ["__main__", __name__]
    if enrich is not None:
        module = getattr(getattr(enrich, "func", enrich), "__module__", None)
        if isinstance(module, str) and module not in modules:
            modules.append(module)
    return modules


class ProcessPoolExtractor:
    """Extraction spread over worker processes; each worker extracts one page at a time.

    Workers start when first needed, up to ``workers``; a caller waits for an idle one. A worker that dies on
    a page (native crash, OOM) fails that page only (``worker_crashed``) and is replaced on the next demand.
    """

    def __init__(
        self, workers: int, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL, enrich: Enricher | None = None
    ) -> None:
        self.workers = workers
        self.fast = fast
        self.embedding_model = embedding_model
        self.enrich = enrich
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(_preload_modules(enrich))
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._started = 0
        self._all: set[_Worker] = set()
        self._closed = False

    def _acquire(self) -> _Worker:
        """An idle worker, else a new one while fewer than ``workers`` run, else the next to become idle."""
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the extractor is closed")
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if self._started < self.workers:
                    self._started += 1
                    try:
                        worker = _Worker(self._context, self.fast, self.embedding_model, self.enrich)
                    except BaseException:
                        self._started -= 1
                        raise
                    self._all.add(worker)
                    return worker
            try:  # a timeout, not a plain wait: a worker that died frees a slot without becoming idle
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                continue

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:  # after close() every worker is already accounted for
                self._all.discard(worker)
                self._started -= 1
        worker.stop(timeout=0)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            closed = self._closed
        if closed:
            worker.stop(timeout=0)
        else:
            self._idle.put(worker)

    def _send(self, content: bytes, url: str, content_type: str | None) -> _Worker:
        """A worker holding the page. One that died while idle (OOM killer, a stray signal) shows as a broken
        pipe before the page is delivered: not this page's fault, so the page goes to another worker once."""
        for attempt in range(2):
            worker = self._acquire()
            try:
                worker.send(content, url, content_type)
                return worker
            except OSError as exc:
                self._retire(worker)
                if attempt == 1:
                    raise ExtractionError(
                        f"extraction workers died before taking {url}: {exc!r}", reason="worker_crashed"
                    ) from exc
            except BaseException:
                self._retire(worker)  # interrupted mid-frame: the pipe's state is unknown
                raise
        raise AssertionError("unreachable")

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        worker = self._send(content, url, content_type)
        try:
            status, value, reason = worker.receive()
        except (EOFError, OSError) as exc:
            # A page that kills its worker is that page's failure, not the run's.
            self._retire(worker)
            raise ExtractionError(f"extraction worker died on {url}: {exc!r}", reason="worker_crashed") from exc
        except BaseException:
            self._retire(worker)  # interrupted mid-exchange: the pipe's state is unknown
            raise
        self._release(worker)
        if status == "ok":
            return value  # type: ignore[no-any-return]
        if status == "refused":
            raise ExtractionError(value, reason=reason)
        raise value

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
            self._started = 0
        while True:  # idle workers are among ``workers``; none may be handed out again
            try:
                self._idle.get_nowait()
            except queue.Empty:
                break
        for worker in workers:
            worker.stop(timeout=5)


def make_extractor(
    workers: int, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL, enrich: Enricher | None = None
) -> Extractor:
    """``workers`` 0 = one per CPU; 1 = inline. ``fast``: see :func:`ingest.extract.extract_article`;
    ``embedding_model``: ``NEWSWIRE_EMBEDDING_MODEL``; ``enrich``: see :func:`extract_and_enrich`."""
    count = workers or (os.cpu_count() or 1)
    if count <= 1:
        return InlineExtractor(fast=fast, embedding_model=embedding_model, enricher=enrich)
    return ProcessPoolExtractor(count, fast=fast, embedding_model=embedding_model, enrich=enrich)
