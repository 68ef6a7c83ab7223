"""Near-infrared reference-pixel correction (stage1.md §2.7), in the detector frame.

Full frame: per amplifier (512 columns) the clipped means of the 4 bottom and 4 top
reference rows, by column parity, are subtracted; then a running median of the 4 left and
4 right reference columns removes the row-correlated (1/f) signal (or, given SIRS kernels,
their convolution, per amplifier: ``calwebb.refpix.sirs``).

Striped (multistripe, superstripe) subarrays: per amplifier and column parity, the clipped
mean of the flagged reference pixels of the striped frame, group by group.

Measuring and applying are separate: the corrections come from the reference pixels alone
(the border strips of the frame, or the pixels flagged REFERENCE_PIXEL in a subarray), and
can then be applied to the whole frame or to any band of its rows.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from calwebb import dqflags
from calwebb.refpix import sirs
from calwebb.refpix.clipping import average_ignoring_nan, clipped_mean

N_REF = 4
AMPLIFIER_WIDTH = 512
DETECTOR_AMPLIFIERS = 4
STRIPS = ("bottom", "top", "left", "right")


def to_detector_frame(array: np.ndarray, fastaxis: int, slowaxis: int) -> np.ndarray:
    """A view of science-orientation ``array`` in the detector readout orientation."""
    if abs(fastaxis) == 1:
        return array[..., :: np.sign(slowaxis), :: np.sign(fastaxis)]
    return np.swapaxes(array[..., :: np.sign(fastaxis), :: np.sign(slowaxis)], -2, -1)


def usable(pixeldq: np.ndarray) -> np.ndarray:
    return (pixeldq & dqflags.DO_NOT_USE) == 0


def science_strips(array: np.ndarray) -> dict[str, np.ndarray]:
    """The 4-pixel border strips of a science-frame ``array`` [..., ny, nx] (views)."""
    return {"bottom": array[..., :N_REF, :], "top": array[..., -N_REF:, :],
            "left": array[..., :, :N_REF], "right": array[..., :, -N_REF:]}


def detector_strips(strips: dict[str, np.ndarray], fastaxis: int,
                    slowaxis: int) -> dict[str, np.ndarray]:
    """Science-frame border strips as the detector-frame ones: bottom/top [..., 4, nx_det]
    (reference rows) and left/right [..., ny_det, 4] (reference columns), in detector order."""
    transposed = abs(fastaxis) == 2
    along_rows = ("left", "right") if transposed else ("bottom", "top")
    along_columns = ("bottom", "top") if transposed else ("left", "right")
    if slowaxis < 0:
        along_rows = along_rows[::-1]
    if fastaxis < 0:
        along_columns = along_columns[::-1]
    names = dict(zip(STRIPS, along_rows + along_columns, strict=True))
    return {name: to_detector_frame(strips[source], fastaxis, slowaxis)
            for name, source in names.items()}


def detector_window(rows: tuple[int, int], frame_shape: tuple[int, int], fastaxis: int,
                    slowaxis: int) -> tuple[slice, slice]:
    """Detector rows and columns seen by ``to_detector_frame`` of science rows [r0, r1)."""
    ny, nx = frame_shape
    r0, r1 = rows
    if abs(fastaxis) == 1:
        return (slice(r0, r1) if slowaxis > 0 else slice(ny - r1, ny - r0)), slice(0, nx)
    return slice(0, nx), (slice(r0, r1) if fastaxis > 0 else slice(ny - r1, ny - r0))


def detector_coordinates(rows: np.ndarray, columns: np.ndarray, frame_shape: tuple[int, int],
                         fastaxis: int, slowaxis: int) -> tuple[np.ndarray, np.ndarray]:
    """Detector (row, column) of science pixels (``rows``, ``columns``)."""
    ny, nx = frame_shape
    if abs(fastaxis) == 1:
        return (rows if slowaxis > 0 else ny - 1 - rows), (
            columns if fastaxis > 0 else nx - 1 - columns)
    return (columns if slowaxis > 0 else nx - 1 - columns), (
        rows if fastaxis > 0 else ny - 1 - rows)


@dataclass(frozen=True)
class FullFrameCorrection:
    """What a full-frame ramp loses: per amplifier and column parity, and per detector row."""

    amplifier: np.ndarray  # [ngroups, amplifier, parity]
    #: [ngroups, detector row] running median, side gain applied; or [ngroups, amplifier,
    #: detector row] SIRS signal (float64, subtracted in float64); or None
    side: np.ndarray | None
    odd_even_columns: bool


def _column_signal(correction_amplifier: np.ndarray, columns: np.ndarray,
                   odd_even_columns: bool) -> np.ndarray:
    """[ngroups, columns] amplifier signal of detector ``columns``."""
    parity = columns % 2 if odd_even_columns else 0 * columns
    return correction_amplifier[:, columns // AMPLIFIER_WIDTH, parity]


def measure_full_frame(strips: dict[str, np.ndarray], good: dict[str, np.ndarray],
                       odd_even_columns: bool, use_side_ref_pixels: bool,
                       side_smoothing_length: int, side_gain: float,
                       sigma: float, sirs_kernels: np.ndarray | None = None,
                       sigreject: float = 4.0) -> FullFrameCorrection | None:
    """The correction of one integration from its detector-frame strips [ngroups, ...] and
    their usable-pixel masks; None when an amplifier has no usable reference pixel.

    With ``sirs_kernels`` (``sirs.make_kernels``) the side signal is the SIRS one
    (``sigreject``; no side gain, no pixel flags) instead of the running median."""
    signal = _top_bottom_signal(strips["bottom"], strips["top"], good["bottom"], good["top"],
                                odd_even_columns, sigma)
    if signal is None:
        return None
    side = None
    if use_side_ref_pixels:
        nx = strips["bottom"].shape[-1]
        dtype = strips["left"].dtype
        corrected = []  # the side columns after the amplifier correction, as the frame has them
        for name, columns in (("left", np.arange(N_REF)), ("right", np.arange(nx - N_REF, nx))):
            offset = _column_signal(signal, columns, odd_even_columns)[:, None, :].astype(dtype)
            corrected.append(strips[name] - offset)
        if sirs_kernels is not None:
            side = sirs.side_signal(corrected[0], corrected[1], sirs_kernels, sigreject)
        else:
            side = side_gain * side_signal(corrected[0], corrected[1], good["left"],
                                           good["right"], side_smoothing_length)
    return FullFrameCorrection(signal, side, odd_even_columns)


def apply_full_frame(ramp: np.ndarray, correction: FullFrameCorrection, rows: slice,
                     columns: slice) -> None:
    """Subtract ``correction`` from a detector-frame view [ngroups, rows, columns] in place;
    ``rows``/``columns`` say which detector rows and columns the view holds."""
    column_index = np.arange(columns.start, columns.stop)
    by_column = _column_signal(correction.amplifier, column_index,
                               correction.odd_even_columns).astype(ramp.dtype)
    if correction.side is not None and correction.side.ndim == 3:  # SIRS, by amplifier
        _subtract_amplifier_rows(ramp, np.ascontiguousarray(by_column),
                                 np.ascontiguousarray(correction.side[:, :, rows]),
                                 column_index // AMPLIFIER_WIDTH)
        return
    if correction.side is None:  # subtracting 0 leaves every float32 value as it is
        by_row = np.zeros((ramp.shape[0], ramp.shape[1]), ramp.dtype)
    else:
        by_row = np.ascontiguousarray(correction.side[:, rows], ramp.dtype)
    _subtract_signals(ramp, np.ascontiguousarray(by_column), by_row)


@njit(cache=True, parallel=True)
def _subtract_signals(ramp, by_column, by_row):
    """ramp[g, y, x] -= by_column[g, x], then -= by_row[g, y]: the two float32 subtractions
    of whole-plane arithmetic, a row of every group per thread task."""
    ngroups, nrows, ncolumns = ramp.shape
    for y in prange(nrows):
        for group in range(ngroups):
            for x in range(ncolumns):
                value = ramp[group, y, x] - by_column[group, x]
                ramp[group, y, x] = value - by_row[group, y]


@njit(cache=True, parallel=True)
def _subtract_amplifier_rows(ramp, by_column, by_amplifier_row, amplifier):
    """ramp[g, y, x] -= by_column[g, x] (float32), then -= by_amplifier_row[g, amplifier[x],
    y] in float64, rounded back to float32 once."""
    ngroups, nrows, ncolumns = ramp.shape
    for y in prange(nrows):
        for group in range(ngroups):
            for x in range(ncolumns):
                value = ramp[group, y, x] - by_column[group, x]
                ramp[group, y, x] = np.float64(value) - by_amplifier_row[group, amplifier[x], y]


def _top_bottom_signal(bottom, top, good_bottom, good_top, odd_even_columns, sigma):
    """[ngroups, amplifier, parity] mean of top and bottom clipped means (None if unusable)."""
    ngroups, _, nx = bottom.shape
    namps = nx // AMPLIFIER_WIDTH
    means = []
    for rows, good in ((bottom, good_bottom), (top, good_top)):
        block = rows.reshape(ngroups, N_REF, namps, AMPLIFIER_WIDTH)
        mask = good.reshape(N_REF, namps, AMPLIFIER_WIDTH)
        if odd_even_columns:
            block = block.reshape(ngroups, N_REF, namps, AMPLIFIER_WIDTH // 2, 2)
            mask = mask.reshape(N_REF, namps, AMPLIFIER_WIDTH // 2, 2)
            values = block.transpose(0, 2, 4, 1, 3).reshape(ngroups, namps, 2, -1)
            flags = mask.transpose(1, 3, 0, 2).reshape(namps, 2, -1)
        else:
            values = block.transpose(0, 2, 1, 3).reshape(ngroups, namps, 1, -1)
            flags = mask.transpose(1, 0, 2).reshape(namps, 1, -1)
        means.append(clipped_mean(values, flags, sigma))
    combined = average_ignoring_nan(*means)
    return None if np.isnan(combined).any() else combined


def side_signal(left: np.ndarray, right: np.ndarray, good_left: np.ndarray,
                good_right: np.ndarray, smoothing_length: int) -> np.ndarray:
    """[ngroups, ny] running median of the left and right reference columns, combined."""
    if smoothing_length % 2 == 0:
        smoothing_length += 1
    half = smoothing_length // 2
    sides = []
    for columns, good in ((left, good_left), (right, good_right)):
        values = np.where(good, columns, np.nan)
        padded = np.pad(values, ((0, 0), (half, half), (0, 0)), mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(padded, smoothing_length, axis=1)
        windows = windows.reshape(*windows.shape[:2], -1)
        # nanmedian's masked sort only for the windows with a NaN (its medians are plain
        # medians, bit for bit, elsewhere)
        medians = np.median(windows, axis=-1)
        holes = np.isnan(medians)
        if holes.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
                medians[holes] = np.nanmedian(windows[holes], axis=-1)
        sides.append(medians)
    return average_ignoring_nan(*sides, both_nan=0.0)


def measure_subarray(samples: np.ndarray, columns: np.ndarray, odd_even_columns: bool,
                     sigma: float) -> tuple[list[tuple[int, np.ndarray]], bool]:
    """Clipped means of usable reference pixels by detector column parity.

    ``samples`` [ngroups, n] are the reference pixels in detector-frame reading order and
    ``columns`` their detector columns. Returns ([(parity, means [ngroups])...], complete):
    parities are taken in order and the list stops at the first without a sample, with
    complete False (also when there is no sample at all).
    """
    if samples.shape[-1] == 0:
        return [], False
    parity = columns % 2 if odd_even_columns else np.zeros(columns.size, int)
    measured = []
    for value in (0, 1) if odd_even_columns else (0,):
        selected = parity == value
        if not selected.any():
            return measured, False
        chosen = samples[:, selected]
        measured.append((value, clipped_mean(chosen, np.ones(chosen.shape[-1], bool), sigma)))
    return measured, True


def apply_subarray(ramp: np.ndarray, means: list[tuple[int, np.ndarray]], columns: slice,
                   odd_even_columns: bool) -> None:
    """Subtract per-parity means from a detector-frame view whose columns are ``columns``."""
    index = np.arange(columns.start, columns.stop)
    parity = index % 2 if odd_even_columns else np.zeros(index.size, int)
    for value, mean in means:
        ramp[:, :, parity == value] -= mean[:, None, None].astype(ramp.dtype)


def subtract_striped_reference(ramp: np.ndarray, pixeldq: np.ndarray, first_column: int,
                               odd_even_columns: bool, sigma: float) -> None:
    """Striped (multistripe) subarray: per amplifier, the subarray correction
    (``measure_subarray``, ``apply_subarray``) from the amplifier's usable
    REFERENCE_PIXEL-flagged pixels of every group. In place.

    ``ramp`` [ngroups, ny, nx] and ``pixeldq`` [ny, nx] are detector-frame views; detector
    column ``first_column + x`` decides the amplifier, the frame's own column ``x`` the
    parity. An amplifier without such pixels (with ``odd_even_columns``: in either parity),
    or whose means are NaN, is left as it is.
    """
    flagged = ((pixeldq & dqflags.REFERENCE_PIXEL) != 0) & usable(pixeldq)
    edges = np.clip(np.arange(DETECTOR_AMPLIFIERS + 1) * AMPLIFIER_WIDTH - first_column, 0,
                    ramp.shape[-1])
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        rows, columns = np.nonzero(flagged[:, start:stop])
        columns += start
        means, complete = measure_subarray(ramp[:, rows, columns], columns, odd_even_columns,
                                           sigma)
        if complete and not any(np.isnan(mean).any() for _, mean in means):
            apply_subarray(ramp[:, :, start:stop], means, slice(start, stop), odd_even_columns)
