"""Drizzle images onto one grid (stage2.md §4.22): the square kernel's one-pass drizzle of
every array of an image (``square_kernel``) where it applies, the ``drizzle`` package
otherwise (``DrizzleSums`` says when).

Inputs are surface brightness (MJy/sr), so every output pixel is the weighted mean of the
input pixels that overlap it, with no intensity rescaling: surface brightness is kept, and
the total flux Σ SCI·Ω is conserved by the square kernel.

Variances follow the official scheme: each input's variance arrays are drizzled as standard
deviations with the same pixel weights as the science data and squared (the per-input
variance on the output grid, v_i); the inputs are then combined with output-grid weights w_i
(``ivm``: 1/v_i of VAR_RNOISE, ``exptime``: the exposure time, None: 1) as
Σ w_i²·v_i / (Σ w_i)², divided by the squared pixel-scale ratio. Inputs are consumed one at a
time; every output array is float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numba
import numpy as np
from drizzle.resample import Drizzle
from drizzle.utils import calc_pixmap
from numba import njit, prange
from scipy.interpolate import BSpline, RectBivariateSpline

from calwebb import dqflags
from calwebb.errors import DataModelError, ParameterError
from calwebb.resample.grid import bounding_box_of, grid_key
from calwebb.resample.square_kernel import TogetherDrizzle

VARIANCES = ("var_poisson", "var_rnoise", "var_flat")
#: input pixels with any of these flags are left out; every other flag counts as good
EXCLUDED_FLAGS = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE
KERNELS = ("square", "gaussian", "point", "turbo", "lanczos2", "lanczos3")
WEIGHT_TYPES = ("ivm", "exptime", None)
#: images per plane of the context image (int32 bits)
CONTEXT_BITS = 32


@dataclass
class DrizzleInput:
    """One 2-D image to drizzle: SCI, DQ, its gwcs and (optionally) ERR and variances."""

    data: np.ndarray
    wcs: object
    dq: np.ndarray | None = None
    err: np.ndarray | None = None
    variances: dict[str, np.ndarray] = field(default_factory=dict)
    exposure_time: float = 1.0  # the 'exptime' weight: TMEASURE, else EFFEXPTM
    background: float = 0.0  # sky level subtracted before drizzling
    name: str = "input"
    pixel_mapper: PixelMapper | None = None  # its pixel map, when already made for the grid
    excluded: np.ndarray | None = None  # True: left out besides what DQ and NaN leave out


@dataclass
class DrizzleResult:
    """Output arrays (float32 [ny, nx]; context int32 [nplanes, ny, nx])."""

    data: np.ndarray
    weight: np.ndarray
    context: np.ndarray | None
    variances: dict[str, np.ndarray]
    error: np.ndarray | None
    dq: np.ndarray | None
    n_inputs: int


# -- per-input preparation -----------------------------------------------------------------------
def check_input(item: DrizzleInput) -> None:
    """Raise DataModelError naming the image and array when ``item`` cannot be drizzled."""
    data = np.asarray(item.data)
    if data.ndim != 2:
        raise DataModelError(f"{item.name}: resample needs a 2-D SCI array, got shape "
                             f"{data.shape}")
    arrays = {"DQ": item.dq, "ERR": item.err,
              **{name.upper(): array for name, array in item.variances.items()}}
    for label, array in arrays.items():
        if array is not None and np.shape(array) != data.shape:
            raise DataModelError(f"{item.name}: {label} has shape {np.shape(array)}, SCI has "
                                 f"{data.shape}")
    if item.dq is not None and np.asarray(item.dq).dtype.kind not in "ui":
        raise DataModelError(f"{item.name}: DQ must be an integer array, got "
                             f"{np.asarray(item.dq).dtype}")


def excluded_pixels(item: DrizzleInput) -> np.ndarray:
    """True where a pixel is left out: DO_NOT_USE or NON_SCIENCE in DQ, (NaN/DO_NOT_USE
    harmonisation) a non-finite SCI, ERR or variance value, or ``item.excluded``."""
    excluded = dqflags.invalid_pixels(item.dq, EXCLUDED_FLAGS, item.data, item.err,
                                      *item.variances.values())
    if item.excluded is not None:
        excluded |= item.excluded
    return excluded


def pixel_weights(item: DrizzleInput, weight_type: str | None,
                  excluded: np.ndarray | None = None) -> np.ndarray:
    """float32 weight of each input pixel: 'ivm' → 1/VAR_RNOISE (0 where it is ≤ 0 or not
    finite; 1 everywhere when the image has no VAR_RNOISE), 'exptime' → the exposure time,
    None → 1; 0 at excluded pixels."""
    if weight_type not in WEIGHT_TYPES:
        raise ParameterError(f"weight_type must be one of {WEIGHT_TYPES}, got {weight_type!r}")
    shape = np.shape(item.data)
    variance = item.variances.get("var_rnoise")
    if weight_type == "ivm" and variance is not None:
        variance = np.asarray(variance, np.float32)
        usable = (variance > 0) & np.isfinite(variance)
        weights = np.zeros(shape, np.float32)
        np.divide(1.0, variance, out=weights, where=usable)
    elif weight_type == "exptime":
        weights = np.full(shape, item.exposure_time, np.float32)
    else:
        weights = np.ones(shape, np.float32)
    if excluded is None:
        excluded = excluded_pixels(item)
    weights[excluded] = 0.0
    return weights


class PixmapScratch:
    """One (ny, nx, 2) float64 array for the pixel maps of images handled one after another,
    each map used up before the next is made: a fresh 64 MB map of a full frame costs more to
    fault into memory than to fill (up to 30× on a virtual machine)."""

    def __init__(self):
        self._array: np.ndarray | None = None

    def array(self, shape: tuple[int, int]) -> np.ndarray:
        """The array for a map of an image of ``shape`` (contents undefined)."""
        if self._array is None or self._array.shape[:2] != tuple(shape):
            self._array = None  # (the old one goes before the new one is made)
            self._array = np.empty((*shape, 2))
        return self._array


#: default pixel map: WCS evaluated every this many pixels, bicubic splines in between ...
FAST_MAP_STEP = 16
#: ... accepted only if it matches the exact WCS to this many output pixels at every cell centre
FAST_MAP_TOLERANCE = 1e-4


class PixelMapper:
    """The pixel map of an input image (``input_wcs``, ``shape``) on ``output_wcs``, made
    again on demand from a few hundred kB of splines, so drizzle and blot of one image on one
    grid evaluate the WCS once.

    ``stepsize`` ≤ 1 (the default) asks for the exact map: the WCS is evaluated every
    FAST_MAP_STEP pixels and interpolated by bicubic splines, which are checked against the
    exact WCS at the centre and at a quarter of every interpolation cell; any difference
    above FAST_MAP_TOLERANCE pixel, or a WCS that is not finite on the coarse grid, falls
    back to evaluating the WCS at every pixel. ``stepsize`` > 1 is the official sparse
    evaluation: the WCS every ``stepsize`` pixels, interpolated by splines of ``order`` (1 or
    3), without the check.
    """

    def __init__(self, input_wcs, output_wcs, shape: tuple[int, int], stepsize: float = 1.0,
                 order: int = 1):
        if order not in (1, 3):
            raise ParameterError(f"pixmap_order must be 1 or 3, got {order}")
        self.input_wcs, self.output_wcs = input_wcs, output_wcs
        self.shape = tuple(int(n) for n in shape)
        self.stepsize, self.order = stepsize, order
        self._splines: list | None = None  # None: not fitted yet; []: exact evaluation
        self._bases: tuple | None = None  # the splines' B-spline bases on the pixel rows/columns

    def serves(self, output_wcs, shape, stepsize: float, order: int) -> bool:
        """True when this map is the one asked for by these arguments (same output grid
        object or an equal tangent-plane grid)."""
        return (tuple(shape) == self.shape and stepsize == self.stepsize and
                order == self.order and (output_wcs is self.output_wcs or
                                         same_grid(output_wcs, self.output_wcs)))

    @classmethod
    def reused(cls, mapper: PixelMapper | None, input_wcs, output_wcs, shape,
               stepsize: float = 1.0, order: int = 1) -> PixelMapper:
        """``mapper`` when it maps the same input WCS object and ``serves`` these arguments,
        else a new map."""
        if mapper is not None and mapper.input_wcs is input_wcs and \
                mapper.serves(output_wcs, shape, stepsize, order):
            return mapper
        return cls(input_wcs, output_wcs, shape, stepsize, order)

    def pixmap(self, scratch: PixmapScratch | None = None) -> np.ndarray:
        """The (ny, nx, 2) float64 map: in ``scratch``'s array when given and the splines
        apply (overwritten by the next map made there), else a new array."""
        if self._splines is None:
            self._splines = self._fit()
        if not self._splines:
            return calc_pixmap(self.input_wcs, self.output_wcs, self.shape)
        if self._bases is None:
            self._bases = _spline_bases(self._splines[0], self._box)
        pixmap = np.empty((*self.shape, 2)) if scratch is None else scratch.array(self.shape)
        _fill_pixmap(pixmap, *(_coefficients(spline) for spline in self._splines),
                     *self._bases, *self._box)
        return pixmap

    def _fit(self) -> list:
        """The (x, y) splines, or [] when the WCS must be evaluated at every pixel."""
        ny, nx = self.shape
        stepsize, order = self.stepsize, self.order
        if max(nx, ny) <= 10 or (stepsize <= 1 and min(nx, ny) < 4 * FAST_MAP_STEP):
            return []
        self._box = x_lo, x_hi, y_lo, y_hi = pixel_range(self.input_wcs, self.shape)

        def exact(x, y):
            return self.output_wcs.invert(*self.input_wcs(x, y, with_bounding_box=False),
                                          with_bounding_box=False)

        def nodes(lo, hi, step, at_least):
            return np.linspace(lo, hi, max(math.ceil((hi - lo + 1) / step) + 1, at_least))

        verify = stepsize <= 1
        step, order = (FAST_MAP_STEP, 3) if verify else (stepsize, order)
        x_nodes = nodes(x_lo, x_hi, step, max(min(10, x_hi - x_lo + 1), order + 1))
        y_nodes = nodes(y_lo, y_hi, step, max(min(10, y_hi - y_lo + 1), order + 1))
        coarse = exact(*np.meshgrid(x_nodes, y_nodes))
        if not all(np.isfinite(values).all() for values in coarse):
            return []
        splines = [RectBivariateSpline(y_nodes, x_nodes, values, kx=order, ky=order)
                   for values in coarse]
        for fraction in (0.5, 0.25) if verify else ():
            x_check, y_check = np.meshgrid(x_nodes[:-1] + fraction * np.diff(x_nodes),
                                           y_nodes[:-1] + fraction * np.diff(y_nodes))
            for spline, values in zip(splines, exact(x_check, y_check), strict=True):
                if not np.all(np.abs(spline.ev(y_check, x_check) - values) <=
                              FAST_MAP_TOLERANCE):
                    return []
        return splines


def _coefficients(spline: RectBivariateSpline) -> np.ndarray:
    """The spline's coefficients as (row basis, column basis)."""
    row_knots, column_knots, coefficients = spline.tck
    row_order, column_order = spline.degrees
    return coefficients.reshape(len(row_knots) - row_order - 1,
                                len(column_knots) - column_order - 1)


def _spline_bases(spline: RectBivariateSpline, box) -> tuple[np.ndarray, ...]:
    """(first row basis index, row basis values, first column index, column values): the
    non-zero B-splines (order + 1 consecutive ones) at every pixel row and column of
    ``box``, so the spline at (row, column) is a small tensor product."""
    x_lo, x_hi, y_lo, y_hi = box
    bases = []
    for knots, order, lo, hi in zip(spline.tck[:2], spline.degrees, (y_lo, x_lo),
                                    (y_hi, x_hi), strict=True):
        matrix = BSpline.design_matrix(np.arange(lo, hi + 1, dtype=float), knots, order)
        matrix = matrix.tocsr()
        matrix.sort_indices()
        width = order + 1
        if not (np.diff(matrix.indptr) == width).all():
            raise RuntimeError("unexpected B-spline design matrix layout")
        columns = matrix.indices.reshape(-1, width)
        if not (np.diff(columns, axis=1) == 1).all():
            raise RuntimeError("unexpected B-spline design matrix layout")
        bases += [np.ascontiguousarray(columns[:, 0]),
                  np.ascontiguousarray(matrix.data.reshape(-1, width))]
    return tuple(bases)


@njit(cache=True, parallel=True)
def _fill_pixmap(pixmap, x_coefficients, y_coefficients, row_first, row_values,
                 column_first, column_values, x_lo, x_hi, y_lo, y_hi):
    """Fill ``pixmap`` with the two tensor-product splines inside the box, NaN outside."""
    ny, nx = pixmap.shape[0], pixmap.shape[1]
    n_columns = x_coefficients.shape[1]
    for j in prange(ny):
        if j < y_lo or j > y_hi:
            pixmap[j, :, :] = np.nan
            continue
        row = j - y_lo
        along_x, along_y = np.zeros(n_columns), np.zeros(n_columns)
        for a in range(row_values.shape[1]):
            value, index = row_values[row, a], row_first[row] + a
            for b in range(n_columns):
                along_x[b] += value * x_coefficients[index, b]
                along_y[b] += value * y_coefficients[index, b]
        for i in range(nx):
            if i < x_lo or i > x_hi:
                pixmap[j, i, 0] = np.nan
                pixmap[j, i, 1] = np.nan
                continue
            column = i - x_lo
            first = column_first[column]
            out_x = 0.0
            out_y = 0.0
            for b in range(column_values.shape[1]):
                out_x += column_values[column, b] * along_x[first + b]
                out_y += column_values[column, b] * along_y[first + b]
            pixmap[j, i, 0] = out_x
            pixmap[j, i, 1] = out_y


def same_grid(first, second) -> bool:
    """True when two output grids are equal tangent-plane grids (as ``grid.output_grid``
    makes): the same CRPIX, CRVAL, CD, shape and bounding box."""
    one, other = grid_key(first), grid_key(second)
    return one is not None and one == other


def pixel_range(wcs, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x_lo, x_hi, y_lo, y_hi): the inclusive pixel indices inside the WCS bounding box."""
    ny, nx = shape
    (bx_lo, bx_hi), (by_lo, by_hi) = bounding_box_of(wcs, shape)
    x_lo, x_hi = max(0, math.ceil(bx_lo)), min(nx - 1, math.floor(bx_hi))
    y_lo, y_hi = max(0, math.ceil(by_lo)), min(ny - 1, math.floor(by_hi))
    if x_lo > x_hi or y_lo > y_hi:
        raise DataModelError(f"the WCS bounding box {((bx_lo, bx_hi), (by_lo, by_hi))} holds no "
                             f"pixel of the {nx}x{ny} image")
    return x_lo, x_hi, y_lo, y_hi


# -- variance accumulation -----------------------------------------------------------------------
class _VarianceSum:
    """Running Σ w²·v and Σ w for one variance array on the output grid.

    The first image's resampled variance and weight are kept as they are (no grid-sized sums
    for a single image, as Image2 resamples): the sums are made when a second image or a
    merge comes, or when ``sums`` is asked for."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self._sums: tuple[np.ndarray, np.ndarray] | None = None
        self._first: tuple | None = None

    def add(self, variance: np.ndarray, weight: np.ndarray | float,
            box: tuple[int, int, int, int]) -> None:
        """Add ``variance`` and its ``weight`` given on the output rows/columns ``box``
        (y0, y1, x0, x1). Both are kept until the sums are made: the caller hands them over
        and does not change them."""
        if self._sums is None and self._first is None:
            self._first = (variance, weight, box)
            return
        _accumulate_into(*self.sums(), variance, weight, box)

    def sums(self) -> tuple[np.ndarray, np.ndarray]:
        """(Σ w²·v, Σ w) on the whole grid (float32), made now if not yet."""
        if self._sums is None:
            self._sums = (np.zeros(self.shape, np.float32), np.zeros(self.shape, np.float32))
            if self._first is not None:
                _accumulate_into(*self._sums, *self._first)
                self._first = None
        return self._sums

    def result(self, scale: float) -> np.ndarray:
        """Σ w²·v / (Σ w)² × ``scale`` (NaN where nothing contributed), made in the memory
        of the sums, which are used up."""
        if self._sums is None and self._first is not None:
            variance, weight, box = self._first
            self._first = None
            variance = np.asarray(variance, np.float32)
            _single_variance(variance, _weight_of(variance, weight), np.float32(scale))
            if box == (0, self.shape[0], 0, self.shape[1]):
                return variance
            out = np.full(self.shape, np.nan, np.float32)
            y0, y1, x0, x1 = box
            out[y0:y1, x0:x1] = variance
            return out
        weighted, weight = self.sums()
        self._sums = None
        _mean_variance(weighted, weight, np.float32(scale))
        return weighted


def _accumulate_into(weighted, total, variance, weight, box) -> None:
    y0, y1, x0, x1 = box
    variance = np.asarray(variance, np.float32)
    _accumulate_variance(weighted[y0:y1, x0:x1], total[y0:y1, x0:x1], variance,
                         _weight_of(variance, weight))


def _weight_of(variance: np.ndarray, weight: np.ndarray | float) -> np.ndarray:
    """The output weight (an array or one value for all) as a float32 array of
    ``variance``'s shape."""
    return np.broadcast_to(np.asarray(weight, np.float32), variance.shape)


@njit(cache=True, inline="always")
def _usable_variance(value, weight):
    """Whether a resampled variance counts: finite, ≥ 0, with a positive weight."""
    return np.isfinite(value) and value >= 0 and weight > 0


@njit(cache=True, parallel=True)
def _accumulate_variance(weighted, total, variance, weight):
    """In place, where ``variance`` is finite and ≥ 0 and ``weight`` > 0 (float32 as the
    arrays): ``weighted`` += weight²·variance, ``total`` += weight. Rows in parallel."""
    rows, columns = variance.shape
    for row in prange(rows):
        for column in range(columns):
            value, w = variance[row, column], weight[row, column]
            if _usable_variance(value, w):
                weighted[row, column] += w * w * value
                total[row, column] += w


@njit(cache=True, parallel=True)
def _single_variance(variance, weight, scale):
    """In place: one image's variance × ``scale`` where it counts (as in
    ``_accumulate_variance``), NaN elsewhere."""
    rows, columns = variance.shape
    for row in prange(rows):
        for column in range(columns):
            value = variance[row, column]
            if _usable_variance(value, weight[row, column]):
                variance[row, column] = value * scale
            else:
                variance[row, column] = np.nan


@njit(cache=True, parallel=True)
def _mean_variance(weighted, weight, scale):
    """In place: ``weighted`` / ``weight``² × ``scale``; NaN where ``weight`` is 0."""
    rows, columns = weighted.shape
    for row in prange(rows):
        for column in range(columns):
            w = weight[row, column]
            if w > 0:
                weighted[row, column] = weighted[row, column] / w / w * scale
            else:
                weighted[row, column] = np.nan


# -- the drizzle loop ----------------------------------------------------------------------------
def drizzle_images(inputs: Iterable[DrizzleInput], output_wcs, **options) -> DrizzleResult:
    """Drizzle ``inputs`` (consumed one at a time) onto ``output_wcs`` (its ``array_shape``);
    ``options`` are those of ``DrizzleSums``."""
    sums = DrizzleSums(output_wcs, **options)
    for item in inputs:
        sums.add(item)
    return sums.result()


class DrizzleSums:
    """A drizzle onto ``output_wcs`` in progress: ``add`` images one at a time, or ``merge``
    the ``state`` of the same drizzle over other images; ``result`` gives the products.

    SCI is the weighted mean (``fillval`` where nothing contributes), WHT the summed weights,
    CON the context bits (when ``enable_context``; the first image added gets bit
    ``first_index``, the next ones the bits after it, so drizzles of separate images merge
    into the context of one drizzle over all of them). ``variance_names`` are resampled as
    in the module docstring; ``error`` is 'variances' (ERR = √ of their sum, NaN where all
    are NaN), 'err' (each input's ERR drizzled like SCI, divided by the pixel-scale ratio)
    or None. ``propagate_dq`` ORs the DQ of contributing pixels. ``scratch`` holds the pixel
    map of the image being added (by default one of its own, reused from image to image).

    With the square kernel, an image whose pixels all land inside the output is drizzled in
    one pass of ``square_kernel`` for SCI, ERR and every variance (equal to the drizzle
    package's passes within float32 rounding; row bands in parallel threads), except that
    with ``propagate_dq`` the package drizzles SCI and DQ beside that pass. Every other image
    goes through the drizzle package, one array per pass.
    """

    def __init__(self, output_wcs, *, pixfrac: float = 1.0, kernel: str = "square",
                 fillval: str | float = "NAN", weight_type: str | None = "ivm",
                 pixel_scale_ratio: float = 1.0, enable_context: bool = True,
                 variance_names: tuple[str, ...] = VARIANCES, error: str | None = "variances",
                 propagate_dq: bool = False, pixmap_stepsize: float = 1.0,
                 pixmap_order: int = 1, n_inputs: int | None = None, first_index: int = 0,
                 scratch: PixmapScratch | None = None):
        if kernel not in KERNELS:
            raise ParameterError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        if not 0.0 < pixfrac <= 1.0:
            raise ParameterError(f"pixfrac must be in (0, 1], got {pixfrac}")
        if error not in ("variances", "err", None):
            raise ParameterError(f"error must be 'variances', 'err' or None, got {error!r}")
        if output_wcs.array_shape is None:
            raise DataModelError("the output WCS has no array_shape")
        self.output_wcs = output_wcs
        self.shape = tuple(int(n) for n in output_wcs.array_shape)
        self.pixfrac, self.kernel, self.weight_type = pixfrac, kernel, weight_type
        self.pixel_scale_ratio, self.enable_context = pixel_scale_ratio, enable_context
        self.variance_names, self.error, self.propagate_dq = variance_names, error, propagate_dq
        self.pixmap_stepsize, self.pixmap_order = pixmap_stepsize, pixmap_order
        self.first_index = first_index
        self._scratch = scratch or PixmapScratch()
        self._driz = _single_drizzle(kernel, self.shape, _fill_value(fillval))
        self._error_driz = _single_drizzle(kernel, self.shape) if error == "err" else None
        last = max(first_index, (n_inputs or 0) - 1)
        self._context = np.zeros((last // CONTEXT_BITS + 1, *self.shape), np.int32) \
            if enable_context else None
        self._sums: dict[str, _VarianceSum] = {}
        self._merged_dq: np.ndarray | None = None
        self.count = 0

    def add(self, item: DrizzleInput) -> None:
        """Drizzle one image onto the sums."""
        check_input(item)
        for total in self._sums.values():  # a first image's variances become sums before
            total.sums()  # this image's arrays are made, so their memory is not held twice
        excluded = excluded_pixels(item)
        weights = pixel_weights(item, self.weight_type, excluded)
        data = np.asarray(item.data, np.float32)
        if item.background:
            data = data - np.float32(item.background)
        mapper = PixelMapper.reused(item.pixel_mapper, item.wcs, self.output_wcs, data.shape,
                                    self.pixmap_stepsize, self.pixmap_order)
        pixmap = mapper.pixmap(self._scratch)
        x_lo, x_hi, y_lo, y_hi = pixel_range(item.wcs, data.shape)
        exposure = float(item.exposure_time) if item.exposure_time and \
            item.exposure_time > 0 else 1.0
        options = dict(exptime=exposure, pixmap=pixmap, weight_map=weights,
                       pixfrac=self.pixfrac, pixel_scale_ratio=self.pixel_scale_ratio,
                       in_units="cps", xmin=x_lo, xmax=x_hi, ymin=y_lo, ymax=y_hi)
        dq = np.asarray(item.dq, np.uint32) if self.propagate_dq and item.dq is not None \
            else None
        error = np.asarray(item.err, np.float32) \
            if self._error_driz is not None and item.err is not None else None
        names = _variances_of(item, self.variance_names) if self.error == "variances" else []
        variances = [item.variances[name] for name in names]
        index = self.first_index + self.count
        # with propagate_dq the package drizzles SCI, DQ and ERR
        science = [] if self.propagate_dq else [data] + ([] if error is None else [error])
        together = _one_pass(science + variances, options, self.shape,
                             as_sigma=[False] * len(science) + [True] * len(variances)) \
            if self.kernel == "square" else None
        if together is None:
            self._package_add(data, dq, error, options, index)
            resampled = _package_variances(item, names, self.kernel, self.shape, options)
        else:
            if science:
                together.run()
                self._add_science(together, index, with_error=error is not None)
            else:  # the package's pass runs while the variances are drizzled here
                with together.running():
                    self._package_add(data, dq, error, options, index)
            resampled = ((name, together.box, np.square(mean, out=mean)) for name, mean
                         in zip(names, together.means[len(science):], strict=True))
        del data, excluded, weights, options  # (their memory serves the variance sums)
        _add_variances(resampled, self.weight_type, item.exposure_time, self._sums,
                       self.shape)
        self.count += 1

    def _add_science(self, together: TogetherDrizzle, index: int, with_error: bool) -> None:
        """Fold the one-pass SCI (and, ``with_error``, the ERR after it) of image ``index``
        into the sums and set its context bits."""
        y0, _, x0, _ = together.box
        _merge_state_mean(self._driz, together.means[0], together.weight, y0, x0)
        self._mark_context(index, together.weight > 0, together.box)
        if with_error:
            _merge_state_mean(self._error_driz, together.means[1], together.weight, y0, x0)

    def _package_add(self, data, dq, error, options, index: int) -> None:
        """SCI (with ``dq``) and ``error`` (when given) of image ``index`` by the drizzle
        package; with a context image, SCI goes through a drizzle of its own whose weights
        say where the image contributes."""
        if error is not None:
            self._error_driz.add_image(error, **options)
        if self._context is None:
            self._driz.add_image(data, dq=dq, **options)
            return
        single = _single_drizzle(self.kernel, self.shape)
        single.add_image(data, dq=dq, **options)
        _merge_state_mean(self._driz, single.out_img, single.out_wht, 0, 0)
        self._mark_context(index, single.out_wht > 0, (0, self.shape[0], 0, self.shape[1]))
        if single.out_dq is not None:
            self._or_dq(single.out_dq, np.s_[:, :])

    def _mark_context(self, index: int, contributed: np.ndarray, box) -> None:
        """Set image ``index``'s context bit where ``contributed`` (on the output ``box``,
        y0, y1, x0, x1), adding a plane of 32 bits when the index needs one."""
        if self._context is None:
            return
        plane, bit = divmod(index, CONTEXT_BITS)
        self._grow_context(plane + 1)
        y0, y1, x0, x1 = box
        target = self._context[plane, y0:y1, x0:x1]
        np.bitwise_or(target, np.array(1 << bit, np.uint32).view(np.int32), out=target,
                      where=contributed)

    def _grow_context(self, planes: int) -> None:
        """At least ``planes`` planes of context bits."""
        if planes > len(self._context):
            extra = np.zeros((planes - len(self._context), *self.shape), np.int32)
            self._context = np.concatenate([self._context, extra])

    def _or_dq(self, dq: np.ndarray, cut) -> None:
        if self._merged_dq is None:
            self._merged_dq = np.zeros(self.shape, np.uint32)
        self._merged_dq[cut] |= np.asarray(dq, np.uint32)

    def state(self) -> dict[str, np.ndarray]:
        """The running sums as named arrays (what ``merge`` takes), cut to ``box`` (y0, y1,
        x0, x1): the rows and columns where anything was added."""
        covered = self._driz.out_wht > 0
        for total in self._sums.values():
            covered |= total.sums()[1] > 0
        if self._error_driz is not None:
            covered |= self._error_driz.out_wht > 0
        rows, columns = np.flatnonzero(covered.any(axis=1)), np.flatnonzero(covered.any(axis=0))
        box = (rows[0], rows[-1] + 1, columns[0], columns[-1] + 1) if rows.size else (0, 0, 0, 0)
        cut = np.s_[box[0]:box[1], box[2]:box[3]]
        state = {"count": np.array(self.count), "box": np.array(box),
                 "data": self._driz.out_img[cut], "weight": self._driz.out_wht[cut]}
        if self._context is not None:
            state["context"] = self._context[(slice(None), *cut)]
        dq = self._dq()
        if dq is not None:
            state["dq"] = dq[cut]
        if self._error_driz is not None:
            state["error_data"] = self._error_driz.out_img[cut]
            state["error_weight"] = self._error_driz.out_wht[cut]
        for name, total in self._sums.items():
            weighted, weight = total.sums()
            state[f"weighted_{name}"] = weighted[cut]
            state[f"weight_{name}"] = weight[cut]
        return state

    def merge(self, state) -> None:
        """Add the ``state`` of the same drizzle (same grid and options) over other images:
        weighted means combined, weights and variance sums added, context and DQ ORed."""
        y0, y1, x0, x1 = (int(n) for n in state["box"])
        cut = np.s_[y0:y1, x0:x1]
        _merge_state_mean(self._driz, state["data"], state["weight"], y0, x0)
        if self._context is not None:
            context = state["context"]
            self._grow_context(len(context))
            self._context[(slice(0, len(context)), *cut)] |= context
        if "dq" in state:
            self._or_dq(state["dq"], cut)
        if self._error_driz is not None:
            _merge_state_mean(self._error_driz, state["error_data"], state["error_weight"],
                              y0, x0)
        for name in self.variance_names if self.error == "variances" else ():
            if f"weighted_{name}" in state:
                weighted, weight = self._sums.setdefault(name, _VarianceSum(self.shape)).sums()
                weighted[cut] += state[f"weighted_{name}"]
                weight[cut] += state[f"weight_{name}"]
        self.count += int(state["count"])

    def _dq(self) -> np.ndarray | None:
        """The OR of the DQ drizzled here and the DQ merged in (None: neither)."""
        if self._merged_dq is None or self._driz.out_dq is None:
            return self._driz.out_dq if self._merged_dq is None else self._merged_dq
        return self._merged_dq | self._driz.out_dq

    def result(self) -> DrizzleResult:
        """The products of every image added or merged so far (once: the variance sums
        become the variance products)."""
        if self.count == 0:
            raise DataModelError("resample got no input images")
        if self._sums is None:
            raise RuntimeError("the products of these drizzle sums were already taken")
        variances = {name: total.result(1.0 / self.pixel_scale_ratio**2)
                     for name, total in self._sums.items()}
        self._sums = None
        if self.error == "variances":
            err = _error_from(variances, self.shape)
        elif self.error == "err":
            err = (self._error_driz.out_img / np.float32(self.pixel_scale_ratio)).astype(
                np.float32)
        else:
            err = None
        out_dq = None
        if self.propagate_dq:
            out_dq = self._dq()
            if out_dq is None:
                out_dq = np.zeros(self.shape, np.uint32)
        return DrizzleResult(self._driz.out_img, self._driz.out_wht, self._context, variances,
                             err, out_dq, self.count)


def _single_drizzle(kernel: str, shape: tuple[int, int], fillval: str = "NAN") -> Drizzle:
    """An empty drizzle package accumulator of one array onto ``shape`` (no context: the
    context bits are kept by ``DrizzleSums``)."""
    return Drizzle(kernel=kernel, fillval=fillval, out_shape=shape, disable_ctx=True)


def _merge_state_mean(driz: Drizzle, data, weight, row: int, column: int) -> None:
    """Fold a state's weighted mean ``data`` and summed ``weight`` (placed at ``row``,
    ``column``) into a drizzle's output image and weights."""
    _merge_means(driz.out_img, driz.out_wht, np.asarray(data, np.float32),
                 np.asarray(weight, np.float32), row, column)


@njit(cache=True, parallel=True)
def _merge_means(means, weight, part_means, part_weight, row, column):
    """In place: fold weighted means ``part_means`` with summed weights ``part_weight``
    (placed at ``row``, ``column`` of ``means``/``weight``) into them; where ``weight`` is
    0 the part's values are taken as they are. Rows in parallel."""
    for y in prange(part_weight.shape[0]):
        for x in range(part_weight.shape[1]):
            added = part_weight[y, x]
            if added == 0.0:
                continue
            previous = weight[row + y, column + x]
            combined = np.float64(previous) + added
            if previous == 0.0:
                means[row + y, column + x] = part_means[y, x]
            else:
                means[row + y, column + x] = (
                    means[row + y, column + x] * np.float64(previous) +
                    part_means[y, x] * np.float64(added)) / combined
            weight[row + y, column + x] = combined


def _fill_value(fillval) -> str:
    text = str(fillval).strip()
    if text.upper() in ("NAN", "INDEF", "NONE"):
        return "NAN"
    try:
        float(text)
    except ValueError:
        raise ParameterError(f"fillval must be a number, 'NAN' or 'INDEF', got {fillval!r}") \
            from None
    return text


def _variances_of(item: DrizzleInput, names) -> list[str]:
    """The variance arrays of ``item`` to resample, VAR_RNOISE first (its resampled value is
    the 'ivm' weight of the others)."""
    present = [name for name in names if item.variances.get(name) is not None]
    return sorted(present, key=lambda name: name != "var_rnoise")


def _sigma(item: DrizzleInput, name: str) -> np.ndarray:
    sigma = np.clip(np.asarray(item.variances[name], np.float32), 0.0, None)
    return np.sqrt(sigma, out=sigma)


def _one_pass(arrays: list, options: dict, shape, as_sigma) -> TogetherDrizzle | None:
    """The square-kernel drizzle of ``arrays`` (``as_sigma``: a flag for each) in one pass
    with the pixel map and weights of the drizzle ``options`` (not run yet), when every input
    pixel lands inside the output; None otherwise or without arrays."""
    if not arrays:
        return None
    together = TogetherDrizzle(
        arrays, options["weight_map"], options["pixmap"], options["pixfrac"],
        (options["xmin"], options["xmax"]), (options["ymin"], options["ymax"]), shape,
        parts=numba.get_num_threads(), as_sigma=as_sigma)
    return None if together.box is None else together


def _package_variances(item: DrizzleInput, names, kernel, shape, options):
    """(name, box, variance on the output ``box``) of each of ``names`` in turn, drizzled
    one at a time by the drizzle package."""
    whole = (0, shape[0], 0, shape[1])
    for name in names:
        single = _single_drizzle(kernel, shape)
        single.add_image(_sigma(item, name), **options)
        yield name, whole, np.square(single.out_img, out=single.out_img)
        del single


def _add_variances(resampled, weight_type, exposure_time, sums, shape) -> None:
    """Add each resampled variance to its sum with its output weight."""
    output_weight: np.ndarray | float = float(exposure_time) if weight_type == "exptime" \
        else 1.0
    for name, box, variance in resampled:
        if name == "var_rnoise" and weight_type == "ivm":
            output_weight = np.zeros(variance.shape, np.float32)
            usable = np.isfinite(variance) & (variance > 0)
            np.divide(1.0, variance, out=output_weight, where=usable)
        sums.setdefault(name, _VarianceSum(shape)).add(variance, output_weight, box)


def _error_from(variances: dict[str, np.ndarray], shape) -> np.ndarray:
    """√(Σ variances) ignoring NaN; NaN where every variance is NaN (or none exists)."""
    total = np.zeros(shape, np.float32)
    any_finite = np.zeros(shape, bool)
    finite = np.empty(shape, bool)
    for array in variances.values():
        np.isfinite(array, out=finite)
        np.add(total, array, out=total, where=finite)
        any_finite |= finite
    np.sqrt(total, out=total)
    np.copyto(total, np.float32(np.nan), where=~any_finite)
    return total
