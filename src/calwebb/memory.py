"""Process-wide memory policies of a calwebb run: how numpy's large arrays are backed, how
the C allocator keeps freed memory for reuse, handing freed memory (or the pages of values
no longer needed) back to the system, and which objects the cyclic garbage collector
walks."""

from __future__ import annotations

import ctypes
import functools
import gc
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

#: glibc ``mallopt`` parameters
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the allocator's heap, where a freed block is reused
#: without new page faults (the value glibc's own adaptive threshold stops at on 64-bit
#: systems, so a long session ends up there anyway); larger arrays keep their own maps
HEAP_BLOCK_BYTES = 32 * 2**20
#: free memory the heap keeps during a run instead of returning it at once
KEPT_FREE_BYTES = 2**30
#: glibc's trim threshold that goes with HEAP_BLOCK_BYTES (twice it), restored after a run
TRIM_AFTER_RUN_BYTES = 2 * HEAP_BLOCK_BYTES
#: free memory a heap keeps while worker threads share out a large correction (below the
#: 64 MiB of a thread's whole heap)
THREAD_TRIM_BYTES = 16 * 2**20


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


@contextmanager
def reused_memory() -> Iterator[None]:
    """Within the block, memory freed by one band or step is reused by the next without new
    page faults: blocks up to HEAP_BLOCK_BYTES come from glibc's heap, which keeps up to
    KEPT_FREE_BYTES free; afterwards the heap trims at TRIM_AFTER_RUN_BYTES again and the
    kept memory is handed back. Unless MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ is
    set (the user's choice), or the C library is not glibc.

    By default glibc gives blocks of tens of MB their own memory maps, returned on free, so
    every tile of a run faulted its arrays' pages in anew (160 000 page faults for a 275 MiB
    MIRI Detector1 run, 55 000 with this policy)."""
    with _heap_thresholds(KEPT_FREE_BYTES):
        yield


@contextmanager
def thread_heaps_trimmed() -> Iterator[None]:
    """Within the block, blocks up to HEAP_BLOCK_BYTES come from glibc's heaps as in
    ``reused_memory``, but a heap hands back what it has free beyond THREAD_TRIM_BYTES as
    blocks are freed; afterwards as after ``reused_memory`` (same conditions).

    Left alone, glibc raises its trim threshold with its memory-map threshold, up to 64 MiB:
    the size of a worker thread's whole heap, which then never shrinks, so what the thread
    freed stays resident after it has ended (``malloc_trim`` does not reach it): 59 MiB after
    the IRS2 correction's threads, carried through the steps after it."""
    with _heap_thresholds(THREAD_TRIM_BYTES):
        yield


@contextmanager
def _heap_thresholds(trim_bytes: int) -> Iterator[None]:
    """glibc's memory-map threshold at HEAP_BLOCK_BYTES and its trim threshold at
    ``trim_bytes`` within the block (see ``reused_memory``)."""
    library = _c_library()
    if library is None or {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & set(os.environ):
        yield
        return
    library.mallopt(M_MMAP_THRESHOLD, HEAP_BLOCK_BYTES)
    library.mallopt(M_TRIM_THRESHOLD, trim_bytes)
    try:
        yield
    finally:
        library.mallopt(M_TRIM_THRESHOLD, TRIM_AFTER_RUN_BYTES)
        release_freed_memory()


_frozen_lock = threading.Lock()
_frozen_depth = 0
_frozen_by_us = False


@contextmanager
def old_objects_frozen() -> Iterator[None]:
    """Within the block, Python's cyclic garbage collector leaves alone the objects that
    existed before it (modules, classes, the libraries' tables): they wait in its permanent
    generation (``gc.freeze``) and go back to the oldest one afterwards (``gc.unfreeze``).

    After astropy, gwcs, asdf and numba are imported, a full collection walks about a
    million such objects (50–120 ms; a run set off one to eight) to find almost nothing.
    Garbage among the frozen objects is collected after the block instead of during it.
    Nested blocks (or blocks in several threads) freeze once; nothing is done when the
    application has frozen objects itself."""
    global _frozen_depth, _frozen_by_us
    with _frozen_lock:
        if _frozen_depth == 0:
            _frozen_by_us = gc.get_freeze_count() == 0
            if _frozen_by_us:
                gc.freeze()
        _frozen_depth += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0 and _frozen_by_us:
                gc.unfreeze()
                _frozen_by_us = False


def release_freed_memory() -> None:
    """Hand the pages the C allocator keeps from freed arrays back to the system, so that a
    step's freed temporaries do not add to the next step's peak (glibc keeps large freed
    blocks once it has raised its memory-map threshold)."""
    library = _c_library()
    if library is not None:
        library.malloc_trim(0)


#: ``madvise`` advice: the pages' content is not needed (anonymous memory reads as zeros)
MADV_DONTNEED = 4


def release_pages(array: np.ndarray) -> None:
    """Hand the whole memory pages inside C-contiguous ``array`` back to the system at once
    (``madvise(MADV_DONTNEED)``), for values that will not be read again: the array's
    memory stays valid, but its values there are undefined afterwards (zeros, or a file's
    content under a private file mapping). Nothing is done where the C library is not
    glibc."""
    library = _c_library()
    if library is None or not array.flags.c_contiguous:
        return
    page = mmap.PAGESIZE
    start = -(-array.ctypes.data // page) * page
    stop = (array.ctypes.data + array.nbytes) // page * page
    if stop > start:
        library.madvise(ctypes.c_void_p(start), ctypes.c_size_t(stop - start), MADV_DONTNEED)
