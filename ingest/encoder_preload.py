"""Loads the multilingual encoder in the extraction workers' fork server, so every worker shares one copy.

The fork server imports this module before it forks any worker (see
:func:`ingest.extract_workers._preload_modules`) when the pool embeds articles. Loading the encoder reads and
dequantises its weights (most of it a 65 MB embedding table): done here once, each worker starts with it
loaded, and the workers share those pages copy-on-write (the forward pass only reads them) instead of each
paying the load on its first page and holding a private copy.

Fork safety: the fork server is single-threaded when it forks, so the encoder's lock is never copied held.
The encoder limits numpy's BLAS to one thread on each call (``threadpoolctl``), in the worker, after the fork.

Which encoder: the one named in ``NEWSWIRE_FORKSERVER_EMBEDDING_MODEL``, which the pool sets before the fork
server starts, and only for the bundled numpy encoder, which starts no thread (preloading only imports modules
by name, it passes no arguments). A failure here is logged and otherwise ignored: each worker then loads the
encoder itself and reports the error with its pages, as without a preload, and the fork server (which must keep
running) never sees an exception.
"""

from __future__ import annotations

import logging
import os

from ingest.extract_workers import PRELOAD_MODEL_ENV
from newswire.embedding import encoder_for

log = logging.getLogger(__name__)


def preload_encoder() -> bool:
    """Loads the encoder named in the environment into this process's cache; whether one was loaded."""
    name = os.environ.get(PRELOAD_MODEL_ENV)
    if not name:
        return False
    try:
        return encoder_for(name) is not None
    except Exception:  # the workers load it again and report the error per page
        log.exception("the fork server could not preload the %r encoder", name)
        return False


# Only the fork server imports this module (nothing else may: importing it loads the encoder).
preload_encoder()
