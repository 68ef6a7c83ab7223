"""The reference pixels of a frame, gathered band by band before the correction is measured."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags
from calwebb.refpix import nir


def is_miri(model) -> bool:
    return (model.meta.instrument.name or "").upper() == "MIRI"


def correctable_ramps(model) -> list[np.ndarray]:
    """The ramps the step corrects, [ngroups, ny, nx] each: the integrations, then (NIR) each
    ZEROFRAME plane as a one-group ramp."""
    ramps = list(model.data)
    if not is_miri(model) and model.has_array("zeroframe"):
        ramps += [frame[None] for frame in model.zeroframe]
    return ramps


class ReferencePixels:
    """The reference pixels of a frame, gathered from bands of its rows.

    ``mode`` 'nir_full' and 'miri' keep the 4-pixel border strips of every ramp (science
    frame; MIRI uses the side columns only); 'nir_subarray' keeps every usable pixel flagged
    REFERENCE_PIXEL with its detector coordinates.
    """

    def __init__(self, mode: str, frame_shape: tuple[int, int], fastaxis: int, slowaxis: int):
        self.mode, self.frame_shape = mode, frame_shape
        self.fastaxis, self.slowaxis = fastaxis, slowaxis
        self.strips: dict[str, list[np.ndarray]] = {}
        self.good: dict[str, np.ndarray] = {}
        self._samples: list[list[np.ndarray]] = []
        self._coordinates: list[tuple[np.ndarray, np.ndarray]] = []
        self.nramps = 0
        #: SIRS kernels for the side correction of a full frame (None: running median)
        self.sirs_kernels: np.ndarray | None = None

    def regions(self) -> dict[str, tuple[tuple[int, int], tuple[int, int]]] | None:
        """{strip: ((first row, stop), (first column, stop))}: where in the frame the kept
        strips lie ('nir_full', 'miri'); None when the reference pixels are those flagged
        anywhere in the frame ('nir_subarray')."""
        if self.mode == "nir_subarray":
            return None
        ny, nx = self.frame_shape
        regions = {"bottom": ((0, nir.N_REF), (0, nx)), "top": ((ny - nir.N_REF, ny), (0, nx)),
                   "left": ((0, ny), (0, nir.N_REF)), "right": ((0, ny), (nx - nir.N_REF, nx))}
        names = ("left", "right") if self.mode == "miri" else nir.STRIPS
        return {name: regions[name] for name in names}

    def add(self, ramps: list[np.ndarray], pixeldq: np.ndarray, first_row: int,
            first_column: int = 0) -> None:
        """Take the reference pixels of ``ramps`` ([ngroups, rows, columns] of the science
        frame each) and their ``pixeldq`` [rows, columns]: a block of the frame whose first
        pixel is at frame row ``first_row``, column ``first_column``."""
        if not self.nramps:
            self._allocate(ramps)
        if self.mode == "nir_subarray":
            self._add_flagged(ramps, pixeldq, first_row, first_column)
            return
        good = nir.usable(pixeldq)
        block = ((first_row, first_row + pixeldq.shape[0]),
                 (first_column, first_column + pixeldq.shape[1]))
        for name, region in self.regions().items():
            (r0, r1), (c0, c1) = ((max(start, low), min(stop, high)) for (start, stop), (low, high)
                                  in zip(block, region, strict=True))
            if r0 >= r1 or c0 >= c1:
                continue
            (sr, _), (sc, _) = region
            into = (slice(r0 - sr, r1 - sr), slice(c0 - sc, c1 - sc))
            out_of = (slice(r0 - first_row, r1 - first_row),
                      slice(c0 - first_column, c1 - first_column))
            self.good[name][into] = good[out_of]
            for index, ramp in enumerate(ramps):
                self.strips[name][index][(slice(None), *into)] = ramp[(slice(None), *out_of)]

    def _allocate(self, ramps) -> None:
        self.nramps = len(ramps)
        if self.mode == "nir_subarray":
            self._samples = [[] for _ in ramps]
            return
        for name, ((r0, r1), (c0, c1)) in self.regions().items():
            self.good[name] = np.zeros((r1 - r0, c1 - c0), bool)
            self.strips[name] = [np.zeros((ramp.shape[0], r1 - r0, c1 - c0), ramp.dtype)
                                 for ramp in ramps]

    def _add_flagged(self, ramps, pixeldq, first_row, first_column) -> None:
        flagged = ((pixeldq & dqflags.REFERENCE_PIXEL) != 0) & nir.usable(pixeldq)
        rows, columns = np.nonzero(flagged)
        self._coordinates.append(nir.detector_coordinates(
            rows + first_row, columns + first_column, self.frame_shape, self.fastaxis,
            self.slowaxis))
        for samples, ramp in zip(self._samples, ramps, strict=True):
            samples.append(ramp[:, rows, columns])

    def samples_in_reading_order(self) -> tuple[list[np.ndarray], np.ndarray]:
        """(per ramp [ngroups, n] samples, their detector columns), ordered as the detector
        frame is read (row by row)."""
        if not self._coordinates:
            return [np.zeros((1, 0), np.float32) for _ in self._samples], np.zeros(0, int)
        rows = np.concatenate([coordinates[0] for coordinates in self._coordinates])
        columns = np.concatenate([coordinates[1] for coordinates in self._coordinates])
        order = np.lexsort((columns, rows))
        samples = [np.concatenate(parts, axis=1)[:, order] for parts in self._samples]
        return samples, columns[order]
