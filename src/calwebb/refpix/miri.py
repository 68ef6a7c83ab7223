"""MIRI reference-column correction (stage1.md §2.7), full frame only.

Measured from the reference columns alone (left 0–3, right 1028–1031), so that the
correction can be applied to the whole frame or to any band of its rows.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.refpix.clipping import average_ignoring_nan, clipped_mean

N_AMPLIFIERS = 4
LEFT_COLUMNS, RIGHT_START = 4, 1028


def row_parity(rows: np.ndarray, odd_even_rows: bool) -> np.ndarray:
    return rows % 2 if odd_even_rows else np.zeros_like(rows)


def measure_miri(left: np.ndarray, right: np.ndarray, good_left: np.ndarray,
                 good_right: np.ndarray, odd_even_rows: bool, sigma: float) -> np.ndarray | None:
    """Per-group signal [ngroups - 1, parity, amplifier] of one integration.

    ``left``/``right`` are its reference columns [ngroups, ny, 4] (columns 0–3 and
    1028–1031) and ``good_*`` their usable-pixel masks [ny, 4]. None when an amplifier
    has no usable reference pixel (the integration is then left as it is).
    """
    parity_of_row = row_parity(np.arange(left.shape[1]), odd_even_rows)
    parities = np.unique(parity_of_row)
    signal = np.zeros((left.shape[0] - 1, 2, N_AMPLIFIERS))
    for amplifier in range(N_AMPLIFIERS):
        for value in parities:
            chosen = parity_of_row == value
            means = [
                clipped_mean(columns[1:, chosen, amplifier] - columns[0, chosen, amplifier],
                             good[chosen, amplifier], sigma)
                for columns, good in ((left, good_left), (right, good_right))
            ]
            combined = average_ignoring_nan(*means)
            if np.isnan(combined).any():
                return None
            signal[:, value, amplifier] = combined
    return signal


def apply_miri(ramp: np.ndarray, signal: np.ndarray, first_row: int, odd_even_rows: bool) -> None:
    """Subtract ``signal`` from groups ≥ 1 of one integration's rows [ngroups, rows, 1032]
    (frame rows from ``first_row``), relative to group 0; in place."""
    amplifier_of_column = np.arange(ramp.shape[-1]) % N_AMPLIFIERS
    per_column = np.ascontiguousarray(signal[..., amplifier_of_column], ramp.dtype)
    parity_of_row = row_parity(np.arange(first_row, first_row + ramp.shape[1]), odd_even_rows)
    _subtract_signal(ramp, per_column, parity_of_row)


@njit(cache=True, parallel=True)
def _subtract_signal(ramp, per_column, parity_of_row):
    """``apply_miri`` a row at a time with the signal of each column ``per_column`` [ngroups
    - 1, parity, nx]; each value is taken relative to group 0, corrected and put back in
    three float32 operations, the rounding of the official step."""
    ngroups, nrows, nx = ramp.shape
    for row in prange(nrows):
        parity = parity_of_row[row]
        for group in range(1, ngroups):
            for x in range(nx):
                value = ramp[group, row, x] - ramp[0, row, x]
                value -= per_column[group - 1, parity, x]
                ramp[group, row, x] = value + ramp[0, row, x]
