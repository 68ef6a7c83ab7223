"""Classical non-linearity correction with a per-pixel polynomial (stage1.md §2.11)."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags


def sanitize_coefficients(coeffs: np.ndarray, reference_dq: np.ndarray) -> tuple:
    """(coefficients, DQ to OR into PIXELDQ) with unusable pixels given the identity.

    Pixels flagged NO_LIN_CORR, with any NaN coefficient, or with a zero linear term get
    c1 = 1 and all other terms 0; the NaN and zero-linear cases are also flagged NO_LIN_CORR.
    """
    coeffs = np.array(coeffs, dtype=np.float32, copy=True)
    dq = reference_dq.astype(np.uint32, copy=True)
    broken = np.isnan(coeffs).any(axis=0) | (coeffs[1] == 0)
    dq[broken] |= dqflags.NO_LIN_CORR
    identity = broken | ((dq & dqflags.NO_LIN_CORR) != 0)
    coeffs[:, identity] = 0
    coeffs[1, identity] = 1
    return coeffs, dq


def linearize(data: np.ndarray, groupdq: np.ndarray, coeffs: np.ndarray) -> None:
    """corrected = Σ c_k D^k (Horner) for every group not flagged SATURATED; in place."""
    for integration in range(data.shape[0]):
        for group in range(data.shape[1]):
            plane = data[integration, group]
            corrected = _horner(plane, coeffs)
            keep = (groupdq[integration, group] & dqflags.SATURATED) != 0
            np.copyto(plane, corrected, where=~keep)


def linearize_zeroframe(zeroframe: np.ndarray, coeffs: np.ndarray) -> None:
    """Correct frame-zero data; zeros (unusable) stay zero. In place."""
    for plane in zeroframe:
        unusable = plane == 0
        plane[...] = _horner(plane, coeffs)
        plane[unusable] = 0


def _horner(plane: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    result = coeffs[-1].copy()
    for coefficient in coeffs[-2::-1]:
        result *= plane
        result += coefficient
    return result
