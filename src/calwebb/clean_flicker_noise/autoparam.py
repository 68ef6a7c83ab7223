"""Choosing ``background_method`` and ``fit_by_channel`` from the data (``autoparam``).

Supported for NIRCam and NIRISS imaging. A draft rate image is median-cleaned with
default settings; statistics of the cleaned background (masked fraction, large-scale
slopes through the centre of the image, offsets and scatter between amplifier channels)
then go through a fixed decision tree with per-instrument limits. Pure array functions.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from calwebb.clean_flicker_noise.background import (
    background_level,
    clip_to_background,
    clipped_stats,
)
from calwebb.clean_flicker_noise.fit import CHANNEL_WIDTH, NIR_FULL_FRAME, median_stripes

log = logging.getLogger(__name__)

#: per instrument: thresholds of the decision tree
LIMITS = {
    "NIRISS": {"mask_fraction": 0.07, "offset_high_mask": 0.07, "slope_low_offset": 1e-5,
               "slope_high_offset": 1e-4, "slope_ratio": 5.0, "channel_sigma": 0.02},
    "NIRCAM": {"mask_fraction": 0.1, "offset_high_mask": 0.07, "slope_low_offset": 1e-5,
               "slope_high_offset": 1e-5, "slope_ratio": 3.0, "channel_sigma": 0.02},
}
#: exposure type → instrument whose limits apply
SUPPORTED = {"NIS_IMAGE": "NIRISS", "NRC_IMAGE": "NIRCAM"}
#: residual clip of the line fits (wide: only gross outliers)
LINE_FIT_CLIP = 10.0


@dataclass
class ImageStatistics:
    mask_fraction: float
    max_offset: float
    max_slope: float
    slope_ratio: float
    channel_sigma: float


def quick_clean(image: np.ndarray, slowaxis: int, flat: np.ndarray | None = None):
    """(median-cleaned copy of a rate ``image``, its background mask) with default
    settings: 2-sigma scene mask, median background, stripes along ``|slowaxis|``."""
    image = np.array(image, dtype=np.float32, copy=True)
    if flat is not None:
        image /= flat
    mask = np.ones(image.shape, dtype=bool)
    clip_to_background(image, mask)
    missing = np.isnan(image)
    image[missing] = 0.0
    mask[missing] = False
    background = background_level(image, mask)
    image -= background
    clip_to_background(image, mask, lower_half_only=True)
    image -= median_stripes(image, mask, abs(slowaxis))
    image += background
    image[missing] = np.nan
    return image, mask


def _band_average(image: np.ndarray, axis: int, start: Fraction, stop: Fraction) -> np.ndarray:
    """NaN-mean over the band [start, stop) (fractions of the length) of ``axis``."""
    length = image.shape[axis]
    band = slice(int(round(start * length)), int(round(stop * length)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(image[band] if axis == 0 else image[:, band], axis=axis)


def _line_fit(values: np.ndarray) -> tuple[float, float]:
    """(slope, clipped std of the residuals) of a straight line through the finite
    ``values`` against their index."""
    good = np.isfinite(values)
    x = np.arange(values.size)
    line = np.polynomial.Polynomial.fit(x[good], values[good], deg=1)
    coefficients = line.convert().coef
    slope = coefficients[1] if len(coefficients) > 1 else 0.0
    _, _, sigma = clipped_stats(values[good] - line(x[good]), sigma=LINE_FIT_CLIP)
    return float(slope), sigma


def _max_channel_offset(values: np.ndarray) -> float:
    """Largest jump between neighbouring amplifier channels' clipped means (0.0 unless
    ``values`` spans a full 2048-pixel frame)."""
    if values.size != NIR_FULL_FRAME[0]:
        return 0.0
    means = np.array([clipped_stats(values[start:start + CHANNEL_WIDTH])[0]
                      for start in range(0, values.size, CHANNEL_WIDTH)])
    return float(np.max(np.abs(np.diff(means))))


def image_statistics(image: np.ndarray, slowaxis: int, instrument: str,
                     flat: np.ndarray | None = None) -> ImageStatistics:
    """The decision-tree inputs for a rate ``image`` of NIRCam or NIRISS."""
    cleaned, mask = quick_clean(image, slowaxis, flat)
    smooth = background_level(cleaned, mask, method="model")  # also refines the mask
    cleaned[~mask] = smooth if np.ndim(smooth) == 0 else smooth[~mask]
    mask_fraction = float(np.sum(~mask) / mask.size)
    middle = (Fraction(3, 8), Fraction(5, 8))
    over_rows = _band_average(cleaned, 0, *middle)  # one value per column
    over_columns = _band_average(cleaned, 1, *middle)  # one value per row
    column_slope, column_sigma = _line_fit(over_rows)
    row_slope, _ = _line_fit(over_columns)
    slopes = np.abs([row_slope, column_slope])
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_ratio = float(np.max(slopes) / np.min(slopes))
    if instrument == "NIRISS":
        # channel 1 of NIRISS (near the top) can differ from the others
        _, channel_sigma = _line_fit(_band_average(cleaned, 0, Fraction(10, 12),
                                                   Fraction(11, 12)))
        max_offset = _max_channel_offset(over_columns)
    else:
        channel_sigma = column_sigma
        max_offset = _max_channel_offset(over_rows)
    return ImageStatistics(mask_fraction, max_offset, float(np.max(slopes)), slope_ratio,
                           channel_sigma)


def decide(stats: ImageStatistics, limits: dict) -> dict:
    """``background_method`` and ``fit_by_channel`` from the statistics."""
    high_mask = stats.mask_fraction >= limits["mask_fraction"]
    high_offset = stats.max_offset >= limits["offset_high_mask"]
    steep_low = stats.max_slope >= limits["slope_low_offset"]
    steep_high = stats.max_slope >= limits["slope_high_offset"]
    high_ratio = stats.slope_ratio >= limits["slope_ratio"]
    high_sigma = stats.channel_sigma >= limits["channel_sigma"]
    if not high_mask and high_offset:
        return {"background_method": "median", "fit_by_channel": True}
    if high_mask:
        steep = steep_high if high_offset else steep_low
        return {"background_method": "model" if steep else "median", "fit_by_channel": False}
    if steep_high:
        method = "model"
    elif steep_low:
        method = "median" if high_ratio else "model"
    else:
        method = "median"
    return {"background_method": method,
            "fit_by_channel": bool(stats.max_offset > 0 and high_sigma)}


def automatic_parameters(image: np.ndarray, slowaxis: int, exp_type: str,
                         flat: np.ndarray | None = None) -> dict | None:
    """Parameter overrides for a rate ``image`` (None for unsupported exposure types):
    ``apply_flat_field`` (whether a flat was given), ``background_method``,
    ``fit_by_channel``."""
    instrument = SUPPORTED.get((exp_type or "").upper())
    if instrument is None:
        return None
    stats = image_statistics(image, slowaxis, instrument, flat)
    log.debug("Autoparam statistics: %s", stats)
    return {"apply_flat_field": flat is not None, **decide(stats, LIMITS[instrument])}
