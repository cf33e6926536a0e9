"""The multilingual encoder: offline loading, the fast tokenizer path, the message field, backend selection."""

from __future__ import annotations

import json
import socket
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from newswire import contracts
from newswire.embedding import (
    DEFAULT_MODEL,
    Embedding,
    EmbeddingError,
    UseMultilingualEncoder,
    embed_articles,
    embedding_input,
    encoder_for,
    from_message,
    model_id_for,
    to_message,
    validate_model_name,
)
from newswire.errors import ContractError, SettingsError
from newswire.settings import load_settings

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


def _multilingual_docs() -> list[dict[str, str]]:
    return [json.loads(line) for line in (STORIES / "part3.jsonl").read_text("utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def encoder() -> UseMultilingualEncoder:
    encoder = encoder_for(DEFAULT_MODEL)
    assert isinstance(encoder, UseMultilingualEncoder)
    return encoder


def test_encoder_loads_and_encodes_with_the_network_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = UseMultilingualEncoder()  # not the cached one: weights and tokenizer are read now
    vectors = fresh.encode(["Earthquake strikes Taiwan's Hualien", "台湾花莲发生地震", "Central bank raises rates"])
    assert attempts == []
    assert vectors.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.2


def test_sentencepiece_tokens_and_vectors_match_the_packages_own_tokenizer(encoder: UseMultilingualEncoder) -> None:
    assert encoder.tokenizer_name == "sentencepiece"
    pure = UseMultilingualEncoder(fast_tokenizer=False)
    assert pure.tokenizer_name == "pure-python"
    texts = [embedding_input(d["title"], d["text"]) for d in _multilingual_docs()]
    for text in texts:
        fast_ids = encoder.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
        pure_ids = pure.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
        assert fast_ids == pure_ids, text[:60]
    assert np.allclose(encoder.encode(texts), pure.encode(texts), atol=1e-5)


def test_translations_are_closer_than_other_stories_of_the_same_kind(encoder: UseMultilingualEncoder) -> None:
    docs = {d["doc_id"]: d for d in _multilingual_docs()}
    ids = ["p3-s01-01", "p3-s01-04", "p3-s01-05", "p3-s02-02"]  # Hualien quake: en, zh, ru; Sichuan quake: zh
    vectors = np.array([e.array() for e in embed_articles(encoder, [(docs[i]["title"], docs[i]["text"]) for i in ids])])
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 3] and sims[0, 2] > sims[0, 3]


def test_articles_encoded_together_get_the_vectors_they_get_alone(encoder: UseMultilingualEncoder) -> None:
    """Extraction workers encode the articles waiting together (``ingest.extract_workers``); the vectors must be
    those of one article at a time but for float32 rounding (below 1e-6), which float16 storage turns into at
    most one float16 step, on every third article of the labelled corpus."""
    lines = [line for path in sorted(STORIES.glob("*.jsonl")) for line in path.read_text("utf-8").splitlines()]
    docs = [json.loads(line) for line in lines if line.strip()][::3]
    pairs = [(d["title"], d["text"]) for d in docs]
    alone = np.array([embed_articles(encoder, [pair])[0].array() for pair in pairs])
    for batch in (2, 6):
        together = np.array(
            [e.array() for s in range(0, len(pairs), batch) for e in embed_articles(encoder, pairs[s : s + batch])]
        )
        step = np.spacing(np.maximum(np.abs(alone), np.abs(together)).astype(np.float16)).astype(np.float64)
        assert np.all(np.abs(alone - together) <= step + 1e-6), batch  # float32 rounding, then one float16 step
        cosines = np.sum(alone * together, axis=1) / np.linalg.norm(alone, axis=1) / np.linalg.norm(together, axis=1)
        assert np.min(cosines) > 0.99999


def test_message_field_round_trips_and_validates(encoder: UseMultilingualEncoder) -> None:
    embedding = embed_articles(encoder, [("Taiwan quake", "A magnitude 6.1 earthquake struck Hualien.")])[0]
    field = to_message(embedding)
    assert field["model"] == encoder.model_id == model_id_for(DEFAULT_MODEL)
    assert field["dim"] == 512 and field["dtype"] == "float16"
    assert from_message(field) == embedding
    assert abs(float(np.linalg.norm(embedding.array())) - 1.0) < 1e-3
    message = {
        "schema_version": 1,
        "article_id": "0" * 32,
        "url": "https://a.example/x",
        "canonical_url": "https://a.example/x",
        "feed_url": "https://a.example/feed",
        "source": "A",
        "title": "t",
        "text": "body",
        "content_hash": "1" * 32,
        "fetched_at": "2026-04-14T02:00:00Z",
        "published_at": None,
        "language": None,
        "embedding": field,
    }
    contracts.validate(contracts.ARTICLES, message)  # the field is optional and documented in the schema
    assert "embedding" in contracts.schema_for(contracts.ARTICLES)["properties"]
    for broken in ({**field, "dtype": "float32"}, {**field, "vector": "not base64!"}, {**field, "extra": 1}):
        with pytest.raises(ContractError):
            contracts.validate(contracts.ARTICLES, {**message, "embedding": broken})


def test_unusable_fields_are_ignored_so_the_transform_recomputes() -> None:
    good = to_message(Embedding.of("m", np.ones(4)))
    assert from_message(None) is None
    assert from_message({**good, "dim": 5}) is None  # length disagrees with dim
    assert from_message({**good, "vector": "@@"}) is None
    assert from_message({**good, "dtype": "float32"}) is None
    nan = to_message(Embedding("m", np.array([np.nan, 1.0], dtype="<f2").tobytes()))
    assert from_message(nan) is None


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    assert encoder_for("none") is None and model_id_for("none") is None
    assert validate_model_name("sentence-transformers:paraphrase-multilingual-MiniLM-L12-v2")
    for bad in ("word2vec", "sentence-transformers:", ""):
        with pytest.raises(EmbeddingError) as info:
            validate_model_name(bad)
        assert info.value.reason == "unknown_model"
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # not installed
    with pytest.raises(EmbeddingError) as info:
        encoder_for("sentence-transformers:some-model")
    assert info.value.reason == "backend_missing" and "pip install sentence-transformers" in str(info.value)

    class FakeModel:  # the optional package's interface, as far as the backend uses it
        def __init__(self, name: str) -> None:
            self.name = name

        def encode(self, texts: list[str], normalize_embeddings: bool) -> np.ndarray:
            assert normalize_embeddings
            return np.eye(3)[: len(texts)]

    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=FakeModel))
    chosen = encoder_for("sentence-transformers:tiny-test-model")
    assert chosen is not None and chosen.model_id == "sentence-transformers:tiny-test-model"
    assert model_id_for("sentence-transformers:tiny-test-model") == chosen.model_id
    assert embed_articles(chosen, [("a", "b")])[0].model == chosen.model_id


def test_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWIRE_EMBEDDING_MODEL", "glove")
    with pytest.raises(SettingsError):
        load_settings()
    monkeypatch.setenv("NEWSWIRE_EMBEDDING_MODEL", "none")
    assert load_settings().embedding_model == "none"
