"""Iterative sigma-clipped means, vectorised over many independent samples."""

from __future__ import annotations

import numpy as np


def clipped_mean(values: np.ndarray, good: np.ndarray, sigma: float) -> np.ndarray:
    """Mean along the last axis after iterative clipping at ``sigma`` standard deviations.

    Each row is clipped like ``scipy.stats.sigmaclip`` (bounds inclusive, repeated until no
    value is removed); rows whose values are all equal get their plain mean; rows with no
    ``good`` value give NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    keep = np.broadcast_to(good, values.shape).copy()
    while True:
        count = keep.sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(keep, values, 0).sum(axis=-1) / count
            spread = np.sqrt(np.where(keep, (values - mean[..., None]) ** 2, 0).sum(axis=-1)
                             / count)
        low, high = mean - sigma * spread, mean + sigma * spread
        inside = keep & (values >= low[..., None]) & (values <= high[..., None])
        if (inside.sum(axis=-1) == count).all():
            break
        keep = inside
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, mean, np.nan)


def average_ignoring_nan(first: np.ndarray, second: np.ndarray, both_nan=np.nan) -> np.ndarray:
    """Mean of two arrays; where one is NaN the other; where both are, ``both_nan``."""
    result = np.where(np.isnan(first), second, np.where(np.isnan(second), first,
                                                        0.5 * (first + second)))
    return np.where(np.isnan(first) & np.isnan(second), both_nan, result)
