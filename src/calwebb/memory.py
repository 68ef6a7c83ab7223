"""Process-wide memory policies of a calwebb run: how numpy's large arrays are backed and
handing freed memory back to the system."""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager


@functools.cache
def _c_library():
    """The C library when it is glibc (None elsewhere)."""
    try:
        library = ctypes.CDLL("libc.so.6")
        return library if hasattr(library, "malloc_trim") else None
    except OSError:
        return None


@contextmanager
def normal_pages() -> Iterator[None]:
    """Within the block, numpy does not advise the kernel to back large arrays with
    transparent huge pages, unless NUMPY_MADVISE_HUGEPAGE says otherwise.

    Where the kernel compacts memory on the spot to find a huge page for such advice (THP
    defrag 'madvise', a common default), a new array costs up to ~8 ms per MiB once the page
    cache fills the memory, against ~0.5 ms with normal pages; a pipeline allocates
    gigabytes."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    advise = getattr(multiarray, "_set_madvise_hugepage", None)
    if advise is None or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    previous = advise(False)
    try:
        yield
    finally:
        advise(previous)


def release_freed_memory() -> None:
    """Hand the pages the C allocator keeps from freed arrays back to the system, so that a
    step's freed temporaries do not add to the next step's peak (glibc keeps large freed
    blocks once it has raised its memory-map threshold)."""
    library = _c_library()
    if library is not None:
        library.malloc_trim(0)
