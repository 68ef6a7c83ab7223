"""The sky statistic of skymatch (stage3.md §2.4) and the good-pixel mask it is measured on.

The statistic follows ``stsci.imagestats.ImageStats`` (the field's implementation of the IRAF
``imstatistics`` semantics the official step uses): float32 values, ``nclip`` iterations of
mean ± ``lsigma``/``usigma`` standard deviations (sums in double precision), and ``mode`` and
``midpt`` read from a histogram whose bin width is ``binwidth`` times the clipped standard
deviation. It runs as a few numba passes over the values; results equal ImageStats' to the
float32 rounding of the deviation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from calwebb import dqflags
from calwebb.errors import ParameterError

#: statistics ``skystat`` may name
SKY_STATISTICS = ("mode", "midpt", "median", "mean")
#: spreads below this make a one-bin histogram (as imagestats)
_SMALLEST_SPREAD = 10.0 * float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class SkyStatistic:
    """A clipped statistic with fixed settings; call it on pixel values.

    ``lower``/``upper`` bound the pixel values used (None: no bound), ``nclip`` clipping
    iterations reject values beyond ``lsigma``/``usigma`` standard deviations, and
    ``binwidth`` (in standard deviations) sets the histogram of ``mode``/``midpt``.
    """

    skystat: str = "mode"
    lower: float | None = None
    upper: float | None = None
    nclip: int = 5
    lsigma: float = 4.0
    usigma: float = 4.0
    binwidth: float = 0.1

    def __post_init__(self):
        if self.skystat not in SKY_STATISTICS:
            raise ParameterError(f"skystat must be one of {', '.join(SKY_STATISTICS)}; got "
                                 f"{self.skystat!r}")
        if self.nclip is None or int(self.nclip) != self.nclip or self.nclip < 0:
            raise ParameterError(f"nclip must be a non-negative integer; got {self.nclip!r}")
        for name in ("lsigma", "usigma"):
            value = getattr(self, name)
            if value is None or not np.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a non-negative number; got {value!r}")
        if self.binwidth is None or not np.isfinite(self.binwidth) or self.binwidth <= 0:
            raise ParameterError(f"binwidth must be a positive number; got {self.binwidth!r}")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise ParameterError(f"lower ({self.lower}) must be below upper ({self.upper})")

    def __call__(self, values: np.ndarray) -> tuple[float | None, int]:
        """(statistic, number of pixels used after clipping) of ``values``; ``(None, 0)`` when
        there are too few usable values or the statistic is not finite."""
        values = np.ascontiguousarray(values, dtype=np.float32).ravel()
        if values.size == 0:
            return None, 0
        smallest, largest, has_nan = _extremes(values)
        if has_nan and (self.lower is None or self.upper is None):
            return None, 0  # imagestats: NaN limits, which select nothing
        lower = smallest if self.lower is None else self.lower
        upper = largest if self.upper is None else self.upper
        if lower > largest or upper < smallest:
            return None, 0
        low, high = lower, upper
        for iteration in range(int(self.nclip) + 1):
            npix, mean, deviation, least, most = _clipped_moments(values, np.float32(low),
                                                                  np.float32(high))
            if npix == 0:
                return None, 0
            if iteration < self.nclip:  # a NaN deviation (one value) keeps the limits
                low = max(lower, mean - self.lsigma * deviation)
                high = min(upper, mean + self.usigma * deviation)
        if self.skystat == "mean":
            value = mean
        elif self.skystat == "median":
            selected = values
            if self.nclip > 0:
                selected = values[(values >= np.float32(low)) & (values <= np.float32(high))]
            value = float(np.median(selected))
        else:
            value = self._from_histogram(values, deviation, least, most)
        if value is None or not np.isfinite(value):
            return None, 0
        return float(value), int(npix)

    def _from_histogram(self, values, deviation, least, most) -> float:
        """``mode`` or ``midpt`` from the histogram of all values between the last
        clipped minimum and maximum (imagestats' binning and interpolation)."""
        width = self.binwidth * deviation
        spread = most - least
        if width < _SMALLEST_SPREAD or abs(spread) < _SMALLEST_SPREAD or width > spread:
            nbins, step = 1, spread
        else:
            nbins = int(spread / width) + 1
            step = spread / (nbins - 1)
        counts = _histogram(values, nbins, np.float32(least), np.float32(step))
        if self.skystat == "mode":
            return _histogram_mode(counts, least, width)
        return _histogram_midpoint(counts, least, width)


def _histogram_mode(counts: np.ndarray, start: float, width: float) -> float:
    """Peak of the histogram refined by a parabola through the peak bin and its neighbours
    (the first peak on ties; edge and flat cases as imagestats)."""
    nbins = counts.size
    if nbins == 1:
        return start + 0.5 * width
    if nbins == 2:
        if counts[0] == counts[1]:
            return start + width
        return start + (0.5 if counts[0] > counts[1] else 1.5) * width
    peak = int(np.argmax(counts))
    if peak in (0, nbins - 1):
        return start + (peak + 0.5) * width
    rise = int(counts[peak] - counts[peak - 1])
    fall = int(counts[peak] - counts[peak + 1])
    if rise + fall == 0:
        return start + (peak + 0.5) * width
    return start + (peak + 1 + 0.5 * (rise - fall) / (rise + fall) - 0.5) * width


def _histogram_midpoint(counts: np.ndarray, start: float, width: float) -> float:
    """Value below which half the histogram lies, interpolated within its bin (a one-bin
    histogram gives its count, as imagestats does)."""
    if counts.size == 1:
        return float(counts[0])
    cumulative = np.cumsum(counts).astype(np.float32)
    cumulative /= cumulative[-1]
    bin_index = int(np.nonzero(cumulative >= 0.5)[0][0])
    below = cumulative[bin_index - 1] if bin_index > 0 else np.float32(0.0)
    inside = cumulative[bin_index] - below
    edge = start + bin_index * width
    if inside == 0:
        return edge
    return edge + float((0.5 - below) / inside * width)  # the offset in float32, as imagestats


@njit(cache=True, nogil=True)
def _extremes(values):
    """(min, max, any NaN) of the values."""
    smallest = np.float32(np.inf)
    largest = np.float32(-np.inf)
    has_nan = False
    for value in values:
        if np.isnan(value):
            has_nan = True
        elif value < smallest:
            smallest = value
        if value > largest:
            largest = value
    return smallest, largest, has_nan


@njit(cache=True, nogil=True)
def _clipped_moments(values, low, high):
    """(count, mean, standard deviation, min, max) of the (non-empty) values within [low,
    high]; mean and deviation are rounded to float32, and min and max start from the first
    value clamped into the limits (imagestats' ``computeMean``)."""
    count = 0
    total = 0.0
    squares = 0.0
    least = most = min(max(values[0], low), high)
    for value in values:
        if low <= value <= high:
            count += 1
            total += value
            squares += np.float64(value) * value
            least = min(least, value)
            most = max(most, value)
    if count == 0:
        return 0, np.nan, np.nan, np.nan, np.nan
    mean = total / count
    variance = (squares - count * mean * mean) / (count - 1) if count > 1 else np.nan
    deviation = math.sqrt(max(variance, 0.0)) if count > 1 else np.nan
    return (count, np.float64(np.float32(mean)), np.float64(np.float32(deviation)),
            np.float64(least), np.float64(most))


@njit(cache=True, nogil=True)
def _histogram(values, nbins, start, width):
    """Counts of the values in ``nbins`` bins of ``width`` from ``start`` (float32
    arithmetic, multiplying by the reciprocal width as imagestats; values outside the bins are
    ignored)."""
    counts = np.zeros(nbins, np.int64)
    stop = start + width * np.float32(nbins)
    scale = np.float32(1.0) / width
    for value in values:
        if start <= value < stop:
            index = int((value - start) * scale)
            if index < nbins:
                counts[index] += 1
    return counts


def good_bits(dqbits: str | int | None) -> int | None:
    """The DQ bits that do not make a pixel bad, from an expression such as
    ``~DO_NOT_USE+NON_SCIENCE`` (``~``: every bit except those listed); None: ignore DQ."""
    try:
        return dqflags.interpret_bit_flags(dqbits)
    except ValueError as exc:
        raise ParameterError(f"dqbits {dqbits!r} is not a DQ bit expression: {exc}") from None


def good_pixel_mask(data: np.ndarray, dq: np.ndarray | None, bits: int | None) -> np.ndarray:
    """True where SCI is finite and DQ has no bit outside ``bits`` (all DQ is ignored when
    ``bits`` is None or there is no DQ array)."""
    mask = np.isfinite(data)
    if bits is not None and dq is not None:
        bad = np.uint32(~np.uint32(bits & 0xFFFFFFFF))
        mask &= (np.asarray(dq).astype(np.uint32, copy=False) & bad) == 0
    return mask
