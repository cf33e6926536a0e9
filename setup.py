"""The C extension of the package (the project's metadata is in pyproject.toml).

``transform._scoring`` is the C kernel of candidate scoring (see ``transform/scoring.py``). It is optional: where no
compiler is available the build goes on without it and ``transform.clustering`` runs its pure-Python path, which
gives the same floats. The source's hash is compiled in, so that a build left behind by an edit of the source is
detected at import and not run.
"""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

_SOURCE = "transform/_scoring.c"
_HASH = hashlib.sha256((Path(__file__).parent / _SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "transform._scoring",
            [_SOURCE],
            optional=True,
            define_macros=[("SCORING_SOURCE_HASH", f'"{_HASH}"')],
            # no fused multiply-add: every product and sum is rounded on its own, as in NumPy and math.fsum
            extra_compile_args=["-ffp-contract=off"],
        )
    ]
)
