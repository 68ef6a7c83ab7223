"""Two-point-difference jump detection (stage1.md §3.2), one numba kernel per pixel.

For each pixel the first differences of usable groups (electrons), pooled over the
integrations, are compared with their median and with the noise expected from that median
and the read noise: all at once (single-pass mode, many differences) or by rejecting the
most deviant difference while it exceeds the threshold for the number left (iterative
mode). Differences are never stored for the whole ramp, which keeps memory at the ramp's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.kernels import median_small

DO_NOT_USE, SATURATED, JUMP_DET = 1, 2, 4
UNUSABLE = DO_NOT_USE | SATURATED


@njit(cache=True)
def _robust_median(values, total, buffer):
    """Median of the finite ``values``: largest value(s) dropped when ≥ 4 remain, the median
    of 3, the smaller of 2, NaN below 2."""
    count = 0
    largest = -np.inf
    for j in range(total):
        if np.isfinite(values[j]):
            buffer[count] = values[j]
            largest = max(largest, values[j])
            count += 1
    if count < 2:
        return np.nan
    if count == 2:
        return min(buffer[0], buffer[1])
    if count >= 4:
        kept = 0
        for j in range(count):
            if buffer[j] != largest:
                buffer[kept] = buffer[j]
                kept += 1
        count = kept
        if count == 0:
            return np.nan
    return median_small(buffer, count)


@njit(parallel=True, cache=True)
def find_jumps(data, groupdq, gain, read_noise_2, thresholds, single_pass, neighbour_limits,
               jumps, neighbour_sources, amplitude, keep_amplitude):
    """Flag jumps for every pixel.

    ``data`` [nints, ngroups, ny, nx] DN; ``gain`` [ny, nx]; ``read_noise_2`` = (RN·gain)² /
    NFRAMES in electrons²; ``thresholds`` = (≥4, 3, 2 usable differences); ``single_pass``
    flags everything beyond thresholds[0] at once. Outputs, shaped [nints, ngroups - 1, ny,
    nx] (index k is the difference ending at group k + 1): ``jumps``; ``neighbour_sources``,
    jumps whose deviation lies strictly inside ``neighbour_limits`` (σ); ``amplitude`` (only
    if ``keep_amplitude``), the difference minus the median, in electrons.
    """
    nints, ngroups, ny, nx = data.shape
    ndiffs = ngroups - 1
    total = nints * ndiffs
    for y in prange(ny):
        diffs = np.empty(total)
        magnitudes = np.empty(total)
        buffer = np.empty(total)
        for x in range(nx):
            g = gain[y, x]
            if not g > 0:
                continue
            count = 0
            for i in range(nints):
                for k in range(ndiffs):
                    j = i * ndiffs + k
                    if groupdq[i, k, y, x] & UNUSABLE or groupdq[i, k + 1, y, x] & UNUSABLE:
                        diffs[j] = np.nan
                    else:
                        diffs[j] = (data[i, k + 1, y, x] - data[i, k, y, x]) * g
                        buffer[count] = diffs[j]
                        count += 1
                    magnitudes[j] = np.abs(diffs[j])
            if count == 0:
                continue
            median = median_small(buffer, count)
            sigma = np.sqrt(np.abs(median) + read_noise_2[y, x])
            if not sigma > 0:
                continue
            if single_pass:
                for j in range(total):
                    if np.isfinite(diffs[j]) and np.abs(diffs[j] - median) / sigma > thresholds[0]:
                        jumps[j // ndiffs, j % ndiffs, y, x] = True
            else:
                _iterate(magnitudes, total, ndiffs, read_noise_2[y, x], thresholds, buffer,
                         jumps[:, :, y, x])
            for j in range(total):
                i, k = j // ndiffs, j % ndiffs
                if not jumps[i, k, y, x]:
                    continue
                ratio = np.abs(diffs[j] - median) / sigma
                if neighbour_limits[0] < ratio < neighbour_limits[1]:
                    neighbour_sources[i, k, y, x] = True
                if keep_amplitude:
                    amplitude[i, k, y, x] = diffs[j] - median


@njit(cache=True)
def _iterate(magnitudes, total, ndiffs, read_noise_2, thresholds, buffer, flags):
    """Reject the most deviant |difference| while it exceeds the threshold for the count."""
    for _ in range(total):
        usable = 0
        for j in range(total):
            usable += np.isfinite(magnitudes[j])
        if usable < 2:
            return
        median = _robust_median(magnitudes, total, buffer)
        sigma = np.sqrt(np.abs(median) + read_noise_2)
        if not sigma > 0:
            return
        largest = -1.0
        for j in range(total):
            if np.isfinite(magnitudes[j]):
                largest = max(largest, np.abs(magnitudes[j] - median) / sigma)
        limit = thresholds[0] if usable >= 4 else (thresholds[1] if usable == 3 else thresholds[2])
        if not largest > limit:
            return
        for j in range(total):
            if np.isfinite(magnitudes[j]) and np.abs(magnitudes[j] - median) / sigma == largest:
                flags[j // ndiffs, j % ndiffs] = True
                magnitudes[j] = np.nan


def flag_neighbours(groupdq: np.ndarray, sources: np.ndarray) -> None:
    """JUMP_DET on the 4 orthogonal neighbours of ``sources`` (groups ≥ 1) unless SAT/DNU."""
    spread = np.zeros_like(sources)
    spread[..., 1:, :] |= sources[..., :-1, :]
    spread[..., :-1, :] |= sources[..., 1:, :]
    spread[..., :, 1:] |= sources[..., :, :-1]
    spread[..., :, :-1] |= sources[..., :, 1:]
    target = groupdq[:, 1:]
    allowed = (target & UNUSABLE) == 0
    target[spread & allowed] |= np.uint8(JUMP_DET)


def flag_after_jumps(groupdq: np.ndarray, amplitude: np.ndarray, jumps: np.ndarray,
                     threshold: float, n_groups: int) -> None:
    """Flag the ``n_groups`` groups after each jump of at least ``threshold`` electrons."""
    if n_groups <= 0:
        return
    with np.errstate(invalid="ignore"):
        big = jumps & (amplitude >= threshold)
    ngroups = groupdq.shape[1]
    for offset in range(1, n_groups + 1):
        target = groupdq[:, 1 + offset:]
        if target.shape[1] == 0:
            break
        source = big[:, : ngroups - 1 - offset]
        allowed = (target & UNUSABLE) == 0
        target[source & allowed] |= np.uint8(JUMP_DET)
