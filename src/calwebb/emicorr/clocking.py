"""When each MIRI pixel is read, expressed as a phase of an interference frequency.

MIRI reads its four output channels at once: column ``4c + l`` of a row is sampled by
channel ``l`` at the same instant as the other three columns of column group ``c``. A pixel
sample takes one 10 µs clock (``nsamples`` clocks in SLOW mode), a row ends with
``rowclocks`` extra clocks, and a subarray frame is padded by 7 clocks for every one of the
1024 detector rows it does not read. The R1 read patterns (FASTR1, SLOWR1) add one reset
frame of ``frameclocks`` clocks between integrations.

Two numerically different but equivalent forms are used, one per algorithm, so that each
reproduces the official phases to the last bit: the sequential algorithm counts absolute
integer clock ticks from the first pixel of the exposure; the joint algorithm works with
phase offsets (frame phase + group and integration phase steps).
"""

from __future__ import annotations

import numpy as np

#: seconds per pixel clock
CLOCK_SECONDS = 10.0e-6
#: clocks added per unread detector row in a subarray frame
CLOCKS_PER_SKIPPED_ROW = 7
#: detector rows
DETECTOR_ROWS = 1024
#: extra clocks that push a right-hand reference column out (full frame only)
REFERENCE_COLUMN_DELAY = 3

#: (rowclocks, frameclocks) per subarray, full frame split by readout speed: the values used
#: when no reference file gives them (on-the-fly correction frequencies)
SUBARRAY_CLOCKS = {
    "SLITLESSPRISM": (28, 15904),
    "MASKLYOT": (90, 32400),
    "SUB64": (28, 8512),
    "SUB128": (44, 11904),
    "MASK1140": (82, 23968),
    "MASK1550": (82, 23968),
    "MASK1065": (82, 23968),
    "FULL_FAST": (271, 277504),
    "FULL_SLOW": (2333, 2388992),
    "BRIGHTSKY": (162, 86528),
    "SUB256": (96, 29952),
}


def period_in_clocks(frequency: float) -> float:
    """The interference period in pixel clocks (390.625 Hz → 256 clocks)."""
    return (1.0 / frequency) / CLOCK_SECONDS


def frame_clocks(ny: int, rowclocks: int) -> float:
    """Clocks from the first pixel of one frame (group) to the first pixel of the next."""
    return ny * rowclocks + (float(DETECTOR_ROWS) - ny) * CLOCKS_PER_SKIPPED_ROW


def reset_clocks(readpatt: str, frameclocks: int) -> int:
    """Clocks of the extra reset frame between integrations (R1 patterns only)."""
    return frameclocks if str(readpatt).upper() in ("FASTR1", "SLOWR1") else 0


def readout_speed(readpatt: str) -> str | None:
    """'SLOW' or 'FAST' (SLOW wins when both appear), None for anything else."""
    readpatt = str(readpatt).upper()
    if "SLOW" in readpatt:
        return "SLOW"
    if "FAST" in readpatt:
        return "FAST"
    return None


def clocks_case_name(subarray: str, readpatt: str) -> str:
    """The key of the built-in clock table: FULL gets its readout speed appended."""
    if subarray == "FULL":
        readpatt = str(readpatt).upper()
        if "FAST" in readpatt:
            return "FULL_FAST"
        if "SLOW" in readpatt:
            return "FULL_SLOW"
    return subarray


# -- the sequential algorithm's absolute clock counts ----------------------------------------
def integration_phases(integration: int, ngroups: int, ny: int, nx4: int, nsamples: int,
                       rowclocks: int, frameclocks_between: int, period: float,
                       last_column_is_reference: bool) -> np.ndarray:
    """Phase in [0, 1) of every column group of every group of one integration.

    Shape (ngroups, ny, nx4), float64. The clock count of a sample is
    ``start(integration) + group·frame + row·rowclocks + column_group·nsamples``, an exact
    integer. When the subarray's last column group is the right-hand reference column (full
    frame) that column is delayed by a few clocks; the official code also adds 2**32 there,
    which is kept so that the phases agree.
    """
    frame = int(frame_clocks(ny, rowclocks))
    start = integration * (ngroups * frame + frameclocks_between)
    ticks = (start
             + np.arange(ngroups, dtype=np.int64)[:, None, None] * frame
             + np.arange(ny, dtype=np.int64)[None, :, None] * rowclocks
             + np.arange(nx4, dtype=np.int64)[None, None, :] * nsamples)
    if last_column_is_reference:
        ticks[..., nx4 - 1] += REFERENCE_COLUMN_DELAY + 2**32
    cycles = ticks.astype(np.float64) / period
    return cycles - np.floor(cycles)


# -- the joint algorithm's phase offsets -------------------------------------------------------
def frame_phase(ny: int, nx4: int, nsamples: int, rowclocks: int, period: float) -> np.ndarray:
    """Phase in [0, 1) of each column group of the first frame, shape (ny, nx4)."""
    ticks = (np.arange(ny, dtype=np.float64)[:, None] * rowclocks
             + (np.arange(nx4) * nsamples)[None, :])
    return (ticks / period) % 1


def group_phase_step(ny: int, rowclocks: int, period: float) -> float:
    """Phase advance from one group to the next, in [0, 1)."""
    return (frame_clocks(ny, rowclocks) / period) % 1


def integration_phase_step(ny: int, ngroups: int, rowclocks: int, frameclocks_between: int,
                           period: float) -> float:
    """Phase advance from one integration to the next (not wrapped)."""
    return group_phase_step(ny, rowclocks, period) * ngroups + frameclocks_between / period
