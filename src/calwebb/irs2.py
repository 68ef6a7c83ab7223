"""NIRSpec IRS2 readouts: where the interleaved reference pixels sit in the raw frame.

An IRS2 frame has 3200 pixels along the detector's fast (readout) axis, which is the row
axis of the DMS orientation NIRSpec data are stored in: five outputs of 640 pixels, the
first the reference output, then the four amplifiers. Within an output, NRS_NORM normal
pixels alternate with NRS_REF interleaved reference pixels, starting and ending with half
a normal block; the amplifiers alternate in readout direction. NRS2 stores the detector
rotated by 180 degrees, so its DMS rows run against the readout. Every step before refpix
sees the 3200-row frame; refpix removes the reference pixels (stage1.md §2.4, §2.7), cutting
each array to its normal rows within its own memory (``move_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from calwebb.errors import DataModelError
from calwebb.memory import release_pages

#: pixels along either axis of a frame without interleaved reference pixels
NORMAL_LENGTH = 2048
#: readout outputs along the interleaved axis: the reference output and four amplifiers
OUTPUTS = 5


def is_irs2(shape: tuple[int, ...]) -> bool:
    """Whether a NIR frame of this shape holds interleaved reference pixels (an axis longer
    than the detector's 2048 pixels, as the official pipeline decides)."""
    return len(shape) >= 2 and max(shape[-2:]) > NORMAL_LENGTH


@dataclass(frozen=True)
class IRS2Layout:
    """The interleaving of one IRS2 frame: ``length`` pixels along the interleaved axis,
    ``normal`` (NRS_NORM) normal pixels between groups of ``reference`` (NRS_REF) reference
    pixels; ``flipped`` when DMS rows run against the readout (NRS2)."""

    length: int = 3200
    normal: int = 16
    reference: int = 4
    flipped: bool = False

    @classmethod
    def of(cls, model) -> IRS2Layout:
        """The layout of an IRS2 ramp model (NRS_NORM/NRS_REF default to 16 and 4)."""
        detector = (model.meta.instrument.detector or "").upper()
        if detector not in ("NRS1", "NRS2"):
            raise DataModelError(
                f"{model.meta.filename or 'ramp'}: IRS2 frames are NIRSpec NRS1/NRS2 data; "
                f"DETECTOR is {detector or 'missing'}")
        exposure = model.meta.exposure
        layout = cls(int(model.data.shape[-2]), int(exposure.nrs_normal or 16),
                     int(exposure.nrs_reference or 4), detector == "NRS2")
        if layout.length % OUTPUTS or layout.normal < 2 or layout.reference < 1:
            raise DataModelError(
                f"{model.meta.filename or 'ramp'}: an IRS2 frame of {layout.length} rows with "
                f"NRS_NORM={layout.normal}, NRS_REF={layout.reference} cannot be split into "
                f"{OUTPUTS} outputs")
        return layout

    @property
    def section(self) -> int:
        """Pixels per output along the interleaved axis (640)."""
        return self.length // OUTPUTS

    def output_pattern(self) -> np.ndarray:
        """True at the normal pixels of one output, in readout order."""
        pattern = np.ones(self.section, bool)
        for start in range(self.normal // 2, self.section + 1, self.normal + self.reference):
            pattern[start:start + self.reference] = False
        return pattern

    def readout_mask(self) -> np.ndarray:
        """True at the normal pixels along the interleaved axis, in readout order: none in
        the reference output, every other amplifier's pattern reversed."""
        pattern = self.output_pattern()
        outputs = [np.zeros(self.section, bool)]
        outputs += [pattern[::-1] if amplifier % 2 else pattern for amplifier in range(4)]
        return np.concatenate(outputs)

    def normal_mask(self) -> np.ndarray:
        """True at the DMS rows that hold normal pixels (``length`` long)."""
        mask = self.readout_mask()
        return mask[::-1] if self.flipped else mask

    def normal_rows(self) -> np.ndarray:
        """The DMS row indices of the normal pixels, increasing (2048 for a full frame)."""
        return np.flatnonzero(self.normal_mask())


def move_rows(array: np.ndarray, rows: np.ndarray) -> None:
    """Move ``array[..., rows, :]`` (``rows`` increasing) to the head of C-contiguous
    ``array``'s memory, in place, as an array [..., len(rows), columns] would lie there. The
    rest of the memory is undefined afterwards: plane by plane, what lies between the moved
    rows and the planes still to move is handed back to the system
    (``memory.release_pages``)."""
    lines = array.reshape(-1, array.shape[-1])
    plane_rows, rows = array.shape[-2], np.asarray(rows, np.int64)
    for plane in range(lines.shape[0] // max(plane_rows, 1)):
        _move_plane_rows(lines, rows, plane_rows, plane)
        release_pages(lines[(plane + 1) * rows.size:(plane + 1) * plane_rows])


@njit(cache=True, nogil=True)
def _move_plane_rows(lines, rows, plane_rows, plane):
    """Row ``rows[j]`` of plane ``plane`` (``plane_rows`` rows each) of ``lines`` to line
    plane * len(rows) + j, in increasing order: once the planes before it have moved, no
    line is written before it is read."""
    for j in range(rows.size):
        target, source = plane * rows.size + j, plane * plane_rows + rows[j]
        if target != source:
            lines[target] = lines[source]
