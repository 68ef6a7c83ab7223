"""Flagging the first groups of MIRI integrations affected by the reset-switch charge decay."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags

SAT = dqflags.SATURATED


def groups_to_skip(table: np.ndarray, readpatt: str, subarray: str) -> tuple[int, int] | None:
    """(groups to skip in integration 1, in later integrations) from the RSCD table, or None."""
    subarray = "SLITLESSPRISM" if subarray.upper() == "SUBPRISM" else subarray
    for row in table:
        if _text(row["subarray"]) == subarray and _text(row["readpatt"]) == readpatt:
            first = int(row["group_skip1"])
            return (first if first >= 0 else 1), int(row["group_skip"])
    return None


def limit_skip(skip: int, ngroups: int) -> int:
    """1 for five groups or fewer; never leave fewer than three groups."""
    if ngroups <= 5:
        skip = 1
    return min(skip, max(0, ngroups - 3))


def skip_per_pixel(groupdq: np.ndarray, skip: int) -> np.ndarray:
    """Groups to flag [nints, ny, nx]: ``skip``, lowered where saturation comes early.

    A pixel whose first saturated group (0-based) is ``s`` ≥ 1 keeps two usable groups
    before it when possible: ``clip(s - 2, 0, skip)``; pixels saturated in group 0 keep
    ``skip``.
    """
    saturated = (groupdq & SAT) != 0
    first_saturated = np.where(saturated.any(axis=1), saturated.argmax(axis=1), groupdq.shape[1])
    lowered = np.clip(first_saturated - 2, 0, skip)
    return np.where(first_saturated == 0, skip, lowered)


def flag_skipped_groups(groupdq: np.ndarray, skips: np.ndarray) -> None:
    """DO_NOT_USE on groups below each pixel's skip count, in place."""
    groups = np.arange(groupdq.shape[1])[None, :, None, None]
    groupdq[groups < skips[:, None]] |= np.uint8(dqflags.DO_NOT_USE)


def _text(value) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()
