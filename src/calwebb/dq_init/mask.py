"""Seeding the ramp's DQ arrays from the bad-pixel mask."""

import numpy as np

from calwebb import dqflags


def apply_mask(pixeldq: np.ndarray, groupdq: np.ndarray, mask: np.ndarray) -> None:
    """PIXELDQ |= mask; every group gets the mask's DO_NOT_USE bit. In place."""
    pixeldq |= mask.astype(np.uint32)
    groupdq |= (mask & dqflags.DO_NOT_USE).astype(np.uint8)
