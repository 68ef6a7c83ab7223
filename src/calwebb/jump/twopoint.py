"""Two-point-difference jump detection (stage1.md §3.2), one numba kernel per pixel.

For each pixel the first differences of usable groups (electrons), pooled over the
integrations, are compared with their median and with the noise expected from that median
and the read noise: all at once (single-pass mode, many differences) or by rejecting the
most deviant difference while it exceeds the threshold for the number left (iterative
mode). Differences are never stored for the whole ramp, which keeps memory at the ramp's.
Most pixels have no jump: a row's differences are sorted together, vectorised, and only the
pixels that fail the first test are searched one by one.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.kernels import column_median, median_small, sort_columns

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
               network, jumps, neighbour_sources, amplitude, keep_amplitude):
    """Flag jumps for every pixel.

    ``data`` [nints, ngroups, ny, nx] DN; ``gain`` [ny, nx]; ``read_noise_2`` = (RN·gain)² /
    NFRAMES in electrons²; ``thresholds`` = (≥4, 3, 2 usable differences); ``single_pass``
    flags everything beyond thresholds[0] at once; ``network`` = ``sorting_network(nints ·
    (ngroups - 1))``. Outputs, shaped [nints, ngroups - 1, ny, nx] (index k is the difference
    ending at group k + 1): ``jumps``; ``neighbour_sources``, jumps whose deviation lies
    strictly inside ``neighbour_limits`` (σ); ``amplitude`` (only if ``keep_amplitude``), the
    difference minus the median, in electrons.

    A row's differences are sorted all at once (``sort_columns``), which settles every pixel
    without a jump; only the others go through the pixel-by-pixel search (``_pixel_jumps``).
    """
    nints, ngroups, ny, nx = data.shape
    ndiffs = ngroups - 1
    total = nints * ndiffs
    for y in prange(ny):
        values = np.empty((total, nx), np.float32)
        counts = np.zeros(nx, np.int64)
        finite = np.ones(nx, np.bool_)
        for i in range(nints):
            for k in range(ndiffs):
                row = values[i * ndiffs + k]
                for x in range(nx):
                    usable = ((groupdq[i, k, y, x] | groupdq[i, k + 1, y, x]) & UNUSABLE) == 0
                    diff = (data[i, k + 1, y, x] - data[i, k, y, x]) * gain[y, x]
                    value = diff if single_pass else np.abs(diff)
                    row[x] = value if usable else np.inf
                    counts[x] += usable
                    finite[x] &= np.isfinite(diff) or not usable
        sort_columns(values, network)
        diffs = np.empty(total)
        magnitudes = np.empty(total)
        buffer = np.empty(total)
        for x in range(nx):
            if not gain[y, x] > 0 or counts[x] == 0:
                continue
            if finite[x] and _settled(values, counts[x], x, read_noise_2[y, x], thresholds,
                                      single_pass):
                continue
            _pixel_jumps(data, groupdq, gain, read_noise_2, thresholds, single_pass,
                         neighbour_limits, jumps, neighbour_sources, amplitude, keep_amplitude,
                         y, x, diffs, magnitudes, buffer)


@njit(cache=True, inline="always")
def _settled(values, count, x, read_noise_2, thresholds, single_pass):
    """Whether a pixel certainly has no jump, from its sorted finite usable differences
    ``values[:count, x]`` (signed in single-pass mode, magnitudes otherwise): the first test
    of ``_pixel_jumps`` passes. Its extreme deviations lie at the ends of the sorted values."""
    if single_pass:
        median = column_median(values, count, x)
        limit = thresholds[0]
    else:  # the first round of _iterate
        if count < 2:
            return True
        kept = count
        if count >= 4:  # the largest value(s) dropped
            while kept > 0 and values[kept - 1, x] == values[count - 1, x]:
                kept -= 1
            if kept == 0:
                return True
        median = values[0, x] if count == 2 else column_median(values, kept, x)
        limit = thresholds[0] if count >= 4 else (thresholds[1] if count == 3 else thresholds[2])
    sigma = np.sqrt(np.abs(median) + read_noise_2)
    if not sigma > 0:
        return True
    low = np.abs(np.float64(values[0, x]) - median) / sigma
    high = np.abs(np.float64(values[count - 1, x]) - median) / sigma
    return not max(low, high) > limit


@njit(cache=True)
def _pixel_jumps(data, groupdq, gain, read_noise_2, thresholds, single_pass, neighbour_limits,
                 jumps, neighbour_sources, amplitude, keep_amplitude, y, x, diffs, magnitudes,
                 buffer):
    """The jump search of one pixel (see ``find_jumps``); diffs/magnitudes/buffer are work
    arrays of nints · (ngroups - 1) values."""
    nints, ngroups = data.shape[:2]
    ndiffs = ngroups - 1
    total = nints * ndiffs
    g = gain[y, x]
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
        return
    median = median_small(buffer, count)
    sigma = np.sqrt(np.abs(median) + read_noise_2[y, x])
    if not sigma > 0:
        return
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


@njit(parallel=True, cache=True)
def flag_jump_groups(groupdq, jumps, sources, flag_neighbours):
    """Set JUMP_DET on the groups after ``jumps`` and, with ``flag_neighbours``, on the 4
    orthogonal neighbours of ``sources``; clear it from every SATURATED or DO_NOT_USE group.
    In place; ``jumps``/``sources`` [nints, ngroups - 1, ny, nx] as from ``find_jumps``.

    Sources are rare: rows of differences without one near them (in the row or the rows
    above and below) only look at their own jumps."""
    nints, ngroups, ny, nx = groupdq.shape
    has_source = np.zeros((nints, max(ngroups - 1, 0), ny), np.bool_)
    if flag_neighbours:
        for y in prange(ny):
            for i in range(nints):
                for k in range(ngroups - 1):
                    for x in range(nx):
                        if sources[i, k, y, x]:
                            has_source[i, k, y] = True
                            break
    for y in prange(ny):
        for i in range(nints):
            for g in range(ngroups):
                k = g - 1
                near = k >= 0 and flag_neighbours and (
                    has_source[i, k, y] or (y > 0 and has_source[i, k, y - 1])
                    or (y < ny - 1 and has_source[i, k, y + 1]))
                for x in range(nx):
                    flags = groupdq[i, g, y, x]
                    if flags & UNUSABLE:
                        groupdq[i, g, y, x] = flags & ~JUMP_DET
                    elif k >= 0 and (jumps[i, k, y, x] or near and (
                            (y > 0 and sources[i, k, y - 1, x])
                            or (y < ny - 1 and sources[i, k, y + 1, x])
                            or (x > 0 and sources[i, k, y, x - 1])
                            or (x < nx - 1 and sources[i, k, y, x + 1]))):
                        groupdq[i, g, y, x] = flags | JUMP_DET


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
