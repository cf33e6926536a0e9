"""What ingest's extraction workers add to each article for the transform: its clustering features.

``ingest`` may not import ``transform``, so this layer hands the workers a picklable callable
(:func:`feature_enricher`) that runs :func:`transform.carried.carried_features` right after extraction, on
every core, instead of on the transform's one thread. The transform uses the result only when it matches
its own configuration and the article's final title, text and language (see :mod:`transform.carried`).
"""

from __future__ import annotations

from functools import partial

from ingest.extract import ExtractedArticle
from ingest.extract_workers import Enricher
from newswire.settings import Settings
from transform.carried import carried_features
from transform.clustering import ClusteringConfig


def clustering_features(article: ExtractedArticle, *, title_weight: int) -> str:
    """The message's ``features`` for ``article``, under the language its message will most likely declare
    (the page's own, else the one identified from the text); a feed-declared language differs, and then the
    transform computes them again."""
    language = article.language or article.detected_language
    return carried_features(article.title, article.text, language, title_weight=title_weight)


def feature_enricher(config: ClusteringConfig | None = None) -> Enricher:
    """The enrichment for ``ingest``'s extractors, for a transform running ``config`` (default: defaults)."""
    return partial(clustering_features, title_weight=(config or ClusteringConfig()).title_weight)


def enricher_for(settings: Settings) -> Enricher | None:
    """The enrichment ingest's extractors run under ``settings`` (``NEWSWIRE_EXTRACT_FEATURES``): the features,
    or nothing. Worker processes run it, and so do shard tasks extracting inline with ``NEWSWIRE_SHARD_ENRICH``.
    On a machine where extraction already uses every core, the features cost the workers what they save the
    transform; shard tasks bound by per-host spacing have the idle CPU for them."""
    return feature_enricher() if settings.extract_features else None
