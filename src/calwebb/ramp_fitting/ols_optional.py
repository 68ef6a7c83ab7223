"""The optional OLS_C product (``save_opt``): every segment's own fit, the pedestal and the
jump magnitudes (stage1.md §4.10).

The segments, median rate and variances are those of ``ols.fit_ramps``; this pass only
runs when the product is asked for, so the main kernel stays lean. Per segment of n groups
(values as the official product has them, units included):

* n ≥ 3: optimally weighted least squares with weights ``|(i − m)/m|^P / r²``, abscissa the
  group index: slope (DN/s), SIGSLOPE = √(Σw/Δ) and SIGYINT = √(Σwx²/Δ) (DN per group and
  DN), YINT the intercept at group 0 (DN);
* n = 2: the two-point slope, SIGSLOPE = SIGYINT = √2·r (e⁻), YINT extrapolated to group 0;
* n = 1: the single-group rate; SIGSLOPE, YINT, SIGYINT are 0;
* VAR_POISSON, VAR_RNOISE the segment variances, WEIGHTS = 1/VAR_RNOISE.

PEDESTAL = group 0 − rate_int·((NFRAMES + 1)/2 + DRPFRMS1)/(NFRAMES + GROUPGAP), 0 when the
integration is saturated at group 0 (or the value is NaN). CRMAG lists, per integration,
the difference across each group flagged JUMP_DET, in group order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.ramp_fitting.ols import (
    EXPONENTS,
    JUMP_DET,
    SATURATED,
    _exponent_index,
    _load_integration,
    _poisson_rate,
    _row_ramps,
    _segments,
)

#: √2 as the official product rounds it for two-group segments
SQRT2_ROUNDED = 1.41421356


@njit(parallel=True, cache=True)
def count_segments(data, groupdq, zeroframe, has_zeroframe, suppress_one_group, tframe,
                   nframes, segments, jumps):
    """Number of segments and of jump-flagged groups of every integration ramp (segments as
    the official product counts them: all single-group segments when no longer one exists)."""
    nints, ngroups, ny, nx = data.shape
    one_group_time = (nframes + 1) * tframe / 2.0
    for y in prange(ny):
        starts = np.empty(ngroups, np.int64)
        lengths = np.empty(ngroups, np.int64)
        dq = np.empty((nints, ngroups), np.int64)
        ramp = np.empty((nints, ngroups))
        row_data, row_dq = _row_ramps(data, groupdq, y)
        for x in range(nx):
            for i in range(nints):
                _load_integration(row_data, row_dq, zeroframe, has_zeroframe, i, y, x,
                                  suppress_one_group, tframe, one_group_time, ramp, dq)
                nseg = 0 if dq[i, 0] & SATURATED else _segments(dq, i, starts, lengths)
                if nseg == 1 and lengths[0] == 1:
                    # only the first single-group segment is fitted, but the official
                    # product still sizes its segment axis for all of them
                    nseg = 0
                    for k in range(ngroups):
                        nseg += dq[i, k] == 0
                segments[i, y, x] = nseg
                count = 0
                for k in range(1, ngroups):
                    count += (groupdq[i, k, y, x] & JUMP_DET) != 0
                jumps[i, y, x] = count


@njit(cache=True, error_model="numpy")
def _weighted_fit(ramp, start, n, r, gain, power):
    """(slope per group, sigslope, yint, sigyint) of the optimally weighted segment fit."""
    middle = (n - 1) / 2.0
    inverse_r2 = 1.0 / (r * r)
    sw = sx = sxx = sy = sxy = 0.0
    for i in range(n):
        weight = np.float64(np.float32(abs((i - middle) / middle)) ** np.float32(power))
        weight *= inverse_r2
        x = float(start + i)
        y = ramp[start + i]
        if np.isnan(y):
            y = 0.0
        sw += weight
        sx += x * weight
        sxx += x * x * weight
        sy += y * weight
        sxy += y * x * weight
    inverse = 1.0 / (sw * sxx - sx * sx)
    return ((sw * sxy - sx * sy) * inverse, np.sqrt(sw * inverse),
            (sxx * sy - sx * sxy) * inverse, np.sqrt(sxx * inverse))


@njit(parallel=True, cache=True, error_model="numpy")
def segment_products(data, groupdq, pixeldq, gain, readnoise_cds, dark, zeroframe,
                     has_zeroframe, tgroup, tframe, nframes, pedestal_time, suppress_one_group,
                     rateints, slope, sigslope, var_p, var_r, yint, sigyint, weights, pedestal,
                     crmag):
    """Fill the optional product's arrays (zeros where a ramp has fewer segments/jumps).

    ``rateints`` is the per-integration rate of ``ols.fit_ramps`` (for the pedestal);
    ``pedestal_time`` = ((NFRAMES + 1)/2 + DRPFRMS1)/(NFRAMES + GROUPGAP).
    """
    nints, ngroups, ny, nx = data.shape
    one_group_time = (nframes + 1) * tframe / 2.0
    for y in prange(ny):
        starts = np.empty(ngroups, np.int64)
        lengths = np.empty(ngroups, np.int64)
        dq = np.empty((nints, ngroups), np.int64)
        ramp = np.empty((nints, ngroups))
        special = np.empty(nints)
        row_data, row_dq = _row_ramps(data, groupdq, y)
        for x in range(nx):
            g = np.float64(gain[y, x])
            r = readnoise_cds[y, x] * g / np.sqrt(2.0 * nframes)
            rate = _poisson_rate(row_data, row_dq, zeroframe, has_zeroframe, y, x,
                                 suppress_one_group, tgroup, tframe, one_group_time, dark[y, x],
                                 ramp, dq, special)
            bad_gain = not (g > 0)
            for i in range(nints):
                jump = 0
                for k in range(1, ngroups):
                    if groupdq[i, k, y, x] & JUMP_DET:
                        later = np.nan if groupdq[i, k, y, x] & SATURATED else np.float64(
                            data[i, k, y, x])
                        earlier = np.nan if groupdq[i, k - 1, y, x] & SATURATED else \
                            np.float64(data[i, k - 1, y, x])
                        crmag[i, jump, y, x] = later - earlier
                        jump += 1
                special_time = special[i]  # the integration as _poisson_rate loaded it
                values, group_dq = ramp[i], dq[i]  # views: this pass is not the hot one
                all_saturated = True
                for k in range(ngroups):
                    all_saturated &= (group_dq[k] & SATURATED) != 0
                if (pixeldq[y, x] & SATURATED) or (group_dq[0] & SATURATED) or all_saturated:
                    pedestal[i, y, x] = 0.0
                else:
                    value = values[0] - np.float64(rateints[i, y, x]) * pedestal_time
                    pedestal[i, y, x] = 0.0 if np.isnan(value) else value
                if group_dq[0] & SATURATED:
                    continue
                for s in range(_segments(dq, i, starts, lengths)):
                    n = lengths[s]
                    first = starts[s]
                    if n >= 3:
                        signal = (values[first + n - 1] - values[first]) * g
                        denominator = r * r + signal
                        snr = 0.0
                        if g != 0 and denominator > 0 and signal > 0:
                            snr = signal / np.sqrt(denominator)
                        per_group, sig_s, intercept, sig_i = _weighted_fit(
                            values, first, n, r, g, EXPONENTS[_exponent_index(snr)])
                        value = per_group / tgroup
                        segment_time = tgroup * g * (n - 1)
                        read = 0.0 if bad_gain else \
                            12.0 * (r / tgroup) ** 2 / ((n * n * n - n) * g * g)
                    elif n == 2:
                        value = (values[first + 1] - values[first]) / tgroup
                        sig_s = sig_i = SQRT2_ROUNDED * r
                        intercept = values[first + 1] * (1.0 - (first + 1)) + values[first] * (
                            first + 1.0)
                        segment_time = tgroup * g
                        read = 12.0 * (r / tgroup) ** 2 / (6.0 * g * g)
                    else:
                        t = special_time if special_time > 0 else tgroup
                        value = values[first] / t
                        sig_s = sig_i = intercept = 0.0
                        segment_time = t * g
                        read = 12.0 * (r / t) ** 2 / (6.0 * g * g)
                    slope[i, s, y, x] = value
                    sigslope[i, s, y, x] = sig_s
                    yint[i, s, y, x] = intercept
                    sigyint[i, s, y, x] = sig_i
                    var_p[i, s, y, x] = rate / segment_time
                    var_r[i, s, y, x] = read
                    weights[i, s, y, x] = 1.0 / read


def optional_products(data, groupdq, pixeldq, gain, readnoise, dark, zeroframe, has_zeroframe,
                      tgroup, tframe, nframes, groupgap, drop_frames1, suppress_one_group,
                      rateints):
    """The ``fitopt`` arrays (a dict named as the RampFitOutputModel arrays)."""
    nints, ngroups, ny, nx = data.shape
    segments = np.empty((nints, ny, nx), np.int64)
    jumps = np.empty((nints, ny, nx), np.int64)
    count_segments(data, groupdq, zeroframe, has_zeroframe, suppress_one_group, tframe,
                   nframes, segments, jumps)
    nseg = int(segments.max()) if segments.size else 0
    njump = int(jumps.max()) if jumps.size else 0
    names = ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint", "weights")
    products = {name: np.zeros((nints, nseg, ny, nx), np.float32) for name in names}
    products["pedestal"] = np.zeros((nints, ny, nx), np.float32)
    products["crmag"] = np.zeros((nints, njump, ny, nx), np.float32)
    pedestal_time = ((nframes + 1) / 2.0 + drop_frames1) / (nframes + groupgap)
    segment_products(
        data, groupdq, pixeldq, gain, readnoise, dark, zeroframe, has_zeroframe, tgroup, tframe,
        nframes, pedestal_time, suppress_one_group, rateints, products["slope"],
        products["sigslope"], products["var_poisson"], products["var_rnoise"], products["yint"],
        products["sigyint"], products["weights"], products["pedestal"], products["crmag"])
    return products
