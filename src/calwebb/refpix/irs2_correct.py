"""NIRSpec IRS2: the reference-file correction by the reference output and the interleaved
reference pixels (stage1.md §2.7).

The detector reads the 640 pixels of each output of a row in time order: half a block of
normal pixels, then in turn an idle sample, ``NRS_REF`` reference pixels, an idle sample
and ``NRS_NORM`` normal pixels (half of them after the last reference block); ``ROW_PAD``
idle samples end the row. One integration is corrected group by group
on these time series (2048 rows of 712 samples for the standard 16/4 layout):

1. every pixel's mean over the integration's groups is taken out (and put back at the end);
2. per output, a straight line in time fitted to the detector's 4 bottom and 4 top rows is
   removed from every read sample (exact zeros count as unread);
3. the reference output's unread samples are filled: first by a sine-weighted average of
   their neighbours in time, then by three rounds of Fourier filtering that keep the samples
   that coincide with normal pixels;
4. for each amplifier, its reference samples spread over a window around each reference
   block, and the reference output, are combined in the Fourier domain with the reference
   file's per-frequency coefficients (``beta`` for the reference pixels, ``alpha`` for the
   reference output); the real part of the result is subtracted from the normal pixels.

All functions take DMS-orientation arrays, with the 3200 interleaved rows on the row axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import scipy.fft
from scipy.ndimage import convolve1d

from calwebb import dqflags
from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.irs2 import NORMAL_LENGTH, OUTPUTS, IRS2Layout

#: idle samples at the end of every row of the readout (the new-row overhead)
ROW_PAD = 8
#: samples of one readout row in the reference file's coefficients (16/4 layout)
REFERENCE_ROW_LENGTH = 712
#: rows of the IRS2 table: a real and an imaginary part per frequency of a frame
COEFFICIENT_ROWS = 2 * REFERENCE_ROW_LENGTH * NORMAL_LENGTH
#: the amplifiers' coefficient columns of the IRS2 table
ALPHA_COLUMNS = tuple(f"alpha_{amplifier}" for amplifier in range(OUTPUTS - 1))
BETA_COLUMNS = tuple(f"beta_{amplifier}" for amplifier in range(OUTPUTS - 1))
#: readout rows (the detector's reference rows) that the per-frame line is fitted to
TREND_ROWS = 4
#: rounds of Fourier filtering that fill the reference output's unread samples
FILL_ROUNDS = 3
#: length of the cosine roll-off of the filling filter, times samples per reference period
FILL_ROLLOFF_SAMPLES = 110000


def coefficients(irs2_table: np.ndarray, source: str = "refpix reference"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The complex ``alpha`` and ``beta`` coefficients [4 amplifiers, frequencies] of an IRS2
    table, whose float32 columns hold real and imaginary parts on alternate rows."""
    if len(irs2_table) != COEFFICIENT_ROWS:
        raise ReferenceFileError(
            f"{source}: the IRS2 table has {len(irs2_table)} rows; the correction needs "
            f"{COEFFICIENT_ROWS} (real and imaginary parts of {REFERENCE_ROW_LENGTH} x "
            f"{NORMAL_LENGTH} frequencies)")

    def complex_columns(names: tuple[str, ...]) -> np.ndarray:
        stored = np.stack([_column(irs2_table, name, f"{source}: the IRS2 table").astype(np.float32)
                           for name in names])
        return stored[:, 0::2] + 1j * stored[:, 1::2]  # complex64

    return complex_columns(ALPHA_COLUMNS), complex_columns(BETA_COLUMNS)


def _column(table: np.ndarray, name: str, described: str) -> np.ndarray:
    """Column ``name`` of a reference table, whatever the case of its stored name."""
    for stored in table.dtype.names or ():
        if stored.lower() == name.lower():
            return np.asarray(table[stored])
    raise ReferenceFileError(f"{described} has no {name} column")


# -- bad interleaved reference pixels named by the reference file -----------------------------
def clobber_bad_reference(data: np.ndarray, layout: IRS2Layout, dq_table: np.ndarray,
                          pixeldq: np.ndarray | None = None,
                          source: str = "refpix reference") -> np.ndarray:
    """Replace, in place in ``data`` [..., 3200, 2048] (every integration and group), the
    interleaved reference pixels that the reference file's DQ table marks bad.

    Each table row names an amplifier (OUTPUT, 1-4), which of the two pairs of each
    reference block (ODD_EVEN, 1 or 2, counted along the detector's readout, so reversed
    on the amplifiers read backwards) and, in the bits of MASK, which blocks. Table row by
    table row, the pixels not yet flagged (initially: the DMS rows with BAD_REF_PIXEL in
    some column of ``pixeldq``) are flagged, then replaced from unflagged pixels of their
    amplifier: the mean of the pixels one block (NRS_NORM + NRS_REF) before and after, else
    the one of them there is, else the reference pixel two before (or else after), else 0.
    ``pixeldq`` is only read. Returns the replaced DMS rows (bool [3200]).
    """
    outputs, pairs, masks = (_column(dq_table, name, f"{source}: the DQ table").astype(np.int64)
                             for name in ("OUTPUT", "ODD_EVEN", "MASK"))
    if np.any((outputs < 0) | (outputs >= OUTPUTS)) or np.any((pairs < 1) | (pairs > 2)):
        raise ReferenceFileError(
            f"{source}: the DQ table's OUTPUT must be 1-4 and ODD_EVEN 1 or 2; got OUTPUT "
            f"{sorted(set(outputs.tolist()))}, ODD_EVEN {sorted(set(pairs.tolist()))}")
    # in readout order along the interleaved axis; NRS2 DMS rows run the other way
    readout_to_dms = np.arange(layout.length)
    if layout.flipped:
        readout_to_dms = readout_to_dms[::-1]
    flagged = np.zeros(layout.length, bool)
    if pixeldq is not None:
        flagged = ((pixeldq & dqflags.BAD_REF_PIXEL) != 0).any(axis=1)[readout_to_dms]
    is_reference = ~layout.readout_mask()
    is_reference[:layout.section] = is_reference[2 * layout.section:3 * layout.section]
    period = layout.normal + layout.reference
    replaced = np.zeros(layout.length, bool)
    for output, pair, mask in zip(outputs, pairs, masks, strict=True):
        start, stop = output * layout.section, (output + 1) * layout.section
        if output % 2 == 0:
            pair = 3 - pair
        blocks = np.flatnonzero((mask >> np.arange(32)) & 1)
        first = start + layout.normal // 2 + blocks * period + 2 * (pair - 1)
        pixels = np.stack([first, first + 1], axis=1).ravel()
        pixels = pixels[~flagged[pixels]]
        flagged[pixels] = True
        replaced[pixels] = True

        before, after, both, source_pixels = _replacement_sources(
            pixels, flagged, is_reference, (start, stop), period)
        copied, zeroed = ~both & (source_pixels >= 0), ~both & (source_pixels < 0)
        rows = readout_to_dms
        data[..., rows[pixels[both]], :] = (data[..., rows[before[both]], :]
                                            + data[..., rows[after[both]], :]) / 2
        data[..., rows[pixels[copied]], :] = data[..., rows[source_pixels[copied]], :]
        data[..., rows[pixels[zeroed]], :] = 0
    return replaced[readout_to_dms]


def _replacement_sources(pixels: np.ndarray, flagged: np.ndarray, is_reference: np.ndarray,
                         bounds: tuple[int, int], period: int) -> tuple[np.ndarray, ...]:
    """For bad reference ``pixels`` (readout order) within ``bounds``: the pixels one period
    before and after, whether both are usable, and the single source of the others (the
    one of them that is usable, else a usable reference pixel two before or after, else
    -1)."""
    start, stop = bounds

    def usable(candidates: np.ndarray, reference_only: bool = False) -> np.ndarray:
        inside = (candidates >= start) & (candidates < stop)
        candidates = np.clip(candidates, start, stop - 1)
        good = inside & ~flagged[candidates]
        return good & is_reference[candidates] if reference_only else good

    before, after = pixels - period, pixels + period
    has_before, has_after = usable(before), usable(after)
    single = np.select(
        [has_before, has_after, usable(pixels - 2, True), usable(pixels + 2, True)],
        [before, after, pixels - 2, pixels + 2], -1)
    return before, after, has_before & has_after, single


# -- the readout's time order ----------------------------------------------------------------
@dataclass(frozen=True)
class ReadoutTiming:
    """Where the pixels of an IRS2 frame fall in the time series of its readout rows.

    ``positions`` index an output's 640 pixels in readout time order; ``slots`` index the
    samples of a readout row (``row_length``), idle samples included.
    """

    row_length: int
    #: samples from one reference block to the next (the normal and reference pixels and
    #: the two idle samples)
    block_period: int
    #: [outputs, positions] the DMS row read at each position of each output
    dms_rows: np.ndarray
    #: the slot of every position
    position_slots: np.ndarray
    #: the positions (and their slots) holding normal pixels, and reference pixels
    normal_positions: np.ndarray
    reference_positions: np.ndarray
    #: the slots of a reference-pixel window, and the reference slot that fills each one
    window_slots: np.ndarray
    window_sources: np.ndarray

    @classmethod
    def of(cls, layout: IRS2Layout) -> ReadoutTiming:
        """The timing of ``layout`` (made once per layout; its arrays are read-only)."""
        return _timing(layout)

    @property
    def normal_slots(self) -> np.ndarray:
        """The slots of the normal pixels."""
        return self.position_slots[self.normal_positions]


@cache
def _timing(layout: IRS2Layout) -> ReadoutTiming:
    if layout.reference % 2:
        raise DataModelError(
            f"the IRS2 correction reads reference pixels in pairs; NRS_REF={layout.reference} "
            "is odd")
    is_reference = ~layout.output_pattern()
    block_starts = is_reference & ~np.r_[False, is_reference[:-1]]
    blocks_begun = np.cumsum(block_starts)
    # one idle sample before and one after every block of reference pixels
    position_slots = np.arange(layout.section) + 2 * blocks_begun - is_reference
    row_length = layout.section + 2 * int(block_starts.sum()) + ROW_PAD

    # every reference block is spread over its slots and NRS_REF/2 more on either side (the
    # idle samples, then normal pixels); they take the block's two halves in turn
    half = layout.reference // 2
    first_slots = position_slots[block_starts]
    order = np.stack([np.arange(half), np.arange(half) + half], axis=1)  # [half, 2]
    if layout.reference % 4 == 2:
        order = order[:, ::-1]
    order = np.tile(order, 2).ravel()
    window_slots = (first_slots[:, None] - half + np.arange(2 * layout.reference)).ravel()
    window_sources = (first_slots[:, None] + order).ravel()

    # outputs 0, 2 and 4 are read towards decreasing detector row; NRS2 rows are reversed
    position = np.arange(layout.section)
    readout = np.array([output * layout.section + (position[::-1] if output % 2 == 0
                                                   else position) for output in range(OUTPUTS)])
    dms_rows = layout.length - 1 - readout if layout.flipped else readout
    arrays = (dms_rows, position_slots, np.flatnonzero(~is_reference),
              np.flatnonzero(is_reference), window_slots, window_sources)
    for array in arrays:
        array.flags.writeable = False
    return ReadoutTiming(row_length, layout.normal + layout.reference + 2, *arrays)


def hermitian_half(spectrum: np.ndarray) -> np.ndarray:
    """The non-negative-frequency half [..., n/2 + 1] of the Hermitian part of ``spectrum``
    [..., n] (n even): a real series' half spectrum times it, transformed back, is the real
    part of the inverse transform of the full spectrum times ``spectrum``."""
    n = spectrum.shape[-1]
    half = spectrum[..., : n // 2 + 1].copy()
    half[..., 0] += spectrum[..., 0].conj()
    half[..., 1:] += spectrum[..., : n // 2 - 1 : -1].conj()
    half *= 0.5
    return half


@cache
def fill_filter(row_length: int, rows: int, period: int) -> np.ndarray:
    """Gain [n/2 + 1] of the Fourier filter that fills the reference output (n samples of
    ``rows`` rows): 1 at low frequencies and near the Nyquist frequency, 0 in the middle,
    joined by cosine roll-offs."""
    rolloff = FILL_ROLLOFF_SAMPLES // period
    passband = row_length // period * rows // 2 - rolloff // 2
    half = row_length * rows // 2
    taper = (np.cos(np.arange(rolloff) * np.pi / rolloff) + 1.0) / 2.0
    gain = np.ones(half + 1)
    gain[passband:passband + rolloff] = taper
    gain[passband + rolloff:half - passband - rolloff] = 0.0
    gain[half - passband - rolloff:half - passband] = taper[::-1]
    gain.flags.writeable = False
    return gain


# -- one integration ---------------------------------------------------------------------
def subtract_reference(ramp: np.ndarray, layout: IRS2Layout, alpha: np.ndarray,
                       beta: np.ndarray, preserve_refpix: bool = False) -> np.ndarray:
    """One integration [ngroups, 3200, 2048] corrected by the reference output and the
    interleaved reference pixels (module docstring); float32 [ngroups, 2048, 2048] of the
    normal rows (``layout.normal_rows()``). With ``preserve_refpix`` all 3200 rows are
    returned: the amplifiers' interleaved reference rows corrected but without their mean
    over groups, the reference output as filled (step 3) with its mean put back.

    ``alpha``, ``beta``: the ``coefficients`` [4, 712 * 2048]. ``ramp`` is not modified;
    beyond the result and the float64 mean over groups, memory is that of a few frames.
    """
    ngroups, nrows, ncolumns = ramp.shape
    if nrows != layout.length or ncolumns != NORMAL_LENGTH:
        raise DataModelError(
            f"an IRS2 integration must be [groups, {layout.length}, {NORMAL_LENGTH}]; "
            f"got {list(ramp.shape)}")
    timing = ReadoutTiming.of(layout)
    samples = timing.row_length * ncolumns
    for name, values in (("alpha", alpha), ("beta", beta)):
        if values.shape != (OUTPUTS - 1, samples):
            raise ReferenceFileError(
                f"refpix reference: {name} has shape {list(values.shape)}; the readout of "
                f"NRS_NORM={layout.normal}, NRS_REF={layout.reference} needs "
                f"[{OUTPUTS - 1}, {samples}]")
    alpha_half, beta_half = hermitian_half(alpha), hermitian_half(beta)
    # readout orientation, time along the rows of each output's series: the DMS rows of an
    # output in the order read (``timing.dms_rows``), transposed; NRS2 reverses the columns
    columns = slice(None, None, -1) if layout.flipped else slice(None)
    # the mean over groups [outputs, positions, columns], summed in float64 group by group
    offset = np.zeros((OUTPUTS, layout.section, ncolumns))
    for output, rows in enumerate(timing.dms_rows):
        for frame in ramp:
            offset[output] += frame[rows][:, columns]
    offset /= ngroups

    if preserve_refpix:
        kept = np.arange(layout.section)
        destination = timing.dms_rows
        result = np.empty((ngroups, nrows, ncolumns), np.float32)
    else:
        kept = timing.normal_positions
        destination = np.searchsorted(layout.normal_rows(), timing.dms_rows)
        result = np.empty((ngroups, NORMAL_LENGTH, ncolumns), np.float32)
    kept_slots = timing.position_slots[kept]
    # the mean is put back at normal pixels, and on the whole reference output when kept
    restore = np.ones((OUTPUTS, kept.size, 1))
    restore[1:, np.isin(kept, timing.reference_positions)] = 0.0
    time = _centred_time(timing.row_length, ncolumns)
    centred = np.empty((layout.section, ncolumns), np.float32)

    def write(group: int, output: int, values: np.ndarray) -> None:
        values = values.T + offset[output, kept] * restore[output]
        result[group, destination[output, kept]] = values[:, columns]

    for group in range(ngroups):
        series = np.zeros((OUTPUTS, ncolumns, timing.row_length), np.float32)
        for output, rows in enumerate(timing.dms_rows):
            # the difference in float64, then rounded: exact zeros count as unread samples
            np.subtract(ramp[group, rows][:, columns], offset[output], out=centred)
            series[output][:, timing.position_slots] = centred.T
            remove_frame_trend(series[output], time)
        reference_output = fill_reference_output(series[0], timing)
        if preserve_refpix:
            write(group, 0, reference_output[:, kept_slots])
        reference_spectrum = scipy.fft.rfft(reference_output.ravel())
        for output in range(1, OUTPUTS):
            correction = amplifier_correction(series[output], reference_spectrum, timing,
                                              alpha_half[output - 1], beta_half[output - 1])
            write(group, output, series[output][:, kept_slots] - correction[:, kept_slots])
    return result


@cache
def _centred_time(row_length: int, rows: int) -> np.ndarray:
    """Sample times [rows, row_length] of a frame's readout, centred on the frame's middle."""
    time = np.arange(rows * row_length, dtype=np.float32).reshape(rows, row_length)
    time -= np.float32((rows * row_length - 1) / 2)
    time.flags.writeable = False
    return time


def remove_frame_trend(series: np.ndarray, time: np.ndarray) -> None:
    """In place: the least-squares line in ``time`` through the read (non-zero) samples of
    the first and last ``TREND_ROWS`` rows of one output's frame ``series`` [rows, samples]
    is subtracted from its read samples (with fewer than two, nothing is)."""
    ends = np.r_[0:TREND_ROWS, series.shape[0] - TREND_ROWS:series.shape[0]]
    values = series[ends]
    read = values != 0
    if read.sum() < 2:
        return
    x = time[ends][read].astype(np.float64)
    y = values[read].astype(np.float64)
    x_mean, y_mean = x.mean(), y.mean()
    slope = ((x - x_mean) * (y - y_mean)).sum() / ((x - x_mean) ** 2).sum()
    line = np.float32(y_mean - slope * x_mean) + time * np.float32(slope)
    series -= np.where(series != 0, line, np.float32(0))


def fill_reference_output(series: np.ndarray, timing: ReadoutTiming) -> np.ndarray:
    """The reference output's frame ``series`` [rows, samples] with its unread (zero)
    samples filled by a sine-weighted circular average of the read samples around them,
    then all samples but those at normal-pixel slots replaced by ``FILL_ROUNDS`` rounds of
    Fourier filtering (``fill_filter``)."""
    rows, row_length = series.shape
    flat = series.ravel()
    read = flat != 0
    weights = np.sin(np.arange(1, 32, dtype=np.float32) / np.float32(32) * np.float32(np.pi))
    weighted = convolve1d(flat, weights, mode="wrap")
    coverage = convolve1d(read.astype(np.float32), weights, mode="wrap")
    average = np.divide(weighted, coverage, out=np.zeros_like(weighted), where=coverage != 0)
    filled = np.where(read, flat, average).reshape(rows, row_length)

    normal_slots = timing.normal_slots
    kept = filled[:, normal_slots]
    gain = fill_filter(row_length, rows, timing.block_period)
    for _ in range(FILL_ROUNDS):
        spectrum = scipy.fft.rfft(filled.ravel())
        spectrum *= gain
        filled = scipy.fft.irfft(spectrum, n=flat.size).reshape(rows, row_length)
        filled[:, normal_slots] = kept
    return filled


def amplifier_correction(series: np.ndarray, reference_spectrum: np.ndarray,
                         timing: ReadoutTiming, alpha_half: np.ndarray,
                         beta_half: np.ndarray) -> np.ndarray:
    """The correction [rows, samples] of one amplifier's frame ``series`` [rows, samples]:
    its reference samples, each spread over its window, filtered by ``beta_half``, plus the
    filled reference output (``reference_spectrum``) filtered by ``alpha_half``."""
    spread = np.zeros_like(series)
    spread[:, timing.window_slots] = series[:, timing.window_sources]
    spectrum = scipy.fft.rfft(spread.ravel())
    spectrum *= beta_half
    spectrum += alpha_half * reference_spectrum
    return scipy.fft.irfft(spectrum, n=series.size).reshape(series.shape)
