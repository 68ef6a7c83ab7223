"""Near-infrared reference-pixel correction (stage1.md §2.7), in the detector frame.

Full frame: per amplifier (512 columns) the clipped means of the 4 bottom and 4 top
reference rows, by column parity, are subtracted; then a running median of the 4 left and
4 right reference columns removes the row-correlated (1/f) signal.
"""

from __future__ import annotations

import warnings

import numpy as np

from calwebb import dqflags
from calwebb.refpix.clipping import average_ignoring_nan, clipped_mean

N_REF = 4
AMPLIFIER_WIDTH = 512


def to_detector_frame(array: np.ndarray, fastaxis: int, slowaxis: int) -> np.ndarray:
    """A view of science-orientation ``array`` in the detector readout orientation."""
    if abs(fastaxis) == 1:
        return array[..., :: np.sign(slowaxis), :: np.sign(fastaxis)]
    return np.swapaxes(array[..., :: np.sign(fastaxis), :: np.sign(slowaxis)], -2, -1)


def usable(pixeldq: np.ndarray) -> np.ndarray:
    return (pixeldq & dqflags.DO_NOT_USE) == 0


def correct_full_frame(ramp: np.ndarray, pixeldq: np.ndarray, odd_even_columns: bool,
                       use_side_ref_pixels: bool, side_smoothing_length: int, side_gain: float,
                       sigma: float) -> bool:
    """Correct one integration ``ramp`` [ngroups, 2048, 2048] (detector frame) in place.

    Returns False (data untouched) when an amplifier has no usable reference pixel.
    """
    signal = _top_bottom_signal(ramp, usable(pixeldq), odd_even_columns, sigma)
    if signal is None:
        return False
    ngroups, ny, nx = ramp.shape
    columns = np.arange(nx)
    amplifier, parity = columns // AMPLIFIER_WIDTH, columns % 2 if odd_even_columns else 0 * columns
    ramp -= signal[:, amplifier, parity][:, None, :].astype(ramp.dtype)
    if use_side_ref_pixels:
        ramp -= (side_gain * side_signal(ramp, pixeldq, side_smoothing_length))[:, :, None].astype(
            ramp.dtype)
    return True


def _top_bottom_signal(ramp, good, odd_even_columns, sigma):
    """[ngroups, amplifier, parity] mean of top and bottom clipped means (None if unusable)."""
    ngroups, ny, nx = ramp.shape
    namps = nx // AMPLIFIER_WIDTH
    means = []
    for rows in (slice(0, N_REF), slice(ny - N_REF, ny)):
        block = ramp[:, rows].reshape(ngroups, N_REF, namps, AMPLIFIER_WIDTH)
        mask = good[rows].reshape(N_REF, namps, AMPLIFIER_WIDTH)
        if odd_even_columns:
            block = block.reshape(ngroups, N_REF, namps, AMPLIFIER_WIDTH // 2, 2)
            mask = mask.reshape(N_REF, namps, AMPLIFIER_WIDTH // 2, 2)
            values = block.transpose(0, 2, 4, 1, 3).reshape(ngroups, namps, 2, -1)
            flags = mask.transpose(1, 3, 0, 2).reshape(namps, 2, -1)
        else:
            values = block.transpose(0, 2, 1, 3).reshape(ngroups, namps, 1, -1)
            flags = mask.transpose(1, 0, 2).reshape(namps, 1, -1)
        means.append(clipped_mean(values, flags, sigma))
    combined = average_ignoring_nan(*means)
    return None if np.isnan(combined).any() else combined


def side_signal(ramp: np.ndarray, pixeldq: np.ndarray, smoothing_length: int) -> np.ndarray:
    """[ngroups, ny] running median of the left and right reference columns, combined."""
    if smoothing_length % 2 == 0:
        smoothing_length += 1
    half = smoothing_length // 2
    sides = []
    for columns in (slice(0, N_REF), slice(ramp.shape[-1] - N_REF, ramp.shape[-1])):
        values = np.where(usable(pixeldq[:, columns]), ramp[:, :, columns], np.nan)
        padded = np.pad(values, ((0, 0), (half, half), (0, 0)), mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(padded, smoothing_length, axis=1)
        windows = windows.reshape(*windows.shape[:2], -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
            sides.append(np.nanmedian(windows, axis=-1))
    return average_ignoring_nan(*sides, both_nan=0.0)


def correct_subarray(ramp: np.ndarray, pixeldq: np.ndarray, odd_even_columns: bool,
                     sigma: float) -> bool:
    """Subtract the clipped mean of the usable REFERENCE_PIXEL pixels (by column parity).

    ``ramp`` is one integration [ngroups, ny, nx]; False when there are none.
    """
    reference = ((pixeldq & dqflags.REFERENCE_PIXEL) != 0) & usable(pixeldq)
    if not reference.any():
        return False
    ngroups = ramp.shape[0]
    parity = np.arange(ramp.shape[-1]) % 2 if odd_even_columns else np.zeros(ramp.shape[-1], int)
    for value in np.unique(parity):
        selected = reference & (parity == value)[None, :]
        if not selected.any():
            return False
        samples = ramp[:, selected].reshape(ngroups, -1)
        means = clipped_mean(samples, np.ones(samples.shape[-1], bool), sigma)
        ramp[:, :, parity == value] -= means[:, None, None].astype(ramp.dtype)
    return True
