"""Source finding shared by tweakreg and source_catalog (stage3.md §2.3 "Source finding").

A 2-D background and its RMS are measured on a mesh (photutils ``Background2D``), the
detection threshold is ``snr_threshold`` × RMS, and sources are found on the
background-subtracted image with one of photutils' finders: IRAF or DAO star finders
(scalar threshold), or image segmentation with optional deblending.

Three parts are done here rather than by photutils or astropy, with the same results (to
rounding) but much faster on full frames: the bicubic-spline expansion of the background mesh
to the image (a tensor product, so two small matrix products instead of a spline evaluation
per pixel), the star finders' peak search (only the pixels above the threshold are compared
with their neighbours; the finders then measure the given peaks), and the segmentation
finder's masked Gaussian smoothing (separable: 1-D passes instead of a 2-D sum). Full frames
are expensive to copy, so the image is copied once (float32 data stay float32, as the
official steps measure them; other types become float32 or float64) and that copy is masked,
measured and background-subtracted in place.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from astropy.convolution import Gaussian2DKernel
from astropy.stats import SigmaClip
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from photutils.background import Background2D, MedianBackground
from photutils.detection import DAOStarFinder, IRAFStarFinder
from photutils.segmentation import SegmentationImage, SourceCatalog, SourceFinder
from scipy import ndimage

from calwebb.errors import ParameterError

log = logging.getLogger(__name__)

STARFINDERS = ("iraf", "dao", "segmentation")
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass
class FinderOptions:
    """The finder parameters of tweakreg and source_catalog (names as the official steps)."""

    starfinder: str = "iraf"
    snr_threshold: float = 10.0
    kernel_fwhm: float = 2.5
    bkg_boxsize: int = 400
    # iraf / dao
    minsep_fwhm: float = 0.0
    sigma_radius: float = 1.5
    sharplo: float = 0.5
    sharphi: float = 2.0
    roundlo: float = 0.0
    roundhi: float = 0.2
    brightest: int | None = 200
    peakmax: float | None = None
    # segmentation
    npixels: int = 10
    connectivity: int = 8
    nlevels: int = 32
    contrast: float = 0.001
    multithresh_mode: str = "exponential"
    localbkg_width: int = 0
    apermask_method: str = "correct"
    kron_params: tuple | None = None
    deblend: bool = True

    @classmethod
    def from_step(cls, step) -> FinderOptions:
        """The options a step's parameters of the same names give."""
        names = cls.__dataclass_fields__
        values = {name: getattr(step, name) for name in names if hasattr(step, name)}
        if values.get("kron_params") is not None:
            values["kron_params"] = tuple(values["kron_params"])
        return cls(**values)

    def check(self) -> None:
        if self.starfinder not in STARFINDERS:
            raise ParameterError(f"starfinder must be one of {STARFINDERS}, got "
                                 f"{self.starfinder!r}")
        if self.snr_threshold <= 0:
            raise ParameterError(f"snr_threshold must be positive, got {self.snr_threshold}")
        if self.bkg_boxsize < 1:
            raise ParameterError(f"bkg_boxsize must be positive, got {self.bkg_boxsize}")
        if self.connectivity not in (4, 8):
            raise ParameterError(f"connectivity must be 4 or 8, got {self.connectivity}")


@dataclass
class Detection:
    """What source finding produced on one image."""

    sources: Table  # id, xcentroid, ycentroid, flux (0-based pixels)
    background: np.ndarray
    background_rms: np.ndarray
    segmentation: SegmentationImage | None = None  # segmentation finder only
    convolved: np.ndarray | None = None  # the smoothed detection image (segmentation)


def estimate_background(data: np.ndarray, coverage_mask: np.ndarray,
                        box_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(background, background RMS): a mesh of ``box_size`` boxes, 3×3 median filter, 3σ
    clipping, median estimator, expanded by a bicubic spline and set to 0 in
    ``coverage_mask``; one box over the whole image if the mesh cannot be made."""
    options = dict(coverage_mask=coverage_mask, filter_size=(3, 3),
                   sigma_clip=SigmaClip(sigma=3.0), bkg_estimator=MedianBackground())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            result = Background2D(data, box_size, **options)
    except ValueError:
        log.info("background mesh of %d px failed; using one box over the image", box_size)
        result = Background2D(data, data.shape, **{**options, "exclude_percentile": 100.0})
    box = tuple(int(n) for n in result.box_size)
    images = []
    for mesh in (result.background_mesh, result.background_rms_mesh):
        image = expand_mesh(np.asarray(mesh, float), box, data.shape, data.dtype)
        image[coverage_mask] = 0.0
        images.append(image)
    return images[0], images[1]


def expand_mesh(mesh: np.ndarray, box_size: tuple[int, int], shape: tuple[int, int],
                dtype=np.float64) -> np.ndarray:
    """A (ny, nx) mesh of box values expanded to an image of ``shape`` and ``dtype``: a cubic
    spline (reflected edges, grid mode) zoomed by ``box_size`` and cropped, clipped to the
    mesh's range; equals ``scipy.ndimage.zoom`` of the whole mesh (as photutils does) to
    rounding (computed in float64, then stored as ``dtype``)."""
    row_weights, column_weights = (
        _zoom_weights(n, factor, size)
        for n, factor, size in zip(mesh.shape, box_size, shape, strict=True))
    image = np.empty(shape, dtype)
    _multiply_and_clip(row_weights @ mesh, np.ascontiguousarray(column_weights.T),
                       mesh.min(), mesh.max(), image)
    return image


@numba.njit(cache=True)
def _multiply_and_clip(left: np.ndarray, right: np.ndarray, low: float, high: float,
                       product: np.ndarray) -> None:
    """``product[:] = left @ right`` clipped to [low, high], on one thread: a threaded BLAS
    product of this shape (millions of outputs from a handful of terms) saves a few ms but
    leaves its threads spinning on the other cores for ~0.1 s."""
    n_rows, n_terms = left.shape
    n_columns = right.shape[1]
    row = np.empty(n_columns)  # float64 sums, whatever ``product``'s type
    for y in range(n_rows):
        row[:] = 0.0
        for term in range(n_terms):
            factor = left[y, term]
            for x in range(n_columns):
                row[x] += factor * right[term, x]
        for x in range(n_columns):
            product[y, x] = min(max(row[x], low), high)


@functools.lru_cache(maxsize=8)
def _zoom_weights(n: int, factor: int, size: int) -> np.ndarray:
    """(size, n) matrix taking n nodes to the first ``size`` points of their 1-D zoom (cached,
    read-only: every image of a detector size uses the same ones)."""
    weights = np.stack([ndimage.zoom(unit, factor, order=3, mode="reflect", grid_mode=True)[:size]
                        for unit in np.eye(n)], axis=1)
    weights.flags.writeable = False
    return weights


def find_sources(data: np.ndarray, coverage_mask: np.ndarray | None = None,
                 options: FinderOptions | None = None, error: np.ndarray | None = None,
                 wcs=None) -> Detection:
    """Sources on ``data`` (pixels in ``coverage_mask`` ignored): see the module docstring.

    ``error`` and ``wcs`` are only used by the segmentation finder's segment catalog."""
    options = options or FinderOptions()
    options.check()
    data = np.asarray(data)
    mask = ~np.isfinite(data)
    if coverage_mask is not None:
        mask |= np.asarray(coverage_mask, bool)
    if mask.all():
        raise ValueError("every pixel is masked; no sources can be found")
    # private copy, changed in place below; float32 data stays float32, as the official
    # steps measure the float32 SCI array (half the memory traffic of float64)
    image = np.array(data, dtype=np.result_type(data.dtype, np.float32))
    image[mask] = 0.0
    background, rms = estimate_background(image, mask, options.bkg_boxsize)
    # masked pixels stay 0: the background is 0 there too
    subtracted = np.subtract(image, background, out=image)
    if options.starfinder == "segmentation":
        sources, segmentation, convolved = _segmentation(
            subtracted, options.snr_threshold * rms, mask, options, error, wcs)
        return Detection(sources, background, rms, segmentation, convolved)
    threshold = median_unmasked(rms, mask, scale=options.snr_threshold)
    sources = _star_finder(subtracted, threshold, mask, options)
    return Detection(sources, background, rms)


def median_unmasked(image: np.ndarray, mask: np.ndarray, scale: float = 1.0) -> float:
    """``np.median((scale * image)[~mask])``, with one full-size copy instead of three."""
    values = image[~mask]
    values *= scale
    return float(np.median(values, overwrite_input=True))


def _star_finder(data, threshold, mask, options: FinderOptions) -> Table:
    separation = max(2, int(options.minsep_fwhm * options.kernel_fwhm + 0.5))
    common = dict(sigma_radius=options.sigma_radius, n_brightest=options.brightest,
                  peak_max=options.peakmax, min_separation=separation,
                  sharpness_range=(options.sharplo, options.sharphi),
                  roundness_range=(options.roundlo, options.roundhi))
    finder_class = IRAFStarFinder if options.starfinder == "iraf" else DAOStarFinder
    finder = finder_class(threshold, options.kernel_fwhm, **common)
    convolved = ndimage.convolve(data, finder.kernel.data, mode="constant", cval=0.0)
    peak_threshold = getattr(finder, "threshold_eff", threshold)  # DAO scales it
    peaks = find_peaks(convolved, peak_threshold, mask, separation)
    if len(peaks) == 0:
        return _empty()
    found = finder_class(threshold, options.kernel_fwhm, xycoords=peaks, **common)(data)
    if found is None or len(found) == 0:
        return _empty()
    return Table({"id": np.arange(1, len(found) + 1),
                  "xcentroid": np.asarray(found["x_centroid"], float),
                  "ycentroid": np.asarray(found["y_centroid"], float),
                  "flux": np.asarray(found["flux"], float)})


def find_peaks(image: np.ndarray, threshold: float, mask: np.ndarray | None,
               radius: float) -> np.ndarray:
    """(x, y) (N×2, row-major order) of the unmasked pixels above ``threshold`` that are the
    maximum (ties included) of the circle of ``radius`` around them, with 0 outside the
    image; none when the image is constant (as photutils' ``find_peaks``).

    Equals ``image == scipy.ndimage.maximum_filter(image, circle, mode="constant")``, but
    only the pixels above the threshold (few, on a sky image) are compared with their
    neighbours. ``image`` must be finite.
    """
    if image.min() == image.max():
        return np.zeros((0, 2), int)
    candidates = image > threshold
    if mask is not None:
        candidates &= ~mask
    ny, nx = image.shape
    y, x = np.divmod(np.flatnonzero(candidates), nx)  # (much faster than 2-D np.nonzero)
    values = image[y, x]
    highest = np.full(len(values), -np.inf)
    for dy, dx in _footprint_offsets(radius):
        yy, xx = y + dy, x + dx
        inside = (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx)
        neighbours = np.where(inside, image[yy.clip(0, ny - 1), xx.clip(0, nx - 1)], 0.0)
        np.maximum(highest, neighbours, out=highest)
    is_peak = values == highest
    return np.column_stack([x[is_peak], y[is_peak]])


def _footprint_offsets(radius: float) -> np.ndarray:
    """(dy, dx) of the pixels in the circular footprint of ``radius``, placed as
    ``maximum_filter`` places it (an even-sized one, from a non-integer radius, is centred
    half a pixel off)."""
    steps = np.arange(-radius, radius + 1)
    dy, dx = np.nonzero(steps[:, None] ** 2 + steps[None, :] ** 2 <= radius ** 2)
    centre = len(steps) // 2
    return np.column_stack([dy - centre, dx - centre])


def smooth_masked(data: np.ndarray, mask: np.ndarray, fwhm: float) -> np.ndarray:
    """``astropy.convolution.convolve(data, Gaussian2DKernel(σ), mask=mask)`` (σ from the
    ``fwhm``, in pixels): at every pixel the Gaussian-weighted mean of the unmasked pixels
    around it, pixels beyond the edges counting as unmasked zeros; NaN where the kernel
    covers only masked pixels. The kernel is separable, so this is two 1-D passes over the
    masked data and two over the unmasked-pixel map, equal to astropy's direct sum to
    rounding."""
    kernel = Gaussian2DKernel(fwhm / FWHM_PER_SIGMA).array
    centre = kernel.shape[0] // 2
    along_rows = kernel[centre] / np.sqrt(kernel[centre, centre])
    along_columns = kernel[:, centre] / np.sqrt(kernel[centre, centre])
    masked = np.asarray(mask, bool) | ~np.isfinite(data)

    def separable(image, outside):
        image = ndimage.correlate1d(image, along_columns, axis=0, mode="constant", cval=outside)
        return ndimage.correlate1d(image, along_rows, axis=1, mode="constant", cval=outside)

    total = separable(np.where(masked, 0.0, data), 0.0)
    weight = separable((~masked).astype(float), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.divide(total, weight, out=total)


def _segmentation(data, threshold, mask, options: FinderOptions, error, wcs):
    convolved = data
    if options.kernel_fwhm > 0:
        convolved = smooth_masked(data, mask, options.kernel_fwhm)
    finder = SourceFinder(options.npixels, connectivity=options.connectivity,
                          deblend=options.deblend, n_levels=options.nlevels,
                          contrast=options.contrast, mode=options.multithresh_mode,
                          relabel=True, progress_bar=False)
    segmentation = finder(convolved, threshold, mask=mask)
    if segmentation is None:
        return _empty(), None, convolved
    catalog = SourceCatalog(data, segmentation, convolved_data=convolved, error=error,
                            mask=mask, wcs=wcs, local_bkg_width=options.localbkg_width,
                            aperture_mask_method=options.apermask_method,
                            kron_params=options.kron_params or (2.5, 1.4, 0.0))
    sources = Table({"id": np.asarray(catalog.label),
                     "xcentroid": np.asarray(catalog.x_centroid, float),
                     "ycentroid": np.asarray(catalog.y_centroid, float),
                     "flux": np.asarray(catalog.segment_flux, float)})
    return sources, segmentation, convolved


def _empty() -> Table:
    return Table({"id": np.zeros(0, int), "xcentroid": np.zeros(0), "ycentroid": np.zeros(0),
                  "flux": np.zeros(0)})
