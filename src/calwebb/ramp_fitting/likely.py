"""Likelihood ramp fitting on resultant differences (``algorithm='LIKELY'``, Brandt 2024).

Each integration of a pixel is turned into differences of consecutive resultants
(DN/s). Their covariance is tridiagonal: read noise and photon noise both couple
neighbouring differences, with coefficients fixed by the readout pattern (how many
reads each resultant averages and when). The count rate is the generalised-least-
squares fit of a constant to the differences under that covariance; the tridiagonal
structure gives the inverse through three-term recursions, so a fit costs O(n).

Jumps are found in the same framework (paper II): the fit is repeated leaving out one
difference, or two neighbouring ones, and the omission that lowers χ² the most is kept
while the improvement exceeds a threshold. Unusable groups (any DQ flag) remove the
differences they touch.

Everything per pixel runs in one numba kernel, parallel over rows; the exposure-level
combination of integrations is vectorised numpy.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit, prange

DO_NOT_USE, SATURATED, JUMP_DET = 1, 2, 4
#: the fit needs at least this many groups (smaller ramps are fitted with OLS_C)
MIN_NGROUPS = 4
#: minimum χ² improvement for leaving out one difference, or two neighbouring ones
ONE_OMIT_THRESHOLD = 20.25
TWO_OMIT_THRESHOLD = 23.8
#: the tridiagonal determinant is renormalised every this many steps
RESCALE_EVERY = 10


# -- readout pattern and covariance coefficients ----------------------------------------------
def read_times(ngroups: int, nframes: int, groupgap: int, frame_time: float) -> list[np.ndarray]:
    """Times (s) of the frames averaged into each group of an evenly sampled ramp.

    Group k averages frames ``k·(nframes + groupgap) + 1 … + nframes``, frame j read at
    ``j·frame_time``.
    """
    period = nframes + groupgap
    frames = np.arange(1, nframes + 1)
    return [(frames + k * period) * frame_time for k in range(ngroups)]


def difference_covariance(times: list) -> dict[str, np.ndarray]:
    """Per-difference covariance coefficients of a readout pattern.

    ``times`` holds, per resultant, the read times averaged into it (a number counts as one
    read). Returns ``delta_t`` (time between resultant means), ``nreads``, and the
    coefficients that multiply the variance per read (σ², DN²) and the count rate over gain
    (DN/s / (e⁻/DN)) to give the diagonal (``alpha_*``) and first off-diagonal (``beta_*``)
    of the covariance of differences expressed as rates.
    """
    means, taus, nreads = [], [], []
    for resultant in times:
        reads = np.atleast_1d(np.asarray(resultant, np.float64))
        count = reads.size
        means.append(reads.mean())
        # photon-noise "effective time": later reads share the charge of earlier ones
        coefficients = 2 * count + 1 - 2 * np.arange(1, count + 1)
        taus.append(float(np.sum(coefficients * reads)) / count**2)
        nreads.append(count)
    mean = np.array(means)
    tau = np.array(taus)
    count = np.array(nreads, np.float64)
    delta_t = mean[1:] - mean[:-1]
    gap_products = delta_t[1:] * delta_t[:-1]
    return {
        "delta_t": delta_t,
        "nreads": count,
        "alpha_read": (1 / count[:-1] + 1 / count[1:]) / delta_t**2,
        "beta_read": -1 / (count[1:-1] * delta_t[1:] * delta_t[:-1]),
        "alpha_photon": (tau[:-1] + tau[1:] - 2 * mean[:-1]) / delta_t**2,
        "beta_photon": (mean[1:-1] - tau[1:-1]) / gap_products,
    }


# -- the kernel ---------------------------------------------------------------------------------
# Pixels are processed in blocks of up to BLOCK columns of one row (fewer for long ramps).
# Per-pixel quantities are arrays [position along the ramp, pixel in block] and every loop
# runs over the pixels innermost: the three-term recursions are serial along the ramp but
# independent between pixels, so the compiler vectorises across pixels. (Per pixel the
# arithmetic, and its order, is that of the official implementation, so results agree to
# the last bit.)

BLOCK = 128
#: at most this many (difference × pixel) cells per block
BLOCK_CELLS = 4096


@njit(cache=True, error_model="numpy", inline="always")
def _sign(i):
    """−1 for even positions, +1 for odd ones (the alternating signs of the inverse)."""
    return -1.0 if i % 2 == 0 else 1.0


@njit(cache=True, error_model="numpy")
def _covariance(m, n, rate, gain, sigma_read, coef, alpha, beta, alpha_p, alpha_r, beta_p,
                beta_r, theta, scale):
    """Covariance of the n differences of m pixels at count rates ``rate`` (DN/s).

    Fills the diagonal ``alpha`` and off-diagonal ``beta`` and their photon and read parts
    (unscaled), then divides alpha and beta by ``scale``, a per-pixel factor that keeps the
    tridiagonal determinant near 1 (no overflow for long ramps).
    """
    for k in range(n):
        c_read, c_photon = coef[1, k], coef[2, k]
        for j in range(m):
            alpha_p[k, j] = rate[j] / gain[j] * c_photon
            alpha_r[k, j] = sigma_read[j] ** 2 * c_read
            alpha[k, j] = alpha_p[k, j] + alpha_r[k, j]
    for k in range(n - 1):
        c_read, c_photon = coef[3, k], coef[4, k]
        for j in range(m):
            beta_p[k, j] = rate[j] / gain[j] * c_photon
            beta_r[k, j] = sigma_read[j] ** 2 * c_read
            beta[k, j] = beta_p[k, j] + beta_r[k, j]
    # leading principal minors, renormalised as they grow: scale^i multiplies minor i
    for j in range(m):
        theta[0, j] = 1.0
        theta[1, j] = alpha[0, j]
        scale[j] = 1.0
    for i in range(2, n + 1):
        for j in range(m):
            theta[i, j] = (alpha[i - 1, j] / scale[j] * theta[i - 1, j]
                           - beta[i - 2, j] ** 2 / scale[j] ** 2 * theta[i - 2, j])
        if i % RESCALE_EVERY == 0 or i == n:
            for j in range(m):
                factor = theta[i, j] ** (1.0 / i)
                scale[j] *= factor
                ratio = theta[i, j] / factor
                theta[i - 1, j] /= ratio
                theta[i - 2, j] /= ratio / factor
                theta[i, j] = 1.0
    for k in range(n):
        for j in range(m):
            alpha[k, j] /= scale[j]
    for k in range(n - 1):
        for j in range(m):
            beta[k, j] /= scale[j]


@njit(cache=True, error_model="numpy")
def _normal_terms(m, n, diffs, use, alpha, beta, w, sum_a, sum_b, sum_c, square):
    """Sums of the generalised least-squares problem for the differences in use.

    Unused differences are decoupled (their off-diagonals zeroed) and carry no weight.
    Fills (in the work array ``w``) theta/phi, the leading/trailing principal minors,
    ``dc`` = C⁻¹·1 restricted to the used differences and ``db`` = C⁻¹·d, and per pixel
    (A, B, C) = (dᵀC⁻¹d, 1ᵀC⁻¹d, 1ᵀC⁻¹1), all in the scaled units of alpha and beta.
    """
    masked, masked_beta, theta, phi = w[0], w[1], w[2], w[3]
    big_phi, phi_d, big_theta, theta_d, dc, db = w[4], w[5], w[6], w[7], w[8], w[9]
    for k in range(n):
        for j in range(m):
            masked[k, j] = diffs[k, j] * use[k, j]
    for k in range(n - 1):
        for j in range(m):
            masked_beta[k, j] = beta[k, j] * use[k + 1, j] * use[k, j]
    for j in range(m):
        theta[0, j] = 1.0
        theta[1, j] = alpha[0, j]
        phi[n, j] = 1.0
        phi[n - 1, j] = alpha[n - 1, j]
        big_phi[n - 1, j] = 0.0
        phi_d[n - 1, j] = 0.0
        big_theta[0, j] = -theta[0, j]
        theta_d[0, j] = 0.0
        theta_d[1, j] = -masked[0, j] * theta[0, j]
    for i in range(2, n + 1):
        for j in range(m):
            theta[i, j] = (alpha[i - 1, j] * theta[i - 1, j]
                           - masked_beta[i - 2, j] ** 2 * theta[i - 2, j])
    for i in range(n - 2, -1, -1):
        s = _sign(i + 1)
        for j in range(m):
            b = masked_beta[i, j]
            phi[i, j] = alpha[i, j] * phi[i + 1, j] - b**2 * phi[i + 2, j]
            big_phi[i, j] = big_phi[i + 1, j] * b + s * b * phi[i + 2, j]
            phi_d[i, j] = (phi_d[i + 1, j] + s * masked[i + 1, j] * phi[i + 2, j]) * b
    for i in range(1, n):
        s = _sign(i)
        for j in range(m):
            b = masked_beta[i - 1, j]
            big_theta[i, j] = big_theta[i - 1, j] * b + s * theta[i, j]
            theta_d[i + 1, j] = b * theta_d[i, j] + s * masked[i, j] * theta[i, j]
    for j in range(m):
        sum_a[j] = sum_b[j] = sum_c[j] = square[j] = 0.0
    for i in range(n):
        s = _sign(i)
        for j in range(m):
            det = theta[n, j]
            neighbour = 1.0 if i == 0 else masked_beta[i - 1, j]
            dc[i, j] = s / det * (phi[i + 1, j] * big_theta[i, j]
                                  + theta[i, j] * big_phi[i, j]) * use[i, j]
            db[i, j] = s / det * (phi[i + 1, j] * theta_d[i + 1, j] + theta[i, j] * phi_d[i, j])
            sum_a[j] += masked[i, j] * s / det * neighbour * phi[i + 1, j] * theta_d[i, j]
            square[j] += masked[i, j] ** 2 * theta[i, j] * phi[i + 1, j] / det
            sum_b[j] += masked[i, j] * dc[i, j]
            sum_c[j] += dc[i, j]
    for j in range(m):
        sum_a[j] = 2 * sum_a[j] + square[j]


@njit(cache=True, error_model="numpy")
def _omission_fits(m, n, use, w, sum_a, sum_b, sum_c, scale, rate, chisq):
    """Improvement of χ² (and the count rate) when leaving out each difference (w[12],
    w[13]) and each pair of neighbouring differences (w[14], w[15]), the omitted
    differences being fitted by free offsets.

    Omissions of differences already out of use fall back to the fit with fewer omissions
    (no improvement). Needs the terms of ``_normal_terms`` in ``w``.
    """
    masked_beta, theta, phi, dc, db = w[1], w[2], w[3], w[8], w[9]
    inv_diag, inv_off = w[10], w[11]
    gain_one, rate_one, gain_two, rate_two = w[12], w[13], w[14], w[15]
    for k in range(n):
        for j in range(m):
            inv_diag[k, j] = theta[k, j] * phi[k + 1, j] / theta[n, j] * use[k, j]
    for k in range(n - 1):
        for j in range(m):
            inv_off[k, j] = -masked_beta[k, j] * theta[k, j] * phi[k + 2, j] / theta[n, j]
    for k in range(n):
        for j in range(m):
            cd, dck, dbk = inv_diag[k, j], dc[k, j], db[k, j]
            a_s, b_s, c_s = sum_a[j], sum_b[j], sum_c[j]
            a = (cd * b_s - dbk * dck) / (c_s * cd - dck**2)
            b = (dbk - a * dck) / cd
            rate_one[k, j] = a
            gain_one[k, j] = (a_s + a**2 * c_s - 2 * a * b_s + b**2 * cd - 2 * b * dbk
                              + 2 * a * b * dck) / scale[j]
    for k in range(n - 1):
        for j in range(m):
            d0, d1 = dc[k, j], dc[k + 1, j]
            a_s, b_s, c_s = sum_a[j], sum_b[j], sum_c[j]
            cpj = d0**2 - c_s * inv_diag[k, j]
            cjck = d0 * d1 - c_s * inv_off[k, j]
            bcpj = b_s * d0 - db[k, j] * c_s
            c = bcpj / cpj - (b_s * d1 - db[k + 1, j] * c_s) / cjck
            c /= cjck / cpj - (d1**2 - c_s * inv_diag[k + 1, j]) / cjck
            b = (bcpj - c * cjck) / cpj
            a = (b_s - b * d0 - c * d1) / c_s
            value = a_s + a**2 * c_s + b**2 * inv_diag[k, j] + c**2 * inv_diag[k + 1, j]
            value -= 2 * a * b_s + 2 * b * db[k, j] + 2 * c * db[k + 1, j]
            value += 2 * a * b * d0 + 2 * a * c * d1 + 2 * b * c * inv_off[k, j]
            rate_two[k, j] = a
            gain_two[k, j] = value / scale[j]
    for k in range(n):
        for j in range(m):
            if use[k, j] == 0:
                rate_one[k, j] = rate[j]
                gain_one[k, j] = chisq[j]
    for k in range(n - 1):
        for j in range(m):
            if use[k + 1, j] == 0:
                rate_two[k, j] = rate_one[k, j]
                gain_two[k, j] = gain_one[k, j]
            if use[k, j] == 0:
                rate_two[k, j] = rate_one[k + 1, j]
                gain_two[k, j] = gain_one[k + 1, j]
    for k in range(n):
        for j in range(m):
            gain_one[k, j] = chisq[j] - gain_one[k, j]
    for k in range(n - 1):
        for j in range(m):
            gain_two[k, j] = chisq[j] - gain_two[k, j]


@njit(cache=True, error_model="numpy")
def _nan_max(values, count, j, mask):
    """max over k < count of values[k, j]·mask[k], NaN if any product is NaN."""
    best = -np.inf
    for k in range(count):
        value = values[k, j] * mask[k]
        if np.isnan(value):
            return np.nan
        if value > best:
            best = value
    return best


@njit(cache=True, error_model="numpy")
def _reject(j, n, w, one_ok, two_ok, use):
    """Decide, from the omission fits of pixel j, which differences to reject (turned off in
    ``use``, a [difference] array). Returns (rejected any, count rate of the kept model)."""
    gain_one, rate_one, gain_two, rate_two = w[12], w[13], w[14], w[15]
    best_one = _nan_max(gain_one, n, j, one_ok)
    best_two = _nan_max(gain_two, n - 1, j, two_ok)
    one_better = (best_one - ONE_OMIT_THRESHOLD) > (best_two - TWO_OMIT_THRESHOLD)
    best = (best_one * (1.0 if best_one > ONE_OMIT_THRESHOLD else 0.0)
            * (1.0 if one_better else 0.0))
    best += (best_two * (1.0 if best_two > TWO_OMIT_THRESHOLD else 0.0)
             * (0.0 if one_better else 1.0))
    if best == 0:
        best = np.nan
    rejected = False
    rate = 0.0
    if one_better:
        for k in range(n):
            rejected |= gain_one[k, j] == best
        if rejected:
            for k in range(n):
                hit = gain_one[k, j] == best
                rate += rate_one[k, j] * (1.0 if hit else 0.0)
                if hit:
                    use[k] = 0.0
    else:
        for k in range(n - 1):
            rejected |= gain_two[k, j] == best
        if rejected:
            for k in range(n - 1):
                hit = gain_two[k, j] == best
                rate += rate_two[k, j] * (1.0 if hit else 0.0)
            for k in range(n - 1):
                if gain_two[k, j] == best:
                    use[k] = 0.0
                    use[k + 1] = 0.0
    return rejected, rate


@njit(cache=True, error_model="numpy")
def _fit_block(m, n, diffs, use, guess, gain, sigma_read, dark, coef, one_ok, two_ok, w,
               vectors, out_rate, out_sigma, out_chisq, out_var_p, out_var_r):
    """Jump search then final fit of m pixels (differences ``diffs``/``use`` [n, m]).

    ``use`` is updated with the rejected differences. ``vectors`` is work space [10, m].
    """
    alpha, beta, alpha_p, alpha_r = w[16], w[17], w[18], w[19]
    beta_p, beta_r = w[20], w[21]
    sub_diffs, sub_use, sub_alpha, sub_beta = w[22], w[23], w[24], w[25]
    scale, sum_a, sum_b, sum_c, square = vectors[0], vectors[1], vectors[2], vectors[3], vectors[4]
    rate, found, sub_scale, sub_rate, sub_chisq = (vectors[5], vectors[6], vectors[7], vectors[8],
                                                   vectors[9])
    columns = np.empty(m, np.int64)
    # jump search: the covariance uses the median-difference rate throughout
    _covariance(m, n, guess, gain, sigma_read, coef, alpha, beta, alpha_p, alpha_r, beta_p,
                beta_r, w[2], scale)
    for j in range(m):
        columns[j] = j
    active = m
    for iteration in range(n):
        if active == 0:
            break
        if iteration == 0:
            d, u, a, b, sc = diffs, use, alpha, beta, scale
        else:
            for k in range(n):
                for jj in range(active):
                    j = columns[jj]
                    sub_diffs[k, jj] = diffs[k, j]
                    sub_use[k, jj] = use[k, j]
                    sub_alpha[k, jj] = alpha[k, j]
                    sub_beta[k, jj] = beta[k, j]
            for jj in range(active):
                sub_scale[jj] = scale[columns[jj]]
            d, u, a, b, sc = sub_diffs, sub_use, sub_alpha, sub_beta, sub_scale
        _normal_terms(active, n, d, u, a, b, w, sum_a, sum_b, sum_c, square)
        for jj in range(active):
            sub_rate[jj] = sum_b[jj] * (1.0 / sum_c[jj])
            sub_chisq[jj] = (sum_a[jj] - sum_b[jj] ** 2 / sum_c[jj]) / sc[jj]
            if iteration == 0:
                found[jj] = sub_rate[jj]
        _omission_fits(active, n, u, w, sum_a, sum_b, sum_c, sc, sub_rate, sub_chisq)
        still = 0
        for jj in range(active):
            j = columns[jj]
            rejected, rate_kept = _reject(jj, n, w, one_ok, two_ok, use[:, j])
            if not rejected:
                continue
            found[j] = found[j] * 0.0 + rate_kept
            remaining = 0
            for k in range(n):
                remaining += use[k, j] > 0
            if remaining > 3:
                columns[still] = j
                still += 1
        active = still
    # final fit: photon noise from the rate found (negative rates count as none) plus dark
    for j in range(m):
        rate[j] = found[j] * (1.0 if found[j] > 0 else 0.0) + dark[j]
    _covariance(m, n, rate, gain, sigma_read, coef, alpha, beta, alpha_p, alpha_r, beta_p,
                beta_r, w[2], scale)
    _normal_terms(m, n, diffs, use, alpha, beta, w, sum_a, sum_b, sum_c, square)
    dc = w[8]
    for j in range(m):
        out_rate[j] = sum_b[j] * (1.0 / sum_c[j])
        out_chisq[j] = (sum_a[j] - sum_b[j] ** 2 / sum_c[j]) / scale[j]
        out_sigma[j] = np.sqrt(scale[j] / sum_c[j])
        out_var_p[j] = 0.0
        out_var_r[j] = 0.0
        sum_a[j] = 0.0  # reused for the cross terms
        square[j] = 0.0
    for k in range(n):
        for j in range(m):
            weight = dc[k, j] / sum_c[j]
            out_var_p[j] += weight**2 * alpha_p[k, j]
            out_var_r[j] += weight**2 * alpha_r[k, j]
    for k in range(n - 1):
        for j in range(m):
            pair = (dc[k + 1, j] / sum_c[j]) * (dc[k, j] / sum_c[j])
            sum_a[j] += pair * beta_p[k, j]
            square[j] += pair * beta_r[k, j]
    for j in range(m):
        out_var_p[j] += 2 * sum_a[j]
        out_var_r[j] += 2 * square[j]


@njit(cache=True, error_model="numpy")
def _median_with_nan(values, n, j, work):
    """Median of values[:n, j]; NaN when any value is NaN."""
    for k in range(n):
        if np.isnan(values[k, j]):
            return np.nan
        work[k] = values[k, j]
    for i in range(1, n):
        current = work[i]
        k = i - 1
        while k >= 0 and work[k] > current:
            work[k + 1] = work[k]
            k -= 1
        work[k + 1] = current
    middle = n // 2
    return work[middle] if n % 2 else (work[middle - 1] + work[middle]) / 2.0


@njit(parallel=True, cache=True, error_model="numpy")
def fit_integrations(data, groupdq, pixeldq, gain, readnoise_cds, dark, zeroframe,
                     use_zeroframe, nframes, delta_t, coef, two_ok, slope, err, dq, var_p,
                     var_r, chisq):
    """Likelihood fit of every integration of every pixel; fills the 3-D outputs.

    ``coef`` rows per difference: [unused, alpha_read, alpha_photon, beta_read,
    beta_photon] (see ``difference_covariance``). With ``use_zeroframe`` the ZEROFRAME is an
    extra first resultant and group 0 loses its first frame.
    """
    nints, ngroups, ny, nx = data.shape
    nres = ngroups + 1 if use_zeroframe else ngroups
    n = nres - 1
    # blocks small enough that the work arrays stay in cache for long ramps
    block = max(4, min(BLOCK, BLOCK_CELLS // (n + 1)))
    nblocks = (nx + block - 1) // block
    for task in prange(ny * nblocks):
        y = task // nblocks
        x0 = (task % nblocks) * block
        m = min(block, nx - x0)
        w = np.empty((26, n + 1, block))
        vectors = np.empty((10, block))
        one_ok = np.ones(n)
        diffs = np.empty((n, block))
        use = np.empty((n, block))
        was_used = np.empty((n, block))
        values = np.empty(nres, np.float32)
        flags = np.empty(nres, np.int64)
        work = np.empty(n)
        guess = np.empty(block)
        g_block = np.empty(block)
        sigma_block = np.empty(block)
        dark_block = np.empty(block)
        quality = np.empty(block, np.int64)
        results = np.empty((5, block))
        for j in range(m):
            g_block[j] = gain[y, x0 + j]
            sigma_block[j] = np.float64(readnoise_cds[y, x0 + j]) / np.sqrt(2.0)
            dark_block[j] = dark[y, x0 + j]
        for i in range(nints):
            for j in range(m):
                x = x0 + j
                if use_zeroframe:
                    first = zeroframe[i, y, x]
                    values[0] = first
                    values[1] = (data[i, 0, y, x] * np.float32(nframes) - first) / np.float32(
                        nframes - 1)
                    flags[0] = groupdq[i, 0, y, x]
                    for g in range(1, ngroups):
                        values[g + 1] = data[i, g, y, x]
                    for g in range(ngroups):
                        flags[g + 1] = groupdq[i, g, y, x]
                else:
                    for g in range(ngroups):
                        values[g] = data[i, g, y, x]
                        flags[g] = groupdq[i, g, y, x]
                for k in range(n):
                    diffs[k, j] = np.float64(values[k + 1] - values[k]) / delta_t[k]
                    use[k, j] = 1.0 if (flags[k] == 0 and flags[k + 1] == 0) else 0.0
                    was_used[k, j] = use[k, j]
                median = _median_with_nan(diffs, n, j, work)
                guess[j] = median * (1.0 if median > 0 else 0.0)
                bits = np.int64(pixeldq[y, x])
                all_bad = True
                for r in range(nres):
                    all_bad &= (flags[r] & (SATURATED | DO_NOT_USE)) != 0
                    bits |= flags[r] & (SATURATED | JUMP_DET)
                quality[j] = bits | (DO_NOT_USE if all_bad else 0)
            _fit_block(m, n, diffs, use, guess, g_block, sigma_block, dark_block, coef,
                       one_ok, two_ok, w, vectors, results[0], results[1], results[2],
                       results[3], results[4])
            for j in range(m):
                x = x0 + j
                for k in range(n):
                    if was_used[k, j] != use[k, j]:
                        quality[j] |= JUMP_DET
                slope[i, y, x] = results[0, j]
                err[i, y, x] = results[1, j]
                chisq[i, y, x] = results[2, j]
                var_p[i, y, x] = results[3, j]
                var_r[i, y, x] = results[4, j]
                dq[i, y, x] = quality[j]


# -- driver and exposure combination ----------------------------------------------------------
def fit_ramps_likely(data, groupdq, pixeldq, gain, readnoise, dark, times, zeroframe=None,
                     nframes=1):
    """Likelihood fit of every pixel of an exposure.

    data/groupdq [nints, ngroups, ny, nx]; gain (e⁻/DN), readnoise (CDS, DN) and dark (DN/s)
    [ny, nx]; ``times`` as for ``difference_covariance`` (one entry per group). A ZEROFRAME
    is used as an extra resultant when given and group 0 averages at least two reads.
    Returns (rate, rateints): dicts of ``slope``, ``err``, ``dq``, ``var_poisson``,
    ``var_rnoise`` and ``chisq`` (2-D and 3-D). The inputs are not modified.
    """
    nints, ngroups, ny, nx = data.shape
    if ngroups < MIN_NGROUPS:
        raise ValueError(f"the likelihood fit needs at least {MIN_NGROUPS} groups, got {ngroups}")
    times = [np.atleast_1d(np.asarray(t, np.float64)) for t in times]
    if len(times) != ngroups:
        raise ValueError(f"read times given for {len(times)} groups; the ramp has {ngroups}")
    use_zeroframe = zeroframe is not None and times[0].size >= 2
    if use_zeroframe:
        times = [times[0][:1], times[0][1:], *times[1:]]
    else:
        zeroframe = np.zeros((1, 1, 1), np.float32)
    cov = difference_covariance(times)
    ndiff = cov["delta_t"].size
    coef = np.zeros((5, ndiff))
    coef[1] = cov["alpha_read"]
    coef[2] = cov["alpha_photon"]
    coef[3, :ndiff - 1] = cov["beta_read"]
    coef[4, :ndiff - 1] = cov["beta_photon"]
    # two neighbouring differences can only be left out together around a resultant of
    # several reads
    two_ok = np.zeros(ndiff)
    two_ok[:ndiff - 1] = cov["nreads"][1:-1] > 1
    cube = {name: np.empty((nints, ny, nx), np.float32)
            for name in ("slope", "err", "var_poisson", "var_rnoise", "chisq")}
    cube["dq"] = np.empty((nints, ny, nx), np.uint32)
    fit_integrations(
        np.ascontiguousarray(data, np.float32), np.ascontiguousarray(groupdq),
        np.ascontiguousarray(pixeldq, np.uint32), np.ascontiguousarray(gain, np.float32),
        np.ascontiguousarray(readnoise, np.float32), np.ascontiguousarray(dark, np.float32),
        np.ascontiguousarray(zeroframe, np.float32), use_zeroframe, int(nframes),
        cov["delta_t"], coef, two_ok, cube["slope"], cube["err"], cube["dq"],
        cube["var_poisson"], cube["var_rnoise"], cube["chisq"])
    return combine_integrations(cube), cube


def combine_integrations(cube: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exposure rate from per-integration fits (float32, as the official code computes it).

    One integration: its arrays. Several: start from the NaN-median rate and twice weight
    each integration by 1/(var_poisson·rate/rate_int + var_rnoise), the Poisson part scaled
    to the common rate; variances combine with the squared normalised weights, χ² adds.
    DQ: OR of the integrations, DO_NOT_USE only when every integration has it.
    """
    if cube["slope"].shape[0] == 1:
        return {name: array[0] for name, array in cube.items()}
    rates, var_poisson, var_rnoise = cube["slope"], cube["var_poisson"], cube["var_rnoise"]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = np.nanmedian(rates, axis=0)
        for _ in range(2):
            ratio = rate[None] / rates
            ratio[~np.isfinite(ratio) | (ratio < 0)] = 0
            scaled_poisson = var_poisson * ratio
            weights = 1 / (scaled_poisson + var_rnoise)
            weights /= np.nansum(weights, axis=0)[None]
            rate = _nan_sum_or_nan(rates * weights)
        image = {
            "slope": rate,
            "var_poisson": _nan_sum_or_nan(scaled_poisson * weights**2),
            "var_rnoise": _nan_sum_or_nan(var_rnoise * weights**2),
        }
        image["err"] = np.sqrt(image["var_poisson"] + image["var_rnoise"])
    image["chisq"] = np.sum(cube["chisq"], axis=0)
    dq = np.bitwise_or.reduce(cube["dq"], axis=0) & ~np.uint32(DO_NOT_USE)
    dq[np.all(cube["dq"] & DO_NOT_USE, axis=0)] |= DO_NOT_USE
    image["dq"] = dq
    return image


def _nan_sum_or_nan(values: np.ndarray) -> np.ndarray:
    """Sum over integrations ignoring NaN; NaN where every term is NaN."""
    total = np.nansum(values, axis=0)
    total[np.all(np.isnan(values), axis=0)] = np.nan
    return total
