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


def _numpy_multiarray():
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    return multiarray


def huge_page_advice() -> bool | None:
    """Whether numpy now advises huge pages for large arrays (None: this numpy has no such
    switch)."""
    getter = getattr(_numpy_multiarray(), "_get_madvise_hugepage", None)
    return None if getter is None else bool(getter())


def advise_huge_pages(on: bool) -> bool | None:
    """Switch numpy's huge-page advice; returns the previous setting (None: this numpy has
    no such switch, nothing changed)."""
    setter = getattr(_numpy_multiarray(), "_set_madvise_hugepage", None)
    return None if setter is None else bool(setter(on))


@contextmanager
def normal_pages() -> Iterator[None]:
    """Within the block, numpy does not advise the kernel to back large arrays with
    transparent huge pages, unless NUMPY_MADVISE_HUGEPAGE says otherwise.

    Where the kernel compacts memory on the spot to find a huge page for such advice (THP
    defrag 'madvise', a common default), a new array costs up to ~8 ms per MiB once the page
    cache fills the memory, against ~0.5 ms with normal pages; a pipeline allocates
    gigabytes."""
    previous = None if "NUMPY_MADVISE_HUGEPAGE" in os.environ else advise_huge_pages(False)
    try:
        yield
    finally:
        if previous is not None:
            advise_huge_pages(previous)


def release_freed_memory() -> None:
    """Hand the pages the C allocator keeps from freed arrays back to the system, so that a
    step's freed temporaries do not add to the next step's peak (glibc keeps large freed
    blocks once it has raised its memory-map threshold)."""
    library = _c_library()
    if library is not None:
        library.malloc_trim(0)
