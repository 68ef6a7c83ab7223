"""TSO and coronagraphic outlier detection on one cube of integrations (stage3.md §2.5):
no resampling; each integration is compared with a median over integrations."""

from __future__ import annotations

import numpy as np

from calwebb.errors import DataModelError
from calwebb.outlier_detection.flagging import good_pixels
from calwebb.outlier_detection.median import (
    mask_low_weight,
    nanmedian,
    rolling_median,
    weight_threshold,
)


def cube_weights(dq: np.ndarray | None, good_bits: int | None, shape) -> np.ndarray:
    """float32 weight 1 where DQ passes ``good_bits``, else 0."""
    return good_pixels(dq, good_bits, shape).astype(np.float32)


def _check_cube(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 3:
        raise DataModelError(f"TSO and coronagraphic outlier detection need a 3-D cube of "
                             f"integrations, got SCI of shape {data.shape}")
    return data


def tso_reference(data: np.ndarray, dq: np.ndarray | None, good_bits: int | None,
                  maskpt: float, window: int) -> np.ndarray:
    """Per-integration reference of a TSO cube (float32, shaped like ``data``): pixels whose
    weight is below the weight threshold are NaN, then a rolling NaN-median over ``window``
    integrations when 1 < ``window`` < nints, else one NaN-median over all integrations
    (repeated for every integration)."""
    data = _check_cube(data)
    weights = cube_weights(dq, good_bits, data.shape)
    masked = mask_low_weight(data, weights, weight_threshold(weights, maskpt))
    if 1 < window < data.shape[0]:
        return rolling_median(masked, window)
    return np.broadcast_to(nanmedian(masked), data.shape)


def coron_median(data: np.ndarray, dq: np.ndarray | None, good_bits: int | None,
                 maskpt: float) -> np.ndarray:
    """float32 NaN-median over the integrations of a coronagraphic cube after NaN-ing the
    pixels whose weight is below the weight threshold."""
    data = _check_cube(data)
    weights = cube_weights(dq, good_bits, data.shape)
    return nanmedian(mask_low_weight(data, weights, weight_threshold(weights, maskpt)))
