"""The outlier tests of stage3.md §2.5: the derivative test against a blotted median, the
simple |SCI − reference| > snr·ERR test, and recording the outliers in DQ with NaN in the
science, error and variance arrays."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb import dqflags

#: DQ bits set on an outlier
OUTLIER_FLAGS = dqflags.DO_NOT_USE | dqflags.OUTLIER


def good_pixels(dq: np.ndarray | None, good_bits: int | None, shape=None) -> np.ndarray:
    """True where a pixel counts as good: none of its DQ bits lies outside ``good_bits``
    (``good_bits`` None: every pixel is good; ``dq`` None: every pixel is good)."""
    if dq is None or good_bits is None:
        return np.ones(shape if dq is None else np.shape(dq), bool)
    bad_bits = np.uint32(~int(good_bits) & 0xFFFFFFFF)
    return (np.asarray(dq, np.uint32) & bad_bits) == 0


def absolute_gradient(image: np.ndarray) -> np.ndarray:
    """For each pixel the largest |difference| to its 4-connected neighbours (neighbours
    that are NaN are ignored; a pixel with no finite neighbour gets 0); NaN where ``image``
    is NaN."""
    image = np.ascontiguousarray(image, np.float32)
    gradient = np.empty(image.shape, np.float32)
    _absolute_gradient(image, gradient)
    return gradient


@njit(cache=True, parallel=True)
def _absolute_gradient(image, gradient):
    ny, nx = image.shape
    for y in prange(ny):
        for x in range(nx):
            gradient[y, x] = _gradient_at(image, y, x)


@njit(cache=True, inline="always")
def _gradient_at(image, y, x):
    """``absolute_gradient`` of one pixel (a NaN difference does not raise it)."""
    value = image[y, x]
    if np.isnan(value):
        return np.float32(np.nan)
    ny, nx = image.shape
    largest = np.float32(0.0)
    if y > 0:
        largest = _larger_step(largest, value, image[y - 1, x])
    if y < ny - 1:
        largest = _larger_step(largest, value, image[y + 1, x])
    if x > 0:
        largest = _larger_step(largest, value, image[y, x - 1])
    if x < nx - 1:
        largest = _larger_step(largest, value, image[y, x + 1])
    return largest


@njit(cache=True, inline="always")
def _larger_step(largest, value, neighbour):
    step = abs(neighbour - value)
    return step if step > largest else largest  # False for NaN: ignored


def flag_against_blot(data: np.ndarray, err: np.ndarray, blot: np.ndarray, snr1: float,
                      snr2: float, scale1: float, scale2: float,
                      background: float = 0.0) -> np.ndarray:
    """Boolean outlier mask of the derivative test.

    D = |data − blot − background|, G = ``absolute_gradient(blot)``, σ = ``err`` with NaN
    → 0. A pixel is an outlier when D > scale2·G + snr2·σ and some pixel of its 3×3
    neighbourhood (itself included) has D > scale1·G + snr1·σ. Pixels where the blot is
    NaN are never outliers. float32 arithmetic throughout.
    """
    data, err, blot = (np.ascontiguousarray(array, np.float32) for array in (data, err, blot))
    first = np.empty(data.shape, np.bool_)
    second = np.empty(data.shape, np.bool_)
    _derivative_tests(data, err, blot, *(np.float32(value) for value in
                                          (background, snr1, snr2, scale1, scale2)),
                      first, second)
    outliers = np.empty(data.shape, np.bool_)
    _grown_and(first, second, outliers)
    return outliers


@njit(cache=True, parallel=True)
def _derivative_tests(data, err, blot, background, snr1, snr2, scale1, scale2, first, second):
    """first/second: D > scale·G + snr·σ with the first and second thresholds."""
    ny, nx = data.shape
    for y in prange(ny):
        for x in range(nx):
            gradient = _gradient_at(blot, y, x)
            sigma = err[y, x]
            if np.isnan(sigma):
                sigma = np.float32(0.0)
            difference = abs(data[y, x] - blot[y, x] - background)
            first[y, x] = difference > scale1 * gradient + snr1 * sigma
            second[y, x] = difference > scale2 * gradient + snr2 * sigma


@njit(cache=True, parallel=True)
def _grown_and(first, second, out):
    """out = (``first`` dilated by a 3×3 square) & ``second``."""
    ny, nx = first.shape
    for y in prange(ny):
        for x in range(nx):
            hit = False
            if second[y, x]:
                for row in range(max(y - 1, 0), min(y + 2, ny)):
                    for column in range(max(x - 1, 0), min(x + 2, nx)):
                        hit |= first[row, column]
            out[y, x] = hit


def flag_against_reference(data: np.ndarray, err: np.ndarray, reference: np.ndarray,
                           snr: float) -> np.ndarray:
    """Boolean outlier mask |data − reference| > snr·err (err NaN → 0; a NaN reference or
    data value is never an outlier)."""
    sigma = np.nan_to_num(np.asarray(err, np.float32))
    with np.errstate(invalid="ignore"):
        return np.abs(np.asarray(data, np.float32) - reference) > snr * sigma


def record_outliers(outliers: np.ndarray, dq: np.ndarray, *arrays: np.ndarray) -> int:
    """In place: DQ |= DO_NOT_USE | OUTLIER at ``outliers``, then NaN/DO_NOT_USE
    harmonisation of ``dq`` and ``arrays`` (SCI, ERR, VAR_*): every DO_NOT_USE pixel is NaN
    in all of them and every non-finite value is DO_NOT_USE. Returns the outlier count."""
    dq[outliers] |= np.uint32(OUTLIER_FLAGS)
    dqflags.harmonize_invalid(dq, *arrays)
    return int(np.count_nonzero(outliers))
