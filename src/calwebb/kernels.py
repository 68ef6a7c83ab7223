"""Small numba building blocks shared by the per-pixel kernels of several steps, and the
thread count those kernels run with."""

from __future__ import annotations

import os
from contextlib import contextmanager

import numba
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
