"""The robust reference image of outlier detection (stage3.md §2.5): the weight threshold,
a NaN-ignoring median over a stack of images computed in row sections (the stack may live in
a temporary file, so memory does not grow with the number of images) and the rolling median
along the integrations of a TSO cube."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
from numba import njit

from calwebb.errors import DataModelError, ParameterError
from calwebb.kernels import median_small

#: bytes of stack data read per row section when the stack is on disk
SECTION_BYTES = 64 << 20
#: above this many values per pixel a full sort beats the insertion sort of ``median_small``
SMALL_COUNT = 32
#: clipping of the weights before their mean sets the low-weight threshold
CLIP_SIGMA, CLIP_ITERATIONS = 3.0, 5


def weight_threshold(weight: np.ndarray, maskpt: float) -> float:
    """``maskpt`` × the mean of the finite, non-zero ``weight`` values after 3σ clipping about
    the median (at most 5 iterations, astropy ``sigma_clip`` value for value); NaN when there
    is no such value (then nothing is masked)."""
    values = np.asarray(weight).ravel()
    values = values[np.isfinite(values) & (values != 0)]
    for _ in range(CLIP_ITERATIONS):
        if values.size == 0:
            return math.nan
        centre, spread = _median(values), np.std(values)
        kept = values[(values >= centre - spread * CLIP_SIGMA) &
                      (values <= centre + spread * CLIP_SIGMA)]
        changed = kept.size != values.size
        values = kept
        if not changed:
            break
    if values.size == 0:
        return math.nan
    return float(np.mean(values, dtype=np.float64)) * float(maskpt)


def _median(values: np.ndarray):
    """``np.median`` of a 1-D array without NaN or zeros; float32 by radix selection."""
    if values.dtype != np.float32:
        return np.median(values)
    middle = values.size // 2
    bits = values.view(np.uint32)
    high = np.array(_select_float32(bits, middle), np.uint32).view(np.float32)
    if values.size % 2:
        return high[()]
    low = np.array(_select_float32(bits, middle - 1), np.uint32).view(np.float32)
    return (low + high)[()] / np.float32(2)


@njit(cache=True)
def _order_key(bits):
    """Non-negative int64 whose order is the order of the float32 with these ``bits``."""
    value = np.int64(bits)
    return ~value & 0xFFFFFFFF if value & 0x80000000 else value | 0x80000000


@njit(cache=True)
def _select_float32(bits, rank):
    """Bits of the ``rank``-th smallest (0-based) of the float32 values whose bit patterns
    are ``bits``: two passes of 16-bit histograms of their order keys."""
    counts = np.zeros(1 << 16, np.int64)
    for value in bits:
        counts[_order_key(value) >> 16] += 1
    high = 0
    while rank >= counts[high]:
        rank -= counts[high]
        high += 1
    counts[:] = 0
    for value in bits:
        key = _order_key(value)
        if key >> 16 == high:
            counts[key & 0xFFFF] += 1
    low = 0
    while rank >= counts[low]:
        rank -= counts[low]
        low += 1
    key = (high << 16) | low
    return key & 0x7FFFFFFF if key & 0x80000000 else ~key & 0xFFFFFFFF


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
        return row_bands(depth, (rows, columns), self.section_bytes)[0][1]

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
