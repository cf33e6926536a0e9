"""How a benchmark hands over its report: printed as JSON, and written to a file when one is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(report: dict[str, Any], path: Path | None) -> None:
    """Print ``report`` (flushed: a caller may be reading the pipe) and, when ``path`` is given, write it there."""
    text = json.dumps(report, indent=1)
    print(text, flush=True)
    if path is not None:
        path.write_text(text + "\n", "utf-8")
