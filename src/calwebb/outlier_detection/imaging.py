"""Imaging-mode building blocks on arrays (stage3.md §2.5): drizzle one exposure group onto
the median grid, blot the median back onto an input's pixels, and the per-pixel weights of
the median taken without resampling."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from drizzle.resample import blot_image
from numba import njit

from calwebb.outlier_detection.flagging import good_pixels
from calwebb.resample.drizzle_images import (
    DrizzleInput,
    PixelMapper,
    PixmapScratch,
    drizzle_images,
    pixel_weights,
)


@dataclass
class ImageInput:
    """One input image as outlier detection drizzles it."""

    data: np.ndarray
    wcs: object
    dq: np.ndarray | None = None
    var_rnoise: np.ndarray | None = None  # for 'ivm' weights
    exposure_time: float = 1.0  # for 'exptime' weights
    background: float = 0.0  # sky level recorded but not subtracted
    name: str = "input"
    pixel_mapper: PixelMapper | None = None  # its pixel map on the median grid, when known


def drizzle_input(item: ImageInput, good_bits: int | None) -> DrizzleInput:
    """The drizzle input of ``item``: pixels whose DQ fails ``good_bits`` are left out (no
    weight); no DQ is passed on, so only ``good_bits`` decides."""
    variances = {} if item.var_rnoise is None else {"var_rnoise": item.var_rnoise}
    excluded = None if item.dq is None or good_bits is None else \
        ~good_pixels(item.dq, good_bits)
    return DrizzleInput(data=item.data, wcs=item.wcs, dq=None, variances=variances,
                        exposure_time=item.exposure_time, background=item.background,
                        name=item.name, pixel_mapper=item.pixel_mapper, excluded=excluded)


def drizzle_group(items: Iterable[ImageInput], output_wcs, *, good_bits: int | None,
                  pixfrac: float = 1.0, kernel: str = "square", fillval: str = "NAN",
                  weight_type: str | None = "ivm", pixel_scale_ratio: float = 1.0,
                  pixmap_stepsize: float = 1.0, pixmap_order: int = 1,
                  scratch: PixmapScratch | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(SCI, WHT) float32 of the images of one exposure group drizzled together onto
    ``output_wcs`` (no context, no variances, no error); ``items`` are consumed one at a
    time; ``scratch``: where their pixel maps are made."""
    result = drizzle_images(
        (drizzle_input(item, good_bits) for item in items), output_wcs, pixfrac=pixfrac,
        kernel=kernel, fillval=fillval, weight_type=weight_type,
        pixel_scale_ratio=pixel_scale_ratio, enable_context=False, variance_names=(),
        error=None, pixmap_stepsize=pixmap_stepsize, pixmap_order=pixmap_order,
        scratch=scratch)
    return result.data, result.weight


def blot_median(median: np.ndarray, median_wcs, input_wcs, shape: tuple[int, int], *,
                pixmap_stepsize: float = 1.0, pixmap_order: int = 1,
                pixel_mapper: PixelMapper | None = None,
                scratch: PixmapScratch | None = None) -> np.ndarray:
    """The median image resampled onto an input's pixels (``shape``, ``input_wcs``) by
    linear interpolation at each input pixel's position on the median grid; NaN where the
    input pixel does not map onto the grid or the median there is NaN. float32.
    ``pixel_mapper``: the input's pixel map on the median grid, when already made;
    ``scratch``: where the map is made."""
    pixmap = PixelMapper.reused(pixel_mapper, input_wcs, median_wcs, shape, pixmap_stepsize,
                                pixmap_order).pixmap(scratch)
    unmapped = _mark_unmapped(pixmap)
    blot = np.full(shape, np.nan, np.float32)
    blot_image(np.ascontiguousarray(median, np.float32), np.ascontiguousarray(pixmap),
               out_img=blot,
               fillval=np.nan, iscale=1.0, interp="linear")
    blot[unmapped] = np.nan
    return blot


@njit(cache=True)
def _mark_unmapped(pixmap):
    """In place: positions with a non-finite coordinate become (-1, -1), which blot_image
    can take; returns where they were."""
    rows, columns, _ = pixmap.shape
    unmapped = np.zeros((rows, columns), np.bool_)
    for row in range(rows):
        for column in range(columns):
            if not (np.isfinite(pixmap[row, column, 0]) and np.isfinite(pixmap[row, column, 1])):
                unmapped[row, column] = True
                pixmap[row, column, 0] = -1.0
                pixmap[row, column, 1] = -1.0
    return unmapped


def image_weights(item: ImageInput, weight_type: str | None,
                  good_bits: int | None) -> np.ndarray:
    """float32 weight of each pixel for the median without resampling: 'ivm' → 1/VAR_RNOISE,
    'exptime' → the exposure time; 0 where DQ fails ``good_bits`` (or SCI is not finite)."""
    data = np.asarray(item.data)
    excluded = ~good_pixels(item.dq, good_bits, data.shape) | ~np.isfinite(data)
    variances = {} if item.var_rnoise is None else {"var_rnoise": item.var_rnoise}
    return pixel_weights(DrizzleInput(data=data, wcs=None, variances=variances,
                                      exposure_time=item.exposure_time), weight_type,
                         excluded=excluded)
