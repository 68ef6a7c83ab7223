"""Drizzle images onto one grid with the ``drizzle`` package (stage2.md §4.22).

Inputs are surface brightness, so no intensity rescaling is applied: each output pixel is the
weighted mean of the input pixels overlapping it, which conserves surface brightness and
hence Σ SCI·Ω (total flux).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from drizzle.resample import Drizzle
from drizzle.utils import calc_pixmap

from calwebb import dqflags

VARIANCES = ("var_poisson", "var_rnoise", "var_flat")
#: input pixels with these flags are left out (all other flags are treated as good)
EXCLUDED = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


@dataclass
class DrizzleInput:
    """One image to drizzle: 2-D arrays, its gwcs, exposure time and variances by name."""

    data: np.ndarray
    dq: np.ndarray
    wcs: object
    exposure_time: float = 1.0
    variances: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DrizzleResult:
    data: np.ndarray
    weight: np.ndarray
    context: np.ndarray | None
    variances: dict[str, np.ndarray]
    error: np.ndarray


def pixel_weights(item: DrizzleInput, weight_type: str | None) -> np.ndarray:
    """Per-pixel weights: 'ivm' = 1/VAR_RNOISE, 'exptime' = the exposure time, None = 1;
    0 for excluded, non-finite or zero-variance pixels."""
    usable = ((item.dq & EXCLUDED) == 0) & np.isfinite(item.data)
    if weight_type == "ivm":
        variance = item.variances.get("var_rnoise")
        if variance is None:
            weights = np.ones(item.data.shape, np.float32)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                weights = np.where((variance > 0) & np.isfinite(variance), 1.0 / variance, 0.0)
    elif weight_type == "exptime":
        weights = np.full(item.data.shape, item.exposure_time, np.float32)
    else:
        weights = np.ones(item.data.shape, np.float32)
    return np.where(usable, weights, 0.0).astype(np.float32)


def drizzle_images(inputs, output_wcs, pixfrac: float = 1.0, kernel: str = "square",
                   fillval: str | float = "NAN", weight_type: str | None = "ivm",
                   enable_context: bool = True, variances: bool = True,
                   pixel_scale_ratio: float = 1.0) -> DrizzleResult:
    """Drizzle an iterable of :class:`DrizzleInput` (consumed one at a time) onto
    ``output_wcs``; returns SCI, WHT, CON and the resampled variances and ERR."""
    ny, nx = output_wcs.array_shape
    fill = np.nan if str(fillval).upper() in ("NAN", "INDEF") else float(fillval)
    names = VARIANCES if variances else ()
    resampled = {name: np.zeros((ny, nx), np.float32) for name in names}
    driz = Drizzle(kernel=kernel, fillval=fill, fillval2=np.nan, out_shape=(ny, nx),
                   out_img2=[resampled[name] for name in names] or None,
                   disable_ctx=not enable_context)
    for item in inputs:
        weights = pixel_weights(item, weight_type)
        good = weights > 0
        data = np.where(good, item.data, 0.0).astype(np.float32)
        extra = [np.where(good, item.variances[name], 0.0).astype(np.float32)
                 if name in item.variances else None for name in names]
        pixmap = calc_pixmap(item.wcs, output_wcs, item.data.shape)
        driz.add_image(data, exptime=item.exposure_time, pixmap=pixmap,
                       data2=extra or None, weight_map=weights, pixfrac=pixfrac,
                       pixel_scale_ratio=pixel_scale_ratio, in_units="cps")
    weight = driz.out_wht
    for name in names:
        resampled[name] = driz.out_img2[names.index(name)]
    empty = weight <= 0
    total = np.zeros((ny, nx), np.float32)
    for array in resampled.values():
        total += np.nan_to_num(array)
    error = np.sqrt(total)
    error[empty] = np.nan
    for array in resampled.values():
        array[empty] = np.nan
    return DrizzleResult(driz.out_img, weight, driz.out_ctx if enable_context else None,
                         resampled, error)
