"""The outlier tests of stage3.md §2.5: the derivative test against a blotted median, the
simple |SCI − reference| > snr·ERR test, and recording the outliers in DQ with NaN in the
science, error and variance arrays."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

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
    image = np.asarray(image, np.float32)
    gradient = np.zeros(image.shape, np.float32)
    with np.errstate(invalid="ignore"):
        rows = np.abs(np.diff(image, axis=0))
        columns = np.abs(np.diff(image, axis=1))
    rows = np.nan_to_num(rows, nan=0.0)  # a NaN difference does not raise the gradient
    columns = np.nan_to_num(columns, nan=0.0)
    np.maximum(gradient[1:], rows, out=gradient[1:])
    np.maximum(gradient[:-1], rows, out=gradient[:-1])
    np.maximum(gradient[:, 1:], columns, out=gradient[:, 1:])
    np.maximum(gradient[:, :-1], columns, out=gradient[:, :-1])
    gradient[np.isnan(image)] = np.nan
    return gradient


def flag_against_blot(data: np.ndarray, err: np.ndarray, blot: np.ndarray, snr1: float,
                      snr2: float, scale1: float, scale2: float,
                      background: float = 0.0) -> np.ndarray:
    """Boolean outlier mask of the derivative test.

    D = |data − blot − background|, G = ``absolute_gradient(blot)``, σ = ``err`` with NaN
    → 0. A pixel is an outlier when D > scale2·G + snr2·σ and some pixel of its 3×3
    neighbourhood (itself included) has D > scale1·G + snr1·σ. Pixels where the blot is
    NaN are never outliers.
    """
    sigma = np.nan_to_num(np.asarray(err, np.float32))
    blot = np.asarray(blot, np.float32)
    gradient = absolute_gradient(blot)
    with np.errstate(invalid="ignore"):
        difference = np.abs(np.asarray(data, np.float32) - blot - np.float32(background))
        first = difference > scale1 * gradient + snr1 * sigma
        second = difference > scale2 * gradient + snr2 * sigma
    grown = ndimage.binary_dilation(first, structure=np.ones((3, 3), bool))
    return grown & second


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
