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
from numba import njit, prange

from calwebb.errors import DataModelError, ParameterError
from calwebb.kernels import column_median, sort_columns, sorting_network

#: bytes of stack data read per row section when the stack is on disk
SECTION_BYTES = 64 << 20
#: clipping of the weights before their mean sets the low-weight threshold
CLIP_SIGMA, CLIP_ITERATIONS = 3.0, 5


def weight_threshold(weight: np.ndarray, maskpt: float) -> float:
    """``maskpt`` × the mean of the finite, non-zero ``weight`` values after 3σ clipping about
    the median (at most 5 iterations, astropy ``sigma_clip`` value for value); NaN when there
    is no such value (then nothing is masked).

    The kept values stay in their original order (``np.std`` and ``np.mean`` sum them in that
    order); a sorted copy gives each median and the number a clip keeps without a pass."""
    values = _finite_nonzero(_native_float(weight).ravel())
    ordered = np.sort(values)
    low, high = 0, ordered.size  # the kept values are ordered[low:high]
    for _ in range(CLIP_ITERATIONS):
        if high == low:
            return math.nan
        kept = ordered[low:high]
        centre, spread = _sorted_median(kept), np.std(values)
        lower, upper = centre - spread * CLIP_SIGMA, centre + spread * CLIP_SIGMA
        low, high = (low + np.searchsorted(kept, lower, "left"),
                     low + np.searchsorted(kept, upper, "right"))
        if high - low == kept.size:
            break
        values = values[:_keep_within(values, lower, upper)]
    if high == low:
        return math.nan
    return float(np.mean(values, dtype=np.float64)) * float(maskpt)


def _native_float(array) -> np.ndarray:
    """``array`` as float32 or float64 in native byte order; integers (whose median and
    standard deviation numpy takes in float64) and any other type as float64."""
    array = np.asarray(array)
    if array.dtype.kind == "f" and array.dtype.itemsize in (4, 8):
        return array.astype(array.dtype.newbyteorder("="), copy=False)
    return array.astype(np.float64)


def _sorted_median(ordered: np.ndarray):
    """``np.median`` of a sorted, non-empty 1-D array, in its dtype."""
    middle = ordered.size // 2
    if ordered.size % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@njit(cache=True)
def _finite_nonzero(values):
    """The finite, non-zero ``values`` (1-D) in their order."""
    kept = np.empty(values.size, values.dtype)
    count = 0
    for value in values:
        if np.isfinite(value) and value != 0:
            kept[count] = value
            count += 1
    return kept[:count]


@njit(cache=True)
def _keep_within(values, lower, upper):
    """In place: the ``values`` within [``lower``, ``upper``] moved to the front in their
    order; returns how many there are."""
    count = 0
    for value in values:
        if lower <= value <= upper:
            values[count] = value
            count += 1
    return count


def mask_low_weight(data: np.ndarray, weight: np.ndarray, threshold: float) -> np.ndarray:
    """``data`` as float32 with NaN where ``weight`` < ``threshold`` (a new array)."""
    masked = np.array(data, dtype=np.float32, copy=True)
    masked[np.less(weight, threshold)] = np.nan
    return masked


@njit(cache=True, parallel=True)
def _nanmedian_first_axis(stack, network, out):
    """out[y, x] = median of the non-NaN stack[:, y, x] (NaN when there is none), row by row
    in parallel: each row's columns sorted at once by the sorting ``network``, NaN sorted
    last as +inf. A zero median is +0 whatever the signs of the zeros it came from."""
    depth, rows, columns = stack.shape
    for row in prange(rows):
        values = np.empty((depth, columns), stack.dtype)
        counts = np.zeros(columns, np.int64)
        for plane in range(depth):
            for column in range(columns):
                value = stack[plane, row, column]
                if np.isnan(value):
                    values[plane, column] = np.inf
                else:
                    values[plane, column] = value
                    counts[column] += 1
        sort_columns(values, network)
        for column in range(columns):
            count = counts[column]
            if count == 0:
                out[row, column] = np.nan
                continue
            out[row, column] = column_median(values, count, column) + 0.0


def nanmedian(stack: np.ndarray) -> np.ndarray:
    """float32 median over the first axis of a 3-D ``stack``, ignoring NaN (NaN where a
    pixel has no value); the same values as ``np.nanmedian(stack, axis=0)``, a zero always
    +0."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise DataModelError(f"the median needs a 3-D stack, got shape {stack.shape}")
    if stack.dtype not in (np.float32, np.float64):
        stack = stack.astype(np.float32)
    out = np.empty(stack.shape[1:], np.float32)
    if stack.shape[0] and out.size:
        _nanmedian_first_axis(np.ascontiguousarray(stack), sorting_network(stack.shape[0]), out)
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
    NaN-median (an image never filled counts as all NaN). In memory, or (``directory`` given)
    in a temporary memory-mapped file in that directory, read back in row sections of about
    ``section_bytes``."""

    def __init__(self, depth: int, shape: tuple[int, int], directory: str | os.PathLike |
                 None = None, section_bytes: int = SECTION_BYTES):
        if depth < 1:
            raise DataModelError("the median stack needs at least one image")
        self.shape = (int(depth), *(int(n) for n in shape))
        self.section_bytes = int(section_bytes)
        self._path: Path | None = None
        self._unfilled = set(range(self.shape[0]))  # made NaN only when the median is taken
        if directory is None:
            self._planes = np.empty(self.shape, np.float32)
        else:
            handle, name = tempfile.mkstemp(prefix="calwebb_median_", suffix=".f32",
                                            dir=directory)
            os.close(handle)
            self._path = Path(name)
            self._planes = np.lib.format.open_memmap(self._path, mode="w+", dtype=np.float32,
                                                     shape=self.shape)

    @property
    def on_disk(self) -> bool:
        return self._path is not None

    def __setitem__(self, index: int, image: np.ndarray) -> None:
        image = np.asarray(image)
        if image.shape != self.shape[1:]:
            raise DataModelError(f"median stack image {index} has shape {image.shape}, "
                                 f"expected {self.shape[1:]}")
        self._store(index, image)
        self._unfilled.discard(range(self.shape[0])[index])

    def _store(self, index: int, image) -> None:
        self._planes[index] = image
        if self.on_disk:
            self._planes.flush()

    def sections(self) -> list[tuple[int, int]]:
        """(start, stop) of the rows read at once: all of them in memory, else bands that fit
        in ``section_bytes``."""
        depth, rows, columns = self.shape
        if not self.on_disk:
            return [(0, rows)]
        return row_bands(depth, (rows, columns), self.section_bytes)

    def median(self) -> np.ndarray:
        """float32 NaN-median over the images, computed one row section at a time."""
        for index in self._unfilled:
            self._store(index, np.nan)
        self._unfilled.clear()
        out = np.empty(self.shape[1:], np.float32)
        for start, stop in self.sections():
            out[start:stop] = nanmedian(np.asarray(self._planes[:, start:stop]))
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
