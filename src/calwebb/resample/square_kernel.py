"""The arrays of one image (SCI, ERR, variances: one geometry) drizzled in one pass of the
square kernel.

The ``drizzle`` package drizzles one data array per pass (its second data channel uses
squared weights), so the official scheme — SCI, then each variance array drizzled as σ with
the science pixel weights — costs one full pass per array. Here the overlap of each input
pixel with the output pixels is computed once and applied to every array.

The arithmetic is the square kernel's: the input pixel shrunk by ``pixfrac`` about its
centre has its corners mapped by bilinear interpolation of the pixel map (extrapolated at
the image edges; a NaN neighbour drops the pixel), each output pixel gets the weight
overlap area / quadrilateral area × pixel weight, and every output value is the running
weighted mean kept in float32 as ``drizzle`` keeps it. An input pixel is used when its
weight is positive and its centre maps inside the output image.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
from numba import njit

from calwebb.kernels import in_threads

#: input pixel centres must map this far inside the output's edge for the one-pass drizzle
EDGE_MARGIN = 0.1


def footprint_box(pixmap: np.ndarray, pixfrac: float, x_range: tuple[int, int],
                  y_range: tuple[int, int],
                  out_shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1): the output rows/columns (half-open) that the input pixels in the
    inclusive ``x_range``/``y_range`` reach. None unless every mapped pixel centre lies
    inside the output image by EDGE_MARGIN (otherwise ``drizzle``'s scan of the output edge
    decides which pixels count), or when no centre is mapped."""
    x_low, x_high, y_low, y_high = _mapped_extent(pixmap, x_range[0], x_range[1], y_range[0],
                                                  y_range[1])
    if not x_low <= x_high:
        return None
    ny, nx = out_shape
    limits = []
    for low, high, size in ((y_low, y_high, ny), (x_low, x_high, nx)):
        if low < EDGE_MARGIN - 0.5 or high > size - 0.5 - EDGE_MARGIN:
            return None
        reach = math.ceil(pixfrac) + 1.0  # corners lie within this of the mapped centres
        limits += [max(int(np.floor(low - reach)), 0), min(int(np.ceil(high + reach)) + 1, size)]
    return tuple(limits)


@njit(cache=True, nogil=True)
def _mapped_extent(pixmap, x_lo, x_hi, y_lo, y_hi):
    """(x min, x max, y min, y max) of the finite mapped centres of the pixels in the range
    (inf, -inf, ... when there are none)."""
    x_low = y_low = np.inf
    x_high = y_high = -np.inf
    for j in range(y_lo, y_hi + 1):
        for i in range(x_lo, x_hi + 1):
            x, y = pixmap[j, i, 0], pixmap[j, i, 1]
            if np.isfinite(x) and np.isfinite(y):
                x_low, x_high = min(x_low, x), max(x_high, x)
                y_low, y_high = min(y_low, y), max(y_high, y)
    return x_low, x_high, y_low, y_high


class TogetherDrizzle:
    """The 2-D ``arrays`` (a sequence, all of one shape; an array whose ``as_sigma`` flag is
    true, or every array when it is True, stands for √max(array, 0)) drizzled with the pixel
    ``weights`` onto an output of ``out_shape``, made by ``run``. ``box`` (y0, y1, x0, x1)
    is the output part holding every contribution (``footprint_box``; the caller checks it
    is not None); after ``run``, ``means`` (k, box) are the weighted means in it (float32,
    NaN where nothing contributed) and ``weight`` the summed weights (float32).

    ``run`` (or ``running``) splits the box's rows into ``parts`` bands holding about equal
    numbers of mapped pixel centres, one thread each: a thread goes through the input pixels
    in order and adds each one's overlap with its own rows only, so every output pixel gets
    its contributions in the same order whatever the number of parts (the products do not
    depend on it) and no thread needs memory beyond the one box."""

    def __init__(self, arrays, weights: np.ndarray, pixmap: np.ndarray, pixfrac: float,
                 x_range: tuple[int, int], y_range: tuple[int, int],
                 out_shape: tuple[int, int], parts: int = 1, as_sigma=False):
        self.box = footprint_box(pixmap, pixfrac, x_range, y_range, out_shape)
        arrays = tuple(np.asarray(array, np.float32) for array in arrays)
        sigma_flags = np.broadcast_to(np.asarray(as_sigma, np.bool_), (len(arrays),)).copy()
        self._inputs = (arrays, sigma_flags, weights, pixmap, 0.5 * pixfrac)
        self._ranges = (*x_range, *y_range)
        self._out_shape, self._parts = out_shape, max(1, parts)
        self.means = self.weight = None

    def run(self) -> None:
        """Drizzle now (``running`` with nothing beside it)."""
        with self.running():
            pass

    @contextmanager
    def running(self):
        """Drizzle during the block, each band of output rows in a thread of its own
        (``in_threads``: a C routine called in the block runs beside them even when it holds
        the interpreter lock); ``means`` and ``weight`` are set when the block ends."""
        y0, y1, x0, x1 = self.box
        means = np.zeros((len(self._inputs[0]), y1 - y0, x1 - x0), np.float32)
        weight = np.zeros((y1 - y0, x1 - x0), np.float32)
        edges = row_split(self._inputs[3], *self._ranges, y0, y1, self._parts)
        calls = [(_square_kernel, (*self._inputs, *self._ranges, y0, x0, *self._out_shape,
                                   means, weight, int(low), int(high)))
                 for low, high in zip(edges[:-1], edges[1:], strict=True) if high > low]
        with in_threads(calls):
            yield
        _mark_empty(means, weight)
        self.means, self.weight = means, weight
        self._inputs = None  # (drizzled once: the inputs' memory is not held)


def row_split(pixmap: np.ndarray, x_lo: int, x_hi: int, y_lo: int, y_hi: int, row_lo: int,
              row_hi: int, parts: int) -> np.ndarray:
    """``parts`` + 1 increasing output rows from ``row_lo`` to ``row_hi`` that cut the rows
    into bands holding about equal numbers of the mapped pixel centres of the input range."""
    counts = _centre_rows(pixmap, x_lo, x_hi, y_lo, y_hi, row_lo, row_hi)
    cumulative = np.cumsum(counts)
    targets = cumulative[-1] * np.arange(1, parts) / parts if cumulative.size else []
    inner = row_lo + 1 + np.searchsorted(cumulative, targets)
    return np.concatenate([[row_lo], np.clip(inner, row_lo, row_hi), [row_hi]]).astype(int)


@njit(cache=True, nogil=True)
def _centre_rows(pixmap, x_lo, x_hi, y_lo, y_hi, row_lo, row_hi):
    """How many finite mapped centres of the input range fall on each output row of
    ``row_lo`` to ``row_hi`` (half-open)."""
    counts = np.zeros(row_hi - row_lo, np.int64)
    for j in range(y_lo, y_hi + 1):
        for i in range(x_lo, x_hi + 1):
            y = pixmap[j, i, 1]
            if np.isfinite(y) and np.isfinite(pixmap[j, i, 0]):
                row = int(math.floor(y + 0.5)) - row_lo
                if 0 <= row < counts.size:
                    counts[row] += 1
    return counts


@njit(cache=True, nogil=True)
def _mark_empty(means, weight):
    """NaN in ``means`` wherever nothing contributed."""
    for y in range(weight.shape[0]):
        for x in range(weight.shape[1]):
            if weight[y, x] == 0.0:
                for a in range(means.shape[0]):
                    means[a, y, x] = np.nan


@njit(cache=True, nogil=True)
def _interpolate(pixmap, x, y):
    """Bilinear interpolation of the pixel map at (x, y), extrapolating past the edges."""
    ny, nx = pixmap.shape[0], pixmap.shape[1]
    i0 = min(max(int(x), 0), nx - 2)
    j0 = min(max(int(y), 0), ny - 2)
    fx, fy = x - i0, y - j0
    gx, gy = 1.0 - fx, 1.0 - fy
    out_x = (pixmap[j0, i0, 0] * gx * gy + pixmap[j0, i0 + 1, 0] * fx * gy +
             pixmap[j0 + 1, i0, 0] * gx * fy + pixmap[j0 + 1, i0 + 1, 0] * fx * fy)
    out_y = (pixmap[j0, i0, 1] * gx * gy + pixmap[j0, i0 + 1, 1] * fx * gy +
             pixmap[j0 + 1, i0, 1] * gx * fy + pixmap[j0 + 1, i0 + 1, 1] * fx * fy)
    return out_x, out_y


@njit(cache=True, nogil=True)
def _finite_range(first, second):
    """(min, max) of the finite values of two arrays (inf, -inf when there are none)."""
    low, high = np.inf, -np.inf
    for values in (first, second):
        for value in values:
            if np.isfinite(value):
                low, high = min(low, value), max(high, value)
    return low, high


@njit(cache=True, nogil=True)
def _corner_row(pixmap, y, x_lo, out_x, out_y):
    """The mapped corners (x_lo − ½ + c, y) for c = 0, 1, ... into out_x/out_y."""
    for c in range(out_x.size):
        out_x[c], out_y[c] = _interpolate(pixmap, x_lo - 0.5 + c, y)


@njit(cache=True, nogil=True)
def _band_area(start, end, start_y, end_y, bottom):
    """∫ clamp(y(x) − bottom, 0, 1) dx from ``start`` to ``end`` along a straight edge with
    y(start) = ``start_y``, y(end) = ``end_y``: the part of the edge's trapezoid inside the
    unit band above ``bottom``."""
    low, high = start_y - bottom, end_y - bottom
    if low > high:
        low, high = high, low
    width = end - start
    if high <= 0.0:
        return 0.0
    if low >= 1.0:
        return width
    rise = high - low
    if rise == 0.0:
        return low * width
    enters = max(0.0, -low / rise)  # fraction of the edge below the band ...
    leaves = min(1.0, (1.0 - low) / rise)  # ... and up to the band's top
    inside = 0.5 * (max(low, 0.0) + min(high, 1.0))
    return width * ((leaves - enters) * inside + (1.0 - leaves))


@njit(cache=True, nogil=True)
def _square_kernel(arrays, as_sigma, weights, pixmap, half, x_lo, x_hi, y_lo, y_hi, box_y0,
                   box_x0, out_ny, out_nx, means, total, row_lo, row_hi):
    """Accumulate every input pixel of the range into ``means``/``total`` (output box at
    ``box_y0``, ``box_x0``), on the output rows ``row_lo`` to ``row_hi`` (half-open) only.

    The overlap of the pixel's quadrilateral with an output pixel is the signed sum over its
    edges of ∫ clamp(y(x) − bottom, 0, 1) dx over the output pixel's columns (edges running
    left count positive, right negative), done column by column."""
    n_arrays = len(arrays)
    values = np.empty(n_arrays)  # the pixel's value in each array
    box_ny, box_nx = total.shape
    quad_x, quad_y = np.empty(5), np.empty(5)
    edge_start, edge_end = np.empty(4), np.empty(4)  # x range of each edge, left to right
    edge_y, edge_slope, edge_sign = np.empty(4), np.empty(4), np.empty(4)
    cut_start, cut_end = np.empty(4), np.empty(4)  # each edge inside the current column
    cut_start_y, cut_end_y = np.empty(4), np.empty(4)
    cut = np.zeros(4, np.bool_)
    corner_dx = np.array([-half, half, half, -half])
    corner_dy = np.array([half, half, -half, -half])
    # the whole pixels' corners, mapped once per row of corners: the quadrilaterals
    # themselves at pixfrac 1, and the rows of input pixels that reach this band of rows
    shared = half == 0.5
    n_corners = x_hi - x_lo + 2
    corners_x, corners_y = np.empty((2, n_corners)), np.empty((2, n_corners))
    _corner_row(pixmap, y_lo - 0.5, x_lo, corners_x[0], corners_y[0])
    for j in range(y_lo, y_hi + 1):
        below, above = (j - y_lo) % 2, (j - y_lo + 1) % 2
        _corner_row(pixmap, j + 0.5, x_lo, corners_x[above], corners_y[above])
        low, high = _finite_range(corners_y[below], corners_y[above])
        # (a margin of a row: pixfrac < 1 corners are interpolated on their own)
        if not (high + 0.5 >= row_lo - 1 and low - 0.5 < row_hi + 1):
            continue
        for i in range(x_lo, x_hi + 1):
            w = weights[j, i]
            if not w > 0.0:
                continue
            centre_x, centre_y = pixmap[j, i, 0], pixmap[j, i, 1]
            if not (-0.5 <= centre_x <= out_nx - 0.5 and -0.5 <= centre_y <= out_ny - 0.5):
                continue
            if shared:
                c = i - x_lo
                quad_x[0], quad_y[0] = corners_x[above, c], corners_y[above, c]
                quad_x[1], quad_y[1] = corners_x[above, c + 1], corners_y[above, c + 1]
                quad_x[2], quad_y[2] = corners_x[below, c + 1], corners_y[below, c + 1]
                quad_x[3], quad_y[3] = corners_x[below, c], corners_y[below, c]
            else:
                for k in range(4):
                    quad_x[k], quad_y[k] = _interpolate(pixmap, i + corner_dx[k],
                                                        j + corner_dy[k])
            usable = True
            for k in range(4):
                if not (np.isfinite(quad_x[k]) and np.isfinite(quad_y[k])):
                    usable = False
            if not usable:
                continue
            y_min = min(min(quad_y[0], quad_y[1]), min(quad_y[2], quad_y[3]))
            y_max = max(max(quad_y[0], quad_y[1]), max(quad_y[2], quad_y[3]))
            jj_lo = max(int(math.floor(y_min + 0.5)), 0, row_lo)
            jj_hi = min(int(math.floor(y_max + 0.5)), out_ny - 1, row_hi - 1)
            if jj_lo > jj_hi:
                continue
            quad_x[4], quad_y[4] = quad_x[0], quad_y[0]
            for a in range(n_arrays):
                value = np.float64(arrays[a][j, i])
                values[a] = math.sqrt(max(value, 0.0)) if as_sigma[a] else value
            jacobian = abs(0.5 * ((quad_x[1] - quad_x[3]) * (quad_y[0] - quad_y[2]) -
                                  (quad_x[0] - quad_x[2]) * (quad_y[1] - quad_y[3])))
            if jacobian == 0.0:
                continue
            for k in range(4):
                x1, y1, x2, y2 = quad_x[k], quad_y[k], quad_x[k + 1], quad_y[k + 1]
                edge_sign[k] = 1.0 if x2 > x1 else -1.0
                if x2 < x1:
                    x1, x2, y1, y2 = x2, x1, y2, y1
                edge_start[k], edge_end[k], edge_y[k] = x1, x2, y1
                edge_slope[k] = (y2 - y1) / (x2 - x1) if x2 > x1 else 0.0
            x_min = min(min(quad_x[0], quad_x[1]), min(quad_x[2], quad_x[3]))
            x_max = max(max(quad_x[0], quad_x[1]), max(quad_x[2], quad_x[3]))
            ii_lo = max(int(math.floor(x_min + 0.5)), 0)
            ii_hi = min(int(math.floor(x_max + 0.5)), out_nx - 1)
            for ii in range(ii_lo, ii_hi + 1):
                bx = ii - box_x0
                if bx < 0 or bx >= box_nx:
                    continue
                for k in range(4):
                    start = max(edge_start[k], ii - 0.5)
                    end = min(edge_end[k], ii + 0.5)
                    cut[k] = start < end
                    if cut[k]:
                        cut_start[k], cut_end[k] = start, end
                        cut_start_y[k] = edge_y[k] + edge_slope[k] * (start - edge_start[k])
                        cut_end_y[k] = edge_y[k] + edge_slope[k] * (end - edge_start[k])
                for jj in range(jj_lo, jj_hi + 1):
                    by = jj - box_y0
                    if by < 0 or by >= box_ny:
                        continue
                    area = 0.0
                    for k in range(4):
                        if cut[k]:
                            area += edge_sign[k] * _band_area(
                                cut_start[k], cut_end[k], cut_start_y[k], cut_end_y[k],
                                jj - 0.5)
                    area = abs(area)
                    if area <= 0.0:
                        continue
                    dow = np.float32(area / jacobian * w)
                    if dow == 0.0:
                        continue
                    previous = total[by, bx]
                    combined = np.float64(previous) + dow
                    if previous == 0.0:
                        for a in range(n_arrays):
                            means[a, by, bx] = values[a]
                    else:
                        kept, added = np.float64(previous) / combined, dow / combined
                        for a in range(n_arrays):
                            means[a, by, bx] = means[a, by, bx] * kept + values[a] * added
                    total[by, bx] = combined
