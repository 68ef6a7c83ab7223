"""SIRS ("simple improved reference subtraction", Rauscher 2022) side-pixel correction.

For NIR full frames, instead of a running median, the row-correlated (1/f) signal of each
amplifier is estimated by convolving the row means of the 4 left and of the 4 right
reference columns with two kernels per amplifier, built from Fourier coefficients of the
``sirskernel`` reference (``gamma`` left, ``zeta`` right). Everything is in the detector
frame; the estimate of amplifier k is subtracted from its 512 columns, all rows.
"""

from __future__ import annotations

import numpy as np

N_REF = 4
AMPLIFIERS = 4
#: robust sigma = this × the median absolute deviation from the median
MAD_TO_SIGMA = 1.48


def make_kernels(gamma: np.ndarray, zeta: np.ndarray, gaussmooth: float,
                 halfwidth: int) -> np.ndarray:
    """[side (left, right), amplifier, 2 × halfwidth + 1] real convolution kernels.

    Each row of coefficients is taken to real space (inverse real FFT), centred, cut to
    ``halfwidth`` samples each side of its centre, and smoothed by a unit-sum Gaussian of
    width ``gaussmooth`` samples sampled on the same grid (a low-pass filter).
    """
    offsets = np.arange(-halfwidth, halfwidth + 1)
    window = np.exp(-(offsets**2) / (2 * gaussmooth**2))
    window /= window.sum()
    kernels = []
    for coefficients in (gamma, zeta):
        coefficients = np.atleast_2d(coefficients)
        centre = coefficients.shape[-1] - 1  # the real-space length is 2 × centre
        real_space = np.fft.fftshift(np.fft.irfft(coefficients, axis=-1), axes=-1)
        cut = real_space[:, centre - halfwidth:centre + halfwidth + 1]
        kernels.append([np.convolve(kernel, window, mode="same") for kernel in cut])
    return np.asarray(kernels)


def detector_kernels(coefficients: tuple[np.ndarray, np.ndarray] | None, gaussmooth: float,
                     halfwidth: int) -> np.ndarray | None:
    """``make_kernels`` of a detector's (gamma, zeta), or None when it has none."""
    if coefficients is None:
        return None
    return make_kernels(*coefficients, gaussmooth, halfwidth)


def _convolve_rows(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolution along the last axis, zero outside, centred (``np.convolve`` 'same')."""
    from scipy import ndimage  # here: only SIRS needs it, and it costs every run 0.1 s

    return ndimage.convolve1d(values, kernel, axis=-1, mode="constant", cval=0.0)


def _masked_row_sums(columns: np.ndarray, sigreject: float) -> tuple[np.ndarray, np.ndarray]:
    """(sum of the kept values of each row / 4, number kept / 4), [ngroups, ny] each, for
    reference columns [ngroups, ny, 4]: a value is kept when within ``sigreject`` robust
    sigmas of the median of its group's strip (rejected values are multiplied by 0, not
    dropped)."""
    median = np.median(columns, axis=(1, 2), keepdims=True)
    deviation = np.abs(columns - median)
    sigma = MAD_TO_SIGMA * np.median(deviation, axis=(1, 2), keepdims=True)
    kept = (deviation <= sigreject * sigma).astype(np.float64)
    return (columns * kept).sum(axis=-1) / N_REF, kept.sum(axis=-1) / N_REF


def side_signal(left: np.ndarray, right: np.ndarray, kernels: np.ndarray,
                sigreject: float) -> np.ndarray:
    """[ngroups, amplifier (4), ny] float64 SIRS signal from the left and right reference
    columns [ngroups, ny, 4] of a detector-frame ramp already corrected by the amplifier
    (top/bottom) signal.

    Per side, outlying pixels (``sigreject``) are left out of the row means; each kernel's
    convolution is renormalised by the convolution of the kept fraction, as if the missing
    pixels had the row's mean. Amplifiers without a kernel get 0. A NaN reference pixel
    makes its whole group's signal NaN, as in the official step.
    """
    ngroups, ny, _ = left.shape
    signal = np.zeros((ngroups, AMPLIFIERS, ny))
    sides = [_masked_row_sums(np.asarray(columns, np.float64), sigreject)
             for columns in (left, right)]
    ones = np.ones(ny)
    for amplifier in range(min(kernels.shape[1], AMPLIFIERS)):
        for (sums, kept), kernel in zip(sides, kernels[:, amplifier], strict=True):
            with np.errstate(divide="ignore", invalid="ignore"):  # nothing kept: NaN or inf
                norm = _convolve_rows(ones, kernel) / _convolve_rows(kept, kernel)
                signal[:, amplifier] += _convolve_rows(sums, kernel) * norm
    return signal
