"""Ordinary least-squares ramp fitting with optimal weighting (stage1.md §4), in numba.

Everything per pixel happens in one compiled kernel, parallel over rows: segment the
ramp at jumps and unusable groups, fit each segment with the signal-to-noise-dependent
weights, and combine segments and integrations by inverse read-noise variance.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.kernels import median_small

DO_NOT_USE, SATURATED, JUMP_DET, PERSISTENCE, CHARGELOSS = 1, 2, 4, 32, 128
LARGE_VARIANCE = 1e6
#: S/N thresholds and the weighting exponent above each (Fixsen et al. 2000)
SNR_EDGES = np.array([5.0, 10.0, 20.0, 50.0, 100.0])
EXPONENTS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0])


def weight_table(ngroups: int) -> np.ndarray:
    """w[p, n, i] = |(i - m)/m|^P for exponent index p, segment length n, sample i."""
    table = np.zeros((EXPONENTS.size, ngroups + 1, ngroups))
    for p, power in enumerate(EXPONENTS):
        for n in range(3, ngroups + 1):
            middle = (n - 1) / 2.0
            table[p, n, :n] = np.abs((np.arange(n) - middle) / middle) ** power
    return table


@njit(cache=True)
def _exponent_index(snr):
    index = 0
    for edge in range(SNR_EDGES.size):
        if snr >= SNR_EDGES[edge]:
            index = edge + 1
    return index


@njit(cache=True)
def _segments(dq, starts, lengths):
    """Segments of a ramp's group DQ; returns how many were written into starts/lengths."""
    ngroups = dq.size
    count = 0
    group = 0
    while group < ngroups:
        if dq[group] != 0:
            group += 1
            continue
        first = group
        while group < ngroups and dq[group] == 0:
            group += 1
        if first > 0 and dq[first - 1] == JUMP_DET:
            first -= 1
        starts[count] = first
        lengths[count] = group - first
        count += 1
    longest = 0
    for index in range(count):
        longest = max(longest, lengths[index])
    if longest == 1:
        return min(count, 1)
    kept = 0
    for index in range(count):
        if lengths[index] >= 2:
            starts[kept] = starts[index]
            lengths[kept] = lengths[index]
            kept += 1
    return kept


@njit(cache=True)
def _fit_segment(values, start, n, read_noise, gain, weights):
    """Slope in DN per group of ``values[start:start+n]`` (n ≥ 3), optimally weighted.

    The weights' common 1/r² factor cancels in the slope and is left out.
    """
    signal = (values[start + n - 1] - values[start]) * gain
    denominator = read_noise * read_noise + signal
    snr = 0.0
    if gain != 0 and denominator > 0 and signal > 0:
        snr = signal / np.sqrt(denominator)
    row = weights[_exponent_index(snr), n]
    sw = sx = sxx = sy = sxy = 0.0
    for i in range(n):
        weight = row[i]
        x = float(start + i)
        y = values[start + i]
        if np.isnan(y):
            y = 0.0
        sw += weight
        sx += weight * x
        sxx += weight * x * x
        sy += weight * y
        sxy += weight * x * y
    return (sw * sxy - sx * sy) / (sw * sxx - sx * sx)


@njit(cache=True)
def _median_rate(ramp, dq, tgroup):
    """The integration's median group-to-group rate (DN/s), as used for Poisson noise."""
    ngroups = ramp.size
    diffs = np.empty(max(ngroups - 1, 1))
    count = 0
    for group in range(ngroups - 1):
        if dq[group] & (DO_NOT_USE | SATURATED) or dq[group + 1] & (DO_NOT_USE | SATURATED):
            continue
        if dq[group + 1] & JUMP_DET:
            continue
        diffs[count] = (ramp[group + 1] - ramp[group]) / tgroup
        count += 1
    if count == 0:
        if ngroups > 0 and not dq[0] & (DO_NOT_USE | SATURATED):
            value = ramp[0] / tgroup
            return 0.0 if np.isnan(value) else value
        return 0.0
    value = median_small(diffs, count)
    return 0.0 if np.isnan(value) else value


@njit(cache=True)
def _load_integration(data, groupdq, zeroframe, has_zeroframe, i, y, x, suppress_one_group,
                      tframe, one_group_time, ramp, dq, relaxed):
    """Fill ramp, dq (PERSISTENCE ignored, one-good-group ramps suppressed) and relaxed (dq
    with CHARGELOSS groups usable) for integration i of a pixel.

    Returns (special timing or 0, group flags to carry to the DQ, any CHARGELOSS). The special
    timings, only without suppression: one_group_time when group 0 is the only good group,
    tframe when no group is good and a non-zero ZEROFRAME value replaces group 0.
    """
    ngroups = ramp.size
    flags = 0
    good_count = 0
    any_charge_loss = False
    for k in range(ngroups):
        ramp[k] = data[i, k, y, x]
        raw = groupdq[i, k, y, x]
        dq[k] = raw & ~PERSISTENCE
        relaxed[k] = dq[k] & ~(DO_NOT_USE | CHARGELOSS) if raw & CHARGELOSS else dq[k]
        any_charge_loss |= (raw & CHARGELOSS) != 0
        flags |= raw & (JUMP_DET | PERSISTENCE | SATURATED)
        good_count += dq[k] == 0
    special_time = 0.0
    if suppress_one_group:
        if ngroups > 1 and good_count == 1:
            for k in range(ngroups):
                dq[k] |= DO_NOT_USE
    elif good_count == 1 and dq[0] == 0:
        special_time = one_group_time
    elif good_count == 0 and has_zeroframe and zeroframe[i, y, x] != 0:
        ramp[0] = zeroframe[i, y, x]
        dq[0] = 0
        special_time = tframe
    return special_time, flags, any_charge_loss


@njit(cache=True)
def _poisson_rate(data, groupdq, zeroframe, has_zeroframe, y, x, suppress_one_group, tgroup,
                  tframe, one_group_time, dark, ramp, dq, relaxed):
    """Count rate (DN/s) behind a pixel's Poisson variance: dark plus the positive part of the
    mean over integrations of their median rates. ramp/dq/relaxed are work arrays."""
    nints, ngroups = data.shape[:2]
    median = 0.0
    for i in range(nints):
        special_time, _, _ = _load_integration(
            data, groupdq, zeroframe, has_zeroframe, i, y, x, suppress_one_group, tframe,
            one_group_time, ramp, dq, relaxed)
        if ngroups == 1:  # a saturated group spoils the mean
            median += np.nan if dq[0] & SATURATED else ramp[0] / one_group_time
        elif special_time > 0:
            median += ramp[0] / special_time
        else:
            median += _median_rate(ramp, dq, tgroup)
    median /= nints
    return dark + (median if median > 0 else 0.0)


@njit(cache=True, inline="always")
def _guarded(variance):
    """Variances from nearly unconstrained fits are reported as 0."""
    return variance if variance < LARGE_VARIANCE else 0.0


@njit(cache=True)
def _variances(n, t, read_noise, gain, poisson_rate):
    """(read-noise, Poisson) variance of a segment of n groups, in (DN/s)²."""
    if gain <= 0 or np.isnan(gain):
        return 0.0, 0.0
    if n >= 3:
        var_r = 12.0 * read_noise ** 2 / ((n ** 3 - n) * t * t * gain * gain)
        var_p = poisson_rate / (t * gain * (n - 1))
    else:
        var_r = 12.0 * read_noise ** 2 / (6.0 * t * t * gain * gain)
        var_p = poisson_rate / (t * gain)
    return var_r, var_p


@njit(parallel=True, cache=True)
def fit_ramps(data, groupdq, pixeldq, gain, readnoise_cds, dark, zeroframe, has_zeroframe,
              weights, tgroup, tframe, nframes, suppress_one_group, rate, rate_err, rate_dq,
              rate_var_p, rate_var_r, ints, ints_err, ints_dq, ints_var_p, ints_var_r):
    """Fit every pixel; fills the rate (2-D) and rateints (3-D) output arrays."""
    nints, ngroups, ny, nx = data.shape
    one_group_time = (nframes + 1) * tframe / 2.0
    for y in prange(ny):
        starts = np.empty(ngroups, np.int64)
        lengths = np.empty(ngroups, np.int64)
        dq = np.empty(ngroups, np.int64)
        relaxed = np.empty(ngroups, np.int64)
        ramp = np.empty(ngroups)
        for x in range(nx):
            g = gain[y, x]
            bad_gain = not (g > 0)
            r = readnoise_cds[y, x] * g / np.sqrt(2.0 * nframes) if not bad_gain else 0.0
            pixel_flags = pixeldq[y, x]
            if bad_gain:
                pixel_flags |= DO_NOT_USE | 524288  # NO_GAIN_VALUE
            poisson_rate = _poisson_rate(data, groupdq, zeroframe, has_zeroframe, y, x,
                                         suppress_one_group, tgroup, tframe, one_group_time,
                                         dark[y, x], ramp, dq, relaxed)
            exp_inv_r = exp_inv_relaxed = exp_inv_p = exp_weighted = 0.0
            charge_loss = False
            rate_flags = pixel_flags
            usable_ints = 0
            for i in range(nints):
                special_time, group_flags, any_charge_loss = _load_integration(
                    data, groupdq, zeroframe, has_zeroframe, i, y, x, suppress_one_group, tframe,
                    one_group_time, ramp, dq, relaxed)
                flags = pixel_flags | group_flags
                nseg = _segments(dq, starts, lengths)
                all_sat = True
                for k in range(ngroups):
                    all_sat &= (dq[k] & SATURATED) != 0
                unusable = (groupdq[i, 0, y, x] & SATURATED) != 0 or nseg == 0 or (
                    pixel_flags & DO_NOT_USE) != 0
                if special_time > 0:
                    unusable = (pixel_flags & DO_NOT_USE) != 0
                if unusable:
                    flags |= DO_NOT_USE
                    if all_sat or (groupdq[i, 0, y, x] & SATURATED) != 0:
                        flags |= SATURATED
                    ints[i, y, x] = np.nan
                    ints_err[i, y, x] = ints_var_p[i, y, x] = ints_var_r[i, y, x] = 0.0
                    ints_dq[i, y, x] = flags
                    rate_flags |= flags & ~DO_NOT_USE
                else:
                    inv_r = inv_p = inv_c = weighted = 0.0
                    for s in range(nseg):
                        n = lengths[s]
                        t = special_time if special_time > 0 else tgroup
                        if n >= 3:
                            slope = _fit_segment(ramp, starts[s], n, r, g, weights) / tgroup
                        elif n == 2:
                            slope = (ramp[starts[s] + 1] - ramp[starts[s]]) / tgroup
                        else:
                            slope = ramp[starts[s]] / t
                        var_r, var_p = _variances(n, t, r, g, poisson_rate)
                        if var_r > 0:
                            inv_r += 1.0 / var_r
                            weighted += slope / var_r
                        if var_p > 0:
                            inv_p += 1.0 / var_p
                        if var_r + var_p > 0:
                            inv_c += 1.0 / (var_r + var_p)
                    ints[i, y, x] = weighted / inv_r if inv_r > 0 else np.nan
                    ints_var_r[i, y, x] = _guarded(1.0 / inv_r if inv_r > 0 else 0.0)
                    ints_var_p[i, y, x] = _guarded(1.0 / inv_p if inv_p > 0 else 0.0)
                    ints_err[i, y, x] = np.sqrt(1.0 / inv_c) if inv_c > 0 else 0.0
                    if pixel_flags & SATURATED:  # fitted, but reported as unusable
                        ints[i, y, x] = np.nan
                        ints_err[i, y, x] = ints_var_p[i, y, x] = ints_var_r[i, y, x] = 0.0
                    ints_dq[i, y, x] = flags
                    rate_flags |= flags
                    exp_inv_r += inv_r
                    exp_weighted += weighted
                    exp_inv_p += inv_p
                    usable_ints += 1
                if any_charge_loss:  # read noise as if the CHARGELOSS groups were usable
                    inv_relaxed = 0.0
                    t = special_time if special_time > 0 else tgroup
                    for s in range(_segments(relaxed, starts, lengths)):
                        var_r, _ = _variances(lengths[s], t, r, g, poisson_rate)
                        if var_r > 0:
                            inv_relaxed += 1.0 / var_r
                    ints_var_r[i, y, x] = _guarded(1.0 / inv_relaxed if inv_relaxed > 0 else 0.0)
                    exp_inv_relaxed += inv_relaxed
                    charge_loss = True
                elif ints_var_r[i, y, x] > 0:
                    exp_inv_relaxed += 1.0 / ints_var_r[i, y, x]
            var_r = _guarded(1.0 / exp_inv_r if exp_inv_r > 0 else 0.0)
            if usable_ints == 0 or (pixel_flags & (DO_NOT_USE | SATURATED)) != 0:
                rate[y, x] = np.nan
                rate_err[y, x] = rate_var_p[y, x] = var_r = 0.0
                rate_dq[y, x] = rate_flags
                if usable_ints == 0 or (pixel_flags & DO_NOT_USE) != 0:
                    rate_dq[y, x] |= DO_NOT_USE
            else:
                var_p = 1.0 / exp_inv_p if exp_inv_p > 0 else 0.0
                var_p = var_p if 0 <= var_p < LARGE_VARIANCE else 0.0
                rate[y, x] = exp_weighted / exp_inv_r if exp_inv_r > 0 else np.nan
                rate_var_p[y, x] = var_p
                rate_err[y, x] = np.sqrt(var_p + var_r)
                rate_dq[y, x] = rate_flags
            if charge_loss and exp_inv_relaxed > 0:  # the error keeps the fitted read noise
                var_r = _guarded(1.0 / exp_inv_relaxed)
            rate_var_r[y, x] = var_r
