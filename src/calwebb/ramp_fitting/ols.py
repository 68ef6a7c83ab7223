"""Ordinary least-squares ramp fitting with optimal weighting (stage1.md §4), in numba.

Everything per pixel happens in one compiled kernel, parallel over rows: segment the
ramp at jumps and unusable groups, fit each segment with the signal-to-noise-dependent
weights, and combine segments and integrations by inverse read-noise variance.

The per-pixel helpers are inlined and work on [nints, ngroups] work arrays by index rather
than on row views: numba counts references to every array view it makes, with atomic
operations that would cost more than the fit itself.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from calwebb.kernels import column_median, median_small, sort_columns

DO_NOT_USE, SATURATED, JUMP_DET, PERSISTENCE, CHARGELOSS = 1, 2, 4, 32, 128
LARGE_VARIANCE = 1e6
#: S/N thresholds and the weighting exponent above each (Fixsen et al. 2000)
SNR_EDGES = np.array([5.0, 10.0, 20.0, 50.0, 100.0])
EXPONENTS = np.array([0.0, 0.4, 1.0, 3.0, 6.0, 10.0])


@functools.lru_cache(maxsize=8)
def slope_coefficients(ngroups: int) -> np.ndarray:
    """c[p, n, k]: the optimally weighted least-squares slope of an n-sample segment y is
    sum_k c[p, n, k] y[k] (DN per group) for exponent index p (n >= 3; read-only: made once
    per number of groups, for every tile).

    The weights w_k = |(k - m)/m|^P, m = (n - 1)/2 (their common 1/r^2 cancels), and the
    abscissae k depend only on p and n, so the weighted sums over them are folded into the
    coefficients: c_k = w_k (S k - Sx) / (S Sxx - Sx^2), with S, Sx, Sxx the sums of w, w k,
    w k^2.
    """
    table = np.zeros((EXPONENTS.size, ngroups + 1, ngroups))
    for p, power in enumerate(EXPONENTS):
        for n in range(3, ngroups + 1):
            k = np.arange(n, dtype=np.float64)
            middle = (n - 1) / 2.0
            w = np.abs((k - middle) / middle) ** power
            total, first, second = w.sum(), (w * k).sum(), (w * k * k).sum()
            table[p, n, :n] = w * (total * k - first) / (total * second - first * first)
    table.flags.writeable = False
    return table


@njit(cache=True, inline="always")
def _exponent_index(snr):
    index = 0
    for edge in range(SNR_EDGES.size):
        if snr >= SNR_EDGES[edge]:
            index = edge + 1
    return index


@njit(cache=True, inline="always")
def _segments(dq, i, starts, lengths):
    """Segments of the group DQ ``dq[i]``; returns how many were written into starts/lengths."""
    ngroups = dq.shape[1]
    count = 0
    group = 0
    while group < ngroups:
        if dq[i, group] != 0:
            group += 1
            continue
        first = group
        while group < ngroups and dq[i, group] == 0:
            group += 1
        if first > 0 and dq[i, first - 1] == JUMP_DET:
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


@njit(cache=True, inline="always")
def _fit_segment(values, i, start, n, read_noise, gain, coefficients):
    """Slope in DN per group of ``values[i, start:start+n]`` (n >= 3), optimally weighted
    (``coefficients``: the ``slope_coefficients``)."""
    signal = (values[i, start + n - 1] - values[i, start]) * gain
    denominator = read_noise * read_noise + signal
    snr = 0.0
    if gain != 0 and denominator > 0 and signal > 0:
        snr = signal / np.sqrt(denominator)
    power = _exponent_index(snr)
    slope = 0.0
    for k in range(n):
        y = values[i, start + k]
        if not np.isnan(y):
            slope += coefficients[power, n, k] * y
    return slope


@njit(cache=True, inline="always")
def _median_rate(ramp, dq, i, tgroup):
    """Integration i's median group-to-group rate (DN/s), as used for Poisson noise."""
    ngroups = ramp.shape[1]
    diffs = np.empty(max(ngroups - 1, 1))
    count = 0
    for group in range(ngroups - 1):
        if dq[i, group] & (DO_NOT_USE | SATURATED) or dq[i, group + 1] & (DO_NOT_USE | SATURATED):
            continue
        if dq[i, group + 1] & JUMP_DET:
            continue
        diffs[count] = (ramp[i, group + 1] - ramp[i, group]) / tgroup
        count += 1
    if count == 0:
        if ngroups > 0 and not dq[i, 0] & (DO_NOT_USE | SATURATED):
            value = ramp[i, 0] / tgroup
            return 0.0 if np.isnan(value) else value
        return 0.0
    value = median_small(diffs, count)
    return 0.0 if np.isnan(value) else value


@njit(cache=True, inline="always")
def _row_ramps(data, groupdq, y):
    """Every pixel's ramps of row y side by side: (row_data, row_dq) [nints, nx, ngroups].
    Read plane by plane, the row streams through the cache once; the per-pixel passes that
    follow then find each ramp in a few cache lines instead of one line per group."""
    nints, ngroups, _, nx = data.shape
    row_data = np.empty((nints, nx, ngroups), data.dtype)
    row_dq = np.empty((nints, nx, ngroups), groupdq.dtype)
    for i in range(nints):
        for k in range(ngroups):
            for x in range(nx):
                row_data[i, x, k] = data[i, k, y, x]
                row_dq[i, x, k] = groupdq[i, k, y, x]
    return row_data, row_dq


@njit(cache=True, inline="always")
def _load_integration(row_data, row_dq, zeroframe, has_zeroframe, i, y, x, suppress_one_group,
                      tframe, one_group_time, ramp, dq):
    """Fill ramp[i] and dq[i] (PERSISTENCE ignored, one-good-group ramps suppressed) for
    integration i of pixel (y, x), from its row's ramps (``_row_ramps``).

    Returns (special timing or 0, group flags to carry to the DQ, any CHARGELOSS, number of
    good groups). The special timings, only without suppression: one_group_time when group 0
    is the only good group, tframe when no group is good and a non-zero ZEROFRAME value
    replaces group 0. With two or more good groups, ramp and dq are left as the data has them.
    """
    ngroups = ramp.shape[1]
    flags = 0
    good_count = 0
    any_charge_loss = False
    for k in range(ngroups):
        ramp[i, k] = row_data[i, x, k]
        raw = row_dq[i, x, k]
        dq[i, k] = raw & ~PERSISTENCE
        any_charge_loss |= (raw & CHARGELOSS) != 0
        flags |= raw & (JUMP_DET | PERSISTENCE | SATURATED)
        good_count += dq[i, k] == 0
    special_time = 0.0
    if suppress_one_group:
        if ngroups > 1 and good_count == 1:
            for k in range(ngroups):
                dq[i, k] |= DO_NOT_USE
    elif good_count == 1 and dq[i, 0] == 0:
        special_time = one_group_time
    elif good_count == 0 and has_zeroframe and zeroframe[i, y, x] != 0:
        ramp[i, 0] = zeroframe[i, y, x]
        dq[i, 0] = 0
        special_time = tframe
    return special_time, flags, any_charge_loss, good_count


@njit(cache=True, inline="always")
def _relaxed_flags(row_dq, i, x, relaxed):
    """relaxed[i]: integration i's group flags as ``_load_integration`` reads them before any
    suppression or ZEROFRAME, with the CHARGELOSS groups usable."""
    for k in range(relaxed.shape[1]):
        raw = row_dq[i, x, k]
        flags = raw & ~PERSISTENCE
        relaxed[i, k] = flags & ~(DO_NOT_USE | CHARGELOSS) if raw & CHARGELOSS else flags


@njit(cache=True, inline="always")
def _integration_rate(ramp, dq, i, special_time, one_group_time, tgroup):
    """Integration i's share of the rate behind the Poisson noise: its median rate, or its
    first group over the special timing (NaN for a saturated single group)."""
    if ramp.shape[1] == 1:  # a saturated group spoils the mean
        return np.nan if dq[i, 0] & SATURATED else ramp[i, 0] / one_group_time
    if special_time > 0:
        return ramp[i, 0] / special_time
    return _median_rate(ramp, dq, i, tgroup)


@njit(cache=True)
def _poisson_rate(row_data, row_dq, zeroframe, has_zeroframe, y, x, suppress_one_group,
                  tgroup, tframe, one_group_time, dark, ramp, dq, special):
    """Count rate (DN/s) behind a pixel's Poisson variance: dark plus the positive part of the
    mean over integrations of ``_integration_rate``. Loads every integration: ramp/dq
    [nints, ngroups] and the special timings ``special`` [nints] are filled as
    ``_load_integration`` fills them."""
    nints = row_data.shape[0]
    median = 0.0
    for i in range(nints):
        special[i], _, _, _ = _load_integration(
            row_data, row_dq, zeroframe, has_zeroframe, i, y, x, suppress_one_group, tframe,
            one_group_time, ramp, dq)
        median += _integration_rate(ramp, dq, i, special[i], one_group_time, tgroup)
    median /= nints
    return dark + (median if median > 0 else 0.0)


@njit(cache=True)
def _row_median_rates(data, groupdq, y, tgroup, network, rates, medians, settled):
    """Every integration's ``_median_rate`` on row y, for the unmodified ramps, all columns
    at once: ``medians`` [nints, nx], valid where ``settled`` [nints, nx] (at least one usable
    difference, none NaN). ``rates`` [ngroups - 1, nx] is work space; ``network`` =
    ``sorting_network(ngroups - 1)``."""
    nints, ngroups, _, nx = data.shape
    counts = np.empty(nx, np.int64)
    clean = np.empty(nx, np.bool_)
    for i in range(nints):
        counts[:] = 0
        clean[:] = True
        for k in range(ngroups - 1):
            row = rates[k]
            for x in range(nx):
                before, after = groupdq[i, k, y, x], groupdq[i, k + 1, y, x]
                usable = ((before | after) & (DO_NOT_USE | SATURATED)) == 0 and (
                    after & JUMP_DET) == 0
                rate = (np.float64(data[i, k + 1, y, x]) - np.float64(data[i, k, y, x])) / tgroup
                row[x] = rate if usable else np.inf
                counts[x] += usable
                clean[x] &= not (usable and np.isnan(rate))
        sort_columns(rates, network)
        for x in range(nx):
            settled[i, x] = clean[x] and counts[x] > 0
            if settled[i, x]:
                medians[i, x] = column_median(rates, counts[x], x)


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
              coefficients, network, tgroup, tframe, nframes, suppress_one_group, first, rate,
              rate_err, rate_dq, rate_var_p, rate_var_r, ints, ints_err, ints_dq, ints_var_p,
              ints_var_r):
    """Fit the pixels of frame rows ``first:first + rate.shape[0]``; fills the rate (2-D)
    and rateints (3-D) output arrays, which hold just those rows (all rows: ``first`` = 0 and
    frame-sized outputs).

    ``network`` = ``sorting_network(ngroups - 1)``: the median rates behind the Poisson noise
    are found a row at a time (``_row_median_rates``); each pixel's integrations are read once.
    """
    nints, ngroups, ny, nx = data.shape
    one_group_time = (nframes + 1) * tframe / 2.0
    for row in prange(rate.shape[0]):
        y = first + row
        starts = np.empty(ngroups, np.int64)
        lengths = np.empty(ngroups, np.int64)
        dq = np.empty((nints, ngroups), np.int64)
        relaxed = np.empty((nints, ngroups), np.int64)
        ramp = np.empty((nints, ngroups))
        special = np.empty(nints)
        group_flags = np.empty(nints, np.int64)
        charge_losses = np.empty(nints, np.bool_)
        good = np.empty(nints, np.int64)
        medians = np.empty((nints, nx))
        settled = np.zeros((nints, nx), np.bool_)
        if ngroups > 1:
            _row_median_rates(data, groupdq, y, tgroup, network,
                              np.empty((ngroups - 1, nx)), medians, settled)
        row_data, row_dq = _row_ramps(data, groupdq, y)
        for x in range(nx):
            g = gain[y, x]
            bad_gain = not (g > 0)
            r = readnoise_cds[y, x] * g / np.sqrt(2.0 * nframes) if not bad_gain else 0.0
            pixel_flags = pixeldq[y, x]
            if bad_gain:
                pixel_flags |= DO_NOT_USE | 524288  # NO_GAIN_VALUE
            median = 0.0  # as _poisson_rate, with the row's median rates where settled
            for i in range(nints):
                special[i], group_flags[i], charge_losses[i], good[i] = _load_integration(
                    row_data, row_dq, zeroframe, has_zeroframe, i, y, x, suppress_one_group, tframe,
                    one_group_time, ramp, dq)
                if good[i] >= 2 and settled[i, x]:  # (then no special timing)
                    median += 0.0 if np.isnan(medians[i, x]) else medians[i, x]
                else:
                    median += _integration_rate(ramp, dq, i, special[i], one_group_time, tgroup)
            median /= nints
            poisson_rate = dark[y, x] + (median if median > 0 else 0.0)
            exp_inv_r = exp_inv_relaxed = exp_inv_p = exp_weighted = 0.0
            charge_loss = False
            rate_flags = pixel_flags
            usable_ints = 0
            for i in range(nints):
                special_time, any_charge_loss = special[i], charge_losses[i]
                flags = pixel_flags | group_flags[i]
                nseg = _segments(dq, i, starts, lengths)
                unusable = (row_dq[i, x, 0] & SATURATED) != 0 or nseg == 0 or (
                    pixel_flags & DO_NOT_USE) != 0
                if special_time > 0:
                    unusable = (pixel_flags & DO_NOT_USE) != 0
                if unusable:
                    flags |= DO_NOT_USE
                    all_sat = True
                    for k in range(ngroups):
                        all_sat &= (dq[i, k] & SATURATED) != 0
                    if all_sat or (row_dq[i, x, 0] & SATURATED) != 0:
                        flags |= SATURATED
                    ints[i, row, x] = np.nan
                    ints_err[i, row, x] = ints_var_p[i, row, x] = ints_var_r[i, row, x] = 0.0
                    ints_dq[i, row, x] = flags
                    rate_flags |= flags & ~DO_NOT_USE
                else:
                    inv_r = inv_p = inv_c = weighted = 0.0
                    for s in range(nseg):
                        n = lengths[s]
                        t = special_time if special_time > 0 else tgroup
                        if n >= 3:
                            slope = _fit_segment(ramp, i, starts[s], n, r, g, coefficients) / tgroup
                        elif n == 2:
                            slope = (ramp[i, starts[s] + 1] - ramp[i, starts[s]]) / tgroup
                        else:
                            slope = ramp[i, starts[s]] / t
                        var_r, var_p = _variances(n, t, r, g, poisson_rate)
                        if var_r > 0:
                            inv_r += 1.0 / var_r
                            weighted += slope / var_r
                        if var_p > 0:
                            inv_p += 1.0 / var_p
                        if var_r + var_p > 0:
                            inv_c += 1.0 / (var_r + var_p)
                    ints[i, row, x] = weighted / inv_r if inv_r > 0 else np.nan
                    ints_var_r[i, row, x] = _guarded(1.0 / inv_r if inv_r > 0 else 0.0)
                    ints_var_p[i, row, x] = _guarded(1.0 / inv_p if inv_p > 0 else 0.0)
                    ints_err[i, row, x] = np.sqrt(1.0 / inv_c) if inv_c > 0 else 0.0
                    if pixel_flags & SATURATED:  # fitted, but reported as unusable
                        ints[i, row, x] = np.nan
                        ints_err[i, row, x] = ints_var_p[i, row, x] = ints_var_r[i, row, x] = 0.0
                    ints_dq[i, row, x] = flags
                    rate_flags |= flags
                    exp_inv_r += inv_r
                    exp_weighted += weighted
                    exp_inv_p += inv_p
                    usable_ints += 1
                if any_charge_loss:  # read noise as if the CHARGELOSS groups were usable
                    inv_relaxed = 0.0
                    t = special_time if special_time > 0 else tgroup
                    _relaxed_flags(row_dq, i, x, relaxed)
                    for s in range(_segments(relaxed, i, starts, lengths)):
                        var_r, _ = _variances(lengths[s], t, r, g, poisson_rate)
                        if var_r > 0:
                            inv_relaxed += 1.0 / var_r
                    ints_var_r[i, row, x] = _guarded(1.0 / inv_relaxed if inv_relaxed > 0 else 0.0)
                    exp_inv_relaxed += inv_relaxed
                    charge_loss = True
                elif ints_var_r[i, row, x] > 0:
                    exp_inv_relaxed += 1.0 / ints_var_r[i, row, x]
            var_r = _guarded(1.0 / exp_inv_r if exp_inv_r > 0 else 0.0)
            if usable_ints == 0 or (pixel_flags & (DO_NOT_USE | SATURATED)) != 0:
                rate[row, x] = np.nan
                rate_err[row, x] = rate_var_p[row, x] = var_r = 0.0
                rate_dq[row, x] = rate_flags
                if usable_ints == 0 or (pixel_flags & DO_NOT_USE) != 0:
                    rate_dq[row, x] |= DO_NOT_USE
            else:
                var_p = 1.0 / exp_inv_p if exp_inv_p > 0 else 0.0
                var_p = var_p if 0 <= var_p < LARGE_VARIANCE else 0.0
                rate[row, x] = exp_weighted / exp_inv_r if exp_inv_r > 0 else np.nan
                rate_var_p[row, x] = var_p
                rate_err[row, x] = np.sqrt(var_p + var_r)
                rate_dq[row, x] = rate_flags
            if charge_loss and exp_inv_relaxed > 0:  # the error keeps the fitted read noise
                var_r = _guarded(1.0 / exp_inv_relaxed)
            rate_var_r[row, x] = var_r


#: the types of the five slope products (data, err, dq, var_poisson, var_rnoise)
PRODUCT_TYPES = (np.float32, np.float32, np.uint32, np.float32, np.float32)
#: rows fitted at a time when one integration's rate and rateints share memory
SHARING_BAND = 128


def fit_one_integration(arguments: tuple, shape: tuple[int, int],
                        band: int = SHARING_BAND) -> tuple[list, list]:
    """``fit_ramps`` for a ramp of one integration: (rate planes [ny, nx], rateints planes
    [1, ny, nx]), where each rateints plane whose values are, bit for bit, the rate's is the
    same memory as the rate plane (both views of one buffer); ``arguments`` are fit_ramps'
    up to ``suppress_one_group``.

    The rows are fitted ``band`` at a time, the rateints values of the planes still shared
    into a small scratch band that is compared with the rate's: at the first difference the
    plane gets memory of its own. ERR is never shared (the rate's is combined from the
    variances, the integration's per segment).
    """
    ny, nx = shape
    buffers = [np.empty((1, ny, nx), kind) for kind in PRODUCT_TYPES]
    image = [buffer[0] for buffer in buffers]
    cube = [buffer[:] for buffer in buffers]
    shared = [True, False, True, True, True]
    image[1] = np.empty((ny, nx), PRODUCT_TYPES[1])
    scratch = [np.empty((1, min(band, ny), nx), kind) if sharing else None
               for kind, sharing in zip(PRODUCT_TYPES, shared, strict=True)]
    for first in range(0, ny, band):
        last = min(ny, first + band)
        ints = [scratch[k][:, :last - first] if shared[k] else cube[k][:, first:last]
                for k in range(len(cube))]
        fit_ramps(*arguments, first, *[plane[first:last] for plane in image], *ints)
        for k in range(len(cube)):
            if not shared[k]:
                continue
            fitted, rows = ints[k][0], image[k][first:last]
            if not np.array_equal(fitted.view(np.uint32), rows.view(np.uint32)):
                own = np.empty((1, ny, nx), PRODUCT_TYPES[k])
                own[0, :first] = image[k][:first]
                own[0, first:last] = fitted
                cube[k], shared[k] = own, False
    return image, cube
