"""The 'sequential' EMI algorithm: clean the ramps, bin them by EMI phase, subtract a
phased waveform.

For one frequency: every integration is reduced to a residual image per group (a crude
straight-line ramp and a self-made bias removed, the four output channels averaged), every
residual is placed on the EMI cycle by its read time, and the residuals are averaged
(sigma-clipped) in phase bins to give the data's own waveform. That waveform, or a
reference waveform aligned to it by cross-correlation (and optionally scaled to it), is
looked up at each pixel's phase and subtracted from all four channels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numba import njit

from calwebb.emicorr import clocking

#: bins are capped: more than this many become MAX_BINS_REPLACEMENT
MAX_BINS = 501
MAX_BINS_REPLACEMENT = 500
#: sigma clipping of each phase bin: ±3 std about the median, at most 5 passes
CLIP_SIGMA = 3.0
CLIP_ITERATIONS = 5


def line_fit(ramps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(slope, intercept) per pixel of a least-squares line through ``ramps`` [n, ny, nx]
    against group index 0..n-1 (float64; NaN where n < 2)."""
    n = ramps.shape[0]
    sum_ty = np.zeros(ramps.shape[1:])
    sum_y = np.zeros(ramps.shape[1:])
    sum_t = sum_tt = 0.0
    for index in range(n):
        time = np.float64(index)  # a float64 scalar keeps float32 frames in float64
        sum_ty = sum_ty + time * ramps[index]
        sum_y = sum_y + ramps[index]
        sum_t += time
        sum_tt += time**2
    with np.errstate(invalid="ignore", divide="ignore"):
        determinant = n * sum_tt - sum_t * sum_t
        slope = (n * sum_ty - sum_t * sum_y) / determinant
        intercept = (sum_tt * sum_y - sum_t * sum_ty) / determinant
    return slope, intercept


def stack_level(frames: np.ndarray) -> np.ndarray:
    """Per-pixel median of a stack of frames; the minimum when there are two or fewer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if frames.shape[0] <= 2:
            return np.nanmin(frames, axis=0)
        if not np.isnan(frames).any():
            return np.median(frames, axis=0)  # the same values, far faster
        return np.nanmedian(frames, axis=0)


def channel_residuals(ramps: np.ndarray) -> np.ndarray:
    """EMI residuals of one integration [ngroups, ny, nx] → [ngroups, ny, nx/4] (float64).

    The straight line through the inner groups (all but the first and the last) is
    removed, then the median (or minimum) of the inner groups as a bias; the four output
    channels are averaged; column groups 1 and 2 (the bad reference column) are replaced by
    the mean of groups 0 and 3; each group's median is removed. Arithmetic stays in the data's
    float32 where the official code does.
    """
    ngroups, ny, nx = ramps.shape
    nx4 = nx // 4
    slope, _ = line_fit(ramps[1:ngroups - 1])
    cleaned = np.empty_like(ramps)
    for group in range(ngroups):
        cleaned[group] = ramps[group] - slope * group
    cleaned -= stack_level(cleaned[1:ngroups - 1])
    channels = cleaned[..., :nx4 * 4].reshape(ngroups, ny, nx4, 4)
    averaged = (channels[..., 0] + channels[..., 1] + channels[..., 2] + channels[..., 3]) / 4.0
    patched = (averaged[:, :, 0] + averaged[:, :, 3]) / 2
    averaged[:, :, 1] = patched
    averaged[:, :, 2] = patched
    levels = np.median(averaged.reshape(ngroups, -1), axis=1)
    return (averaged - levels[:, None, None]).astype(np.float64)


def bin_by_phase(phases: np.ndarray, values: np.ndarray, nbins: int) -> np.ndarray:
    """Sigma-clipped (3σ, 5 iterations, about the median) mean of ``values`` in each of
    ``nbins`` phase bins ``(b/nbins, (b+1)/nbins]``; NaN for an empty bin."""
    edges = np.arange(nbins + 1) / nbins
    bins = np.searchsorted(edges, phases.ravel(), side="left") - 1
    flat = values.ravel()
    return _clipped_means(bins, flat, nbins)


@njit(cache=True)
def _clipped_means(bins, values, nbins):
    """Per bin: the mean after iterative clipping at median ± 3 std (ddof 0), at most 5
    passes, stopping when a pass removes nothing; non-finite values and bins outside
    0..nbins-1 are ignored. Each bin's values are sorted once, so the kept values are
    always a contiguous run of them."""
    counts = np.zeros(nbins + 1, np.int64)
    for position in range(bins.shape[0]):
        index = bins[position]
        if 0 <= index < nbins and np.isfinite(values[position]):
            counts[index + 1] += 1
    bounds = np.cumsum(counts)
    fill = bounds[:-1].copy()
    sorted_values = np.empty(bounds[-1])
    for position in range(bins.shape[0]):
        index = bins[position]
        if 0 <= index < nbins and np.isfinite(values[position]):
            sorted_values[fill[index]] = values[position]
            fill[index] += 1
    means = np.full(nbins, np.nan)
    for index in range(nbins):
        sorted_values[bounds[index]:bounds[index + 1]].sort()
        low, high = bounds[index], bounds[index + 1]
        if high <= low:
            continue
        for _ in range(CLIP_ITERATIONS):
            run = sorted_values[low:high]
            count = high - low
            middle = count // 2
            median = run[middle] if count % 2 else 0.5 * (run[middle - 1] + run[middle])
            deviation = np.std(run)
            lower, upper = median - CLIP_SIGMA * deviation, median + CLIP_SIGMA * deviation
            new_low, new_high = low, high
            while new_low < new_high and sorted_values[new_low] < lower:
                new_low += 1
            while new_high > new_low and sorted_values[new_high - 1] > upper:
                new_high -= 1
            changed = (new_low != low) or (new_high != high)
            low, high = new_low, new_high
            if not changed or high <= low:
                break
        if high > low:
            means[index] = np.mean(sorted_values[low:high])
    return means


def resample_nearest(values: np.ndarray, length: float) -> np.ndarray:
    """``values`` stretched to ``length`` samples (fractional lengths allowed) by taking the
    element at or below each new position: element ``floor(k · n/length)`` for
    ``k < ceil(n / (n/length))``."""
    n = values.shape[0]
    step = float(n) / length
    count = math.ceil(n / step)
    return values[(np.arange(count) * step).astype(np.int32)]


def best_circular_shift(reference: np.ndarray, target: np.ndarray) -> int:
    """The roll of ``reference`` with the highest Pearson correlation to ``target`` (same
    length); the first NaN wins as with ``argmax`` when a correlation is undefined."""
    n = reference.shape[0]
    rolled = reference[(np.arange(n)[None, :] - np.arange(n)[:, None]) % n].astype(np.float64)
    centred = rolled - rolled.mean(axis=1, keepdims=True)
    target = target.astype(np.float64) - target.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = (centred @ target) / np.sqrt(
            (centred**2).sum(axis=1) * (target**2).sum())
    return int(np.argmax(correlation))


def amplitude_ratio(model: np.ndarray, data: np.ndarray) -> float:
    """Slope of the least-squares line ``data ≈ m · model + b``; NaN if it is undefined."""
    count = min(model.shape[0], data.shape[0])
    x, y = model[:count].astype(np.float64), data[:count].astype(np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.polyfit(x, y, 1)[0])


def phased_waveform(residuals: np.ndarray, phases: np.ndarray, period: float,
                    nbins: int | None) -> np.ndarray:
    """The data's binned waveform (zero median), the "phase amplitudes" of a reference."""
    count = int(period / 2.0) if nbins is None else nbins
    if count > MAX_BINS:
        count = MAX_BINS_REPLACEMENT
    waveform = bin_by_phase(phases, residuals, count)
    return waveform - np.median(waveform)


def lookup_table(waveform: np.ndarray, period: float, reference: np.ndarray | None,
                 scale_reference: bool) -> np.ndarray:
    """The noise value per whole clock of one period: the data's waveform, or the reference
    waveform rolled into phase with it (scaled to its amplitude if asked)."""
    table = resample_nearest(waveform, period)
    if reference is None:
        return table
    reference = np.asarray(reference)
    shift = best_circular_shift(reference, resample_nearest(waveform, reference.shape[0]))
    aligned = resample_nearest(np.roll(reference, shift), period)
    if scale_reference:
        aligned = aligned * np.float64(amplitude_ratio(aligned, table))
    return aligned


def subtract_noise(ramps: np.ndarray, table: np.ndarray, phases: np.ndarray,
                   period: float) -> None:
    """Subtract ``table`` looked up at each column group's phase from all four channels of
    ``ramps`` [ngroups, ny, nx] (one integration), in place."""
    noise = table[(phases * period).astype(int)]
    noise[~np.isfinite(noise)] = 0.0
    for channel in range(4):
        ramps[..., channel::4] -= noise


def integrations_to_phase(nints_to_phase: int | None, use_n_cycles: int | None, nints: int,
                          ngroups: int, period: float, frameclocks: int) -> int:
    """Integrations used to build the waveform: all if both settings are None, else enough
    for ``use_n_cycles`` EMI cycles (rounded up), else ``nints_to_phase``."""
    if nints_to_phase is None and use_n_cycles is None:
        return nints
    if nints_to_phase is None:
        return int(np.ceil((use_n_cycles * period) / (frameclocks * ngroups)))
    if use_n_cycles == 3:
        return min(nints_to_phase, nints)
    return nints_to_phase


def correct_frequency(data: np.ndarray, frequency: float, reference: np.ndarray | None,
                      nsamples: int, rowclocks: int, frameclocks: int, readpatt: str,
                      last_column_is_reference: bool, nints_to_phase: int, nbins: int | None,
                      scale_reference: bool) -> np.ndarray:
    """Remove one frequency from ``data`` [nints, ngroups, ny, nx] in place; returns the
    data's binned waveform (for an on-the-fly reference file)."""
    nints, ngroups, ny, nx = data.shape
    nx4 = nx // 4
    period = clocking.period_in_clocks(frequency)
    between = clocking.reset_clocks(readpatt, frameclocks)

    def phases_of(integration):
        return clocking.integration_phases(integration, ngroups, ny, nx4, nsamples, rowclocks,
                                           between, period, last_column_is_reference)

    used = range(nints)[:nints_to_phase]
    residuals = np.stack([channel_residuals(data[index]) for index in used]) if len(used) else (
        np.zeros((0, ngroups, ny, nx4)))
    phases = np.stack([phases_of(index) for index in used]) if len(used) else residuals
    waveform = phased_waveform(residuals, phases, period, nbins)
    del residuals, phases
    table = lookup_table(waveform, period, reference, scale_reference)
    for integration in range(nints):
        subtract_noise(data[integration], table, phases_of(integration), period)
    return waveform
