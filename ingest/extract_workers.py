"""Where article extraction runs: inline (one at a time) or in a pool of worker processes.

trafilatura/lxml is not thread-safe (heap corruption with as few as two threads, upstream issues 840 and
925), so the only way to use several cores is several processes. Fetching stays in threads of the parent,
overlapping network waits with extraction in the workers. Workers start with ``forkserver`` because the
parent already runs Kafka and HTTP threads, which a plain ``fork`` would copy in an unknown state.

The workers also identify the language of the text when the page declares none, and embed its title and lead
(``newswire.embedding``): that is CPU work of the same kind, and here it runs on every core instead of on the
transform's one thread.
The encoder is loaded once, in the fork server, before it forks any worker (:mod:`ingest.encoder_preload`):
every worker starts with it loaded and shares its weights with the others copy-on-write, instead of each
reading and dequantising them on its first page. An injected ``enrich`` callable (the
``pipeline`` layer passes the transform's feature extraction, which ``ingest`` may not import) runs after
them, and what it returns travels with the article (:attr:`ExtractedArticle.features`).

Talking to a worker: each has a pair of pipes (requests in, replies out), enlarged so that a page usually goes
in one write and an article comes back in one read. The fetch thread that wants a page extracted writes one
frame to a worker (a request id, URL and content type, then the page bytes as they are, never pickled) and
waits for the reply with its id; the settings and ``enrich`` reach each worker once, at its start. A worker
may hold several pages (``MAX_IN_FLIGHT``): it takes all those waiting in its pipe, extracts them one by one and
encodes their titles and leads in one pass, then answers each. The encoder is dense arithmetic over ~13 MB of
weights per pass; one pass for several articles reads them once, while the other core's extraction competes
for the same cache and memory. A lone page is never held back to wait for company. Whichever waiting thread
is not yet answered reads the worker's replies, so the thread that reads a reply is usually the one waiting
for it (the GIL is released while it waits). A ``concurrent.futures`` pool pickled the page into every call and
routed it through two more threads of the parent (a queue feeder, a manager thread that unpickles the result).
Every such hop, and every blocking system call, gives the parent's GIL back, and taking it again waits for
whichever thread holds it: in ``newswire run``, the transform thread, most of the time. ``python -m
bench.extract_ipc`` measures it.

Each worker also measures its own stages (CPU of its thread per stage, what the encoder did) and sends each
page's share with the reply (:mod:`ingest.worker_stats`), which is how ``bench.pipeline`` tells the encoder's
cost inside the workers from the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import multiprocessing
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any, Protocol

from ingest import worker_stats
from ingest.extract import ExtractedArticle, ExtractionError, extract_article
from newswire.embedding import (
    BUNDLED_MODELS,
    DEFAULT_MODEL,
    NO_MODEL,
    Encoder,
    embed_articles,
    encoder_counts,
    encoder_for,
)
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
    (outcome,) = extract_and_enrich_many(
        [(content, url, content_type)], fast=fast, embedding_model=embedding_model, enrich=enrich
    )
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


Page = tuple[bytes, str, str | None]  # content, URL, content type


def extract_and_enrich_many(
    pages: Sequence[Page], *, fast: bool, embedding_model: str, enrich: Enricher | None = None
) -> list[ExtractedArticle | Exception]:
    """:func:`extract_and_enrich` of several pages, with one encoder pass over all their titles and leads.

    One pass serves every article of the batch, so the encoder's fixed cost per pass (setting up its matrices,
    reading its weights) is paid once per batch; the arithmetic per article stays. Each page keeps its own
    outcome (the article, or the exception that page raised); the vectors are those of encoding each article
    alone up to float rounding (``tests/unit/test_embedding.py`` compares them on the labelled corpus).
    If the batch cannot be encoded at once, each article is encoded alone, so a failure stays with its own page."""
    outcomes = [_extract_one(content, url, content_type, fast) for content, url, content_type in pages]
    _embed_into(outcomes, embedding_model)
    if enrich is not None:
        for index, (outcome, (_, url, _)) in enumerate(zip(outcomes, pages, strict=True)):
            if isinstance(outcome, ExtractedArticle):
                outcomes[index] = _enriched(outcome, enrich, url)
    return outcomes


def _extract_one(content: bytes, url: str, content_type: str | None, fast: bool) -> ExtractedArticle | Exception:
    """The article with its detected language, or the exception its page raised (not raised: the batch goes on)."""
    try:
        article = extract_article(content, url=url, content_type=content_type, fast=fast)
        detected = None if article.language else detect_language(article.title, article.text)
    except Exception as exc:
        return exc
    return replace(article, detected_language=detected)


def _embed_into(outcomes: list[ExtractedArticle | Exception], embedding_model: str) -> None:
    """Adds the embedding to every extracted article of ``outcomes``, in place."""
    done = [index for index, outcome in enumerate(outcomes) if isinstance(outcome, ExtractedArticle)]
    if not done:
        return
    try:
        encoder = encoder_for(embedding_model)
    except Exception as exc:
        for index in done:
            outcomes[index] = exc
        return
    if encoder is None:
        return
    articles = [outcomes[index] for index in done]
    try:
        vectors = embed_articles(encoder, [(article.title, article.text) for article in articles])  # type: ignore[union-attr]
    except Exception as exc:
        if len(done) == 1:
            outcomes[done[0]] = exc
        else:  # one by one: the page whose text the encoder cannot take fails alone
            for index in done:
                _embed_into_one(outcomes, index, encoder)
        return
    for index, vector in zip(done, vectors, strict=True):
        outcomes[index] = replace(outcomes[index], embedding=vector)  # type: ignore[type-var]


def _embed_into_one(outcomes: list[ExtractedArticle | Exception], index: int, encoder: Encoder) -> None:
    article = outcomes[index]
    assert isinstance(article, ExtractedArticle)
    try:
        (vector,) = embed_articles(encoder, [(article.title, article.text)])
    except Exception as exc:
        outcomes[index] = exc
        return
    outcomes[index] = replace(article, embedding=vector)


def _enriched(article: ExtractedArticle, enrich: Enricher, url: str) -> ExtractedArticle:
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
# request: (pickled id, URL and content type; page bytes); reply: (pickled id, outcome and batch size; nothing)
_HEADER = struct.Struct("<II")

#: Pages handed to one worker before its first reply comes back. A worker takes every page waiting in its pipe
#: (up to this many) into one batch and encodes their titles and leads in one pass; a lone page goes alone.
#: Why 6: what one pass saves per article (its fixed overhead and one read of the weights, shared) is mostly
#: had by a handful of articles, and gains little beyond that (README, Benchmarks: "Several articles per encoder
#: pass"); 6 also keeps the next pages waiting in the pipe while a batch is encoded. A larger cap would mostly
#: lengthen the wait of a batch's first page and the number of pages a worker's crash sends back to be tried alone.
MAX_IN_FLIGHT = 6


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


class _FrameReader:
    """The frames arriving on one pipe end, through one buffer allocated once.

    Several frames can be in the pipe at once (a worker is handed several pages; it answers a batch), so each
    read takes as much as the pipe holds (usually several frames in one system call) and what follows the
    current frame stays buffered for the next call. A fresh large buffer per read would be allocated and shrunk
    on every page, and the allocator keeps such memory. Only one thread reads a given pipe end at a time.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray(_PIPE_BYTES)
        self._view = memoryview(self._buffer)
        self._start = 0  # the buffered bytes not yet returned: [_start, _end)
        self._end = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def ready(self) -> bool:
        """Whether a frame can be read now without waiting for the writer (a partial frame whose rest is being
        written counts: the rest is on its way)."""
        return self._end > self._start or bool(self._poll.poll(0))

    def _fill(self) -> None:
        if self._end == len(self._buffer):  # room at the end: the pending bytes move to the front
            pending = self._end - self._start
            self._view[:pending] = self._view[self._start : self._end]
            self._start, self._end = 0, pending
        got = os.readv(self.fd, [self._view[self._end :]])
        if not got:
            raise EOFError("the other end of the pipe is gone")
        self._end += got

    def read(self) -> tuple[bytes, bytes]:
        """The (head, body) of the next frame; EOFError when the writer is gone."""
        while self._end - self._start < _HEADER.size:
            self._fill()
        head_size, body_size = _HEADER.unpack_from(self._buffer, self._start)
        size = _HEADER.size + head_size + body_size
        if size > len(self._buffer):  # larger than the buffer: the rest goes into one of its own size
            frame = memoryview(bytearray(size))
            have = self._end - self._start
            frame[:have] = self._view[self._start : self._end]
            self._start = self._end = 0
            while have < size:
                got = os.readv(self.fd, [frame[have:]])
                if not got:
                    raise EOFError("the other end of the pipe is gone")
                have += got
            start = 0
        else:
            if self._start + size > len(self._buffer):  # the frame would not fit behind the buffered bytes
                pending = self._end - self._start
                self._view[:pending] = self._view[self._start : self._end]
                self._start, self._end = 0, pending
            while self._end - self._start < size:
                self._fill()
            frame, start = self._view, self._start
            self._start += size
            if self._start == self._end:
                self._start = self._end = 0
        split = start + _HEADER.size + head_size
        return bytes(frame[start + _HEADER.size : split]), bytes(frame[split : start + size])


def _serve(
    requests: Connection, replies: Connection, fast: bool, embedding_model: str, enrich: Enricher | None
) -> None:
    """A worker process: take the pages waiting in the pipe (each with its request id, URL and content type),
    extract them one by one, encode the articles together, answer each with its article or its error; until
    the parent closes its end.

    Only pages already waiting join a batch: the worker never waits for more, so a lone page is answered as
    soon as it is done. Pages that arrive while the batch is being extracted join it too."""
    # Ctrl-C reaches the whole process group: the parent decides what an interrupt stops, and closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reader, wfd = _FrameReader(requests.fileno()), replies.fileno()
    open_ = True
    # Measurements (ingest.worker_stats): CPU of this thread per stage, the first reply carrying the start-up.
    measured: Counter[str] = Counter(startup=time.process_time())
    first_pass = True
    while open_:
        try:
            frames = [reader.read()]
        except (EOFError, OSError):
            return
        batch_started = time.thread_time()
        outcomes: list[ExtractedArticle | Exception] = []
        pages: list[tuple[int, Page]] = []
        while len(pages) < len(frames) or (open_ and len(frames) < MAX_IN_FLIGHT and reader.ready()):
            if len(pages) == len(frames):
                try:
                    frames.append(reader.read())
                except (EOFError, OSError):
                    open_ = False  # answer what was taken, then stop
                continue
            head, content = frames[len(pages)]
            request, url, content_type = pickle.loads(head)
            pages.append((request, (content, url, content_type)))
            started = time.thread_time()
            outcomes.append(_extract_one(content, url, content_type, fast))
            measured["extract"] += time.thread_time() - started
        first_pass = _measured_embed_into(outcomes, embedding_model, measured, first_pass)
        done: list[ExtractedArticle | Exception] = []
        for (_, (_, url, _)), outcome in zip(pages, outcomes, strict=True):
            if isinstance(outcome, ExtractedArticle) and enrich is not None:
                started = time.thread_time()
                outcome = _enriched(outcome, enrich, url)
                measured["enrich"] += time.thread_time() - started
            done.append(outcome)
        measured["batch"] += time.thread_time() - batch_started
        shares = worker_stats.page_shares(measured, len(pages))
        measured.clear()
        replying = time.thread_time()
        for (request, _), outcome in zip(pages, done, strict=True):
            if isinstance(outcome, ExtractionError):
                reply: tuple[int, str, Any, str | None, int, dict[str, float]] = (
                    request,
                    "refused",
                    str(outcome),
                    outcome.reason,
                    len(pages),
                    shares,
                )
            elif isinstance(outcome, Exception):  # a bug, not the page's fault: re-raised in the parent as it was
                reply = (request, "raised", _picklable(outcome), None, len(pages), shares)
            else:
                reply = (request, "ok", outcome, None, len(pages), shares)
            try:
                _write_frame(wfd, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:
                return
        measured["reply"] = measured["batch"] = time.thread_time() - replying  # counted with the next batch


def _measured_embed_into(
    outcomes: list[ExtractedArticle | Exception], embedding_model: str, measured: Counter[str], first_pass: bool
) -> bool:
    """:func:`_embed_into`, adding its CPU, the encoder's counts and the minor page faults of the pass to
    ``measured``; whether the next pass is still this worker's first (a batch with no article is no pass)."""
    embedded = sum(isinstance(outcome, ExtractedArticle) for outcome in outcomes)
    if not embedded or embedding_model == NO_MODEL:
        return first_pass
    counts, faults, started = encoder_counts(embedding_model), worker_stats.minor_faults(), time.thread_time()
    _embed_into(outcomes, embedding_model)
    cpu = time.thread_time() - started
    measured["embed"] += cpu
    measured["embedded"] += embedded
    measured["embed_minor_faults"] += worker_stats.minor_faults() - faults
    for key, value in encoder_counts(embedding_model).items():
        if key in ("passes", "tokens", "new_ids"):
            measured[f"embed_{key}"] += value - counts.get(key, 0)
    if first_pass:
        measured["embed_first"] += cpu
        measured["embed_first_pages"] += embedded
    return False


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"extraction worker error: {exc!r}")
    return exc


# status, value, reason, pages in the batch that answered it, the page's share of the batch's measurements, and
# any field a later version appends: new fields go at the end, and the parent unpacks the first four strictly and
# the rest tolerantly, so a parent and workers of different versions (a fork server started before an upgrade)
# still understand each other.
_Reply = tuple[Any, ...]


class _WorkerDied(Exception):
    """The worker ended (or its pipe broke) before answering; ``alone``: this page was the only one it held,
    so it is the page that killed it."""

    def __init__(self, alone: bool, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.alone = alone
        self.cause = cause


class _Worker:
    """One worker process, its two pipes (requests in, replies out) and the pages it holds.

    Several fetch threads may wait on one worker. Whichever of them is not yet answered reads the replies pipe
    (one at a time); a reply for another thread is left for it and that thread woken, so in the common case the
    thread that reads the reply is the one waiting for it, and a reply costs no extra thread switch."""

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
        self._reader = _FrameReader(self._replies.fileno())
        self._send_lock = threading.Lock()  # one frame at a time into the requests pipe
        self._state = threading.Condition()
        self._next = 0
        self._held: set[int] = set()  # requests sent (or being sent) and not yet answered
        self._answered: dict[int, _Reply] = {}  # replies read for another thread
        self._reading = False
        self._died: tuple[bool, BaseException] | None = None  # (held only one page then, cause)
        self._stopped = False  # the requests end is closed (under the send lock)
        self._ended = False  # stop() has joined the process: its replies end reads end-of-file once drained
        self._replies_open = True  # closed by stop(), or by the thread reading it when stop() comes meanwhile
        # Owned by the pool (under its lock): pages handed to this worker and not yet collected, and whether it
        # serves one suspect page alone.
        self.load = 0
        self.exclusive = False

    def send(self, content: bytes, url: str, content_type: str | None) -> int:
        """Hands the page over; its request id for :meth:`receive`. OSError: the worker is gone."""
        with self._state:
            if self._died is not None:
                raise BrokenPipeError("the extraction worker has died")
            request = self._next
            self._next += 1
            self._held.add(request)
        try:
            with self._send_lock:
                if self._stopped:
                    raise BrokenPipeError("the extraction worker is stopped")
                _write_frame(self._requests.fileno(), pickle.dumps((request, url, content_type)), content)
        except BaseException:
            with self._state:
                self._held.discard(request)
            raise
        return request

    def receive(self, request: int) -> _Reply:
        """The reply to ``request``. :class:`_WorkerDied` when the worker is gone without answering it."""
        with self._state:
            while True:
                if request in self._answered:
                    return self._answered.pop(request)
                if self._died is not None:
                    raise _WorkerDied(*self._died)
                if not self._reading:
                    self._reading = True
                    break
                self._state.wait()
        try:
            while True:
                head, _ = self._reader.read()
                answered, *reply = pickle.loads(head)
                with self._state:
                    self._held.discard(answered)
                    if answered == request:
                        return tuple(reply)  # type: ignore[return-value]
                    self._answered[answered] = tuple(reply)  # type: ignore[assignment]
                    self._state.notify_all()
        except BaseException as exc:  # gone, or interrupted mid-frame (the pipe's state is unknown): dead either way
            with self._state:
                if self._died is None:
                    self._died = (self._held == {request}, exc)
                died = self._died
            if isinstance(exc, (EOFError, OSError)):
                raise _WorkerDied(*died) from exc
            raise
        finally:
            with self._state:
                self._reading = False
                finish = self._ended and self._replies_open  # stop() came meanwhile and left the rest to us
                if finish:
                    self._reading = True
                self._state.notify_all()
            if finish:
                self._finish()

    def _close_replies(self) -> None:
        """Under ``_state``, by no reader: a file descriptor closed under a thread about to read it could be
        reused by then for another file."""
        self._replies_open = False
        self._replies.close()

    def _finish(self) -> None:
        """By the thread holding the reader role, once the process has ended: reads every complete reply left (in
        the pipe and the reader's buffer) into ``_answered``, then declares the worker dead and closes the replies
        end. The writer is gone, so reading cannot block; a reply the worker wrote before it ended still reaches
        its caller, and only the pages it never answered fail (``alone`` if it held just one of them)."""
        try:
            if self._died is None:  # else the pipe's state is unknown (a reader was interrupted mid-frame)
                with contextlib.suppress(Exception):  # end-of-file, or a partial last frame: nothing more to read
                    while True:
                        head, _ = self._reader.read()
                        answered, *reply = pickle.loads(head)
                        with self._state:
                            self._held.discard(answered)
                            self._answered[answered] = tuple(reply)  # type: ignore[assignment]
                            self._state.notify_all()
        finally:
            with self._state:
                if self._died is None:
                    self._died = (len(self._held) == 1, EOFError("the extraction worker was stopped"))
                self._reading = False
                if self._replies_open:
                    self._close_replies()
                self._state.notify_all()

    def stop(self, timeout: float) -> None:
        """Ends the worker (after the pages it holds, within ``timeout``) and closes its pipes, once, whichever
        threads call it: every thread holding one of its pages may. The worker is declared dead only after the
        replies it wrote are read (:meth:`_finish`), here or by the thread reading when it leaves: a page it
        answered is never failed because its caller had not read the answer yet."""
        with self._send_lock:
            if self._stopped:
                return
            self._stopped = True
            self._requests.close()  # the worker reads end-of-file and returns
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        with self._state:
            self._ended = True
            if self._reading:  # the reader drains what is left and closes the pipe when it leaves
                return
            self._reading = True
        self._finish()


def _preload_modules(enrich: Enricher | None, embedding_model: str) -> list[str]:
    """What the fork server imports once, before it forks any worker: this module (trafilatura, lxml, the
    language identifier), the enricher's (the transform's feature extraction) and, when ``embedding_model`` is
    a bundled encoder, :mod:`ingest.encoder_preload` (the encoder, loaded), beside ``__main__`` (the
    fork server's default). Each worker then starts with them imported and loaded, instead of doing it itself, at
    the start of a run, on the cores the first pages wait for. The fork server starts with the first worker of
    the process and keeps what it imported then: the settings of the last pool made before that count.

    Only the bundled encoders are preloaded: they are numpy alone and starts no thread. A sentence-transformers
    model would load torch (and may start download or thread pools) in the fork server, which must stay
    single-threaded to fork safely; its workers load it themselves."""
    modules = ["__main__", __name__]
    if enrich is not None:
        module = getattr(getattr(enrich, "func", enrich), "__module__", None)
        if isinstance(module, str) and module not in modules:
            modules.append(module)
    if embedding_model in BUNDLED_MODELS:
        modules.append("ingest.encoder_preload")
    return modules


#: How a pool names the encoder its fork server loads (:mod:`ingest.encoder_preload` reads it there).
PRELOAD_MODEL_ENV = "NEWSWIRE_FORKSERVER_EMBEDDING_MODEL"


def _configure_forkserver(context: Any, enrich: Enricher | None, embedding_model: str) -> None:
    """Names what the fork server preloads, and the encoder it loads: through the environment it inherits when
    it starts, since preloading only imports modules by name. Every pool sets both, but a fork server reads
    them once, when it starts (with the first worker of the process)."""
    if embedding_model in BUNDLED_MODELS:
        os.environ[PRELOAD_MODEL_ENV] = embedding_model
    context.set_forkserver_preload(_preload_modules(enrich, embedding_model))


class ProcessPoolExtractor:
    """Extraction spread over worker processes, each holding up to ``MAX_IN_FLIGHT`` pages at once.

    Workers start when first needed, up to ``workers``. A page goes to an idle worker, else to a new one while
    fewer than ``workers`` run, else to the worker holding the fewest pages; a caller waits when every worker
    holds ``MAX_IN_FLIGHT``. A worker that dies (native crash, OOM) is replaced on the next demand. The page it
    held alone failed it (``worker_crashed``), as did a page it died on while serving that page alone; pages it
    held with others are suspects only, and each is tried again alone on another worker, so a page that crashes
    its worker never takes the other pages of its batch with it, and no page is extracted twice into an article.
    """

    def __init__(
        self, workers: int, *, fast: bool = False, embedding_model: str = DEFAULT_MODEL, enrich: Enricher | None = None
    ) -> None:
        self.workers = workers
        self.fast = fast
        self.embedding_model = embedding_model
        self.enrich = enrich
        self._context = multiprocessing.get_context("forkserver")
        _configure_forkserver(self._context, enrich, embedding_model)
        self._lock = threading.Condition()
        self._all: list[_Worker] = []
        self._closed = False
        #: Pages answered, by the size of the batch they were encoded in (``bench.extract_ipc`` reports it).
        self.batch_sizes: Counter[int] = Counter()

    def _acquire(self, alone: bool) -> _Worker:
        """A worker to hand one page to (its ``load`` counted): an idle one, else a new one while fewer than
        ``workers`` run, else the least loaded one below ``MAX_IN_FLIGHT``.

        ``alone``: only an idle or new worker, which then takes no other page until this one is answered. When
        none is idle, the least loaded one is reserved (it takes no new page) until it has answered the pages
        it holds: under load no worker would ever become idle otherwise."""
        reserved: _Worker | None = None
        with self._lock:
            while True:
                if self._closed:
                    raise RuntimeError("the extractor is closed")
                if reserved is not None and reserved not in self._all:
                    reserved = None  # it died meanwhile: choose again
                if reserved is not None:
                    if reserved.load == 0:
                        reserved.load = 1
                        return reserved
                else:
                    chosen = min(
                        (worker for worker in self._all if not worker.exclusive),
                        key=lambda worker: worker.load,
                        default=None,
                    )
                    if (chosen is None or chosen.load) and len(self._all) < self.workers:
                        chosen = _Worker(self._context, self.fast, self.embedding_model, self.enrich)
                        self._all.append(chosen)
                    if chosen is not None and (chosen.load == 0 or (not alone and chosen.load < MAX_IN_FLIGHT)):
                        chosen.load += 1
                        chosen.exclusive = alone
                        return chosen
                    if chosen is not None and alone:
                        chosen.exclusive = True
                        reserved = chosen
                # A timeout, not a plain wait: a worker that died frees its slot when a caller notices.
                self._lock.wait(timeout=0.2)

    def _release(self, worker: _Worker, alone: bool, batch: int = 0) -> None:
        """The page handed to ``worker`` is answered (in a batch of ``batch`` pages) or failed: its slot is free."""
        with self._lock:
            if batch:
                self.batch_sizes[batch] += 1
            worker.load -= 1
            if alone:
                worker.exclusive = False
            if worker.exclusive and not worker.load:
                self._lock.notify_all()  # the caller that reserved it
            else:
                self._lock.notify()

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._all:  # after close() every worker is already accounted for
                self._all.remove(worker)
            self._lock.notify_all()
        worker.stop(timeout=0)

    def _send(self, content: bytes, url: str, content_type: str | None, alone: bool) -> tuple[_Worker, int]:
        """A worker holding the page, and its request id. One that died while idle (OOM killer, a stray signal)
        shows as a broken pipe before the page is delivered: not this page's fault, so the page goes to another
        worker once."""
        for attempt in range(2):
            worker = self._acquire(alone)
            try:
                return worker, worker.send(content, url, content_type)
            except OSError as exc:
                self._release(worker, alone)
                self._retire(worker)
                if attempt == 1:
                    raise ExtractionError(
                        f"extraction workers died before taking {url}: {exc!r}", reason="worker_crashed"
                    ) from exc
            except BaseException:
                self._release(worker, alone)
                self._retire(worker)  # interrupted mid-frame: the pipe's state is unknown
                raise
        raise AssertionError("unreachable")

    def extract(self, content: bytes, *, url: str, content_type: str | None) -> ExtractedArticle:
        alone = False
        while True:
            worker, request = self._send(content, url, content_type, alone)
            try:
                status, value, reason, batch, *extra = worker.receive(request)
            except _WorkerDied as died:
                self._release(worker, alone)
                self._retire(worker)
                if alone or died.alone:  # A page that kills its worker is that page's failure, not the run's.
                    raise ExtractionError(
                        f"extraction worker died on {url}: {died.cause!r}", reason="worker_crashed"
                    ) from died.cause
                alone = True  # the worker died holding other pages too: this one is tried again, alone
                continue
            except BaseException:
                self._release(worker, alone)
                self._retire(worker)  # interrupted mid-exchange: the pipe's state is unknown
                raise
            self._release(worker, alone, batch)
            if extra and isinstance(extra[0], dict):  # the page's shares; absent from an older worker's reply
                worker_stats.record(extra[0])
            if status == "ok":
                return value  # type: ignore[no-any-return]
            if status == "refused":
                raise ExtractionError(value, reason=reason)
            raise value

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), []
            self._lock.notify_all()
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
