"""Classical non-linearity correction with a per-pixel polynomial (stage1.md §2.11)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb import dqflags
from calwebb.kernels import float32_words, native_row


def sanitize_coefficients(coeffs: np.ndarray, reference_dq: np.ndarray) -> tuple:
    """(coefficients, DQ to OR into PIXELDQ) with unusable pixels given the identity.

    Pixels flagged NO_LIN_CORR, with any NaN coefficient, or with a zero linear term get
    c1 = 1 and all other terms 0; the NaN and zero-linear cases are also flagged NO_LIN_CORR.
    ``coeffs`` [ncoeffs, ny, nx] are float32 in either byte order (a memory map of the stored
    reference is read once, in one compiled pass) or of another real type (converted first);
    the results are new arrays (native float32 coefficients, uint32 DQ).
    """
    if coeffs.dtype.newbyteorder("=") != np.float32:
        coeffs = coeffs.astype(np.float32)
    sanitized = np.empty(coeffs.shape, np.float32)
    dq = reference_dq.astype(np.uint32, copy=True)
    _sanitize(*float32_words(coeffs), dq, sanitized, dqflags.NO_LIN_CORR)
    return sanitized, dq


@njit(cache=True, parallel=True)
def _sanitize(words, swapped, dq, sanitized, no_lin_corr):
    """``sanitize_coefficients`` on the float32 bits of the coefficients (byte-swapped when
    ``swapped``), a row per thread task."""
    ncoeffs, ny, nx = words.shape
    for y in prange(ny):
        bits = np.empty(nx, np.uint32)
        values = bits.view(np.float32)
        broken = np.zeros(nx, np.bool_)
        for k in range(ncoeffs):
            native_row(words[k, y], swapped, bits)
            for x in range(nx):
                value = values[x]
                sanitized[k, y, x] = value
                broken[x] |= np.isnan(value) or (k == 1 and value == 0)
        for x in range(nx):
            if broken[x]:
                dq[y, x] |= no_lin_corr
            if dq[y, x] & no_lin_corr:
                for k in range(ncoeffs):
                    sanitized[k, y, x] = 1.0 if k == 1 else 0.0


def linearize(data: np.ndarray, groupdq: np.ndarray, coeffs: np.ndarray) -> None:
    """corrected = Σ c_k D^k (Horner) for every group not flagged SATURATED; in place."""
    _linearize(data, groupdq, np.ascontiguousarray(coeffs, np.float32), dqflags.SATURATED)


def linearize_zeroframe(zeroframe: np.ndarray, coeffs: np.ndarray) -> None:
    """Correct frame-zero data [nints, ny, nx]; zeros (unusable) stay zero. In place."""
    unusable = (zeroframe == 0).view(np.uint8)  # flag 1 where the value is left alone
    _linearize(zeroframe[:, None], unusable[:, None], np.ascontiguousarray(coeffs, np.float32),
               1)


@njit(cache=True, parallel=True)
def _linearize(data, flags, coeffs, keep):
    """The polynomial on every value of ``data`` [nints, ngroups, ny, nx] whose ``flags``
    have none of the bits ``keep``, a row of every plane per thread task, each Horner step
    over the whole row (so that it runs in SIMD lanes). The operations are numpy's on
    float32 planes, one by one (no fused multiply-add), so the result is the same bit for
    bit."""
    nints, ngroups, ny, nx = data.shape
    last = coeffs.shape[0] - 1
    for y in prange(ny):
        result = np.empty(nx, np.float32)
        for i in range(nints):
            for group in range(ngroups):
                for x in range(nx):
                    result[x] = coeffs[last, y, x]
                for k in range(last - 1, -1, -1):
                    for x in range(nx):
                        result[x] = result[x] * data[i, group, y, x] + coeffs[k, y, x]
                for x in range(nx):
                    if not flags[i, group, y, x] & keep:
                        data[i, group, y, x] = result[x]
