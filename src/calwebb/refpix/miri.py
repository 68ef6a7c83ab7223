"""MIRI reference-column correction (stage1.md §2.7), full frame only."""

from __future__ import annotations

import numpy as np

from calwebb.refpix.clipping import average_ignoring_nan, clipped_mean
from calwebb.refpix.nir import usable

N_AMPLIFIERS = 4
LEFT_COLUMNS, RIGHT_START = 4, 1028


def correct_miri(ramp: np.ndarray, pixeldq: np.ndarray, odd_even_rows: bool,
                 sigma: float) -> bool:
    """Correct one integration [ngroups, 1024, 1032] in place; False if an amplifier lacks
    usable reference pixels (the integration is then left as it was)."""
    first = ramp[0].copy()
    relative = ramp[1:] - first
    good = usable(pixeldq)
    rows = np.arange(ramp.shape[1])
    parity_of_row = rows % 2 if odd_even_rows else np.zeros_like(rows)
    corrections = np.zeros_like(relative)
    for amplifier in range(N_AMPLIFIERS):
        left, right = amplifier, RIGHT_START + amplifier
        for value in np.unique(parity_of_row):
            chosen = parity_of_row == value
            means = [
                clipped_mean(relative[:, chosen, column], good[chosen, column], sigma)
                for column in (left, right)
            ]
            signal = average_ignoring_nan(*means)
            if np.isnan(signal).any():
                return False
            corrections[:, chosen, amplifier::N_AMPLIFIERS] = signal[:, None, None]
    ramp[1:] = relative - corrections + first
    return True
