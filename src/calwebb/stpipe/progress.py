"""A progress display for long work (pipelines, exposures, tiles) that can be turned off."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

_enabled = True
#: how many ``suppressed()`` blocks are open (in any thread)
_suppressions = 0
_lock = threading.Lock()


def set_enabled(enabled: bool) -> None:
    """Turn every progress display on or off (``--quiet`` turns it off)."""
    global _enabled
    _enabled = enabled


@contextmanager
def suppressed():
    """No new bars inside this block (a task run under an outer bar over exposures)."""
    global _suppressions
    with _lock:
        _suppressions += 1
    try:
        yield
    finally:
        with _lock:
            _suppressions -= 1


@contextmanager
def progress_bar(total: int, description: str, unit: str = "step"):
    """A tqdm bar on stderr; None when disabled or when stderr is not a terminal (then tqdm
    is not even imported: 25 ms of a batch run's start-up)."""
    if not _enabled or _suppressions > 0 or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit=unit, leave=False)
    try:
        yield bar
    finally:
        bar.close()
