"""Robust background statistics: which pixels are background, and its level.

Pure array functions (numpy in, numpy out). ``mask`` arrays are boolean with True meaning
"background pixel usable for fitting"; functions that refine a mask do so in place.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)

#: clipping level of every iterative sigma-clip used to estimate centre and width
CLIP_SIGMA = 3.0
#: bins of the histogram that the optional Gaussian fit works on
HISTOGRAM_BINS = 2000
#: the histogram spans the centre ± this many sigma
HISTOGRAM_HALF_WIDTH = 4.0
#: the largest background box edge chosen automatically for the 'model' background
MAX_AUTO_BOX = 32


def clipped_stats(values: np.ndarray, sigma: float = CLIP_SIGMA,
                  maxiters: int = 5) -> tuple[float, float, float]:
    """(mean, median, std) of 1-D ``values`` after iterative sigma clipping.

    Non-finite values are dropped; then, up to ``maxiters`` times or until nothing
    changes, values outside median ± ``sigma`` × std (population std) are removed. This is
    astropy's ``sigma_clipped_stats`` for flat data, value for value (the same numpy
    reductions in the same order), without its masked-array and NaN bookkeeping, and it
    issues no warnings, so it is safe to run in threads.
    """
    data = values[np.isfinite(values)]
    if data.size == 0:
        return np.nan, np.nan, np.nan
    for _ in range(maxiters):
        size = data.size
        centre = np.median(data)
        spread = data.std()
        data = data[(data >= centre - spread * sigma) & (data <= centre + spread * sigma)]
        if data.size == size or data.size == 0:
            break
    if data.size == 0:
        return np.nan, np.nan, np.nan
    return float(data.mean()), float(np.median(data)), float(data.std())


def _gaussian(x, amplitude, centre, width):
    return amplitude * np.exp(-0.5 * ((x - centre) / width) ** 2)


def _histogram_fit(values: np.ndarray, centre: float, sigma: float) -> tuple[float, float]:
    """Centre and width of a Gaussian fitted to the histogram of ``values`` (the inputs are
    returned unchanged when the histogram or the fit fails)."""
    from scipy.optimize import curve_fit

    try:
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(
            centre - HISTOGRAM_HALF_WIDTH * sigma, centre + HISTOGRAM_HALF_WIDTH * sigma))
    except ValueError:
        log.error("Histogram failed; using the sigma-clipped centre and width")
        return centre, sigma
    bins = 0.5 * (edges[1:] + edges[:-1])
    peak = int(np.argmax(counts))
    start = (counts[peak], bins[peak], sigma)
    bounds = [(0, bins[0], 0), (np.inf, bins[-1], bins[-1] - bins[0])]
    try:
        fitted, _ = curve_fit(_gaussian, bins, counts, p0=start, bounds=bounds)
    except RuntimeError:
        log.error("Gaussian fit to the histogram failed; using the sigma-clipped values")
        return centre, sigma
    return float(fitted[1]), float(fitted[2])


def clip_to_background(image: np.ndarray, mask: np.ndarray, sigma_lower: float = 3.0,
                       sigma_upper: float = 2.0, fit_histogram: bool = False,
                       lower_half_only: bool = False) -> None:
    """Unset ``mask`` (in place) where ``image`` is signal or a low outlier.

    The background centre and width come from a 3-sigma clipped median (the mean, when
    ``fit_histogram``) and standard deviation of the masked pixels. With
    ``lower_half_only`` they are re-estimated from the values at or below the centre,
    mirrored about it (diffuse emission skews the upper half). With ``fit_histogram`` a
    Gaussian fitted to their histogram refines both. Pixels above centre +
    ``sigma_upper``·width or below centre − ``sigma_lower``·width leave the mask.
    """
    if not mask.any():
        return
    image = image.astype(np.float64)
    mean, median, sigma = clipped_stats(image[mask])
    centre = mean if fit_histogram else median
    if lower_half_only:
        lower = image[mask & (image <= centre)]
        values = np.concatenate((lower - centre, centre - lower)) + centre
        mean, median, sigma = clipped_stats(values)
        centre = mean if fit_histogram else median
    else:
        values = image[mask]
    if fit_histogram:
        centre, sigma = _histogram_fit(values, centre, sigma)
    with np.errstate(invalid="ignore"):
        mask[image < centre - sigma_lower * sigma] = False
        mask[image > centre + sigma_upper * sigma] = False


def automatic_box_size(shape: tuple[int, ...]) -> list[int]:
    """Per axis, the largest box edge up to 32 that divides the image evenly."""
    return [max(size for size in range(1, MAX_AUTO_BOX + 1) if length % size == 0)
            for length in shape]


def background_level(image: np.ndarray, mask: np.ndarray, method: str | None = "median",
                     box_size: list[int] | tuple[int, int] | None = None):
    """The background of ``image`` from its ``mask`` pixels: 0.0 for ``method=None``.

    ``mask`` is first refined in place (3-sigma clip on the mirrored lower half). 'median'
    returns the median of the remaining pixels (a scalar); 'model' a smooth 2-D image from
    ``photutils.background.Background2D`` (median of 3-sigma clipped boxes, 5x5 box
    filter; boxes as ``box_size`` or the largest evenly dividing size up to 32), falling
    back to the median when photutils cannot fit.
    """
    if method is None:
        return 0.0
    clip_to_background(image, mask, sigma_lower=CLIP_SIGMA, sigma_upper=CLIP_SIGMA,
                       lower_half_only=True)
    if method != "model":
        return np.nanmedian(image[mask])
    from astropy.stats import SigmaClip  # here, as photutils: slow imports, rarely needed
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.background import Background2D, MedianBackground

    if box_size is None:
        box_size = automatic_box_size(image.shape)
        log.debug("Background box size %s", box_size)
    if any(length % size for length, size in zip(image.shape, box_size, strict=True)):
        log.warning("Background box size %s does not divide evenly into the image shape %s",
                    list(box_size), image.shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            model = Background2D(image, box_size=tuple(box_size), filter_size=(5, 5),
                                 mask=~mask, sigma_clip=SigmaClip(sigma=CLIP_SIGMA, maxiters=5),
                                 bkg_estimator=MedianBackground())
        return model.background
    except ValueError:
        log.error("Background fit failed; using the median value")
        return np.nanmedian(image[mask])


def fill_flat_gaps(flat: np.ndarray) -> np.ndarray:
    """A copy of ``flat`` whose zero or non-finite values hold the smooth local flat level
    (the 'model' background of the good values; their median if that fails)."""
    flat = np.array(flat, dtype=np.float32, copy=True)
    bad = (flat == 0) | ~np.isfinite(flat)
    if bad.any():
        smooth = background_level(flat, ~bad, method="model")
        flat[bad] = smooth if np.isscalar(smooth) or np.ndim(smooth) == 0 else smooth[bad]
    return flat
