"""Flagging groups affected by charge migration (the brighter-fatter effect)."""

import numpy as np

from calwebb import dqflags

CHARGELOSS_DNU = np.uint8(dqflags.CHARGELOSS | dqflags.DO_NOT_USE)


def flag_charge_migration(data: np.ndarray, groupdq: np.ndarray, threshold: float) -> None:
    """Groups above ``threshold`` and all later ones, for the pixel and its 4 neighbours,
    get CHARGELOSS | DO_NOT_USE (groups flagged exactly DO_NOT_USE are not triggers). In place.
    """
    trigger = (data > threshold) & (groupdq != dqflags.DO_NOT_USE)
    affected = np.logical_or.accumulate(trigger, axis=1)
    spread = affected.copy()
    spread[..., 1:, :] |= affected[..., :-1, :]
    spread[..., :-1, :] |= affected[..., 1:, :]
    spread[..., :, 1:] |= affected[..., :, :-1]
    spread[..., :, :-1] |= affected[..., :, 1:]
    groupdq[spread] |= CHARGELOSS_DNU
