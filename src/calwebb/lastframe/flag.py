"""Flagging the first or last group of every integration."""

import numpy as np

from calwebb import dqflags


def flag_group(groupdq: np.ndarray, group: int) -> None:
    """DO_NOT_USE on ``group`` of every integration, in place."""
    groupdq[:, group] |= np.uint8(dqflags.DO_NOT_USE)
