"""Striped subarray readouts (multistripe and superstripe): which detector rows they read.

A multistripe readout (MSTR_* keywords) fills the subarray's slow axis with pieces of the
detector. From the readout start it reads MSTR_RD1 reference rows, skips MSTR_SK1 rows and
reads MSTR_RD2 rows; then, until the subarray is full, either skips MSTR_SK2 rows and reads
MSTR_RD2 more, or (MSTR_RPT) returns to the start and reads the reference rows and the same
MSTR_RD2 rows again (with MSTR_ILV, each return skips MSTR_SK2 + MSTR_RD2 rows further than
the one before). A superstripe readout (SSTR_NST > 0) reads SSTR_NST such stripes, each
SSTR_STP rows further along than the one before (MSTR_RD2 = 0: SSTR_STP rows each), in
successive integrations: the ramp's integrations cycle over the stripes. The reference
rows are the same for every stripe.

Rows are counted along the detector's slow (row-to-row) axis; the subarray start keyword of
that axis gives where the readout starts, which for a negative SLOWAXIS is its high end.
Everything here is expressed in the science (DMS) frame, as the arrays are stored: the slow
axis is the row axis when |FASTAXIS| = 1, the column axis otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from calwebb.errors import DataModelError

log = logging.getLogger(__name__)

#: detector pixels along either axis
DETECTOR_LENGTH = 2048
#: superstripe subarrays whose collated ramp spans the whole detector along the slow axis
#: (the rows no stripe reads are filled with NaN and flagged REFERENCE_PIXEL)
WHOLE_SLOW_AXIS_SUBARRAYS = frozenset(
    {"SUB17STRIPE_SOSS", "SUB60STRIPE_SOSS", "SUB204STRIPE_SOSS", "SUB680STRIPE_SOSS"})


class Piece(NamedTuple):
    """Rows read in one go: ``subarray`` positions in the striped frame, ``detector``
    positions on the detector (both science frame, along the slow axis)."""

    subarray: slice
    detector: slice
    reference: bool


def superstripe_count(model) -> int:
    """SSTR_NST: the stripes a superstripe ramp's integrations cycle over (0: none)."""
    return int(model.meta.subarray.num_superstripe or 0)


def is_striped(model) -> bool:
    """Whether ``model`` holds a multistripe or superstripe readout."""
    return model.meta.subarray.multistripe_reads1 is not None or superstripe_count(model) > 0


def stripe_views(nstripes: int) -> list[tuple[Any, slice]]:
    """(plane, integrations) pairs to visit a ramp with its per-stripe references: for a
    superstripe ramp (``nstripes`` > 0) each stripe's index into a [nstripes, ny, nx]
    reference with the integrations that read that stripe; otherwise ``...`` (the whole
    reference) with every integration."""
    if nstripes <= 0:
        return [(..., slice(None))]
    return [(stripe, slice(stripe, None, nstripes)) for stripe in range(nstripes)]


def slow_axis_index(fastaxis: int, selection: Any) -> tuple:
    """The index applying ``selection`` to the slow axis of a science-frame array."""
    return (..., selection, slice(None)) if abs(fastaxis) == 1 else (..., selection)


@dataclass(frozen=True)
class StripeReadout:
    """The geometry of a striped readout (see the module docstring)."""

    reads1: int
    skips1: int
    reads2: int  # MSTR_RD2 as given (0 for a pure superstripe)
    skips2: int
    repeat: bool
    interleave: bool
    step: int
    nstripes: int  # 1 for a multistripe readout
    superstripe: bool
    start: int  # detector row (0-based, readout order) where the readout starts
    size: int  # rows of the striped frame along the slow axis
    fastaxis: int
    slowaxis: int
    name: str

    @classmethod
    def of(cls, model) -> StripeReadout | None:
        """The readout of a striped model (None when it is not striped)."""
        if not is_striped(model):
            return None
        sub = model.meta.subarray
        fastaxis, slowaxis = int(sub.fastaxis or 1), int(sub.slowaxis or 2)
        if abs(fastaxis) == 1:
            start, size = sub.ystart, sub.ysize
        else:
            start, size = sub.xstart, sub.xsize
        if size is None:
            shape = model.array_shape("data") or model.data.shape
            size = shape[-2] if abs(fastaxis) == 1 else shape[-1]
        name = str(sub.name or "")
        start = _readout_start(int(start or 1), slowaxis, name)
        nstripes = superstripe_count(model)
        readout = cls(int(sub.multistripe_reads1 or 0), int(sub.multistripe_skips1 or 0),
                      int(sub.multistripe_reads2 or 0), int(sub.multistripe_skips2 or 0),
                      bool(sub.repeat_stripe), bool(sub.interleave_reads1),
                      int(sub.superstripe_step or 0), max(nstripes, 1), nstripes > 0,
                      start, int(size), fastaxis, slowaxis, name)
        if readout.stripe_length <= 0:
            raise DataModelError(
                f"{model.meta.filename or 'ramp'}: a striped readout needs MSTR_RD2 > 0 "
                f"(or, for superstripes, SSTR_STP > 0); MSTR_RD2 = {readout.reads2}, "
                f"SSTR_STP = {readout.step}")
        last = readout.pieces(readout.nstripes - 1)  # (checks that the stripes fill the frame)
        rows = [row for piece in readout.pieces(0) + last
                for row in (piece.detector.start, piece.detector.stop)]
        if min(rows) < 0 or max(rows) > DETECTOR_LENGTH:
            raise DataModelError(
                f"{model.meta.filename or 'ramp'}: subarray {name or '?'} reads detector rows "
                f"{min(rows)}-{max(rows) - 1} along the slow axis, beyond the detector's "
                f"{DETECTOR_LENGTH}")
        return readout

    @property
    def stripe_length(self) -> int:
        """Rows in each science piece: MSTR_RD2, or SSTR_STP for a pure superstripe."""
        if self.superstripe and self.reads2 <= 0:
            return self.step
        return self.reads2

    @property
    def slow_axis(self) -> int:
        """The slow axis of science-frame arrays (-2: rows, -1: columns)."""
        return -2 if abs(self.fastaxis) == 1 else -1

    def pieces(self, stripe: int) -> list[Piece]:
        """What ``stripe`` (0 for a multistripe readout) reads, in readout order."""
        pieces = []
        head, filled = self.start, 0

        def read(count: int, reference: bool) -> None:
            nonlocal head, filled
            pieces.append(self._science_frame(filled, head, count, reference))
            head, filled = head + count, filled + count

        offset = self.skips1 + self.step * stripe
        if self.reads1 > 0:
            read(self.reads1, True)
        head += offset
        read(self.stripe_length, False)
        interleaved_skip = self.skips1
        while filled < self.size:
            if self.repeat:
                head = self.start
                if self.reads1 > 0:
                    read(self.reads1, True)
                if self.interleave:
                    interleaved_skip += self.skips2 + self.stripe_length
                    head += interleaved_skip
                else:
                    head += offset
            else:
                head += self.skips2
            read(self.stripe_length, False)
        if filled != self.size:
            raise DataModelError(
                f"subarray {self.name or '?'}: the multistripe keywords read {filled} rows "
                f"along the slow axis but the subarray has {self.size}")
        return pieces

    def _science_frame(self, filled: int, head: int, count: int, reference: bool) -> Piece:
        if self.slowaxis > 0:
            return Piece(slice(filled, filled + count), slice(head, head + count), reference)
        return Piece(slice(self.size - filled - count, self.size - filled),
                     slice(DETECTOR_LENGTH - head - count, DETECTOR_LENGTH - head), reference)

    def science_pieces(self, stripe: int) -> list[Piece]:
        return [piece for piece in self.pieces(stripe) if not piece.reference]

    def detector_rows(self, stripe: int) -> np.ndarray:
        """For each position of ``stripe``'s frame along the slow axis, the detector row
        (science frame) it reads."""
        rows = np.empty(self.size, int)
        for piece in self.pieces(stripe):
            rows[piece.subarray] = np.arange(piece.detector.start, piece.detector.stop)
        return rows

    @property
    def pieces_per_stripe(self) -> int:
        """Science pieces per stripe: for superstripes, the groups of the collated ramp per
        group read (each piece becomes a group)."""
        return max(len(self.science_pieces(stripe)) for stripe in range(self.nstripes))

    def collated_window(self) -> tuple[int, int]:
        """(first detector row, rows) along the slow axis of the collated ramp (science
        frame, first row 0-based): the rows the stripes' science pieces span, or the whole
        detector for the subarrays of ``WHOLE_SLOW_AXIS_SUBARRAYS``."""
        if self.name.upper() in WHOLE_SLOW_AXIS_SUBARRAYS:
            return 0, DETECTOR_LENGTH
        pieces = [piece.detector for stripe in range(self.nstripes)
                  for piece in self.science_pieces(stripe)]
        first = min(piece.start for piece in pieces)
        return first, max(piece.stop for piece in pieces) - first

    def placements(self) -> list[tuple[int, int, slice, slice]]:
        """(repeat, stripe, striped positions, collated positions) of every science piece,
        in the order collation writes them (a later one wins where pieces overlap)."""
        first, _ = self.collated_window()
        order = []
        for repeat in range(self.pieces_per_stripe):
            for stripe in range(self.nstripes):
                pieces = self.science_pieces(stripe)
                if repeat < len(pieces):
                    piece = pieces[repeat]
                    order.append((repeat, stripe, piece.subarray,
                                  slice(piece.detector.start - first,
                                        piece.detector.stop - first)))
        return order


def _readout_start(start: int, slowaxis: int, name: str) -> int:
    """Detector row (0-based, readout order) of the 1-based science-frame start ``start``."""
    if slowaxis < 0:
        if start == 1:  # early products give 1 where the readout's high end is meant
            log.warning("Subarray start 1 with SLOWAXIS=%d: taking the readout to start at "
                        "detector row 0", slowaxis)
            position = 0
        else:
            position = DETECTOR_LENGTH - start
    else:
        position = start - 1
    if "DHS" in name.upper() and position != 0:
        log.warning("DHS subarray %s: taking the readout to start at detector row 0", name)
        position = 0
    return position


def cut_reference_image(array: np.ndarray, readout: StripeReadout) -> np.ndarray:
    """The rows of a reference image that a striped frame reads.

    ``array`` [..., ny, nx] (science frame) is already cut to the subarray along the fast
    axis and covers the whole detector along the slow axis. The result has the striped
    frame's shape; for a superstripe readout it is [nstripes, ny, nx], one plane per stripe.
    """
    cuts = [np.take(array, readout.detector_rows(stripe), axis=readout.slow_axis)
            for stripe in range(readout.nstripes)]
    return np.stack(cuts) if readout.superstripe else cuts[0]


def collate_ramp(ramp: np.ndarray, readout: StripeReadout, fill) -> np.ndarray:
    """A superstripe ramp [nints × nstripes, ngroups, ...] (science frame) as contiguous
    integrations [nints, ngroups × repeats, ...] over the collated window, ``fill`` where no
    stripe reads; repeated pieces become successive groups."""
    nstripes, repeats = readout.nstripes, readout.pieces_per_stripe
    nints = ramp.shape[0] // nstripes
    collated = _collated_empty(ramp.shape, readout, fill, ramp.dtype,
                               (nints, ramp.shape[1] * repeats))
    for repeat, stripe, source, target in readout.placements():
        stripe_ramp = ramp[stripe:nints * nstripes:nstripes]
        collated[:, repeat::repeats][slow_axis_index(readout.fastaxis, target)] = (
            stripe_ramp[slow_axis_index(readout.fastaxis, source)])
    return collated


def collate_planes(planes: np.ndarray, readout: StripeReadout, fill,
                   per_integration: bool) -> np.ndarray:
    """Per-stripe images [nstripes, ...] (``per_integration`` False: one image of the
    collated window) or per-integration ones [nints × nstripes, ...] (True: [nints, ...])
    placed like ``collate_ramp`` places group 0."""
    nstripes = readout.nstripes
    leading = (planes.shape[0] // nstripes,) if per_integration else ()
    collated = _collated_empty(planes.shape, readout, fill, planes.dtype, leading)
    for _, stripe, source, target in readout.placements():
        part = planes[stripe:(leading[0] if leading else 1) * nstripes:nstripes]
        part = part if per_integration else part[0]
        collated[slow_axis_index(readout.fastaxis, target)] = (
            part[slow_axis_index(readout.fastaxis, source)])
    return collated


def _collated_empty(shape: tuple, readout: StripeReadout, fill, dtype,
                    leading: tuple) -> np.ndarray:
    _, rows = readout.collated_window()
    image = list(shape[-2:])
    image[readout.slow_axis] = rows
    return np.full((*leading, *image), fill, dtype)


def split_int_times(int_times: np.ndarray, nstripes: int, first_integration: int,
                    stripe_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(per-stripe table, per-integration table) from the INT_TIMES of a superstripe ramp,
    one row per stripe read. The per-stripe table keeps every row with its integration
    number (counted from ``first_integration``) and stripe number (1-based); an
    integration starts when its first stripe starts and ends when its last one ends."""
    count = len(int_times) // nstripes
    if count * nstripes != len(int_times):
        raise DataModelError(f"INT_TIMES has {len(int_times)} rows: not whole integrations of "
                             f"{nstripes} superstripes")
    per_stripe = np.zeros(len(int_times), stripe_dtype)
    per_stripe["integration_number"] = np.repeat(np.arange(count) + first_integration, nstripes)
    per_stripe["stripe_number"] = np.arange(len(int_times)) % nstripes + 1
    per_integration = np.zeros(count, int_times.dtype)
    per_integration["integration_number"] = np.arange(count) + first_integration
    for name in int_times.dtype.names:
        if name == "integration_number":
            continue
        per_stripe[name] = int_times[name]
    for scale in ("MJD_UTC", "BJD_TDB"):
        begin = np.asarray(int_times[f"int_start_{scale}"][:count * nstripes:nstripes],
                           np.float64)
        end = np.asarray(int_times[f"int_end_{scale}"][nstripes - 1:count * nstripes:nstripes],
                         np.float64)
        per_integration[f"int_start_{scale}"] = begin
        per_integration[f"int_end_{scale}"] = end
        per_integration[f"int_mid_{scale}"] = (end - begin) / 2.0 + begin
    return per_stripe, per_integration


def read_times(readout: StripeReadout, ngroups: int, nframes: int, groupgap: int,
               noutputs: int, fast_size: int) -> list[list[float]]:
    """The time (s) of every read averaged into each group of the collated ramp, whose
    groups are the repeated pieces: the first piece of a group is read a reset frame after
    the previous group, the next ones a subframe (reference and science rows of one
    repeat) later each; frames are read a full frame time apart."""
    rows, columns = readout.size, fast_size
    extra_rows, extra_clocks = (2 if noutputs == 1 and columns >= 9 else 3), 0
    if noutputs == 4:
        extra_rows, extra_clocks = 1, 1

    def frame_time(nrows: int, padding_rows: int, padding_clocks: int) -> float:
        end_of_row_clocks = 12
        return ((columns / noutputs + end_of_row_clocks) * (nrows + padding_rows)
                + padding_clocks) * 10.0e-6

    frame = frame_time(rows, extra_rows, extra_clocks)
    subframe_rows = readout.reads1 + readout.reads2
    if subframe_rows > 0:
        steps = [frame_time(subframe_rows, extra_rows, extra_clocks)]
        steps += [frame_time(subframe_rows, 0, 0)] * (rows // subframe_rows - 1)
    else:
        steps = [frame]
    times, elapsed = [], 0.0
    for _ in range(ngroups):
        for step in steps:
            times.append([elapsed + step + index * frame for index in range(nframes)])
            elapsed += step
        elapsed += frame * (nframes - 1 + groupgap)
    return times
