"""Flicker-noise models fitted to the background pixels of one image. Pure array functions.

* ``median``: the noise is a stripe per row (or column) along the detector slow axis; its
  level is the median of that line's background pixels (optionally per amplifier).
* ``fft`` (NIRSpec; the NSClean method of Rauscher 2024, PASP 136, 015001): the noise is a
  low-frequency signal in *read-out time*. Least-squares fits of a few Fourier modes to the
  background pixels give a model that is low-pass filtered and subtracted. Full frames
  are fitted line by line in detector coordinates; subarrays as a pixel time series
  (fast-axis pixels plus line overhead), in overlapping bands of rows.

Every Fourier least-squares problem here weights sample ``m`` by ``w_m = p_m**2`` (``p``
the reciprocal of the local sample density) and solves the normal equations
``G c = b`` with ``G[k, l] = sum_m w_m exp(-2 pi i m (k - l) / n)`` and
``b[k] = sum_m w_m d_m exp(-2 pi i m k / n)``: both are discrete Fourier transforms of
the weights, so every line or band costs a few FFTs instead of an explicit basis matrix.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from numba import njit, prange

log = logging.getLogger(__name__)

NIR_FULL_FRAME = (2048, 2048)
#: NIR detectors read four amplifier channels of 512 lines each along the slow axis
CHANNEL_WIDTH = 512
#: full-frame fit: low-pass half-power frequency and cosine transition width (1/pixel)
FULL_FRAME_CUTOFF = 1 / (2 * 2048 / 16)
FULL_FRAME_TRANSITION = FULL_FRAME_CUTOFF / 4
#: full frame: width (pixels) of the Gaussian estimating local background density
FULL_FRAME_DENSITY_SIGMA = 32
#: full frame: width (lines) of the Gaussian smoothing the model across lines ("buffing")
FULL_FRAME_BUFF_SIGMA = 1.5
#: full frame: background values beyond this many robust sigma are replaced by the median
FULL_FRAME_OUTLIER_SIGMA = 3.0
#: full frame: lines at each end of the slow axis left unfitted (reference pixels)
FULL_FRAME_EDGE_LINES = 4
#: subarray time series: clock ticks of overhead per line, and seconds per pixel
LINE_OVERHEAD = 12
PIXEL_TIME = np.float32(10.0e-6)
#: subarray apodizer (Hz): pass below [0], roll off to [1], stop, roll on [2] to [3]
SUBARRAY_CUTOFFS = (1061, 1211, 49943, 49957)
ALLSLITS_CUTOFFS = (150, 200, 49943, 49957)
#: subarray: background pixels wanted per band, outlier clip (robust sigma) and the least
#: background fraction of a band that is still fitted
BAND_PIXELS = 512
SUBARRAY_OUTLIER_SIGMA = 4.0
BAND_MIN_FRACTION = 0.05
MAD_TO_SIGMA_FULL = 1.4826
MAD_TO_SIGMA_SUBARRAY = 1.4825


class FitFailedError(RuntimeError):
    """A noise fit could not be solved (singular normal equations, no background)."""


# -- median -----------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _row_medians(image, mask):
    """Median of each row's ``mask`` pixels (0 where none): numpy's median, value for value
    (the middle value, or the mean of the two middle values in the image's precision)."""
    ny, nx = image.shape
    medians = np.zeros(ny, dtype=image.dtype)
    for row in prange(ny):
        values = np.empty(nx, dtype=image.dtype)
        count = 0
        for column in range(nx):
            if mask[row, column]:
                values[count] = image[row, column]
                count += 1
        if count:
            medians[row] = np.median(values[:count])
    return medians


def median_stripes(image: np.ndarray, mask: np.ndarray, axis_to_correct: int,
                   fit_by_channel: bool = False) -> np.ndarray:
    """The stripe image: each line's median over its background pixels (0 where it has
    none), broadcast along the line.

    ``axis_to_correct`` is 1 (medians along y, one per column: MIRI banding) or 2 (along x,
    one per row); for NIR the detector slow axis. ``fit_by_channel`` takes medians per
    512-pixel amplifier channel when the medianed axis is 2048 long.
    """
    lines_first = axis_to_correct == 2  # rows are the lines
    values = image if lines_first else image.T
    background = mask if lines_first else mask.T
    length = values.shape[1]
    width = CHANNEL_WIDTH if fit_by_channel and length == NIR_FULL_FRAME[0] else length
    stripes = np.empty(values.shape, dtype=image.dtype)
    for start in range(0, length, width):
        section = slice(start, start + width)
        stripes[:, section] = _row_medians(np.ascontiguousarray(values[:, section]),
                                           np.ascontiguousarray(background[:, section]))[:, None]
    return stripes if lines_first else stripes.T


# -- shared Fourier helpers -----------------------------------------------------------------
def lowpass_filter(half_power: float, transition: float, n: int) -> np.ndarray:
    """rfft-gain of a low-pass filter over ``n`` samples: 1 below ``half_power −
    transition/2``, a half-cosine to 0 at ``half_power + transition/2``, then 0."""
    frequency = np.fft.rfftfreq(n)
    roll_off = (1 + np.cos(np.pi * (frequency - half_power) / transition + np.pi / 2)) / 2
    gain = np.where(frequency <= half_power - transition / 2, 1, roll_off)
    return np.where(frequency <= half_power + transition / 2, gain, 0)


def _centred_gaussian(n: int, centre: int, sigma, dtype=np.float64) -> np.ndarray:
    """Normalised Gaussian over 0..n-1 peaking at ``centre``."""
    x = np.arange(n, dtype=dtype)
    sigma = dtype(sigma)
    return np.exp(-((x - dtype(centre)) ** 2) / sigma**2 / 2) / sigma / np.sqrt(dtype(2 * np.pi))


def _solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(gram, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError as exc:
        raise FitFailedError(f"singular Fourier normal equations ({exc})") from None


def _to_detector(array: np.ndarray, detector: str) -> np.ndarray:
    """DMS orientation → NIRSpec detector frame (NRS1 transposed; others also flipped)."""
    return array.T if detector == "NRS1" else array.T[::-1]


def _from_detector(array: np.ndarray, detector: str) -> np.ndarray:
    return array.T if detector == "NRS1" else array[::-1].T


# -- fft, full frame ---------------------------------------------------------------------------
def nsclean_full_frame(image: np.ndarray, mask: np.ndarray, detector: str,
                       buff: bool = True) -> np.ndarray:
    """Cleaned copy of a full-frame ``image`` (DMS orientation) using background ``mask``.

    In detector coordinates each line (except 4 at each end) gets a weighted complex
    Fourier fit of the lowest modes that a low-pass filter (half power at 1/256 pixel⁻¹)
    lets through, to its background pixels with robust 3-sigma outliers replaced by the
    line median; the weights are the squared reciprocal background density (Gaussian of
    32 pixels along the line). The filtered model is optionally smoothed across lines
    (Gaussian of 1.5 lines) and subtracted. Raises ``FitFailedError`` on a singular fit.
    """
    data = _to_detector(np.asarray(image), detector)
    background = _to_detector(np.asarray(mask, dtype=bool), detector)
    ny, nx = background.shape
    apodizer = lowpass_filter(FULL_FRAME_CUTOFF, FULL_FRAME_TRANSITION, nx)
    nvec = int(np.sum(apodizer > 0))

    # Background density along each line; the kernel sits one line and one pixel off the
    # origin, so the density of a pixel is that around its neighbour one line below/left.
    kernel = np.zeros((ny, nx), np.float32)
    kernel[ny // 2 + 1] = _centred_gaussian(nx, nx // 2 + 1, FULL_FRAME_DENSITY_SIGMA)
    with np.errstate(divide="ignore"):
        density_weight = 1 / np.fft.irfft2(
            np.fft.rfft2(background.astype(np.float32))
            * np.fft.rfft2(np.fft.ifftshift(kernel)), (ny, nx))
    density_weight = np.where(background, density_weight, 0.0)
    density_weight[~np.isfinite(density_weight)] = 0.0

    lines = np.arange(ny)[FULL_FRAME_EDGE_LINES:-FULL_FRAME_EDGE_LINES]
    lines = lines[background[lines].any(axis=1)]
    values = np.where(background[lines], data[lines], np.nan).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        centre = np.nanmedian(values, axis=1, keepdims=True)
        spread = MAD_TO_SIGMA_FULL * np.nanmedian(np.abs(values - centre), axis=1,
                                                  keepdims=True)
    inside = (centre - FULL_FRAME_OUTLIER_SIGMA * spread <= values) & (
        values <= centre + FULL_FRAME_OUTLIER_SIGMA * spread)
    values = np.where(inside, values, centre)
    weight = np.where(background[lines], density_weight[lines].astype(np.float64) ** 2, 0.0)
    values = np.where(background[lines], values, 0.0)

    weight_spectrum = np.fft.rfft(weight, axis=1)[:, :nvec]
    rhs = np.fft.rfft(weight * values, axis=1)[:, :nvec]
    shift = np.arange(nvec)[:, None] - np.arange(nvec)[None, :]
    gram = np.where(shift >= 0, weight_spectrum[:, np.abs(shift)],
                    np.conj(weight_spectrum[:, np.abs(shift)]))
    coefficients = _solve(gram, rhs) * nx

    spectrum = np.zeros((len(lines), nx // 2 + 1), complex)
    spectrum[:, :nvec] = coefficients * apodizer[:nvec]
    model = np.zeros((ny, nx), np.float32)
    model[lines] = np.fft.irfft(spectrum, nx, axis=1)
    if buff:
        smoothing = np.zeros((ny, nx), np.float32)
        smoothing[:, nx // 2 + 1] = _centred_gaussian(ny, nx // 2 + 1, FULL_FRAME_BUFF_SIGMA)
        model = np.fft.irfft2(np.fft.rfft2(model) * np.fft.rfft2(np.fft.ifftshift(
            smoothing)).astype(np.complex64), s=model.shape)
    return _from_detector(data - model, detector)


# -- fft, subarrays ----------------------------------------------------------------------------
def subarray_apodizer(frequency: np.ndarray, cutoffs) -> np.ndarray:
    """Gain over ``frequency`` (Hz, float32): 1 below cutoffs[0], cosine roll-off to 0 at
    [1], 0, cosine roll-on from [2] to 1 at [3] (keeps 1/f and alternating-column noise)."""
    fc = np.asarray(cutoffs, dtype=np.float32)
    gain = np.zeros(len(frequency), dtype=np.float32)
    gain[frequency < fc[0]] = 1.0
    band = (fc[0] <= frequency) & (frequency < fc[1])
    gain[band] = 0.5 * (np.cos((np.pi / (fc[1] - fc[0])) * (frequency[band] - fc[0])) + 1)
    band = (fc[2] <= frequency) & (frequency < fc[3])
    gain[band] = 0.5 * (np.cos((np.pi / (fc[3] - fc[2])) * (frequency[band] - fc[2]) + np.pi)
                        + 1)
    gain[frequency >= fc[3]] = 1.0
    return gain


def nsclean_band(data: np.ndarray, mask: np.ndarray, cutoffs=SUBARRAY_CUTOFFS) -> np.ndarray:
    """Noise model of one band of lines (detector frame): a weighted Fourier fit of the
    background pixels as a time series with ``LINE_OVERHEAD`` idle ticks per line, over
    the frequencies the apodizer passes; the weights are the squared reciprocal sample
    density in time (Gaussian of about a quarter period of the mean cutoff)."""
    data = np.asarray(data, dtype=np.float32)
    ny, nx = data.shape
    stride = nx + LINE_OVERHEAD
    n = ny * stride
    frequency = np.fft.rfftfreq(n, PIXEL_TIME).astype(np.float32)
    apodizer = subarray_apodizer(frequency, cutoffs)
    fitted = np.flatnonzero(apodizer > 0.0)

    ticks = np.zeros((ny, stride), dtype=bool)
    ticks[:, :nx] = mask
    ticks = ticks.ravel()
    sigma = np.float32(1 / ((cutoffs[0] + cutoffs[1]) / 2) / PIXEL_TIME / 2 / 4)
    kernel = _centred_gaussian(n, n // 2 + 1, sigma, np.float32)
    with np.errstate(divide="ignore"):
        density_weight = 1 / np.fft.irfft(np.fft.rfft(ticks.astype(np.float32))
                                          * np.fft.rfft(np.fft.ifftshift(kernel)), n)
    density_weight = np.where(ticks, density_weight, 0.0)
    density_weight[~np.isfinite(density_weight)] = 0.0

    weight = density_weight.astype(np.float64) ** 2
    series = np.zeros((ny, stride))
    series[:, :nx] = np.where(mask, data, 0.0)
    weight_spectrum = np.fft.fft(weight)
    rhs = np.fft.fft(weight * series.ravel())[fitted]
    gram = weight_spectrum[(fitted[:, None] - fitted[None, :]) % n]
    spectrum = np.zeros(len(frequency), complex)
    spectrum[fitted] = _solve(gram, rhs) * n
    return np.fft.irfft(spectrum * apodizer, n).reshape(ny, stride)[:, :nx]


def _band_edges(mask: np.ndarray) -> list[tuple[int, int]]:
    """Overlapping bands of lines, each holding about ``BAND_PIXELS`` background pixels
    (the last band runs to the end when less than 1.5 bands' worth is left); each starts
    half a band after the previous one."""
    per_line = mask.sum(axis=1)
    cumulative = np.concatenate(([0], np.cumsum(per_line)))
    used = np.flatnonzero(per_line > 0)
    if used.size == 0:
        return []
    first, last = int(used[0]), int(used[-1])
    bands = []
    while first <= last:
        enough = (cumulative[first + 1:last + 2] - cumulative[first] > BAND_PIXELS) & (
            cumulative[-1] - cumulative[first] > 1.5 * BAND_PIXELS)
        stop = first + 1 + int(np.argmax(enough)) if enough.any() else last + 1
        bands.append((first, stop - first))
        if stop == last + 1:
            break
        first += max(int(np.round((stop - first) / 2)), 1)
    return bands


def nsclean_subarray(image: np.ndarray, mask: np.ndarray, detector: str,
                     cutoffs=SUBARRAY_CUTOFFS) -> np.ndarray:
    """Cleaned copy of a subarray ``image`` (DMS orientation) using background ``mask``.

    Background outliers beyond 4 robust sigma of the whole image, and their four
    neighbours, are dropped first. Bands with more than 5 % background are fitted with
    ``nsclean_band``; overlapping band models are blended with weights peaking at each
    band's centre. Raises ``FitFailedError`` when there is no background or a fit fails.
    """
    data = _to_detector(np.asarray(image), detector)
    background = _to_detector(np.asarray(mask, dtype=bool), detector).copy()
    if background.any():
        centre = np.median(data[background])
        spread = MAD_TO_SIGMA_SUBARRAY * np.median(np.abs((data - centre)[background]))
        outlier = background & (np.abs(data - centre) > SUBARRAY_OUTLIER_SIGMA * spread)
        background &= ~outlier
        background[1:] &= ~outlier[:-1]
        background[:-1] &= ~outlier[1:]
        background[:, 1:] &= ~outlier[:, :-1]
        background[:, :-1] &= ~outlier[:, 1:]
    bands = _band_edges(background)
    if not bands:
        raise FitFailedError("no background pixels to fit")
    model = np.zeros(data.shape)
    total_weight = np.zeros(data.shape)
    for start, size in bands:
        rows = slice(start, start + size)
        if np.mean(background[rows]) > BAND_MIN_FRACTION:
            band_model = nsclean_band(data[rows], background[rows], cutoffs)
        else:
            log.warning("Too few background pixels for the fft fit around line %d; no "
                        "correction there", start)
            band_model = 0.0
        weight = 1.001 - np.abs(np.linspace(-1, 1, size))[:, None]
        model[rows] += weight * band_model
        total_weight[rows] += weight
    total_weight[model == 0] = 1
    model /= total_weight
    return _from_detector(data - model, detector)
