"""Cleaning one image, and every group difference / integration of an exposure.

Pure array functions. A ramp is cleaned through its group differences: each difference
(group j+1 − group j, JUMP and DO_NOT_USE pixels of group j+1 left out of the fit) is
cleaned and added to the already cleaned group j, so group 0 keeps its values and the
correction accumulates up the ramp.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np

from calwebb.clean_flicker_noise.background import background_level, clip_to_background
from calwebb.clean_flicker_noise.fit import (
    NIR_FULL_FRAME,
    SUBARRAY_CUTOFFS,
    FitFailedError,
    median_stripes,
    nsclean_full_frame,
    nsclean_subarray,
)
from calwebb.clean_flicker_noise.masking import mask_unusable

log = logging.getLogger(__name__)


@dataclass
class CleaningOptions:
    """How one image is cleaned (see ``clean_image``)."""

    fit_method: str = "median"
    background_method: str | None = "median"
    background_box_size: list[int] | None = None
    n_sigma: float = 2.0
    axis_to_correct: int = 2
    fit_by_channel: bool = False
    detector: str = ""
    cutoffs: tuple = SUBARRAY_CUTOFFS
    flat: np.ndarray | None = None


def clean_image(image: np.ndarray, mask: np.ndarray, options: CleaningOptions):
    """(cleaned image, background) for one image, or (None, None) when no background
    pixel is usable.

    ``mask`` (background pixels; refined in place) must be the caller's copy. Steps: divide
    by the flat; NaNs become 0 and leave the mask; remove a background level (refining
    the mask by a 3-sigma clip of its mirrored lower half, then by ``n_sigma``); fit and
    subtract the noise; restore background, flat and NaNs. Raises ``FitFailedError``
    when the fft fit cannot be solved.
    """
    image = image.astype(np.float32)
    if options.flat is not None:
        image /= options.flat
    missing = np.isnan(image)
    image[missing] = 0.0
    mask[missing] = False
    if not mask.any():
        return None, None
    if options.background_method is None:
        background = 0.0
        residual = image
    else:
        background = background_level(image, mask, options.background_method,
                                      options.background_box_size)
        residual = image - background
        if options.n_sigma > 0:
            clip_to_background(residual, mask, sigma_lower=options.n_sigma,
                               sigma_upper=options.n_sigma, lower_half_only=True)
    if options.fit_method == "fft":
        if residual.shape == NIR_FULL_FRAME:
            cleaned = nsclean_full_frame(residual, mask, options.detector)
        else:
            cleaned = nsclean_subarray(residual, mask, options.detector, options.cutoffs)
    else:
        cleaned = residual - median_stripes(residual, mask, options.axis_to_correct,
                                            options.fit_by_channel)
    cleaned += background
    if options.flat is not None:
        cleaned *= options.flat
    cleaned[missing] = np.nan
    return cleaned, background


def thread_safe(options: CleaningOptions) -> bool:
    """Whether images can be cleaned in threads with these options: the median fit with a
    median or no background (photutils and the fft path are kept to one thread)."""
    return options.fit_method == "median" and options.background_method in ("median", None)


def _clean_all(images, masks, options, pool):
    if pool is None:
        return [clean_image(image, mask, options) for image, mask in zip(images, masks,
                                                                         strict=True)]
    return list(pool.map(partial(clean_image, options=options), images, masks))


def clean_exposure(data: np.ndarray, background_mask: np.ndarray, options: CleaningOptions,
                   groupdq: np.ndarray | None = None, median_image: np.ndarray | None = None,
                   keep_background: bool = False, threads: int = 1):
    """Clean ``data`` in place: a rate image (2-D), rates per integration (3-D) or ramps
    (4-D, group differences unless ``median_image`` is given).

    ``background_mask`` is 2-D, or 3-D with one plane per integration. With
    ``median_image`` (shaped like ``data``) each image minus it is cleaned and added back
    instead. Up to ``threads`` images are cleaned at once when ``thread_safe(options)``.
    Returns (True, background or None) — the background removed before each fit, shaped
    like ``data``, when ``keep_background`` — or (False, None) when a fit failed; ``data``
    is then left as it was.
    """
    threads = max(1, threads) if thread_safe(options) else 1
    backup = data.copy() if options.fit_method == "fft" else None
    background = np.zeros_like(data) if keep_background else None
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for integration in range(1 if data.ndim == 2 else data.shape[0]):
            plane_mask = (background_mask[integration] if background_mask.ndim == 3
                          else background_mask)
            if data.ndim == 4 and median_image is None:
                _clean_differences(data, integration, plane_mask, options, groupdq,
                                   background, pool, threads)
            else:
                _clean_images(data, integration, plane_mask, options, median_image,
                              background, pool, threads)
    except FitFailedError as exc:
        log.error("Cleaning failed: %s", exc)
        data[...] = backup
        return False, None
    finally:
        if pool is not None:
            pool.shutdown()
    return True, background


def _clean_differences(data, integration, plane_mask, options, groupdq, background, pool,
                       window):
    """Ramps: clean group differences (as read) ``window`` at a time, then accumulate them
    onto the cleaned previous group, in order."""
    ramp = data[integration]
    previous = ramp[0].copy()
    for start in range(0, ramp.shape[0] - 1, window):
        groups = range(start + 1, min(start + 1 + window, ramp.shape[0]))
        raw = ramp[groups.start:groups.stop].copy()
        images = np.diff(np.concatenate([previous[None], raw]), axis=0)
        masks = []
        for group in groups:
            mask = plane_mask.copy()
            if groupdq is not None:
                mask_unusable(mask, groupdq[integration, group])
            masks.append(mask)
        for group, (cleaned, level) in zip(groups, _clean_all(images, masks, options, pool),
                                           strict=True):
            if cleaned is None:
                log.warning("No usable background in integration %d, group %d; that "
                            "difference is left as it is", integration + 1, group + 1)
                continue
            ramp[group] = ramp[group - 1] + cleaned
            if background is not None:
                background[integration, group] = level
        previous = raw[-1]


def _clean_images(data, integration, plane_mask, options, median_image, background, pool,
                  window):
    """Rates (2-D or per integration) and ramps with a median image: each image on its own."""
    if data.ndim == 2:
        indices = [Ellipsis]
    elif data.ndim == 3:
        indices = [integration]
    else:
        indices = [(integration, group) for group in range(data.shape[1])]
    for start in range(0, len(indices), window):
        batch = indices[start:start + window]
        medians = [None if median_image is None else median_image[index] for index in batch]
        images = [data[index] if median is None else data[index] - median
                  for index, median in zip(batch, medians, strict=True)]
        masks = [plane_mask.copy() for _ in batch]
        results = _clean_all(images, masks, options, pool)
        for index, median, (cleaned, level) in zip(batch, medians, results, strict=True):
            if cleaned is None:
                log.warning("No usable background in integration %d%s; that image is left "
                            "as it is", integration + 1,
                            f", group {index[1] + 1}" if data.ndim == 4 else "")
                continue
            data[index] = cleaned if median is None else median + cleaned
            if background is not None:
                background[index] = level if median is None else median
