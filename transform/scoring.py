"""Which implementation of candidate scoring :mod:`transform.clustering` runs: the C kernel or pure Python.

The C kernel (``transform/_scoring.c``, built by ``setup.py`` at install) does the per-article loops of scoring
without Python objects per key; the pure-Python path is the fallback where it was not built (no compiler) and the
reference it is tested against: both give the same floats. A build that does not match this source tree (its ABI
number, or the hash of the C source it was compiled from when that source is present) is refused, so that an edit
of the C file without a rebuild cannot run old code. ``NEWSWIRE_SCORING_KERNEL=0`` forces the Python path.

Which path runs is logged once, at WARNING when it is the slower Python path.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from types import ModuleType

__all__ = ["ABI", "load_kernel"]

log = logging.getLogger(__name__)

# The ABI number transform/_scoring.c must report (its SCORING_ABI): bump both when a signature or meaning changes.
ABI = 1

_SOURCE = Path(__file__).with_name("_scoring.c")
_loaded: tuple[ModuleType | None, str] | None = None


def load_kernel() -> ModuleType | None:
    """The C kernel module when it is built and current, else None (the pure-Python path); logged once."""
    global _loaded
    if _loaded is None:
        kernel, reason = _load()
        if kernel is None:
            log.warning("story clustering scores candidates in pure Python (slower): %s", reason)
        else:
            log.info("story clustering scores candidates with the C kernel (transform._scoring)")
        _loaded = (kernel, reason)
    return _loaded[0]


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get("NEWSWIRE_SCORING_KERNEL", "1").strip().lower() in {"0", "false", "no", "off"}:
        return None, "NEWSWIRE_SCORING_KERNEL turns the C kernel off"
    try:
        from transform import _scoring
    except ImportError as exc:
        return None, f"the C kernel is not built ({exc}); `make install` builds it"
    if getattr(_scoring, "ABI", None) != ABI:
        return None, f"the built C kernel has ABI {getattr(_scoring, 'ABI', None)}, expected {ABI}: rebuild it"
    if _SOURCE.is_file():  # a source tree (editable install): the build must be of this very source
        digest = hashlib.sha256(_SOURCE.read_bytes()).hexdigest()
        if getattr(_scoring, "SOURCE_HASH", "") != digest:
            return None, f"the built C kernel is stale ({_SOURCE.name} changed since): rebuild it (`make install`)"
    return _scoring, "built"
