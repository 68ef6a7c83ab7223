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
The transforms are split along the frame's readout rows and across them (``SpectrumOrder``),
the coefficients kept in that order. The groups, and within a group the reference output and
each amplifier, are corrected by a few threads at once (the transforms release the
interpreter), and the result can be written over the ramp's own memory.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cache, partial

import numpy as np
import scipy.fft
from numba import njit

from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.irs2 import NORMAL_LENGTH, OUTPUTS, IRS2Layout
from calwebb.refpix.irs2_badref import flagged_rows, replace_rows, replacement_sources

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
    """The ``alpha`` and ``beta`` coefficients of an IRS2 table, their Hermitian parts in
    ``SpectrumOrder`` (``hermitian_part``) [4 amplifiers, 1025, 712] complex64; the table's
    float32 columns hold the real and imaginary parts of the n frequencies on alternate
    rows."""
    if len(irs2_table) != COEFFICIENT_ROWS:
        raise ReferenceFileError(
            f"{source}: the IRS2 table has {len(irs2_table)} rows; the correction needs "
            f"{COEFFICIENT_ROWS} (real and imaginary parts of {REFERENCE_ROW_LENGTH} x "
            f"{NORMAL_LENGTH} frequencies)")
    names = ALPHA_COLUMNS + BETA_COLUMNS
    order = SpectrumOrder.of(NORMAL_LENGTH, REFERENCE_ROW_LENGTH)
    parts = np.empty((len(names), *order.twiddles.shape), np.complex64)
    for name, out in zip(names, parts, strict=True):
        column = _column(irs2_table, name, f"{source}: the IRS2 table")
        hermitian_part(column[0::2], column[1::2], order, out)
    return parts[:len(ALPHA_COLUMNS)], parts[len(ALPHA_COLUMNS):]


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
        spectrum = scipy.fft.rfft(series, axis=0)
        spectrum *= self.twiddles
        return scipy.fft.fft(spectrum, axis=1, overwrite_x=True)

    def forward_columns(self, values: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The spectrum of a real series that is zero but at (distinct) ``columns``, where
        it is ``values`` [rows, columns]."""
        spectrum = np.empty(self.twiddles.shape, np.complex64)
        _twiddled_columns(scipy.fft.rfft(values, axis=0), self.twiddles, columns, spectrum)
        return scipy.fft.fft(spectrum, axis=1, overwrite_x=True)

    def inverse(self, spectrum: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The ``columns`` [rows, columns] of the real series whose spectrum is ``spectrum``
        (which is overwritten)."""
        spectrum = scipy.fft.ifft(spectrum, axis=1, overwrite_x=True)
        chosen = np.empty((spectrum.shape[0], columns.size), np.complex64)
        _untwiddled_columns(spectrum, self.twiddles, columns, chosen)
        return scipy.fft.irfft(chosen, n=self.rows, axis=0, overwrite_x=True)


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
    _hermitian_part(np.asarray(real, np.float32), np.asarray(imaginary, np.float32),
                    order.rows, out)
    return out


@njit(cache=True, nogil=True)
def _hermitian_part(real, imaginary, rows, out):
    """``out``[k1, k2] = (s[k] + conj(s[n - k])) / 2 in float32, k = k1 + ``rows`` * k2."""
    n = real.size
    half = np.float32(0.5)
    for k2 in range(out.shape[1]):
        for k1 in range(out.shape[0]):
            k = k1 + rows * k2
            mirrored = (n - k) % n
            out[k1, k2] = complex((real[k] + real[mirrored]) * half,
                                  (imaginary[k] - imaginary[mirrored]) * half)


@cache
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
    gain = gain[np.minimum(frequency, 2 * half - frequency)]
    gain.flags.writeable = False
    return gain


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
class _Destinations:
    """Where the kept positions of each output go: their ``slots``, per output the result
    ``rows`` they are written to, and for each result row the DMS row whose mean over
    groups is put back there (``restored_from``, -1 for none)."""

    slots: np.ndarray
    rows: np.ndarray
    restored_from: np.ndarray


@cache
def _destinations(layout: IRS2Layout, preserve_refpix: bool) -> _Destinations:
    timing = ReadoutTiming.of(layout)
    if preserve_refpix:
        kept = np.arange(layout.section)
        rows = timing.dms_rows
        # the mean is put back at normal pixels and on the whole reference output
        restored_from = np.where(layout.normal_mask(), np.arange(layout.length), -1)
        restored_from[timing.dms_rows[0]] = timing.dms_rows[0]
    else:
        kept = timing.normal_positions
        rows = np.searchsorted(layout.normal_rows(), timing.dms_rows[:, kept])
        restored_from = layout.normal_rows()
    arrays = (timing.position_slots[kept], np.ascontiguousarray(rows), restored_from)
    for array in arrays:
        array.flags.writeable = False
    return _Destinations(*arrays)


def subtract_reference(ramp: np.ndarray, layout: IRS2Layout, alpha: np.ndarray,
                       beta: np.ndarray, preserve_refpix: bool = False,
                       out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """One integration [ngroups, 3200, 2048] corrected by the reference output and the
    interleaved reference pixels (module docstring); float32 [ngroups, 2048, 2048] of the
    normal rows (``layout.normal_rows()``). With ``preserve_refpix`` all 3200 rows are
    returned: the amplifiers' interleaved reference rows corrected but without their mean
    over groups, the reference output as filled (step 3) with its mean put back.

    ``alpha``, ``beta``: the ``coefficients`` [4, 1025, 712] (``SpectrumOrder``). The result
    goes to ``out`` if given. ``out`` may share ``ramp``'s memory, which is then overwritten
    (the step writes the result over the head of the ramp's own buffer), as long as each
    group of ``out`` ends no later in memory than the same group of ``ramp``; otherwise
    ``ramp`` is not modified (a copy of it is worked on). The work is shared by up to
    ``threads`` threads (default: the cores, at most ``MAX_THREADS``).
    """
    ngroups, nrows, ncolumns = ramp.shape
    if nrows != layout.length or ncolumns != NORMAL_LENGTH:
        raise DataModelError(
            f"an IRS2 integration must be [groups, {layout.length}, {NORMAL_LENGTH}]; "
            f"got {list(ramp.shape)}")
    timing = ReadoutTiming.of(layout)
    needed = (OUTPUTS - 1, *SpectrumOrder.of(ncolumns, timing.row_length).twiddles.shape)
    for name, values in (("alpha", alpha), ("beta", beta)):
        if values.shape != needed:
            raise ReferenceFileError(
                f"refpix reference: {name} has shape {list(values.shape)}; the readout of "
                f"NRS_NORM={layout.normal}, NRS_REF={layout.reference} needs "
                f"{list(needed)} (in SpectrumOrder)")
    shape = (ngroups, nrows if preserve_refpix else NORMAL_LENGTH, ncolumns)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise DataModelError(f"the IRS2 correction's output must be float32 {list(shape)}; "
                             f"got {out.dtype} {list(out.shape)}")
    if not np.may_share_memory(out, ramp):
        ramp = ramp.copy()
    threads = min(ngroups, threads or min(os.cpu_count() or 1, MAX_THREADS))
    _IntegrationCorrection(ramp, out, layout, np.ascontiguousarray(alpha, np.complex64),
                           np.ascontiguousarray(beta, np.complex64), preserve_refpix).run(threads)
    return out


def _run_in_order(calls: list, threads: int) -> None:
    """Run the argument-less ``calls``, taken in order by this thread and ``threads - 1``
    more (so that only those keep memory in allocator arenas of their own). After a
    failure no more calls are taken; it is raised once the calls under way have ended."""
    pending, lock, failures = iter(calls), threading.Lock(), []

    def take_calls() -> None:
        while not failures:
            with lock:
                call = next(pending, None)
            if call is None:
                return
            try:
                call()
            except BaseException as error:  # re-raised by the calling thread
                failures.append(error)

    helpers = [threading.Thread(target=take_calls, name="calwebb-irs2")
               for _ in range(threads - 1)]
    for helper in helpers:
        helper.start()
    take_calls()
    for helper in helpers:
        helper.join()
    if failures:
        raise failures[0]


class _IntegrationCorrection:
    """The correction of one integration as tasks run in order by a few threads: first the
    mean over groups taken out of ``ramp`` in place (bands of rows), then per group the
    reference output's filling and each amplifier's correction, in order of DMS rows. A
    task writes its result only once the earlier tasks that read the memory it overwrites
    have (the result may be written over the ramp); tasks only wait for earlier ones, which
    have been taken already."""

    def __init__(self, ramp, out, layout, alpha, beta, preserve_refpix):
        self.ramp, self.out, self.layout = ramp, out, layout
        self.alpha, self.beta = alpha, beta
        self.preserve_refpix = preserve_refpix
        self.timing = ReadoutTiming.of(layout)
        self.order = SpectrumOrder.of(ramp.shape[2], self.timing.row_length)
        self.destinations = _destinations(layout, preserve_refpix)
        #: the mean over groups to put back on each result row
        self.restore = np.zeros(out.shape[1:])
        # (group, output); a group's filling goes before the previous group's amplifiers,
        # so that the two overlap
        amplifiers = sorted(range(1, OUTPUTS), key=lambda output: self.timing.dms_rows[output,
                                                                                     0])
        ngroups = ramp.shape[0]
        self.tasks = [(0, 0)]
        for group in range(ngroups):
            self.tasks += [(group + 1, 0)] if group + 1 < ngroups else []
            self.tasks += [(group, output) for output in amplifiers]
        self.read = [threading.Event() for _ in self.tasks]
        self.overwritten = self._overwritten_reads()
        #: each group's transformed reference output, until its amplifiers are done
        self.spectra = [Future() for _ in range(ngroups)]
        self.amplifiers_left = [len(amplifiers)] * ngroups
        self.lock = threading.Lock()
        self.scratch = queue.SimpleQueue()

    def _overwritten_reads(self) -> list[list[int]]:
        """For each task, the earlier tasks whose input memory its result overlaps."""
        reads = [self.ramp[group, self.timing.dms_rows[output].min():
                           self.timing.dms_rows[output].max() + 1]
                 for group, output in self.tasks]
        overlaps = []
        for index, (group, output) in enumerate(self.tasks):
            rows = self.destinations.rows[output]
            if output == 0 and not self.preserve_refpix:
                overlaps.append([])
                continue
            written = self.out[group, rows.min():rows.max() + 1]
            overlaps.append([earlier for earlier in range(index)
                             if np.may_share_memory(written, reads[earlier])])
        return overlaps

    def run(self, threads: int) -> None:
        _run_in_order([partial(self._centre, first_row)
                       for first_row in range(0, self.ramp.shape[1], CENTRING_ROWS)], threads)
        for _ in range(threads):  # a frame's series per thread
            self.scratch.put(np.empty((self.ramp.shape[2], self.timing.row_length),
                                      np.float32))
        _run_in_order([partial(self._amplifier if output else self._fill, index)
                       for index, (_, output) in enumerate(self.tasks)], threads)

    def _centre(self, first_row: int) -> None:
        """Take the mean over groups out of rows ``first_row`` on (``CENTRING_ROWS``), and
        note it where it is put back."""
        rows = slice(first_row, first_row + CENTRING_ROWS)
        band = self.ramp[:, rows]
        mean = band.sum(axis=0, dtype=np.float64)
        mean /= band.shape[0]
        for frame in band:
            np.subtract(frame, mean, out=frame)
        sources = self.destinations.restored_from
        taken = (sources >= first_row) & (sources < first_row + band.shape[1])
        self.restore[taken] = mean[sources[taken] - first_row]

    def _series(self, index: int, series: np.ndarray) -> None:
        """The time series of the output of task ``index`` into ``series``; then the task's
        input is read."""
        group, output = self.tasks[index]
        try:
            centred_series(self.ramp[group], self.timing, output, self.layout.flipped, series)
        finally:
            self.read[index].set()

    def _write(self, index: int, values: np.ndarray, correction: np.ndarray | None) -> None:
        group, output = self.tasks[index]
        for earlier in self.overwritten[index]:
            self.read[earlier].wait()
        _write_output(self.out[group], values, correction, self.restore,
                      self.destinations.slots, self.destinations.rows[output],
                      self.layout.flipped)

    def _fill(self, index: int) -> None:
        """The reference output's filled series, transformed for the amplifiers (and
        written out when kept)."""
        spectrum = self.spectra[self.tasks[index][0]]
        series = self.scratch.get()
        try:
            self._series(index, series)
            reference_output = fill_reference_output(series, self.timing, self.order)
            if self.preserve_refpix:
                self._write(index, reference_output, None)
            spectrum.set_result(self.order.forward(reference_output))
        except BaseException as error:  # the amplifiers waiting for it fail too
            spectrum.set_exception(error)
            raise
        finally:
            self.scratch.put(series)

    def _amplifier(self, index: int) -> None:
        group, output = self.tasks[index]
        series = self.scratch.get()
        try:
            self._series(index, series)
            correction = amplifier_correction(series, self.spectra[group].result(),
                                              self.timing, self.alpha[output - 1],
                                              self.beta[output - 1], self.order,
                                              self.destinations.slots)
            self._write(index, series, correction)
        finally:
            self.scratch.put(series)
            with self.lock:
                self.amplifiers_left[group] -= 1
                if not self.amplifiers_left[group]:
                    self.spectra[group] = None


def centred_series(frame: np.ndarray, timing: ReadoutTiming, output: int, flipped: bool,
                   series: np.ndarray) -> None:
    """Into ``series`` [2048 readout rows, samples]: the time series of ``output`` of a
    ``frame`` [3200, 2048] whose mean over groups is taken out (exact zeros count as
    unread), without its frame trend (``frame_trend``); zeros at the idle samples."""
    ncolumns = frame.shape[1]
    rows = timing.dms_rows[output]
    columns = np.r_[0:TREND_ROWS, ncolumns - TREND_ROWS:ncolumns]
    time = _centred_time(timing.row_length, ncolumns)[columns][:, timing.position_slots]
    if flipped:
        columns = ncolumns - 1 - columns
    intercept, slope = frame_trend(frame[rows[:, None], columns].T, time)
    _gather(frame, rows, timing.position_slots, timing.idle_slots, intercept, slope,
            np.float32((ncolumns * timing.row_length - 1) / 2), flipped, series)


@cache
def _centred_time(row_length: int, rows: int) -> np.ndarray:
    """Sample times [rows, row_length] of a frame's readout, centred on the frame's middle."""
    time = np.arange(rows * row_length, dtype=np.float32).reshape(rows, row_length)
    time -= np.float32((rows * row_length - 1) / 2)
    time.flags.writeable = False
    return time


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


def fill_reference_output(series: np.ndarray, timing: ReadoutTiming,
                          order: SpectrumOrder) -> np.ndarray:
    """The reference output's frame ``series`` [rows, samples] with its unread (zero)
    samples filled by a sine-weighted circular average of the read samples around them
    (in place in ``series``), then all samples but those at normal-pixel slots replaced by
    ``FILL_ROUNDS`` rounds of Fourier filtering (``fill_gain``); a new array."""
    rows, row_length = series.shape
    _sine_fill(series.ravel(), FILL_WEIGHTS)
    normal_slots = timing.normal_slots
    gain = fill_gain(rows, row_length, timing.block_period)
    every_slot = np.arange(row_length)
    filled = series
    for _ in range(FILL_ROUNDS):
        spectrum = order.forward(filled)
        spectrum *= gain
        filled = order.inverse(spectrum, every_slot)
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
    in float32, plus ``restore`` there (added in float64, then rounded); columns reversed
    when ``flipped``. Transposed through a buffer of ``WRITE_COLUMNS`` readout rows at a
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
                plane[row, column] = np.float32(np.float64(buffer[j, t]) + restore[row, column])
