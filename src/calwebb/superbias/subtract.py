"""Subtracting the superbias image."""

import numpy as np

#: rows of the bias made usable (NaN → 0) at a time
BAND_ROWS = 256


def subtract_bias(data: np.ndarray, bias: np.ndarray) -> None:
    """Subtract ``bias`` (NaN → 0) from every group of every integration, in place (a band
    of rows at a time: no second bias image)."""
    for first in range(0, bias.shape[-2], BAND_ROWS):
        rows = slice(first, first + BAND_ROWS)
        data[..., rows, :] -= np.nan_to_num(bias[..., rows, :], nan=0.0).astype(np.float32)


def subtract_bias_zeroframe(zeroframe: np.ndarray, bias: np.ndarray) -> None:
    """Subtract the bias from frame-zero data, keeping unusable (zero) values at zero."""
    unusable = zeroframe == 0
    zeroframe -= np.nan_to_num(bias, nan=0.0).astype(np.float32)
    zeroframe[unusable] = 0
