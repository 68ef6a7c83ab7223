"""Flagging the first groups of MIRI integrations affected by the reset-switch charge decay."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb import dqflags

SAT = dqflags.SATURATED
DO_NOT_USE = np.uint8(dqflags.DO_NOT_USE)


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


def flag_skipped_groups(groupdq: np.ndarray, skip: int) -> np.ndarray:
    """DO_NOT_USE on each pixel's first groups of every integration of ``groupdq`` [nints,
    ngroups, ny, nx], in place; returns how many [nints, ny, nx]: ``skip``, lowered where
    saturation comes early. A pixel whose first saturated group (0-based) is ``s`` ≥ 1 keeps
    two usable groups before it when possible: ``clip(s - 2, 0, skip)``; pixels saturated in
    group 0 keep ``skip``."""
    skips = np.empty((groupdq.shape[0], *groupdq.shape[2:]), np.int64)
    _flag_skipped(groupdq, skip, skips)
    return skips


@njit(cache=True, parallel=True)
def _flag_skipped(groupdq, skip, skips):
    nints, ngroups, ny, nx = groupdq.shape
    for row in prange(nints * ny):
        integration = row // ny
        y = row - integration * ny
        first = np.full(nx, ngroups, np.int64)
        for group in range(ngroups):
            plane = groupdq[integration, group, y]
            for x in range(nx):
                if first[x] == ngroups and plane[x] & SAT:
                    first[x] = group
        for x in range(nx):
            skips[integration, y, x] = skip if first[x] == 0 else min(max(first[x] - 2, 0), skip)
        for group in range(min(skip, ngroups)):
            plane = groupdq[integration, group, y]
            for x in range(nx):
                if group < skips[integration, y, x]:
                    plane[x] |= DO_NOT_USE


def _text(value) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip()
