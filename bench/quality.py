"""Quality harness for near-duplicate detection and story clustering.

Streams the labelled corpus (``tests/fixtures/stories/*.jsonl``) in publication order through
:class:`~transform.neardup.NearDuplicateIndex` and then, for articles that are not duplicates,
:class:`~transform.clustering.StoryClusterer` (duplicates inherit their original's event, as in the
pipeline), and scores the result against the labels:

* duplicates: pairwise precision/recall/F1, gold pairs = articles linked by ``copy_of`` (transitively);
* clusters: B-cubed precision/recall/F1 against ``story_id``;
* cross-language: how many gold same-story pairs in different languages ended in one event, and how
  many predicted cross-language pairs are wrong, overall and per language pair (EN-EN, EN-ZH, EN-MS, ...);
* per part of the corpus (``p1``, ``p2``...: one author or theme set each): B-cubed and duplicate scores over
  that part's articles, from the same run;
* order dependence (``--shuffles N``): the spread of B-cubed F1 when each batch of arrivals is shuffled,
  then put back in canonical order (publication time, then id) as the transform does;
* with ``--throughput``: articles/s over 10,000 and 50,000 synthetic articles built by recombining
  corpus sentences into stories with shifted dates and altered numbers.

Run ``python -m bench.quality [--throughput]``; the JSON report goes to ``bench/results/quality.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from newswire.embedding import embed_articles, encoder_for
from transform.clustering import ClusteringConfig, StoryClusterer
from transform.documents import ArticleDoc
from transform.neardup import DEFAULT_THRESHOLD, NearDuplicateIndex

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "tests" / "fixtures" / "stories"
RESULTS = ROOT / "bench" / "results" / "quality.json"


class CorpusError(ValueError):
    """A corpus line is not a valid labelled article."""


@dataclass(frozen=True)
class LabelledDoc:
    doc: ArticleDoc
    story_id: str
    copy_of: str | None
    kind: str


def load_corpus(directory: Path = CORPUS_DIR) -> list[LabelledDoc]:
    """All labelled articles of ``directory/*.jsonl``, sorted by publication time then id."""
    out: list[LabelledDoc] = []
    for path in sorted(directory.glob("*.jsonl")):
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                out.append(_labelled(record))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise CorpusError(f"{path.name}:{number}: {exc}") from exc
    out.sort(key=lambda item: (item.doc.published_at, item.doc.article_id))
    return out


def _labelled(record: dict[str, Any]) -> LabelledDoc:
    published = datetime.fromisoformat(record["published_at"].replace("Z", "+00:00")).astimezone(UTC)
    doc = ArticleDoc(
        article_id=record["doc_id"],
        title=record["title"],
        text=record["text"],
        language=record.get("language"),
        published_at=published,
        source=record["outlet"],
        url=record["url"],
    )
    return LabelledDoc(doc=doc, story_id=record["story_id"], copy_of=record.get("copy_of"), kind=record["kind"])


# --- running the pipeline -------------------------------------------------------------------------


@dataclass
class RunResult:
    duplicate_of: dict[str, str]  # article -> article it was found to copy
    dup_scores: dict[str, float]
    event_of: dict[str, str]  # every article -> final event id (after merges)
    merges: int
    seconds: float
    cpu_seconds: float  # process CPU time: the machine may be shared, wall time then says little


def run(
    docs: Sequence[ArticleDoc],
    *,
    dup_threshold: float = DEFAULT_THRESHOLD,
    config: ClusteringConfig | None = None,
    evict_every: timedelta | None = None,
) -> RunResult:
    """Stream ``docs`` (in the given order) through dedup then clustering, like the pipeline does."""
    index = NearDuplicateIndex(threshold=dup_threshold)
    clusterer = StoryClusterer(config)
    duplicate_of: dict[str, str] = {}
    dup_scores: dict[str, float] = {}
    assigned: dict[str, str] = {}  # article -> event at assignment time
    redirect: dict[str, str] = {}  # merged event -> survivor
    merges = 0
    next_eviction: datetime | None = None
    started = time.perf_counter()
    cpu_started = time.process_time()
    for doc in docs:
        if evict_every is not None:
            if next_eviction is None:
                next_eviction = doc.published_at + evict_every
            elif doc.published_at >= next_eviction:
                index.evict_before(doc.published_at - index.horizon)
                clusterer.evict_before(doc.published_at)
                next_eviction = doc.published_at + evict_every
        found = index.find(doc)
        index.add(doc)
        if found is not None and found.duplicate_of in assigned:
            duplicate_of[doc.article_id] = found.duplicate_of
            dup_scores[doc.article_id] = found.score
            assigned[doc.article_id] = assigned[found.duplicate_of]
            continue
        assignment = clusterer.assign(doc)
        assigned[doc.article_id] = assignment.event_id
        for old in assignment.merged:
            redirect[old] = assignment.event_id
            merges += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started

    def resolve(event_id: str) -> str:
        while event_id in redirect:
            event_id = redirect[event_id]
        return event_id

    event_of = {article: resolve(event) for article, event in assigned.items()}
    return RunResult(duplicate_of, dup_scores, event_of, merges, seconds, cpu_seconds)


# --- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float

    @classmethod
    def of(cls, precision: float, recall: float) -> PRF:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        return cls(round(precision, 4), round(recall, 4), round(f1, 4))


def _groups(links: dict[str, str], universe: Iterable[str]) -> dict[str, str]:
    """Union-find roots for ``links`` (child -> parent) over ``universe``."""
    parent = {item: item for item in universe}

    def find(item: str) -> str:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for child, target in links.items():
        if child in parent and target in parent:
            a, b = find(child), find(target)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {item: find(item) for item in parent}


def _pairs(assignment: dict[str, str]) -> set[tuple[str, str]]:
    members: dict[str, list[str]] = defaultdict(list)
    for item, group in assignment.items():
        members[group].append(item)
    return {pair for group in members.values() for pair in itertools.combinations(sorted(group), 2)}


def pairwise(gold: dict[str, str], predicted: dict[str, str]) -> PRF:
    gold_pairs, predicted_pairs = _pairs(gold), _pairs(predicted)
    correct = len(gold_pairs & predicted_pairs)
    precision = correct / len(predicted_pairs) if predicted_pairs else 1.0
    recall = correct / len(gold_pairs) if gold_pairs else 1.0
    return PRF.of(precision, recall)


def bcubed(gold: dict[str, str], predicted: dict[str, str]) -> PRF:
    gold_members: dict[str, set[str]] = defaultdict(set)
    predicted_members: dict[str, set[str]] = defaultdict(set)
    for item, label in gold.items():
        gold_members[label].add(item)
    for item, label in predicted.items():
        predicted_members[label].add(item)
    precision = recall = 0.0
    for item in gold:
        mine = predicted_members[predicted[item]]
        truth = gold_members[gold[item]]
        shared = len(mine & truth)
        precision += shared / len(mine)
        recall += shared / len(truth)
    count = len(gold) or 1
    return PRF.of(precision / count, recall / count)


@dataclass
class QualityReport:
    articles: int
    stories: int
    duplicates_gold: int
    duplicates: PRF
    clusters: PRF
    cross_language: dict[str, Any]
    events_predicted: int
    merges: int
    seconds: float
    cpu_seconds: float  # process CPU time: the machine may be shared, wall time then says little
    errors: dict[str, list[Any]] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    story_gaps: dict[str, float] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)
    order: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)


def with_embeddings(corpus: Sequence[LabelledDoc], config: ClusteringConfig | None = None) -> list[LabelledDoc]:
    """The corpus with each article's embedding computed in one batch, as ingest's workers attach them."""
    encoder = encoder_for((config or ClusteringConfig()).embedding_model)
    if encoder is None:
        return list(corpus)
    embeddings = embed_articles(encoder, [(item.doc.title, item.doc.text) for item in corpus])
    return [
        replace(item, doc=replace(item.doc, embedding=embedding))
        for item, embedding in zip(corpus, embeddings, strict=True)
    ]


def evaluate(
    corpus: Sequence[LabelledDoc],
    *,
    dup_threshold: float = DEFAULT_THRESHOLD,
    config: ClusteringConfig | None = None,
) -> QualityReport:
    config = config or ClusteringConfig()
    if any(item.doc.embedding is None for item in corpus):
        corpus = with_embeddings(corpus, config)
    result = run([item.doc for item in corpus], dup_threshold=dup_threshold, config=config)
    ids = [item.doc.article_id for item in corpus]
    by_id = {item.doc.article_id: item for item in corpus}
    gold_copy_groups = _groups({i.doc.article_id: i.copy_of for i in corpus if i.copy_of}, ids)
    predicted_copy_groups = _groups(result.duplicate_of, ids)
    gold_story = {item.doc.article_id: item.story_id for item in corpus}
    duplicates = pairwise(gold_copy_groups, predicted_copy_groups)
    clusters = bcubed(gold_story, result.event_of)
    cross = _cross_language(corpus, result.event_of)
    # What joining across languages buys and costs: the same pipeline run per language, never joining.
    monolingual = _monolingual_event_of(corpus, dup_threshold, config)
    alone = bcubed(gold_story, monolingual)
    cross["bcubed_if_never_joined_across_languages"] = asdict(alone)
    cross["precision_cost"] = round(alone.precision - clusters.precision, 4)
    cross["recall_gain"] = round(clusters.recall - alone.recall, 4)
    errors = _errors(corpus, result, gold_copy_groups, predicted_copy_groups, by_id)
    return QualityReport(
        articles=len(corpus),
        stories=len(set(gold_story.values())),
        duplicates_gold=sum(1 for item in corpus if item.copy_of),
        duplicates=duplicates,
        clusters=clusters,
        cross_language=cross,
        events_predicted=len(set(result.event_of.values())),
        merges=result.merges,
        seconds=round(result.seconds, 3),
        cpu_seconds=round(result.cpu_seconds, 3),
        errors=errors,
        parameters={"dup_threshold": dup_threshold, "clustering": _config_dict(config)},
        story_gaps=_story_gaps(corpus),
        parts=_by_part(corpus, result.event_of, gold_copy_groups, predicted_copy_groups),
    )


def _by_part(
    corpus: Sequence[LabelledDoc],
    event_of: dict[str, str],
    gold_copies: dict[str, str],
    predicted_copies: dict[str, str],
) -> dict[str, Any]:
    """Scores over each part's own articles (doc ids ``p4-...``), so that a part added to the corpus can be
    read alone, and the parts before it compared with their earlier figures. An article of one part joined
    to another part's event counts against recall here, not precision: the cross-language figures and the
    mixed events listed under errors show such joins."""
    parts: dict[str, list[LabelledDoc]] = defaultdict(list)
    for item in corpus:
        parts[item.doc.article_id.split("-", 1)[0]].append(item)
    out: dict[str, Any] = {}
    for part, items in sorted(parts.items()):
        ids = [item.doc.article_id for item in items]
        gold = {item.doc.article_id: item.story_id for item in items}
        out[part] = {
            "articles": len(items),
            "stories": len(set(gold.values())),
            "clusters": asdict(bcubed(gold, {i: event_of[i] for i in ids})),
            "duplicates": asdict(pairwise({i: gold_copies[i] for i in ids}, {i: predicted_copies[i] for i in ids})),
        }
    return out


def _monolingual_event_of(
    corpus: Sequence[LabelledDoc], dup_threshold: float, config: ClusteringConfig
) -> dict[str, str]:
    by_language: dict[str, list[ArticleDoc]] = defaultdict(list)
    for item in corpus:
        by_language[item.doc.language or "?"].append(item.doc)
    event_of: dict[str, str] = {}
    for language, docs in by_language.items():
        result = run(docs, dup_threshold=dup_threshold, config=config)
        event_of.update({article: f"{language}:{event}" for article, event in result.event_of.items()})
    return event_of


def _story_gaps(corpus: Sequence[LabelledDoc]) -> dict[str, float]:
    """How far apart articles of one story are (what the horizon and time decay must allow)."""
    stories: dict[str, list[datetime]] = defaultdict(list)
    for item in corpus:
        stories[item.story_id].append(item.doc.published_at)
    spans, steps = [], []
    for moments in stories.values():
        moments.sort()
        spans.append((moments[-1] - moments[0]).total_seconds() / 86400)
        steps.extend((b - a).total_seconds() / 86400 for a, b in itertools.pairwise(moments))
    return {
        "max_story_span_days": round(max(spans, default=0.0), 2),
        "max_gap_to_previous_article_days": round(max(steps, default=0.0), 2),
    }


def _config_dict(config: ClusteringConfig) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, timedelta) else value for key, value in asdict(config).items()}


_SCRIPT = {"zh": "non-Latin", "ja": "non-Latin", "ko": "non-Latin", "ar": "non-Latin", "ru": "non-Latin"}


def _cross_language(corpus: Sequence[LabelledDoc], event_of: dict[str, str]) -> dict[str, Any]:
    gold_pairs = joined = predicted_pairs = wrong = 0
    script = Counter[str]()
    by_pair: dict[str, Counter[str]] = defaultdict(Counter)
    for a, b in itertools.combinations(corpus, 2):
        same_story = a.story_id == b.story_id
        same_event = event_of[a.doc.article_id] == event_of[b.doc.article_id]
        pair = "-".join(sorted(((a.doc.language or "?").upper(), (b.doc.language or "?").upper())))
        counts = by_pair[pair]
        counts["gold_pairs"] += same_story
        counts["gold_pairs_joined"] += same_story and same_event
        counts["predicted_pairs"] += same_event
        counts["predicted_pairs_wrong"] += same_event and not same_story
        if (a.doc.language or "?") == (b.doc.language or "?"):
            continue
        if same_story:
            gold_pairs += 1
            joined += same_event
        if same_event:
            predicted_pairs += 1
            wrong += not same_story
        if _SCRIPT.get(a.doc.language or "") != _SCRIPT.get(b.doc.language or ""):  # one Latin, one not
            script["gold_pairs"] += same_story
            script["gold_pairs_joined"] += same_story and same_event
            script["predicted_pairs"] += same_event
            script["predicted_pairs_wrong"] += same_event and not same_story
    pairs = {pair: _pair_rates(counts) for pair, counts in sorted(by_pair.items()) if counts["gold_pairs"]}
    return {
        "cross_script": _pair_rates(script),
        "by_language_pair": pairs,
        "gold_pairs": gold_pairs,
        "gold_pairs_joined": joined,
        "recall": round(joined / gold_pairs, 4) if gold_pairs else 1.0,
        "predicted_pairs": predicted_pairs,
        "predicted_pairs_wrong": wrong,
        "precision": round(1 - wrong / predicted_pairs, 4) if predicted_pairs else 1.0,
    }


def _pair_rates(counts: Counter[str]) -> dict[str, Any]:
    gold, predicted = counts["gold_pairs"], counts["predicted_pairs"]
    return {
        **{key: counts[key] for key in ("gold_pairs", "gold_pairs_joined", "predicted_pairs", "predicted_pairs_wrong")},
        "recall": round(counts["gold_pairs_joined"] / gold, 4) if gold else 1.0,
        "wrong_share": round(counts["predicted_pairs_wrong"] / predicted, 4) if predicted else 0.0,
    }


def _errors(
    corpus: Sequence[LabelledDoc],
    result: RunResult,
    gold_copies: dict[str, str],
    predicted_copies: dict[str, str],
    by_id: dict[str, LabelledDoc],
) -> dict[str, list[Any]]:
    """What went wrong, per story/event, so a failure can be read without re-running."""
    split: list[Any] = []
    stories: dict[str, list[str]] = defaultdict(list)
    for item in corpus:
        stories[item.story_id].append(item.doc.article_id)
    for story, members in sorted(stories.items()):
        events = Counter(result.event_of[m] for m in members)
        if len(events) > 1:
            split.append(
                {"story": story, "events": {e: [m for m in members if result.event_of[m] == e] for e in events}}
            )
    mixed: list[Any] = []
    events_members: dict[str, list[str]] = defaultdict(list)
    for article, event in result.event_of.items():
        events_members[event].append(article)
    for event, members in sorted(events_members.items()):
        labels = Counter(by_id[m].story_id for m in members)
        if len(labels) > 1:
            mixed.append({"event": event, "stories": dict(labels)})
    missed_dups = [
        a for a in gold_copies if gold_copies[a] != a and predicted_copies[a] != predicted_copies[gold_copies[a]]
    ]
    false_dups = [
        {"article": a, "duplicate_of": b, "score": result.dup_scores.get(a)}
        for a, b in result.duplicate_of.items()
        if gold_copies[a] != gold_copies[b]
    ]
    return {
        "split_stories": split,
        "mixed_events": mixed,
        "missed_duplicates": missed_dups,
        "false_duplicates": false_dups,
    }


# --- order dependence -----------------------------------------------------------------------------


def shuffled_arrivals(
    docs: Sequence[ArticleDoc], *, seed: int, jitter: timedelta, batch: int, canonical: bool
) -> list[ArticleDoc]:
    """``docs`` in a plausible arrival order: each article arrives up to ``jitter`` after publication
    (feeds are polled at different times, partitions interleave), consumed in batches of ``batch``; with
    ``canonical``, each batch is sorted by (publication time, id) as the transform does."""
    rng = random.Random(seed)
    arrival = {d.article_id: d.published_at + jitter * rng.random() for d in docs}
    ordered = sorted(docs, key=lambda d: (arrival[d.article_id], rng.random()))
    out: list[ArticleDoc] = []
    for start in range(0, len(ordered), batch):
        chunk = ordered[start : start + batch]
        if canonical:
            chunk = sorted(chunk, key=lambda d: (d.published_at, d.article_id))
        out.extend(chunk)
    return out


def order_spread(
    corpus: Sequence[LabelledDoc], runs: int, config: ClusteringConfig | None = None, *, batch: int = 25
) -> dict[str, Any]:
    """B-cubed F1 over ``runs`` shuffled arrival orders, with and without canonical batch order: over the whole
    corpus and over each part's own articles (``parts``), from the same runs."""
    gold = {item.doc.article_id: item.story_id for item in corpus}
    docs = [item.doc for item in corpus]
    part_ids: dict[str, list[str]] = defaultdict(list)
    for item in corpus:
        part_ids[item.doc.article_id.split("-", 1)[0]].append(item.doc.article_id)
    out: dict[str, Any] = {"runs": runs, "batch": batch, "jitter_hours": 12}
    for canonical in (True, False):
        scores: list[float] = []
        by_part: dict[str, list[float]] = defaultdict(list)
        for seed in range(runs):
            order = shuffled_arrivals(docs, seed=seed, jitter=timedelta(hours=12), batch=batch, canonical=canonical)
            event_of = run(order, config=config).event_of
            scores.append(bcubed(gold, event_of).f1)
            for part, ids in sorted(part_ids.items()):
                by_part[part].append(bcubed({i: gold[i] for i in ids}, {i: event_of[i] for i in ids}).f1)
        out["canonical" if canonical else "arrival"] = {
            "f1": scores,
            "spread": _spread(scores),
            "parts": {part: {"f1": values, "spread": _spread(values)} for part, values in by_part.items()},
        }
    return out


def _spread(scores: Sequence[float]) -> float:
    return round(max(scores) - min(scores), 4)


# --- synthetic throughput -------------------------------------------------------------------------

_SENTENCE_RE = re.compile(r"(?<=[.!?»\"])\s+(?=[A-ZÀ-Ý«\"])")
_NUMBER_RE = re.compile(r"\d+")
_WORD_RE = re.compile(r"[^\W\d_]+")


def synthetic_stream(corpus: Sequence[LabelledDoc], count: int, *, seed: int = 7) -> list[ArticleDoc]:
    """``count`` articles in synthetic stories of 3-8 articles spread over a year, in publication order.

    Each synthetic story takes a corpus story as template, shifts it to a random date and its numbers,
    and gets its own vocabulary: every name and most content words are consistently replaced, within the
    story, by other corpus words, so its articles still resemble each other while stories built from one
    template do not; sentences are shuffled and trimmed, one word in twenty is noise, and one article in
    ten is a syndicated copy of the previous one. Texts stay news-shaped, so the cost per article is
    that of real traffic.
    """
    rng = random.Random(seed)
    stories: dict[str, list[LabelledDoc]] = defaultdict(list)
    for item in corpus:
        if item.copy_of is None:
            stories[item.story_id].append(item)
    templates = list(stories.values())
    pool = sorted({w for item in corpus for w in _WORD_RE.findall(item.doc.text)})
    capitalised = [w for w in pool if w[0].isupper()]
    lowercase = [w for w in pool if w[0].islower()]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    docs: list[ArticleDoc] = []
    story_number = 0
    while len(docs) < count:
        story_number += 1
        template = rng.choice(templates)
        base = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
        shift = rng.randrange(7, 97)
        vocabulary: dict[str, str] = {}

        def rewrite(text: str, vocabulary: dict[str, str] = vocabulary, shift: int = shift) -> str:
            def word(match: re.Match[str]) -> str:
                token = match.group()
                if token not in vocabulary:
                    # per story and consistent: every name, and most content words, get a stand-in
                    if token[0].isupper():
                        vocabulary[token] = rng.choice(capitalised)
                    elif len(token) >= 4 and rng.random() < 0.6:
                        vocabulary[token] = rng.choice(lowercase)
                    else:
                        vocabulary[token] = token
                return vocabulary[token] if rng.random() >= 0.05 else rng.choice(lowercase)

            text = _NUMBER_RE.sub(lambda m: str(int(m.group()) + shift), text)
            return _WORD_RE.sub(word, text)

        previous: ArticleDoc | None = None
        for item in template:
            if len(docs) >= count:
                break
            offset = item.doc.published_at - template[0].doc.published_at
            published = base + offset + timedelta(minutes=rng.randrange(60))
            if previous is not None and rng.random() < 0.1:
                title, text = previous.title, previous.text
            else:
                sentences = _SENTENCE_RE.split(item.doc.text)
                rng.shuffle(sentences)
                sentences = sentences[: max(3, len(sentences) - rng.randrange(0, 3))]
                title, text = rewrite(item.doc.title), rewrite(" ".join(sentences))
            previous = ArticleDoc(
                article_id=f"syn{story_number:06d}-{len(docs):07d}",
                title=title,
                text=text,
                language=item.doc.language,
                published_at=published,
                source=item.doc.source,
                url=f"https://synthetic.example/{story_number}/{len(docs)}",
            )
            docs.append(previous)
    docs.sort(key=lambda d: (d.published_at, d.article_id))
    return docs


def throughput(corpus: Sequence[LabelledDoc], count: int, config: ClusteringConfig | None = None) -> dict[str, Any]:
    docs = synthetic_stream(corpus, count)
    result = run(docs, config=config, evict_every=timedelta(days=1))
    gold = {d.article_id: d.article_id.split("-", 1)[0] for d in docs}
    synthetic = bcubed(gold, result.event_of)
    return {
        "articles": count,
        "seconds": round(result.seconds, 2),
        "articles_per_second": round(count / result.seconds, 1),
        "cpu_seconds": round(result.cpu_seconds, 2),
        "articles_per_cpu_second": round(count / result.cpu_seconds, 1),
        "events": len(set(result.event_of.values())),
        "synthetic_stories": len(set(gold.values())),
        "duplicates": len(result.duplicate_of),
        # a sanity check only: synthetic stories are word salad with the shape of news
        "synthetic_bcubed": asdict(synthetic),
    }


# --- CLI --------------------------------------------------------------------------------------------


def _print(report: QualityReport) -> None:
    d, c, x = report.duplicates, report.clusters, report.cross_language
    print(f"corpus: {report.articles} articles, {report.stories} stories, {report.duplicates_gold} labelled copies")
    print(f"duplicates (pairwise): P={d.precision:.4f} R={d.recall:.4f} F1={d.f1:.4f}")
    print(f"clusters (B-cubed):    P={c.precision:.4f} R={c.recall:.4f} F1={c.f1:.4f}")
    print(f"events predicted: {report.events_predicted} (merges: {report.merges})  time: {report.seconds}s")
    print(
        f"cross-language: {x['gold_pairs_joined']}/{x['gold_pairs']} gold pairs joined (recall {x['recall']}), "
        f"{x['predicted_pairs_wrong']}/{x['predicted_pairs']} predicted pairs wrong (precision {x['precision']})"
    )
    print(
        f"  joining across languages: B-cubed recall +{x['recall_gain']}, precision cost {x['precision_cost']}"
        f" (vs. never joining: {x['bcubed_if_never_joined_across_languages']})"
    )
    script = x["cross_script"]
    print(
        f"cross-script (Latin vs. zh/ar/ru): {script['gold_pairs_joined']}/{script['gold_pairs']} gold pairs joined, "
        f"{script['predicted_pairs_wrong']}/{script['predicted_pairs']} predicted pairs wrong"
    )
    print("  per language pair: gold pairs joined / gold, wrong / predicted")
    for pair, rates in x["by_language_pair"].items():
        print(
            f"    {pair:6} {rates['gold_pairs_joined']:4}/{rates['gold_pairs']:<4} "
            f"wrong {rates['predicted_pairs_wrong']}/{rates['predicted_pairs']}"
        )
    for part, scores in report.parts.items():
        c, d = scores["clusters"], scores["duplicates"]
        print(
            f"  part {part}: {scores['articles']} articles, {scores['stories']} stories, B-cubed P={c['precision']:.4f}"
            f" R={c['recall']:.4f} F1={c['f1']:.4f}, duplicates F1={d['f1']:.4f}"
        )
    print(f"story time spans: {report.story_gaps}")
    for row in report.throughput:
        print(
            f"throughput: {row['articles']} articles in {row['seconds']}s = {row['articles_per_second']} articles/s"
            f" ({row['articles_per_cpu_second']} per CPU second)"
            f" ({row['events']} events for {row['synthetic_stories']} synthetic stories,"
            f" B-cubed P={row['synthetic_bcubed']['precision']} R={row['synthetic_bcubed']['recall']})"
        )
    errors = report.errors
    for entry in errors.get("split_stories", []):
        print("  split:", entry["story"], list(entry["events"].values()))
    for entry in errors.get("mixed_events", []):
        print("  mixed:", entry["event"], entry["stories"])
    if errors.get("missed_duplicates"):
        print("  missed duplicates:", errors["missed_duplicates"])
    if errors.get("false_duplicates"):
        print("  false duplicates:", errors["false_duplicates"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--throughput", action="store_true", help="also time 10,000 and 50,000 synthetic articles")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 50_000])
    parser.add_argument(
        "--shuffles", type=int, default=0, help="also cluster N shuffled arrival orders: spread of B-cubed F1"
    )
    parser.add_argument(
        "--embedding-model", default=None, help="NEWSWIRE_EMBEDDING_MODEL for this run ('none': words and cues only)"
    )
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus)
    if not corpus:
        print(f"no labelled articles under {args.corpus}", file=sys.stderr)
        return 2
    config = ClusteringConfig(**({} if args.embedding_model is None else {"embedding_model": args.embedding_model}))
    corpus = with_embeddings(corpus, config)
    report = evaluate(corpus, config=config)
    if args.shuffles:
        report.order = order_spread(corpus, args.shuffles, config)
        print(f"order dependence over {args.shuffles} shuffled arrivals (B-cubed F1, spread):", flush=True)
        for mode in ("canonical", "arrival"):
            spreads = report.order[mode]
            parts = ", ".join(f"{part} {v['spread']}" for part, v in spreads["parts"].items())
            print(f"  {mode}: {spreads['f1']} spread {spreads['spread']}; per part: {parts}", flush=True)
    if args.throughput:
        for size in args.sizes:
            report.throughput.append(throughput(corpus, size))
            print(f"timed {size} synthetic articles: {report.throughput[-1]['articles_per_second']}/s", flush=True)
    _print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(asdict(report), indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"report: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
