"""Small numba building blocks shared by the per-pixel kernels of several steps, the
thread count those kernels run with, and running work beside them in another thread."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numba
import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def sort_small(values, count):
    """Insertion-sort ``values[:count]`` in place: far faster than a general sort for the
    handful of groups or differences a pixel has."""
    for i in range(1, count):
        current = values[i]
        j = i - 1
        while j >= 0 and values[j] > current:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = current


@njit(cache=True)
def median_small(values, count):
    """Median of ``values[:count]`` (reordered in place); ``count`` must be at least 1."""
    sort_small(values, count)
    middle = count // 2
    return values[middle] if count % 2 else 0.5 * (values[middle - 1] + values[middle])


def warm_up() -> None:
    """Load numba's machinery for compiled code now (its first cached function takes
    ~0.25 s), e.g. while CRDS is asked in another process."""
    median_small(np.zeros(1), 1)


def float32_words(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the bits of float32 ``values`` as native uint32 words, whether they are stored
    byte-swapped): how a kernel reads float32 data of either byte order, such as a memory
    map of a big-endian FITS image, without a converted copy (see ``native_row``)."""
    return values.view(np.uint32), not values.dtype.isnative


@njit(cache=True, inline="always")
def native_row(words, swapped, bits):
    """Copy a row of ``float32_words`` into ``bits`` (uint32, viewed as float32 by the
    caller) in native byte order."""
    for x in range(bits.size):
        word = words[x]
        if swapped:
            word = (((word >> 24) & 0xFF) | ((word >> 8) & 0xFF00) | ((word << 8) & 0xFF0000)
                    | ((word << 24) & 0xFF000000))
        bits[x] = word


def sorting_network(n: int) -> np.ndarray:
    """Comparators (i, j), i < j < n, [count, 2], that sort n values: Batcher's odd-even merge
    sort of the next power of two, without the comparators beyond n (only +inf sits there,
    so they would never swap)."""
    size = 1
    while size < n:
        size *= 2
    pairs = []
    merge = 1
    while merge < size:
        step = merge
        while step >= 1:
            for start in range(step % merge, size - step, 2 * step):
                for i in range(start, min(start + step, size - step)):
                    j = i + step
                    if i // (2 * merge) == j // (2 * merge) and j < n:
                        pairs.append((i, j))
            step //= 2
        merge *= 2
    return np.array(pairs, np.int64).reshape(-1, 2)


@njit(cache=True)
def sort_columns(values, network):
    """Sort every column of ``values`` [n, m] in place with a ``sorting_network(n)``,
    vectorised along the rows: far faster than sorting pixel by pixel. NaN-free values only;
    +inf sorts last."""
    for c in range(network.shape[0]):
        low = values[network[c, 0]]
        high = values[network[c, 1]]
        for x in range(values.shape[1]):
            a, b = low[x], high[x]
            low[x] = min(a, b)
            high[x] = max(a, b)


@njit(cache=True, inline="always")
def column_median(values, count, x):
    """Median of the sorted ``values[:count, x]`` as ``median_small`` gives it (float64)."""
    middle = count // 2
    if count % 2:
        return np.float64(values[middle, x])
    return 0.5 * (np.float64(values[middle - 1, x]) + np.float64(values[middle, x]))


def resolve_cores(maximum_cores: str, available: int | None = None) -> int:
    """Threads for 'none', 'quarter', 'half', 'all' or a number (at least 1)."""
    available = available or os.cpu_count() or 1
    fractions = {"none": 0.0, "quarter": 0.25, "half": 0.5, "all": 1.0}
    text = str(maximum_cores).strip().lower()
    if text in fractions:
        return max(1, int(available * fractions[text]))
    return max(1, min(int(text), available))


@contextmanager
def limited_threads(maximum_cores: str):
    """Run numba kernels on the number of threads ``maximum_cores`` allows."""
    previous = numba.get_num_threads()
    numba.set_num_threads(resolve_cores(maximum_cores, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@contextmanager
def in_threads(calls):
    """Run each ``(function, args)`` of ``calls`` in a thread of its own for the duration of
    the block, which begins once every thread is making its call. Kernels compiled with
    ``nogil=True`` hold no interpreter lock once called, so a C routine that holds it for its
    whole run (the ``drizzle`` package's) can run in the block side by side with them; started
    the other way round, they would wait for it. The first exception of a call, if any, is
    raised when the block ends."""
    failures, threads = [], []
    for function, args in calls:
        calling = threading.Event()

        def target(function=function, args=args, calling=calling):
            calling.set()
            try:
                function(*args)
            except BaseException as error:  # re-raised in the calling thread
                failures.append(error)

        thread = threading.Thread(target=target, name=f"calwebb-{function.__name__}")
        thread.start()
        threads.append((thread, calling))
    try:
        for _, calling in threads:
            calling.wait()
        yield
    finally:
        for thread, _ in threads:
            thread.join()
    if failures:
        raise failures[0]

