"""Preparing ramps for fitting: group ranges and MIRI group trimming."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags

DNU = np.uint8(dqflags.DO_NOT_USE)


def apply_group_range(groupdq: np.ndarray, first: int | None, last: int | None) -> None:
    """DO_NOT_USE outside groups first..last (0-based, inclusive), in place.

    Ignored when first ≥ last; out-of-range values are clamped.
    """
    ngroups = groupdq.shape[1]
    first = 0 if first is None else min(max(first, 0), ngroups - 1)
    last = ngroups - 1 if last is None else min(max(last, 0), ngroups - 1)
    if first >= last:
        return
    groupdq[:, :first] |= DNU
    groupdq[:, last + 1:] |= DNU


def drop_unusable_miri_groups(data: np.ndarray, groupdq: np.ndarray,
                              unusable: np.ndarray | None = None):
    """Trim leading (and a trailing) group that is DO_NOT_USE everywhere (stage1.md §4.3).

    ``unusable`` [ngroups] says which groups are DO_NOT_USE everywhere when the arrays are
    only part of the frame (None: decided from ``groupdq``). Returns (data, groupdq) views,
    or (None, None) when fewer than two groups remain.
    """
    if unusable is None:  # (every integration's group DO_NOT_USE on every pixel)
        unusable = dqflags.unusable_groups(groupdq).all(axis=0)
    start, stop = 0, data.shape[1]
    while stop - start > 1 and unusable[start]:
        start += 1
    if stop - start > 1 and unusable[stop - 1]:
        stop -= 1
    if stop - start < 2:
        return None, None
    if start == 0 and stop == data.shape[1]:
        return data, groupdq
    groupdq = groupdq[:, start:stop].copy()
    if start:
        groupdq[:, 0] &= np.uint8(~np.uint8(dqflags.JUMP_DET))
    return data[:, start:stop], groupdq
