"""trafilatura's metadata step without the two whole-page searches whose results extraction never uses.

``trafilatura.bare_extraction(with_metadata=True)`` runs ``trafilatura.metadata.extract_metadata``, which ends
with two searches over the whole page that the bare ``trafilatura.extract`` (metadata off) never runs:

* the license (``extract_license``: every ``<a rel>`` and two XPaths over the footers). ``extract_article``
  never reads ``Document.license``.
* the tags (``extract_catstags("tag", ...)``: four XPaths over the whole page, one calling a Python regex for
  every ``<div>``), when the page declares no ``article:tag``. Whatever those XPaths select, the function keeps
  only links whose ``href`` matches ``/tag(?:y|ies|s)?/`` and has no fallback for tags: on a page without
  such a link it returns ``[]`` whatever the XPaths walk. One pass over the page's ``<a href>`` tells.

On the benchmark's pages the two are most of the metadata step's time, and they run in the extraction workers,
the pipeline's largest CPU cost (README, Benchmarks, "Eighth pass: trafilatura's metadata step"). Categories
keep trafilatura's own search (its fallback to ``<meta>`` is part of the result). A copy of ``extract_metadata``
without those steps was measured in an earlier pass and removed: the project does not carry trafilatura's
function bodies.
Instead, :func:`lean_metadata` replaces the two module-level functions that ``extract_metadata`` calls, for the
duration of one extraction, with equivalents for what the caller reads; everything else is trafilatura's code.
The replacement is scoped, not installed for the process: any other caller of trafilatura keeps the license.
A module global swapped for a block is only sound while no other thread runs trafilatura, so the block takes
the lock that serialises trafilatura in this process (``ingest.extract`` passes its own; trafilatura is not
thread-safe anyway) and puts back the functions it found on entry, whatever they were (another patch, a test's
monkeypatch), not the ones of import time. ``tests/unit/test_lean_metadata.py`` checks that the articles and
every field of trafilatura's document but the license are the same with and without it, and pins what the
shortcut assumes of trafilatura (where the tag XPaths look, the href pattern, no fallback for tags).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from trafilatura import metadata as _metadata

__all__ = ["lean_metadata"]

# The two functions of trafilatura.metadata the block replaces. Checked at import: a trafilatura that renames
# either fails here, loudly, not by silently running both searches again.
_REPLACED = ("extract_catstags", "extract_license")
if missing := [name for name in _REPLACED if not callable(getattr(_metadata, name, None))]:
    raise ImportError(f"trafilatura.metadata has no {', '.join(missing)}: ingest.lean_metadata needs updating")


@cache
def _href_pattern(metatype: str) -> re.Pattern[str]:
    """What ``extract_catstags`` requires of a link's ``href`` for ``metatype``, built as it builds it."""
    return re.compile("/" + metatype.rstrip("y") + "(?:y|ies|s)?/")


def _no_license(tree: Any) -> None:
    return None


def _lean_catstags(full: Callable[[str, Any], list[str]]) -> Callable[[str, Any], list[str]]:
    """``full`` (``extract_catstags`` as found on entry), skipping the tag search on a page where no link could
    be kept by it: every tag XPath selects ``a[@href]`` elements, so no ``href`` matching means no tag."""

    def catstags(metatype: str, tree: Any) -> list[str]:
        if metatype == "tag":
            pattern = _href_pattern(metatype)
            if not any(pattern.search(href) for href in tree.xpath("//a/@href")):
                return []
        return full(metatype, tree)

    return catstags


@contextlib.contextmanager
def lean_metadata(lock: threading.Lock) -> Iterator[None]:
    """Within the block, trafilatura's metadata step skips the license and the tag search of a page whose links
    could yield no tag.

    ``lock`` is the lock every trafilatura call of this process runs under; the block holds it (run trafilatura
    inside the block, not around it: the lock is not reentrant), so no other thread sees the swapped functions.
    """
    with lock:
        found = (_metadata.extract_catstags, _metadata.extract_license)
        _metadata.extract_catstags, _metadata.extract_license = _lean_catstags(found[0]), _no_license
        try:
            yield
        finally:
            _metadata.extract_catstags, _metadata.extract_license = found
