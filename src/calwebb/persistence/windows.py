"""Persistence windows: after a pixel first saturates, flag its groups for a while.

A window array holds, per pixel, the time (Unix seconds) at which its current window ends,
0 for none; it can be carried from one exposure to the next (stage1.md §2.18).
"""

from __future__ import annotations

import numpy as np

from calwebb import dqflags

UNIX_EPOCH_MJD = 40587.0


def mjd_to_unix(mjd: float) -> float:
    return (mjd - UNIX_EPOCH_MJD) * 86400.0


def flag_persistence(data: np.ndarray, groupdq: np.ndarray, windows: np.ndarray,
                     integration_starts: list[float], group_time: float,
                     persistence_time: float, dn_threshold: float | None,
                     do_not_use: bool) -> None:
    """Update ``windows`` and flag PERSISTENCE (and DO_NOT_USE) in ``groupdq``, in place.

    Group g of integration i is at time start_i + (g + 1)·TGROUP. A window opens at a pixel's
    first saturated group of an integration (or where the signal exceeds ``dn_threshold``
    and no window is open) and lasts ``persistence_time`` seconds.
    """
    flag = np.uint8(dqflags.PERSISTENCE | (dqflags.DO_NOT_USE if do_not_use else 0))
    for integration, start in enumerate(integration_starts):
        saturated_groups = np.zeros(windows.shape, np.int32)
        now = start
        for group in range(data.shape[1]):
            now += group_time
            windows[windows < now] = 0.0
            window_end = now + persistence_time
            plane = groupdq[integration, group]
            saturated_groups += (plane & dqflags.SATURATED) != 0
            windows[saturated_groups == 1] = window_end
            if dn_threshold is not None:
                windows[(data[integration, group] > dn_threshold) & (windows == 0)] = window_end
            windows[windows > window_end] = 0.0  # a window cannot end after one opened now
            plane[windows > 0] |= flag
