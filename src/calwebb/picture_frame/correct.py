"""Scaling the PICTUREFRAME pattern to each group and subtracting it.

A thermal signal brightens the border of NIRSpec full-frame images relative to the centre.
The reference holds its shape as a rate image. For each group's signal since group 0 (or
each rate image), the medians of background pixels in a centre square and in an edge band
give the pattern's amplitude (centre − edge contrast, relative to the reference's) and its
level (the edge median); the scaled, offset reference is subtracted.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from calwebb import dqflags

log = logging.getLogger(__name__)

#: [start, stop) rows/columns of the lower and upper edge bands and of the centre square
#: (the outer 4 reference rows/columns are excluded)
LOWER_EDGE = (4, 75)
UPPER_EDGE = (1985, 2043)
CENTER = (76, 1984)
#: rows of the fixed-slit area, masked for IFU and MOS data
FIXED_SLIT_ROWS = (922, 1116)
#: clipping of the draft rate: below centre − 3σ is bad, above centre + n_sigma·σ is signal
LOWER_SIGMA = 3.0
CLIP_SIGMA = 3.0


def region_masks(background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, edge) background pixels of a [2048, 2048] mask."""
    ny, nx = background.shape
    y = np.arange(ny)[:, None]
    x = np.arange(nx)[None, :]

    def inside(coordinate, bounds):
        return (coordinate >= bounds[0]) & (coordinate < bounds[1])

    center = background & inside(y, CENTER) & inside(x, CENTER)
    in_frame = inside(y, (LOWER_EDGE[0], UPPER_EDGE[1])) & inside(x, (LOWER_EDGE[0],
                                                                      UPPER_EDGE[1]))
    bands = (inside(y, LOWER_EDGE) | inside(y, UPPER_EDGE) | inside(x, LOWER_EDGE)
             | inside(x, UPPER_EDGE))
    return center, background & bands & in_frame


def clip_to_background(image: np.ndarray, mask: np.ndarray, n_sigma: float) -> None:
    """Unset ``mask`` (in place) where ``image`` is above the background median plus
    ``n_sigma`` clipped standard deviations (signal) or below it minus 3 (bad values).

    The median and deviation come from 3σ iterative clipping of the masked-in pixels.
    """
    if not mask.any():
        return
    from astropy.stats import sigma_clipped_stats  # here: a slow import

    values = image.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, center, sigma = sigma_clipped_stats(values, mask=~mask, sigma=CLIP_SIGMA)
    with np.errstate(invalid="ignore"):
        mask[values < center - LOWER_SIGMA * sigma] = False
        mask[values > center + n_sigma * sigma] = False


def background_mask(rate: np.ndarray, dq: np.ndarray, exp_type: str,
                    mask_science_regions: bool, n_sigma: float) -> np.ndarray:
    """2-D True where the draft rate (2-D, or 3-D per integration) is background.

    NaN and exactly-zero pixels are never background. With ``mask_science_regions``,
    MSA_FAILED_OPEN pixels and, for IFU and MOS exposures, the fixed-slit rows are excluded
    (slit and slice footprints need a NIRSpec WCS, which is not applied here). Signal is
    clipped at ``n_sigma`` (0: no clipping), per integration for a cube; a cube's masks are
    combined (background in every integration).
    """
    exp_type = (exp_type or "").lower()
    mask = np.ones(dq.shape, dtype=bool)
    if mask_science_regions and exp_type.startswith("nrs"):
        mask[(dq & dqflags.PIXEL["MSA_FAILED_OPEN"]) != 0] = False
    mask[np.isnan(rate) | (rate == 0)] = False
    if mask_science_regions and exp_type in ("nrs_ifu", "nrs_msaspec"):
        log.info("Masking the fixed slit region for %s data", exp_type.upper())
        mask[..., FIXED_SLIT_ROWS[0]:FIXED_SLIT_ROWS[1], :] = False
    if n_sigma > 0:
        if rate.ndim == 3:
            for plane in range(rate.shape[0]):
                clip_to_background(rate[plane], mask[plane], n_sigma)
        else:
            clip_to_background(rate, mask, n_sigma)
    return mask.all(axis=0) if mask.ndim == 3 else mask


def subtract_picture_frame(data: np.ndarray, reference: np.ndarray, center: np.ndarray,
                           edge: np.ndarray, is_ramp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Subtract the scaled reference from ``data`` in place; returns (scale, offset) per
    image.

    Ramps [nints, ngroups, ny, nx]: each group k ≥ 1 is corrected from its difference with
    group 0, ``d = data[k] − data[0]``: with centre/edge medians ``c, e`` of ``d`` and
    ``c_ref, e_ref`` of the reference, ``data[k] = d + (data[0] − (s·(ref − e_ref) + e))``,
    ``s = (c − e)/(c_ref − e_ref)``; group 0 is unchanged. Rates [ny, nx] or [nints, ny,
    nx]: each image gets ``data − (s·(ref − e_ref) + e)``. float32 throughout.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center_ref = np.nanmedian(reference[center])
        edge_ref = np.nanmedian(reference[edge])
    log.debug("Reference medians: centre %s, edge %s", center_ref, edge_ref)
    shape = reference - edge_ref
    if is_ramp:
        nints, ngroups = data.shape[:2]
        scales = np.empty((nints, ngroups - 1), data.dtype)
        offsets = np.empty((nints, ngroups - 1), data.dtype)
        for integration in range(nints):
            first = data[integration, 0]
            for group in range(1, ngroups):
                difference = data[integration, group] - first
                scale, offset = _scale_offset(difference, center, edge, center_ref, edge_ref)
                data[integration, group] = difference + (first - (scale * shape + offset))
                scales[integration, group - 1], offsets[integration, group - 1] = scale, offset
        return scales, offsets
    images = data[None] if data.ndim == 2 else data  # views: corrected in place
    scales = np.empty(images.shape[0], data.dtype)
    offsets = np.empty(images.shape[0], data.dtype)
    for index, image in enumerate(images):
        scale, offset = _scale_offset(image, center, edge, center_ref, edge_ref)
        image += 0.0 - (scale * shape + offset)
        scales[index], offsets[index] = scale, offset
    return scales.reshape(data.shape[:-2]), offsets.reshape(data.shape[:-2])


def _scale_offset(image, center, edge, center_ref, edge_ref):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median_center = np.nanmedian(image[center])
        median_edge = np.nanmedian(image[edge])
        scale = (median_center - median_edge) / (center_ref - edge_ref)
    log.debug("Medians: centre %s, edge %s; scale %s", median_center, median_edge, scale)
    return scale, median_edge
