"""Language identification for articles whose feed and page declare no language.

Story clustering picks stopwords, stemming and tokenisation by language, and event records list their
languages, so an article without a declared language is worse off than one with a wrong guess only when the
guess is very uncertain. ``py3langid`` ships its model inside its wheel (nothing is downloaded) and
classifies a lead of a few hundred characters in well under a millisecond.

Only the ISO 639-1 (two-letter) languages of its model are considered: the model also knows regional
varieties such as Wu or Cantonese, and labels Mandarin news as Wu often enough to split Chinese stories by
label. Both ingest (in the extraction workers) and transform (for older messages) call this module, which
is why it lives in the shared core.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

__all__ = ["MIN_CONFIDENCE", "detect_language"]

#: Below this normalised probability the guess is dropped: no language is better than a coin toss.
MIN_CONFIDENCE = 0.5
#: The head of the text decides; more only costs time.
_SAMPLE_CHARS = 1_000
_MIN_LETTERS = 20

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages([label for label in identifier.labels if len(label) == 2])
    return identifier


def detect_language(title: str | None, text: str | None) -> str | None:
    """The ISO 639-1 code of the text's language, or None when too short or too uncertain to say."""
    sample = f"{title or ''}\n{text or ''}"[:_SAMPLE_CHARS]
    if sum(ch.isalpha() for ch in sample) < _MIN_LETTERS:
        return None
    with _lock:  # the identifier keeps no per-call state, but its first load must happen once
        identifier = _identifier()
    language, confidence = identifier.classify(sample)
    if confidence < MIN_CONFIDENCE:
        return None
    return str(language)
