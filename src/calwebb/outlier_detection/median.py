"""The robust reference image of outlier detection (stage3.md §2.5): the weight threshold,
a NaN-ignoring median over a stack of images computed in row sections (the stack may live in
a temporary file, so memory does not grow with the number of images) and the rolling median
along the integrations of a TSO cube."""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.stats import sigma_clip
from numba import njit

from calwebb.errors import DataModelError, ParameterError
from calwebb.kernels import median_small

#: bytes of stack data read per row section when the stack is on disk
SECTION_BYTES = 64 << 20
#: above this many values per pixel a full sort beats the insertion sort of ``median_small``
SMALL_COUNT = 32


def weight_threshold(weight: np.ndarray, maskpt: float) -> float:
    """``maskpt`` × the mean of the finite, non-zero ``weight`` values after 3σ clipping
    (at most 5 iterations); NaN when there is no such value (then nothing is masked)."""
    values = np.asarray(weight)
    values = values[np.isfinite(values) & (values != 0)]
    if values.size == 0:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kept = sigma_clip(values, sigma=3.0, maxiters=5, masked=False, copy=False)
        if kept.size == 0:
            return math.nan
        return float(np.mean(kept, dtype=np.float64)) * float(maskpt)


def mask_low_weight(data: np.ndarray, weight: np.ndarray, threshold: float) -> np.ndarray:
    """``data`` as float32 with NaN where ``weight`` < ``threshold`` (a new array)."""
    masked = np.array(data, dtype=np.float32, copy=True)
    masked[np.less(weight, threshold)] = np.nan
    return masked


@njit(cache=True)
def _nanmedian_first_axis(stack, out):
    """out[y, x] = median of the non-NaN stack[:, y, x] (NaN when there is none)."""
    depth, rows, columns = stack.shape
    for row in range(rows):
        values = np.empty(depth, np.float64)
        for column in range(columns):
            count = 0
            for plane in range(depth):
                value = stack[plane, row, column]
                if not np.isnan(value):
                    values[count] = value
                    count += 1
            if count == 0:
                out[row, column] = np.nan
            elif count <= SMALL_COUNT:
                out[row, column] = median_small(values, count)
            else:
                out[row, column] = np.median(values[:count])


def nanmedian(stack: np.ndarray) -> np.ndarray:
    """float32 median over the first axis of a 3-D ``stack``, ignoring NaN (NaN where a
    pixel has no value); the same values as ``np.nanmedian(stack, axis=0)``."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise DataModelError(f"the median needs a 3-D stack, got shape {stack.shape}")
    if stack.dtype not in (np.float32, np.float64):
        stack = stack.astype(np.float32)
    out = np.empty(stack.shape[1:], np.float32)
    if stack.shape[0] and out.size:
        _nanmedian_first_axis(np.ascontiguousarray(stack), out)
    else:
        out[...] = np.nan
    return out


def row_bands(depth: int, shape: tuple[int, int],
              band_bytes: int = SECTION_BYTES) -> list[tuple[int, int]]:
    """(start, stop) row ranges covering ``shape`` such that a band of ``depth`` float32
    images holds about ``band_bytes`` (at least one row)."""
    rows, columns = shape
    step = max(1, min(rows, band_bytes // max(1, depth * columns * 4)))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


class ImageStack:
    """``depth`` images of one shape, filled one at a time, then reduced by a per-pixel
    NaN-median. In memory, or (``directory`` given) in a temporary memory-mapped file in
    that directory, read back in row sections of about ``section_bytes``."""

    def __init__(self, depth: int, shape: tuple[int, int], directory: str | os.PathLike |
                 None = None, section_bytes: int = SECTION_BYTES):
        if depth < 1:
            raise DataModelError("the median stack needs at least one image")
        self.shape = (int(depth), *(int(n) for n in shape))
        self.section_bytes = int(section_bytes)
        self._path: Path | None = None
        if directory is None:
            self._planes = np.full(self.shape, np.nan, np.float32)
        else:
            handle, name = tempfile.mkstemp(prefix="calwebb_median_", suffix=".f32",
                                            dir=directory)
            os.close(handle)
            self._path = Path(name)
            self._planes = np.lib.format.open_memmap(self._path, mode="w+", dtype=np.float32,
                                                     shape=self.shape)
            self._planes[...] = np.nan

    @property
    def on_disk(self) -> bool:
        return self._path is not None

    def __setitem__(self, index: int, image: np.ndarray) -> None:
        image = np.asarray(image)
        if image.shape != self.shape[1:]:
            raise DataModelError(f"median stack image {index} has shape {image.shape}, "
                                 f"expected {self.shape[1:]}")
        self._planes[index] = image
        if self.on_disk:
            self._planes.flush()

    def rows_per_section(self) -> int:
        """Rows read at once: all of them in memory, else what fits in ``section_bytes``."""
        depth, rows, columns = self.shape
        if not self.on_disk:
            return rows
        return max(1, min(rows, self.section_bytes // max(1, depth * columns * 4)))

    def median(self) -> np.ndarray:
        """float32 NaN-median over the images, computed one row section at a time."""
        _, rows, columns = self.shape
        out = np.empty((rows, columns), np.float32)
        step = self.rows_per_section()
        for start in range(0, rows, step):
            section = np.asarray(self._planes[:, start:start + step])
            out[start:start + step] = nanmedian(section)
        return out

    def close(self) -> None:
        """Release the stack (and delete its temporary file)."""
        self._planes = None
        if self._path is not None:
            self._path.unlink(missing_ok=True)
            self._path = None

    def __enter__(self) -> ImageStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rolling_median(cube: np.ndarray, width: int) -> np.ndarray:
    """NaN-median of every ``width`` consecutive planes of ``cube``, stored at the window's
    centre plane (index start + width // 2); planes before the first centre copy the first
    window's median and planes after the last centre copy the last one. float32."""
    cube = np.asarray(cube)
    planes = cube.shape[0]
    if width <= 1 or width > planes:
        raise ParameterError(f"rolling median window must be in 2..{planes} integrations, "
                             f"got {width}")
    out = np.empty(cube.shape, np.float32)
    half = width // 2
    for start in range(planes - width + 1):
        out[start + half] = nanmedian(cube[start:start + width])
    first, last = half, planes - width + half
    out[:first] = out[first]
    out[last + 1:] = out[last]
    return out
