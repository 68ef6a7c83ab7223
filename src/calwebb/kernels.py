"""Small numba building blocks shared by the per-pixel kernels of several steps."""

from __future__ import annotations

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
