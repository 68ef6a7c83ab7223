"""Flagging saturated groups (stage1.md §2.4)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb import dqflags

AD_LIMIT = 65535
SAT, DNU = np.uint8(dqflags.SATURATED), np.uint8(dqflags.DO_NOT_USE)
LOW = np.uint8(dqflags.AD_FLOOR | dqflags.DO_NOT_USE)


def prepare_thresholds(thresholds: np.ndarray, reference_dq: np.ndarray,
                       copy: bool = True) -> tuple:
    """(thresholds, reference DQ) with unchecked pixels set never to saturate.

    Pixels flagged NO_SAT_CHECK or with a NaN threshold get AD_LIMIT + 1; NaN ones are
    also given NO_SAT_CHECK. With ``copy`` False, float32 ``thresholds`` and uint32
    ``reference_dq`` of the caller's own are prepared in place.
    """
    thresholds = thresholds.astype(np.float32, copy=copy)
    reference_dq = reference_dq.astype(np.uint32, copy=copy)
    reference_dq[np.isnan(thresholds)] |= dqflags.NO_SAT_CHECK
    np.copyto(thresholds, AD_LIMIT + 1, where=(reference_dq & dqflags.NO_SAT_CHECK) != 0)
    return thresholds, reference_dq


def read_pattern(ngroups: int, nframes: int) -> list[list[int]]:
    """1-based frame numbers in each group (group gaps ignored, as the official step)."""
    return [list(range(g * nframes + 1, g * nframes + nframes + 1)) for g in range(ngroups)]


def box_filter(image: np.ndarray, n_pix: int, reduce,
               out: np.ndarray | None = None) -> np.ndarray:
    """``reduce`` (np.minimum or np.maximum) over the (2n+1)×(2n+1) box around each pixel
    of a 2-D ``image``, as far as the box lies on the image (separable: along rows, then
    columns), into ``out`` (which may be ``image``; default a new array); one more array of
    the image's size meanwhile."""
    across = image.copy()
    for shift in range(1, n_pix + 1):
        reduce(across[:, shift:], image[:, :-shift], out=across[:, shift:])
        reduce(across[:, :-shift], image[:, shift:], out=across[:, :-shift])
    out = np.empty_like(image) if out is None else out
    out[...] = across
    for shift in range(1, n_pix + 1):
        reduce(out[shift:], across[:-shift], out=out[shift:])
        reduce(out[:-shift], across[shift:], out=out[:-shift])
    return out


def grow(mask: np.ndarray, n_pix: int) -> np.ndarray:
    """``mask`` dilated by a (2n+1)×(2n+1) box."""
    if n_pix <= 0:
        return mask
    return box_filter(mask, n_pix, np.maximum)


def flag_saturation(
    data: np.ndarray,
    groupdq: np.ndarray,
    thresholds: np.ndarray,
    unchecked: np.ndarray,
    n_pix_grow_sat: int = 1,
    pattern: list[list[int]] | None = None,
    bias: np.ndarray | None = None,
    zeroframe: np.ndarray | None = None,
) -> None:
    """Set SATURATED / AD_FLOOR / DO_NOT_USE in ``groupdq`` (and zero bad ZEROFRAME values).

    ``data`` [nints, ngroups, ny, nx]; ``thresholds`` [ny, nx] in DN; ``unchecked`` marks
    NO_SAT_CHECK pixels; ``pattern`` the frames of each group (None: no averaging
    corrections); ``bias`` the superbias (None: zero; a NaN bias exempts its pixel from the
    group-2 test, as officially). Works in place on ``groupdq`` and ``zeroframe``.
    """
    nints, ngroups = data.shape[:2]
    bias = np.zeros_like(thresholds) if bias is None else bias
    for integration in range(nints):
        planes, dq = data[integration], groupdq[integration]
        flag_from_first_saturated_group(planes, dq, thresholds, n_pix_grow_sat)
        if pattern is not None:
            _flag_diluted(planes, dq, thresholds, unchecked, pattern, n_pix_grow_sat)
            if ngroups > 2:
                _flag_second_group(planes, dq, thresholds, pattern, bias)
        if zeroframe is not None:
            clear_unusable_zeroframe(zeroframe[integration], thresholds, n_pix_grow_sat)


def clear_unusable_zeroframe(plane: np.ndarray, thresholds: np.ndarray,
                             n_pix_grow_sat: int) -> None:
    """Zero the frame-zero values that saturate (grown by the box) or sit at or below zero
    (not grown): zero marks them unusable downstream. In place."""
    plane[grow(plane >= thresholds, n_pix_grow_sat) | (plane <= 0)] = 0


def flag_from_first_saturated_group(planes, dq, thresholds, n_pix_grow_sat,
                                    rows: np.ndarray | None = None,
                                    flagged_saturate: bool = True) -> None:
    """SATURATED from each pixel's first saturated group on, grown by the box; AD_FLOOR and
    DO_NOT_USE on groups at or below zero. A group already flagged SATURATED counts as
    saturated unless ``flagged_saturate`` is False. With ``rows``, the rows of ``planes`` and
    ``dq`` that the rows of ``thresholds`` describe (the image is made of them).

    Flagging a pixel from the earliest first-saturation group within its box equals growing
    every group's saturated set, with one 2-D filter instead of one per group.
    """
    rows = np.arange(thresholds.shape[0]) if rows is None else rows
    first = np.empty(thresholds.shape, np.int16)
    _first_saturated_group(planes, dq, thresholds, rows, flagged_saturate, first)
    if n_pix_grow_sat > 0:
        box_filter(first, n_pix_grow_sat, np.minimum, out=first)
    _saturated_from(dq, first, rows)


@njit(cache=True, parallel=True)
def _first_saturated_group(planes, dq, thresholds, rows, flagged_saturate, first):
    """``first``[y, x]: the first group at or above the threshold or (``flagged_saturate``)
    already SATURATED at row rows[y] (ngroups: none); groups at or below zero get AD_FLOOR |
    DO_NOT_USE. One pass, in place."""
    ngroups = planes.shape[0]
    ny, nx = thresholds.shape
    for y in prange(ny):
        row = rows[y]
        for x in range(nx):
            first[y, x] = ngroups
        for group in range(ngroups):
            for x in range(nx):
                value, flags = planes[group, row, x], dq[group, row, x]
                if first[y, x] == ngroups and (value >= thresholds[y, x]
                                               or (flagged_saturate and flags & SAT)):
                    first[y, x] = group
                if value <= 0:
                    dq[group, row, x] = flags | LOW


@njit(cache=True, parallel=True)
def _saturated_from(dq, first, rows):
    """SATURATED on every group from ``first``[y, x] on, at row rows[y]. In place."""
    ngroups = dq.shape[0]
    ny, nx = first.shape
    for y in prange(ny):
        row = rows[y]
        for group in range(ngroups):
            for x in range(nx):
                if first[y, x] <= group:
                    dq[group, row, x] |= SAT


def _flag_diluted(planes, dq, thresholds, unchecked, pattern, n_pix_grow_sat) -> None:
    """Backward pass: groups whose average hides a saturation reached in their last frame."""
    for group in range(len(planes) - 2, -1, -1):
        dilution = np.mean(pattern[group]) / pattern[group][-1]
        if dilution == 1:
            continue
        limit = np.where(unchecked, thresholds, thresholds * dilution)
        partial = (
            (planes[group] >= limit)
            & ((dq[group] & (SAT | DNU)) == 0)
            & ((dq[group + 1] & SAT) != 0)
        )
        dq[group] |= np.where(grow(partial, n_pix_grow_sat), DNU, 0).astype(np.uint8)


def _flag_second_group(planes, dq, thresholds, pattern, bias) -> None:
    """Group 2 (index 1) DO_NOT_USE where a saturating event hit late in it (§2.4 step 3):
    among pixels SATURATED in group 3 but not in group 2."""
    candidates = ((dq[2] & SAT) != 0) & ((dq[1] & SAT) == 0)
    hits = second_group_hits(planes, candidates, thresholds, bias, pattern)
    dq[1] |= np.where(hits, DNU, 0).astype(np.uint8)


def second_group_hits(planes: np.ndarray, candidates: np.ndarray, thresholds: np.ndarray,
                      bias: np.ndarray, pattern: list[list[int]],
                      rows: np.ndarray | None = None) -> np.ndarray:
    """The ``candidates`` [ny, nx] whose group 2 (index 1) may hide a saturating event in its
    last frame: group 1 (bias-subtracted, extrapolated to the last frame of group 3) stays
    below the threshold, yet the group 1→2 jump exceeds the remaining range divided by the
    frames of group 2. ``planes`` [ngroups ≥ 3, ny, nx], or with ``rows`` those of its rows
    that the image's rows are; a NaN bias never hits."""
    hits = np.empty(thresholds.shape, bool)
    rows = np.arange(thresholds.shape[0]) if rows is None else rows
    _second_group_hits(planes, candidates, thresholds, bias, rows, float(np.mean(pattern[0])),
                       float(pattern[2][-1]), np.float32(len(pattern[1])), hits)
    return hits


@njit(cache=True, parallel=True)
def _second_group_hits(planes, candidates, thresholds, bias, rows, first_mean_frame,
                       third_last_frame, second_frames, hits):
    """``second_group_hits`` pixel by pixel, with the official array expressions' types:
    the extrapolated third group in float64, the jump and its limit in float32."""
    ny, nx = thresholds.shape
    for y in prange(ny):
        row = rows[y]
        for x in range(nx):
            hits[y, x] = False
            if not candidates[y, x]:
                continue
            first = planes[0, row, x] - bias[y, x]
            expected_third = (np.float64(first) / first_mean_frame * third_last_frame
                              + np.float64(bias[y, x]))
            jump = planes[1, row, x] - planes[0, row, x]
            limit = (thresholds[y, x] - planes[0, row, x]) / second_frames
            hits[y, x] = expected_third < thresholds[y, x] and jump > limit
