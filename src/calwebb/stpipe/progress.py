"""A progress display for long work (pipelines, exposures, tiles) that can be turned off."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from tqdm import tqdm

_enabled = True


def set_enabled(enabled: bool) -> None:
    """Turn every progress display on or off (``--quiet`` turns it off)."""
    global _enabled
    _enabled = enabled


@contextmanager
def progress_bar(total: int, description: str):
    """A tqdm bar on stderr; silent when disabled or when stderr is not a terminal."""
    disable = not _enabled or not sys.stderr.isatty()
    bar = tqdm(total=total, desc=description, unit="step", disable=disable, leave=False)
    try:
        yield bar
    finally:
        bar.close()
