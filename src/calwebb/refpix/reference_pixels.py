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

    def add(self, ramps: list[np.ndarray], pixeldq: np.ndarray, first_row: int) -> None:
        """Take the reference pixels of ``ramps`` ([ngroups, rows, nx] science frame each)
        and their ``pixeldq`` [rows, nx], whose first row is frame row ``first_row``."""
        if not self.nramps:
            self._allocate(ramps)
        if self.mode == "nir_subarray":
            self._add_flagged(ramps, pixeldq, first_row)
            return
        ny, nx = self.frame_shape
        rows = np.arange(first_row, first_row + pixeldq.shape[0])
        good = nir.usable(pixeldq)
        for name, destination, source in (("bottom", rows, rows),
                                          ("top", rows - (ny - nir.N_REF), rows)):
            if name not in self.good:
                continue
            keep = (destination >= 0) & (destination < nir.N_REF)
            if keep.any():
                into, out_of = destination[keep], source[keep] - first_row
                self.good[name][into] = good[out_of]
                for index, ramp in enumerate(ramps):
                    self.strips[name][index][:, into] = ramp[:, out_of]
        for name, columns in (("left", slice(0, nir.N_REF)), ("right", slice(nx - nir.N_REF, nx))):
            self.good[name][rows] = good[:, columns]
            for index, ramp in enumerate(ramps):
                self.strips[name][index][:, rows] = ramp[:, :, columns]

    def _allocate(self, ramps) -> None:
        self.nramps = len(ramps)
        if self.mode == "nir_subarray":
            self._samples = [[] for _ in ramps]
            return
        ny, nx = self.frame_shape
        names = ("left", "right") if self.mode == "miri" else nir.STRIPS
        shapes = {"bottom": (nir.N_REF, nx), "top": (nir.N_REF, nx), "left": (ny, nir.N_REF),
                  "right": (ny, nir.N_REF)}
        for name in names:
            self.good[name] = np.zeros(shapes[name], bool)
            self.strips[name] = [np.zeros((ramp.shape[0], *shapes[name]), ramp.dtype)
                                 for ramp in ramps]

    def _add_flagged(self, ramps, pixeldq, first_row) -> None:
        flagged = ((pixeldq & dqflags.REFERENCE_PIXEL) != 0) & nir.usable(pixeldq)
        rows, columns = np.nonzero(flagged)
        self._coordinates.append(nir.detector_coordinates(
            rows + first_row, columns, self.frame_shape, self.fastaxis, self.slowaxis))
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
