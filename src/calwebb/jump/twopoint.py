"""Two-point-difference jump detection (stage1.md §3.2), in numba.

Work is per pixel in electrons: first differences of the usable groups, pooled over the
integrations, compared with a robust median and the noise expected from it and the read
noise. Neighbour and after-jump flags are applied afterwards with array operations.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

DO_NOT_USE, SATURATED, JUMP_DET = 1, 2, 4


@njit(cache=True)
def _robust_median(values, count):
    """Median of the first ``count`` finite values with the largest removed when ≥ 4 remain
    (all of its copies), the median of 3, the smaller of 2, NaN below 2."""
    finite = values[:count][np.isfinite(values[:count])]
    n = finite.size
    if n < 2:
        return np.nan
    if n == 2:
        return finite.min()
    if n >= 4:
        finite = finite[finite != finite.max()]
        if finite.size == 0:
            return np.nan
    return np.median(finite)


@njit(parallel=True, cache=True)
def detect_jumps_iterative(diffs, read_noise_2, thresholds, flagged):
    """Iteratively flag the most deviant difference per pixel while it exceeds its threshold.

    ``diffs`` [nints, ndiffs, ny, nx] electrons (NaN = unusable); ``read_noise_2`` [ny, nx]
    = RN²/NFRAMES; ``thresholds`` = (≥4 usable, 3 usable, 2 usable); ``flagged`` (bool, same
    shape as diffs) receives the jumps.
    """
    nints, ndiffs, ny, nx = diffs.shape
    total = nints * ndiffs
    for y in prange(ny):
        values = np.empty(total)
        for x in range(nx):
            for i in range(nints):
                for k in range(ndiffs):
                    values[i * ndiffs + k] = np.abs(diffs[i, k, y, x])
            for _ in range(total):
                usable = 0
                for j in range(total):
                    usable += np.isfinite(values[j])
                if usable < 2:
                    break
                median = _robust_median(values, total)
                sigma = np.sqrt(np.abs(median) + read_noise_2[y, x])
                if not sigma > 0:
                    break
                largest = -1.0
                for j in range(total):
                    if np.isfinite(values[j]):
                        largest = max(largest, np.abs(values[j] - median) / sigma)
                limit = thresholds[0] if usable >= 4 else (
                    thresholds[1] if usable == 3 else thresholds[2])
                if not largest > limit:
                    break
                for j in range(total):
                    if np.isfinite(values[j]) and np.abs(values[j] - median) / sigma == largest:
                        flagged[j // ndiffs, j % ndiffs, y, x] = True
                        values[j] = np.nan


@njit(parallel=True, cache=True)
def median_and_sigma(diffs, read_noise_2):
    """Per-pixel median of all usable differences and the noise σ expected from it (NaN if 0)."""
    nints, ndiffs, ny, nx = diffs.shape
    median = np.full((ny, nx), np.nan)
    sigma = np.full((ny, nx), np.nan)
    for y in prange(ny):
        values = np.empty(nints * ndiffs)
        for x in range(nx):
            count = 0
            for i in range(nints):
                for k in range(ndiffs):
                    value = diffs[i, k, y, x]
                    if np.isfinite(value):
                        values[count] = value
                        count += 1
            if count:
                median[y, x] = np.median(values[:count])
                noise = np.sqrt(np.abs(median[y, x]) + read_noise_2[y, x])
                sigma[y, x] = noise if noise > 0 else np.nan
    return median, sigma


def detect_jumps_single_pass(diffs, median, sigma, threshold) -> np.ndarray:
    """Every difference more than ``threshold`` σ from the pixel's median (bool array)."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(diffs) & (np.abs(diffs - median) / sigma > threshold)


def flag_neighbours(groupdq: np.ndarray, sources: np.ndarray) -> None:
    """JUMP_DET on the 4 orthogonal neighbours of ``sources`` (groups ≥ 1) unless SAT/DNU."""
    spread = np.zeros_like(sources)
    spread[..., 1:, :] |= sources[..., :-1, :]
    spread[..., :-1, :] |= sources[..., 1:, :]
    spread[..., :, 1:] |= sources[..., :, :-1]
    spread[..., :, :-1] |= sources[..., :, 1:]
    target = groupdq[:, 1:]
    allowed = (target & (SATURATED | DO_NOT_USE)) == 0
    target[spread & allowed] |= np.uint8(JUMP_DET)


def flag_after_jumps(groupdq: np.ndarray, amplitude: np.ndarray, jumps: np.ndarray,
                     threshold: float, n_groups: int) -> None:
    """Flag the ``n_groups`` groups after each jump of at least ``threshold`` electrons."""
    if n_groups <= 0:
        return
    big = jumps & (amplitude >= threshold)
    ngroups = groupdq.shape[1]
    for offset in range(1, n_groups + 1):
        target = groupdq[:, 1 + offset:]
        if target.shape[1] == 0:
            break
        source = big[:, : ngroups - 1 - offset]
        allowed = (target & (SATURATED | DO_NOT_USE)) == 0
        target[source & allowed] |= np.uint8(JUMP_DET)
