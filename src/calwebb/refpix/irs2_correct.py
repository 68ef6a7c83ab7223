"""NIRSpec IRS2: the reference-file correction by the reference output and the interleaved
reference pixels (stage1.md §2.7).

The detector reads the 640 pixels of each output of a row in time order: half a block of
normal pixels, then in turn an idle sample, ``NRS_REF`` reference pixels, an idle sample
and ``NRS_NORM`` normal pixels (half of them after the last reference block); ``ROW_PAD``
idle samples end the row. One integration is corrected on these time series (2048 rows
of 712 samples for the standard 16/4 layout), output by output:

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
The transforms are split along the frame's readout rows and across them (``SpectrumOrder``),
the coefficients kept in that order. The reference output is filled for every group, then
each amplifier corrects every group, a few groups at once in threads (the transforms release
the interpreter), in place in the ramp: the memory of what has been read is handed back on
the way, and only one amplifier's coefficients (read from the reference table in bands) and
means are held at a time.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

import numpy as np
from numba import njit

from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.irs2 import NORMAL_LENGTH, OUTPUTS, IRS2Layout
from calwebb.memory import release_pages
from calwebb.refpix.irs2_badref import flagged_rows, replace_rows, replacement_sources

#: idle samples at the end of every row of the readout (the new-row overhead)
ROW_PAD = 8
#: samples of one readout row in the reference file's coefficients (16/4 layout)
REFERENCE_ROW_LENGTH = 712
#: rows of the IRS2 table: a real and an imaginary part per frequency of a frame
COEFFICIENT_ROWS = 2 * REFERENCE_ROW_LENGTH * NORMAL_LENGTH
#: rows of the IRS2 table read at a time (2 MiB of its eight float32 columns)
TABLE_BAND_ROWS = 1 << 16
#: the amplifiers' coefficient columns of the IRS2 table
ALPHA_COLUMNS = tuple(f"alpha_{amplifier}" for amplifier in range(OUTPUTS - 1))
BETA_COLUMNS = tuple(f"beta_{amplifier}" for amplifier in range(OUTPUTS - 1))
#: readout rows (the detector's reference rows) that the per-frame line is fitted to
TREND_ROWS = 4
#: rounds of Fourier filtering that fill the reference output's unread samples
FILL_ROUNDS = 3
#: length of the cosine roll-off of the filling filter, times samples per reference period
FILL_ROLLOFF_SAMPLES = 110000


def _fft():
    """``scipy.fft``, imported when first needed: only IRS2 readouts use it, and importing it
    (with ``scipy.special``) would cost every Stage 1 run tens of milliseconds."""
    import scipy.fft

    return scipy.fft


def check_table(table: np.ndarray, rows: int, source: str = "refpix reference") -> None:
    """Refuse an IRS2 table of other than ``COEFFICIENT_ROWS`` ``rows``, or without every
    alpha and beta column (``table``: any band of its rows, for the column names)."""
    if rows != COEFFICIENT_ROWS:
        raise ReferenceFileError(
            f"{source}: the IRS2 table has {rows} rows; the correction needs "
            f"{COEFFICIENT_ROWS} (real and imaginary parts of {REFERENCE_ROW_LENGTH} x "
            f"{NORMAL_LENGTH} frequencies)")
    for name in ALPHA_COLUMNS + BETA_COLUMNS:
        _column(table, name, f"{source}: the IRS2 table")


def amplifier_coefficients(table_part: Callable[[int, int], np.ndarray], amplifier: int,
                           source: str = "refpix reference",
                           band_rows: int = TABLE_BAND_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """The ``alpha`` and ``beta`` coefficients of ``amplifier`` (1-4), their Hermitian parts
    in ``SpectrumOrder`` (``hermitian_part``) [1025, 712] complex64, from an IRS2 table
    (``check_table``) whose float32 columns hold the real and imaginary parts of the n
    frequencies on alternate rows; ``table_part(start, stop)`` gives its rows ``start`` to
    ``stop``, asked for ``band_rows`` (even) at a time."""
    order = SpectrumOrder.of(NORMAL_LENGTH, REFERENCE_ROW_LENGTH)
    names = (ALPHA_COLUMNS[amplifier - 1], BETA_COLUMNS[amplifier - 1])
    parts = tuple(np.empty(order.twiddles.shape, np.complex64) for _ in names)
    for start in range(0, COEFFICIENT_ROWS, band_rows):
        band = table_part(start, min(start + band_rows, COEFFICIENT_ROWS))
        for name, out in zip(names, parts, strict=True):
            column = np.asarray(_column(band, name, f"{source}: the IRS2 table"), np.float32)
            _hermitian_band(column[0::2], column[1::2], start // 2, order.rows, out)
        del band, column  # (before the next band is read)
    return parts


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
        flagged = flagged_rows(pixeldq)[readout_to_dms]
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

        before, after, both, single = replacement_sources(
            pixels, flagged, is_reference, start, stop, period)
        dms = readout_to_dms[np.clip(np.stack([before, after, single]), 0, layout.length - 1)]
        replace_rows(data, readout_to_dms[pixels], dms[0], dms[1], both,
                     np.where(single >= 0, dms[2], -1))
    return replaced[readout_to_dms]


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
    #: the slots where nothing is read (beside the reference blocks, and the row's end)
    idle_slots: np.ndarray

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
    idle_slots = np.setdiff1d(np.arange(row_length), position_slots)
    arrays = (dms_rows, position_slots, np.flatnonzero(~is_reference),
              np.flatnonzero(is_reference), window_slots, window_sources, idle_slots)
    for array in arrays:
        array.flags.writeable = False
    return ReadoutTiming(row_length, layout.normal + layout.reference + 2, *arrays)


# -- transforms of a frame's readout ----------------------------------------------------------
@dataclass(frozen=True)
class SpectrumOrder:
    """How the correction orders the spectrum of a frame's readout (``rows`` rows of
    ``row_length`` samples, n in all): the real series is transformed along the rows
    (rows/2 + 1 frequencies), multiplied by twiddle factors, then transformed along each
    row, so that element [k1, k2] holds frequency k1 + rows * k2 of n (those above n/2 being
    the conjugates of the ones below). Products of such spectra with coefficients in the
    same order transform back as products of the full spectra would; the two short
    transforms cost less than one of n samples, and the spread reference samples and the
    corrected normal pixels take only their columns."""

    rows: int
    row_length: int
    #: [rows/2 + 1, row_length] exp(-2 pi i k1 s / n), complex64
    twiddles: np.ndarray

    @classmethod
    def of(cls, rows: int, row_length: int) -> SpectrumOrder:
        """The order for frames of this size (made once; its arrays are read-only)."""
        return _spectrum_order(rows, row_length)

    def frequencies(self) -> np.ndarray:
        """[rows/2 + 1, row_length] the frequency (0 to n - 1) of each element."""
        first = np.arange(self.rows // 2 + 1)[:, None]
        return first + self.rows * np.arange(self.row_length)

    def forward(self, series: np.ndarray) -> np.ndarray:
        """The spectrum of a real ``series`` [rows, row_length]."""
        spectrum = _fft().rfft(series, axis=0)
        spectrum *= self.twiddles
        return _fft().fft(spectrum, axis=1, overwrite_x=True)

    def forward_columns(self, values: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The spectrum of a real series that is zero but at (distinct) ``columns``, where
        it is ``values`` [rows, columns]."""
        spectrum = np.empty(self.twiddles.shape, np.complex64)
        _twiddled_columns(_fft().rfft(values, axis=0), self.twiddles, columns, spectrum)
        return _fft().fft(spectrum, axis=1, overwrite_x=True)

    def inverse(self, spectrum: np.ndarray, columns: np.ndarray | None = None) -> np.ndarray:
        """The ``columns`` [rows, columns] (None: all) of the real series whose spectrum is
        ``spectrum`` (which is overwritten)."""
        spectrum = _fft().ifft(spectrum, axis=1, overwrite_x=True)
        if columns is None:  # (untwiddled where it is)
            columns, chosen = np.arange(self.row_length), spectrum
        else:
            chosen = np.empty((spectrum.shape[0], columns.size), np.complex64)
        _untwiddled_columns(spectrum, self.twiddles, columns, chosen)
        return _fft().irfft(chosen, n=self.rows, axis=0, overwrite_x=True)


@cache
def _spectrum_order(rows: int, row_length: int) -> SpectrumOrder:
    twiddles = np.empty((rows // 2 + 1, row_length), np.complex64)
    samples, n = np.arange(row_length), rows * row_length
    for first in range(0, len(twiddles), 64):  # (in bands: few temporaries)
        frequency = np.arange(first, min(first + 64, len(twiddles)))[:, None]
        twiddles[first:first + 64] = np.exp(-2j * np.pi * (frequency * samples % n) / n)
    twiddles.flags.writeable = False
    return SpectrumOrder(rows, row_length, twiddles)


@njit(cache=True, nogil=True)
def _twiddled_columns(partial, twiddles, columns, spectrum):
    """``spectrum`` = 0 but at ``columns``: ``partial`` [frequencies, columns] times the
    twiddles there."""
    for k in range(spectrum.shape[0]):
        spectrum[k] = 0
        for j in range(columns.size):
            spectrum[k, columns[j]] = partial[k, j] * twiddles[k, columns[j]]


@njit(cache=True, nogil=True)
def _untwiddled_columns(partial, twiddles, columns, chosen):
    """``chosen`` [frequencies, columns] = ``partial`` at ``columns`` over the twiddles."""
    for k in range(partial.shape[0]):
        for j in range(columns.size):
            chosen[k, j] = partial[k, columns[j]] * np.conj(twiddles[k, columns[j]])


def hermitian_part(real: np.ndarray, imaginary: np.ndarray, order: SpectrumOrder,
                   out: np.ndarray | None = None) -> np.ndarray:
    """The Hermitian part (s[k] + conj(s[n - k])) / 2 of a spectrum s [n] given by its real
    and imaginary parts, rounded to float32, in ``order`` [rows/2 + 1, row_length]
    (complex64, into ``out`` if given): a real series' spectrum times it, transformed back,
    is the real part of the inverse transform of the series' full spectrum times s."""
    if out is None:
        out = np.empty(order.twiddles.shape, np.complex64)
    _hermitian_band(np.asarray(real, np.float32), np.asarray(imaginary, np.float32), 0,
                    order.rows, out)
    return out


@njit(cache=True, nogil=True)
def _hermitian_band(real, imaginary, first, rows, out):
    """Frequencies ``first`` on of a spectrum s (parts ``real``, ``imaginary``) into its
    Hermitian part ``out`` [rows/2 + 1, n/rows] (``hermitian_part``): a frequency k and its
    mirror m = n - k meet at [k % rows, k // rows] for whichever of the two is there; the
    first of them given is stored as it is, the second completes (s[k] + conj(s[m])) / 2 in
    float32. Given every frequency once, in bands in increasing order, ``out`` is whole."""
    n = rows * out.shape[1]
    top = rows // 2
    half = np.float32(0.5)
    for i in range(real.size):
        k = first + i
        re, im = real[i], imaginary[i]
        m = (n - k) % n
        if k % rows <= top:  # k's own element: m given already if m < k
            if m == k:
                out[k % rows, k // rows] = complex((re + re) * half, (im - im) * half)
            elif k < m:
                out[k % rows, k // rows] = complex(re, im)
            else:
                stored = out[k % rows, k // rows]
                out[k % rows, k // rows] = complex((re + stored.real) * half,
                                                   (im - stored.imag) * half)
        if m != k and m % rows <= top:  # m's element, k its mirror: m given already if m < k
            if m < k:
                stored = out[m % rows, m // rows]
                out[m % rows, m // rows] = complex((stored.real + re) * half,
                                                   (stored.imag - im) * half)
            else:
                out[m % rows, m // rows] = complex(re, im)


def fill_gain(rows: int, row_length: int, period: int) -> np.ndarray:
    """The gain [rows/2 + 1, row_length] (in ``SpectrumOrder``) of the Fourier filter that
    fills the reference output: at frequency k of n, or n - k above n/2, 1 below p and 0
    from p + r to n/2 - p - r, joined by a cosine roll-off of r frequencies, and 1 again
    from n/2 - p on (r = FILL_ROLLOFF_SAMPLES / ``period``)."""
    rolloff = FILL_ROLLOFF_SAMPLES // period
    passband = row_length // period * rows // 2 - rolloff // 2
    half = row_length * rows // 2
    taper = (np.cos(np.arange(rolloff) * np.pi / rolloff) + 1.0) / 2.0
    gain = np.ones(half + 1)
    gain[passband:passband + rolloff] = taper
    gain[passband + rolloff:half - passband - rolloff] = 0.0
    gain[half - passband - rolloff:half - passband] = taper[::-1]
    frequency = SpectrumOrder.of(rows, row_length).frequencies()
    return gain[np.minimum(frequency, 2 * half - frequency)]


# -- one integration ---------------------------------------------------------------------
#: threads at most that correct an integration (each needs about 30 MB of working memory)
MAX_THREADS = 4
#: columns that the gathering kernel moves at a time (rows of a series: a block of
#: 64 x 712 float32 stays in a core's cache)
COLUMN_BLOCK = 64
#: readout rows that the writing kernel transposes at a time (2048 must be a multiple)
WRITE_COLUMNS = 8
#: rows of the ramp whose mean over groups is taken out at a time
CENTRING_ROWS = 64
#: the sine weights of the first filling of the reference output's unread samples,
#: reversed (as a convolution applies them), in float64
FILL_WEIGHTS = np.sin(np.arange(1, 32, dtype=np.float32) / np.float32(32)
                      * np.float32(np.pi))[::-1].astype(np.float64)


@dataclass(frozen=True)
class _Kept:
    """The positions of every output that the correction writes back (all of them with
    ``preserve_refpix``, else the normal ones; none of the reference output without it):
    their ``slots``, per output their DMS ``rows``, and per output those of them that get
    their mean over groups back (``restored``: the normal pixels, and the whole reference
    output); per output the (start, stop) runs of DMS rows not written back
    (``dropped``)."""

    slots: np.ndarray
    rows: np.ndarray
    restored: np.ndarray
    dropped: tuple[tuple[tuple[int, int], ...], ...]


@cache
def _kept(layout: IRS2Layout, preserve_refpix: bool) -> _Kept:
    timing = ReadoutTiming.of(layout)
    positions = np.arange(layout.section) if preserve_refpix else timing.normal_positions
    restored = np.isin(positions, timing.normal_positions)[None].repeat(OUTPUTS, axis=0)
    restored[0] = True
    arrays = (timing.position_slots[positions], np.ascontiguousarray(
        timing.dms_rows[:, positions]), restored)
    for array in arrays:
        array.flags.writeable = False
    dropped = []
    for output, rows in enumerate(timing.dms_rows):
        rows = np.sort(np.delete(rows, positions if output or preserve_refpix else []))
        runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if rows.size else []
        dropped.append(tuple((int(run[0]), int(run[-1]) + 1) for run in runs))
    return _Kept(*arrays, tuple(dropped))


def correct_in_place(ramp: np.ndarray, layout: IRS2Layout,
                     coefficients_of: Callable[[int], tuple[np.ndarray, np.ndarray]],
                     preserve_refpix: bool = False, threads: int | None = None) -> None:
    """Correct one integration [ngroups, 3200, 2048] by the reference output and the
    interleaved reference pixels (module docstring), in place: its normal rows
    (``layout.normal_rows()``) become the result. With ``preserve_refpix`` so do the other
    rows: the amplifiers' interleaved reference rows corrected but without their mean over
    groups, the reference output as filled (step 3) with its mean put back; without it, the
    other rows are left undefined, their memory handed back to the system once read
    (``memory.release_pages``).

    ``coefficients_of(amplifier)`` gives the (alpha, beta) coefficients of amplifier 1-4
    [1025, 712] (``SpectrumOrder``; ``amplifier_coefficients``); each is asked for once,
    while the output before it is being corrected, and let go when its amplifier is done.
    The work is shared by up to ``threads`` threads (default: the cores, at most
    ``MAX_THREADS``).
    """
    ngroups, nrows, ncolumns = ramp.shape
    if nrows != layout.length or ncolumns != NORMAL_LENGTH:
        raise DataModelError(
            f"an IRS2 integration must be [groups, {layout.length}, {NORMAL_LENGTH}]; "
            f"got {list(ramp.shape)}")
    row_length = ReadoutTiming.of(layout).row_length
    if row_length != REFERENCE_ROW_LENGTH:
        raise ReferenceFileError(
            f"refpix reference: its coefficients are for readout rows of "
            f"{REFERENCE_ROW_LENGTH} samples; the readout of NRS_NORM={layout.normal}, "
            f"NRS_REF={layout.reference} has {row_length}")
    threads = min(ngroups, threads or min(os.cpu_count() or 1, MAX_THREADS))
    _IntegrationCorrection(ramp, layout, coefficients_of, preserve_refpix).run(threads)


def _run_in_order(calls: list, threads: int) -> None:
    """Run the argument-less ``calls``, taken in order by this thread and ``threads - 1``
    more (so that only those keep memory in allocator arenas of their own), and let go of
    once run (``calls`` is emptied). After a failure no more calls are taken; it is raised
    once the calls under way have ended."""
    lock, failures = threading.Lock(), []
    calls.reverse()

    def take_calls() -> None:
        while not failures:
            with lock:
                call = calls.pop() if calls else None
            if call is None:
                return
            try:
                call()
            except BaseException as error:  # re-raised by the calling thread
                failures.append(error)
            del call

    helpers = [threading.Thread(target=take_calls, name="calwebb-irs2")
               for _ in range(threads - 1)]
    for helper in helpers:
        helper.start()
    take_calls()
    for helper in helpers:
        helper.join()
    if failures:
        raise failures[0]


def _settling(future: Future, call: Callable[[], Any]) -> None:
    """Run ``call`` and set ``future`` to its result, or to its failure (then raised)."""
    try:
        future.set_result(call())
    except BaseException as error:  # the tasks waiting for it fail too
        future.set_exception(error)
        raise


class _IntegrationCorrection:
    """The correction of one integration, in place, as tasks run in order by a few threads:
    the reference output's mean over groups taken out (bands of rows), its filling for
    every group; then amplifier by amplifier its mean over groups taken out and its
    correction of every group, its coefficients made while the amplifier before it is
    corrected. A task reads and writes only rows of its own output, and waits only for
    earlier tasks (taken already) whose results it needs. What an amplifier alone needs
    (its coefficients, its means) goes once it is done, each group's filled reference
    output with the last amplifier."""

    def __init__(self, ramp, layout, coefficients_of, preserve_refpix):
        self.ramp, self.layout = ramp, layout
        self.coefficients_of = coefficients_of
        self.preserve_refpix = preserve_refpix
        self.timing = ReadoutTiming.of(layout)
        self.order = SpectrumOrder.of(ramp.shape[2], self.timing.row_length)
        self.kept = _kept(layout, preserve_refpix)
        ngroups = ramp.shape[0]
        amplifiers = range(1, OUTPUTS)
        #: per output: its bands of rows centred, its means to put back, its coefficients
        self.centred = {output: [] for output in range(OUTPUTS)}
        self.restore: dict[int, np.ndarray] = {}
        self.coefficients = {amplifier: Future() for amplifier in amplifiers}
        #: each group's transformed reference output, until the last amplifier is done
        self.spectra = [Future() for _ in range(ngroups)]
        self.groups_left = dict.fromkeys(range(OUTPUTS), ngroups)
        self.gain: np.ndarray | None = None
        self.lock = threading.Lock()
        self.scratch = queue.SimpleQueue()

    def run(self, threads: int) -> None:
        for _ in range(threads):  # a frame's series per thread
            self.scratch.put(np.empty((self.ramp.shape[2], self.timing.row_length),
                                      np.float32))
        ngroups = self.ramp.shape[0]
        tasks = self._centring(0) + [self._coefficients_task(1)]
        tasks += [partial(_settling, self.spectra[group], partial(self._fill, group))
                  for group in range(ngroups)]
        for amplifier in range(1, OUTPUTS):
            corrections = [partial(self._amplifier, amplifier, group)
                           for group in range(ngroups)]
            following = ([self._coefficients_task(amplifier + 1)]
                         if amplifier + 1 < OUTPUTS else [])
            tasks += (self._centring(amplifier) + corrections[:-1] + following
                      + corrections[-1:])
        _run_in_order(tasks, threads)

    def _centring(self, output: int) -> list:
        """The tasks that take the mean over groups out of ``output``'s rows, a band of
        ``CENTRING_ROWS`` each."""
        rows = self.timing.dms_rows[output]
        tasks = []
        for first_row in range(rows.min(), rows.max() + 1, CENTRING_ROWS):
            done = Future()
            self.centred[output].append(done)
            tasks.append(partial(_settling, done, partial(self._centre, output, first_row,
                                                          min(first_row + CENTRING_ROWS,
                                                              rows.max() + 1))))
        return tasks

    def _coefficients_task(self, amplifier: int):
        return partial(_settling, self.coefficients[amplifier],
                       partial(self.coefficients_of, amplifier))

    def _centre(self, output: int, first_row: int, stop_row: int) -> None:
        """Take the mean over groups out of rows ``first_row`` to ``stop_row`` of
        ``output``, and note it where it is put back."""
        band = self.ramp[:, first_row:stop_row]
        mean = band.sum(axis=0, dtype=np.float64)
        mean /= band.shape[0]
        for frame in band:
            np.subtract(frame, mean, out=frame)
        if output == 0 and not self.preserve_refpix:
            return  # (the reference output is not written back)
        rows = self.kept.rows[output]
        taken = self.kept.restored[output] & (rows >= first_row) & (rows < stop_row)
        with self.lock:
            restore = self.restore.get(output)
            if restore is None:
                restore = self.restore[output] = np.zeros((rows.size, self.ramp.shape[2]))
        restore[taken] = mean[rows[taken] - first_row]

    def _wait_centred(self, output: int) -> None:
        for done in self.centred[output]:
            done.result()

    def _fill(self, group: int) -> np.ndarray:
        """The reference output's filled series of ``group``, transformed for the
        amplifiers (and written back when kept; else its rows are let go once read)."""
        self._wait_centred(0)
        series = self.scratch.get()
        try:
            self._series(group, 0, series)
            reference_output = fill_reference_output(series, self.timing, self.order,
                                                     self._gain())
            if self.preserve_refpix:
                self._write(group, 0, reference_output, None)
            return self.order.forward(reference_output)
        finally:
            self.scratch.put(series)
            self._done(0, group)

    def _gain(self) -> np.ndarray:
        """The gain of the filling filter (``fill_gain``), made for the first filling and
        let go after the last."""
        with self.lock:
            if self.gain is None:
                self.gain = fill_gain(self.order.rows, self.order.row_length,
                                      self.timing.block_period)
            return self.gain

    def _amplifier(self, amplifier: int, group: int) -> None:
        self._wait_centred(amplifier)
        alpha, beta = self.coefficients[amplifier].result()
        spectrum = self.spectra[group].result()
        series = self.scratch.get()
        try:
            self._series(group, amplifier, series)
            correction = amplifier_correction(series, spectrum, self.timing, alpha, beta,
                                              self.order, self.kept.slots)
            self._write(group, amplifier, series, correction)
        finally:
            self.scratch.put(series)
            self._done(amplifier, group)

    def _series(self, group: int, output: int, series: np.ndarray) -> None:
        """The time series of ``output`` in ``group`` into ``series``; then the rows not
        written back are let go."""
        frame = self.ramp[group]
        centred_series(frame, self.timing, output, self.layout.flipped, series)
        for start, stop in self.kept.dropped[output]:
            release_pages(frame[start:stop])

    def _done(self, output: int, group: int) -> None:
        """Let go what ``output`` alone needed once its last group is done (the filling's
        gain with the reference output), and each group's reference output spectrum once the
        last amplifier has used it."""
        with self.lock:
            self.groups_left[output] -= 1
            if not self.groups_left[output]:
                self.restore.pop(output, None)
                self.coefficients.pop(output, None)
                if output == 0:
                    self.gain = None
            if output == OUTPUTS - 1:
                self.spectra[group] = None

    def _write(self, group: int, output: int, values: np.ndarray,
               correction: np.ndarray | None) -> None:
        _write_output(self.ramp[group], values, correction, self.restore[output],
                      self.kept.slots, self.kept.rows[output], self.layout.flipped)


def centred_series(frame: np.ndarray, timing: ReadoutTiming, output: int, flipped: bool,
                   series: np.ndarray) -> None:
    """Into ``series`` [2048 readout rows, samples]: the time series of ``output`` of a
    ``frame`` [3200, 2048] whose mean over groups is taken out (exact zeros count as
    unread), without its frame trend (``frame_trend``); zeros at the idle samples."""
    ncolumns = frame.shape[1]
    rows = timing.dms_rows[output]
    columns = np.r_[0:TREND_ROWS, ncolumns - TREND_ROWS:ncolumns]
    centre = np.float32((ncolumns * timing.row_length - 1) / 2)
    # the sample times of those readout rows, centred on the frame's middle
    time = (columns[:, None] * timing.row_length + timing.position_slots).astype(np.float32)
    time -= centre
    if flipped:
        columns = ncolumns - 1 - columns
    intercept, slope = frame_trend(frame[rows[:, None], columns].T, time)
    _gather(frame, rows, timing.position_slots, timing.idle_slots, intercept, slope, centre,
            flipped, series)


def frame_trend(values: np.ndarray, time: np.ndarray) -> tuple[np.float32, np.float32]:
    """(intercept, slope) in float32 of the least-squares line in ``time`` through the read
    (non-zero) ``values`` of one output's first and last ``TREND_ROWS`` readout rows; (0, 0)
    with fewer than two."""
    read = values != 0
    if read.sum() < 2:
        return np.float32(0), np.float32(0)
    x = time[read].astype(np.float64)
    y = values[read].astype(np.float64)
    x_mean, y_mean = x.mean(), y.mean()
    slope = ((x - x_mean) * (y - y_mean)).sum() / ((x - x_mean) ** 2).sum()
    return np.float32(y_mean - slope * x_mean), np.float32(slope)


@njit(cache=True, nogil=True)
def _gather(frame, rows, slots, idle_slots, intercept, slope, centre, flipped, series):
    """``series``[c, slots[p]] = ``frame`` at DMS row rows[p] and the column of readout row c
    (reversed when ``flipped``), minus the line (intercept, slope) in centred time where
    not zero; 0 at ``idle_slots``."""
    ncolumns, row_length = series.shape
    for start in range(0, ncolumns, COLUMN_BLOCK):
        stop = min(start + COLUMN_BLOCK, ncolumns)
        for c in range(start, stop):
            for slot in idle_slots:
                series[c, slot] = 0
        for p in range(rows.size):
            row, slot = rows[p], slots[p]
            for c in range(start, stop):
                value = frame[row, ncolumns - 1 - c if flipped else c]
                if value != 0:
                    time = np.float32(c * row_length + slot) - centre
                    value = value - (intercept + time * slope)
                series[c, slot] = value


def fill_reference_output(series: np.ndarray, timing: ReadoutTiming, order: SpectrumOrder,
                          gain: np.ndarray) -> np.ndarray:
    """The reference output's frame ``series`` [rows, samples] with its unread (zero)
    samples filled by a sine-weighted circular average of the read samples around them
    (in place in ``series``), then all samples but those at normal-pixel slots replaced by
    ``FILL_ROUNDS`` rounds of Fourier filtering by ``gain`` (``fill_gain``); a new
    array."""
    _sine_fill(series.ravel(), FILL_WEIGHTS)
    normal_slots = timing.normal_slots
    filled = series
    for _ in range(FILL_ROUNDS):
        spectrum = order.forward(filled)
        filled = None  # (each round's arrays go before the next round's are made)
        spectrum *= gain
        filled = order.inverse(spectrum)
        del spectrum
        filled[:, normal_slots] = series[:, normal_slots]
    return filled


@njit(cache=True, nogil=True)
def _sine_fill(values, weights):
    """In place: each zero of ``values`` becomes the circular correlation of ``weights``
    (odd length, centred) with the values over that with the read (non-zero) samples, each
    summed in float64 and rounded to float32 first, as ``scipy.ndimage.convolve1d`` on
    float32 gives them (0 where nothing around is read)."""
    n, half = values.size, weights.size // 2
    unread = np.flatnonzero(values == 0)
    averages = np.empty(unread.size, np.float32)
    for u in range(unread.size):
        total = 0.0
        coverage = 0.0
        for j in range(weights.size):
            k = unread[u] - half + j
            if k < 0:
                k += n
            elif k >= n:
                k -= n
            total += np.float64(values[k]) * weights[j]
            if values[k] != 0:
                coverage += weights[j]
        averages[u] = (np.float32(total) / np.float32(coverage) if np.float32(coverage) != 0
                       else np.float32(0))
    values[unread] = averages


def amplifier_correction(series: np.ndarray, reference_spectrum: np.ndarray,
                         timing: ReadoutTiming, alpha: np.ndarray, beta: np.ndarray,
                         order: SpectrumOrder, slots: np.ndarray) -> np.ndarray:
    """The correction [rows, slots] at ``slots`` of one amplifier's frame ``series`` [rows,
    samples]: its reference samples, each spread over its window, filtered by ``beta``,
    plus the filled reference output (``reference_spectrum``) filtered by ``alpha``
    (spectra and coefficients in ``order``)."""
    spectrum = order.forward_columns(series[:, timing.window_sources], timing.window_slots)
    _combine(spectrum.ravel(), beta.ravel(), alpha.ravel(), reference_spectrum.ravel())
    return order.inverse(spectrum, slots)


@njit(cache=True, nogil=True)
def _combine(spectrum, beta, alpha, reference_spectrum):
    """``spectrum`` = spectrum * beta + alpha * reference_spectrum (complex64), in place."""
    for k in range(spectrum.size):
        spectrum[k] = spectrum[k] * beta[k] + alpha[k] * reference_spectrum[k]


@njit(cache=True, nogil=True)
def _write_output(plane, values, correction, restore, slots, rows, flipped):
    """``plane``[rows[j], column of c] = values[c, slots[j]] - correction[c, j] (None: 0)
    in float32, plus ``restore``[j, that column] (added in float64, then rounded); columns
    reversed when ``flipped``. Transposed through a buffer of ``WRITE_COLUMNS`` readout rows at a
    time."""
    ncolumns = plane.shape[1]
    buffer = np.empty((slots.size, WRITE_COLUMNS), np.float32)
    for start in range(0, ncolumns, WRITE_COLUMNS):
        for t in range(WRITE_COLUMNS):
            for j in range(slots.size):
                value = values[start + t, slots[j]]
                if correction is not None:
                    value = value - correction[start + t, j]
                buffer[j, t] = value
        for j in range(slots.size):
            row = rows[j]
            for t in range(WRITE_COLUMNS):
                column = ncolumns - 1 - start - t if flipped else start + t
                plane[row, column] = np.float32(np.float64(buffer[j, t]) + restore[j, column])
