"""Where calwebb keeps what it can make again (the local reference set, remembered parses)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """calwebb's cache directory: ``CALWEBB_CACHE_DIR``, else ``calwebb`` in
    ``XDG_CACHE_HOME`` (``~/.cache`` by default)."""
    if os.environ.get("CALWEBB_CACHE_DIR"):
        return Path(os.environ["CALWEBB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "calwebb"
