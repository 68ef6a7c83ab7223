"""The sky statistic of skymatch (stage3.md §2.4) and the good-pixel mask it is measured on.

The statistic is the sigma-clipped, histogram-based one of ``stsci.imagestats.ImageStats``
(the field's implementation of the IRAF ``imstatistics`` semantics the official step uses),
so ``mode`` and ``midpt`` are read from a histogram whose bin width is ``binwidth`` times the
clipped standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calwebb import dqflags
from calwebb.errors import ParameterError

#: statistics ``skystat`` may name
SKY_STATISTICS = ("mode", "midpt", "median", "mean")


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
        from stsci.imagestats import ImageStats

        values = np.asarray(values, dtype=np.float32).ravel()
        if values.size == 0:
            return None, 0
        try:
            stats = ImageStats(values, fields=f"npix,{self.skystat}", lower=self.lower,
                               upper=self.upper, nclip=int(self.nclip), lsig=self.lsigma,
                               usig=self.usigma, binwidth=self.binwidth)
        except ValueError:  # no values within lower/upper, or too few to clip
            return None, 0
        value = getattr(stats, self.skystat)
        if value is None or not np.isfinite(value) or stats.npix < 1:
            return None, 0
        return float(value), int(stats.npix)


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
