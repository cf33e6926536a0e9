"""Which implementation of candidate scoring :mod:`transform.clustering` runs: the C kernel or pure Python.

The C kernel (``transform/_scoring.c``, built by ``setup.py`` at install) does the per-article loops of scoring
without Python objects per key; the pure-Python path is the fallback where it was not built (no compiler) and the
reference it is tested against: both give the same floats. A build that does not match this source tree (its ABI
number, or the hash of the C source it was compiled from when that source is present) is refused, so that an edit
of the C file without a rebuild cannot run old code. So is a build whose summations (its ports of NumPy's pairwise
``np.add.reduce`` and of ``math.fsum``) do not give the installed NumPy's and Python's floats on a few fixed arrays
(numpy is not pinned, and a NumPy that sums differently would break the bit-identity). ``NEWSWIRE_SCORING_KERNEL=0``
forces the Python path.

Which path runs is logged once, at WARNING when it is the slower Python path.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from types import ModuleType

import numpy as np

__all__ = ["ABI", "load_kernel"]

log = logging.getLogger(__name__)

# The ABI number transform/_scoring.c must report (its SCORING_ABI): bump both when a signature or meaning changes.
ABI = 2

# Lengths of the arrays the load-time self-check sums: around the pairwise summation's 8-wide unrolling and its
# 128-element blocks, and a few longer ones that split into blocks more than once.
_CHECK_LENGTHS = (0, 1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 255, 256, 257, 1000, 4099)

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
    mismatch = _self_check(_scoring)
    if mismatch:
        return None, f"the C kernel's summation differs from this NumPy's or Python's ({mismatch}): not bit-identical"
    return _scoring, "built"


def _self_check(kernel: ModuleType) -> str:
    """Where the kernel's ports of ``np.add.reduce`` and ``math.fsum`` differ from the installed originals, which
    one and at what length, else "". The kernel is bit-identical to the Python path only while its port of NumPy's
    pairwise summation matches the NumPy installed (numpy is not pinned): a mismatch found here refuses the kernel,
    so a host with the kernel and one without still score alike."""
    rng = np.random.default_rng(15)
    for length in _CHECK_LENGTHS:
        # mixed signs and magnitudes: different summation orders round differently
        values = rng.standard_normal(length) * 10.0 ** rng.integers(-6, 6, length).astype(np.float64)
        if kernel.add_reduce(values) != float(np.add.reduce(values)):
            return f"add_reduce of {length} values"
        if kernel.fsum(values) != math.fsum(values.tolist()):
            return f"fsum of {length} values"
    return ""
