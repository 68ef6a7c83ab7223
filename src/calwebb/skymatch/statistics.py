"""The sky statistic of skymatch (stage3.md §2.4) and the good-pixel mask it is measured on.

The statistic follows ``stsci.imagestats.ImageStats`` (the field's implementation of the IRAF
``imstatistics`` semantics the official step uses): float32 values, ``nclip`` iterations of
mean ± ``lsigma``/``usigma`` standard deviations (sums in double precision), and ``mode`` and
``midpt`` read from a histogram whose bin width is ``binwidth`` times the clipped standard
deviation. It runs as a few vectorised numba passes over the values and a selection mask
(no copies); results equal ImageStats' to the float32 rounding of the deviation.
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

    def __call__(self, values: np.ndarray,
                 where: np.ndarray | None = None) -> tuple[float | None, int]:
        """(statistic, number of pixels used after clipping) of ``values[where]`` (all values
        when ``where`` is None); ``(None, 0)`` when there are too few usable values or the
        statistic is not finite. The passes read ``values`` and ``where`` in place (only
        ``median`` copies the clipped values)."""
        values = np.ascontiguousarray(values, dtype=np.float32).ravel()
        if where is None:
            where = np.ones(values.size, dtype=bool)
        where = np.ascontiguousarray(where, dtype=bool).ravel()
        if where.size != values.size:
            raise ValueError(f"where has {where.size} elements, values {values.size}")
        available = int(np.count_nonzero(where))
        if available == 0:
            return None, 0
        # the passes read only the stretch from the first to the last selected value (an
        # overlap is often a small part of the image)
        first, last = int(np.argmax(where)), where.size - int(np.argmax(where[::-1]))
        values, where = values[first:last], where[first:last]
        selected = where.view(np.uint8)  # numba vectorises byte loads, not boolean ones
        moments = _clipped_moments(values, selected, -np.inf, np.inf)
        npix, _, _, smallest, largest = moments
        if npix < available and (self.lower is None or self.upper is None):
            return None, 0  # NaN values: imagestats' default limits are NaN, selecting nothing
        if npix == 0:
            return None, 0
        lower = smallest if self.lower is None else self.lower
        upper = largest if self.upper is None else self.upper
        if lower > largest or upper < smallest:
            return None, 0
        # without NaN values or limits, the first clipping pass (over [smallest, largest])
        # selects what this one did
        first_pass_done = self.lower is None and self.upper is None
        low, high = lower, upper
        for iteration in range(int(self.nclip) + 1):
            if iteration > 0 or not first_pass_done:
                moments = _clipped_moments(values, selected, low, high)
            npix, mean, deviation, least, most = moments
            if npix == 0:
                return None, 0
            if iteration < self.nclip:  # a NaN deviation (one value) keeps the limits
                low = max(lower, mean - self.lsigma * deviation)
                high = min(upper, mean + self.usigma * deviation)
        if self.skystat == "mean":
            value = mean
        elif self.skystat == "median":
            if self.nclip > 0:
                where = where & (values >= np.float32(low)) & (values <= np.float32(high))
            value = float(np.median(values[where], overwrite_input=True))
        else:
            # imagestats starts its minimum and maximum from the first value clamped into the
            # limits
            start = min(max(values[np.argmax(where)], np.float32(low)), np.float32(high))
            value = self._from_histogram(values, selected, deviation, float(min(start, least)),
                                         float(max(start, most)))
        if value is None or not np.isfinite(value):
            return None, 0
        return float(value), int(npix)

    def _from_histogram(self, values, selected, deviation, least, most) -> float:
        """``mode`` or ``midpt`` from the histogram of all selected values between the last
        clipped minimum and maximum (imagestats' binning and interpolation)."""
        width = self.binwidth * deviation
        spread = most - least
        if width < _SMALLEST_SPREAD or abs(spread) < _SMALLEST_SPREAD or width > spread:
            nbins, step = 1, spread
        else:
            nbins = int(spread / width) + 1
            step = spread / (nbins - 1)
        counts = _histogram(values, selected, nbins, np.float32(least), np.float32(step))
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


def _clipped_moments(values, selected, low, high) -> tuple[int, float, float, float, float]:
    """(count, mean, standard deviation, min, max) of the selected values within [low, high]
    (limits rounded to float32); mean and deviation are rounded to float32 as imagestats'
    ``computeMean``. NaN statistics when no value is left."""
    count, total, squares, least_key, most_key = _clipped_sums(
        values, selected, np.float32(low), np.float32(high))
    if count == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = total / count
    variance = (squares - count * mean * mean) / (count - 1) if count > 1 else math.nan
    deviation = math.sqrt(max(variance, 0.0)) if count > 1 else math.nan
    least, most = _float32_of_keys(np.array([least_key, most_key], np.int32))
    return (count, float(np.float32(mean)), float(np.float32(deviation)), float(least),
            float(most))


#: the order keys (see :func:`_clipped_sums`) beyond those of any float32 value
_LARGEST_KEY = np.int32(0x7FFFFFFF)
_SMALLEST_KEY = np.int32(-0x80000000)


@njit(cache=True, nogil=True, fastmath={"reassoc", "nsz"})
def _clipped_sums(values, selected, low, high):
    """(count, sum, sum of squares, smallest and largest order key) of the values with
    ``selected`` != 0 within [low, high]; sums in double precision.

    One branch-free pass that numba vectorises: the sums are reassociated (they differ from a
    sequential sum in the last bits, far below the float32 rounding of the mean), and the
    extremes are taken on integer order keys (float32 bits with the negative values' order
    reversed, so that integer and float order agree), since float min/max do not vectorise.
    """
    keys = values.view(np.int32)
    count = 0
    total = 0.0
    squares = 0.0
    least = _LARGEST_KEY
    most = _SMALLEST_KEY
    for i in range(values.size):
        value = values[i]
        inside = (value >= low) & (value <= high) & (selected[i] != 0)
        wide = np.float64(value) if inside else 0.0
        count += np.int64(inside)
        total += wide
        squares += wide * wide
        key = keys[i] ^ ((keys[i] >> 31) & _LARGEST_KEY)
        least = min(least, key if inside else _LARGEST_KEY)
        most = max(most, key if inside else _SMALLEST_KEY)
    return count, total, squares, least, most


def _float32_of_keys(keys: np.ndarray) -> np.ndarray:
    """The float32 values of order keys (the key mapping is its own inverse)."""
    return (keys ^ ((keys >> 31) & _LARGEST_KEY)).view(np.float32)


@njit(cache=True, nogil=True)
def _histogram(values, selected, nbins, start, width):
    """Counts of the selected values in ``nbins`` bins of ``width`` from ``start`` (float32
    arithmetic, multiplying by the reciprocal width as imagestats; values outside the bins, and
    every value when the width is 0, are ignored). The bin of every value is found in one
    vectorised pass, then counted."""
    counts = np.zeros(nbins + 1, np.int64)  # the last bin collects the ignored values
    if width == 0:
        return counts[:nbins]
    stop = start + width * np.float32(nbins)
    scale = np.float32(1.0) / width
    bins = np.empty(values.size, np.int32)
    for i in range(values.size):
        value = values[i]
        inside = (value >= start) & (value < stop) & (selected[i] != 0)
        bins[i] = min(np.int32((value - start) * scale), nbins) if inside else nbins
    for i in range(values.size):
        counts[bins[i]] += 1
    return counts[:nbins]


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
