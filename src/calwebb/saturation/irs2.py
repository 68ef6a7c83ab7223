"""Saturation flagging of NIRSpec IRS2 frames (stage1.md §2.4).

Only the normal pixels are tested: per integration the kernels of ``flag.py`` flag the
2048-row image of them that the SATURATION reference describes (growth included) in place,
reading and flagging only those rows of the ramp; interleaved reference rows are never
flagged. As the official IRS2 path does, flags already in GROUPDQ are neither grown nor
carried forward, there is no backward (dilution) pass, and the group-2 test marks group 2
SATURATED (grown) where group 3 alone reaches the threshold.
"""

from __future__ import annotations

import numpy as np

from calwebb.errors import ReferenceFileError
from calwebb.saturation.flag import (
    SAT,
    clear_unusable_zeroframe,
    flag_from_first_saturated_group,
    grow,
    second_group_hits,
)

#: rows of a group compared with the thresholds at a time
BAND_ROWS = 256


def normal_part(image: np.ndarray, normal_rows: np.ndarray, frame_rows: int,
                name: str) -> np.ndarray:
    """The normal-pixel rows of a reference ``image`` covering the IRS2 frame
    (``frame_rows`` rows), or the image itself if it holds only normal rows."""
    if image.shape[-2] == frame_rows:
        return image[..., normal_rows, :]
    if image.shape[-2] == len(normal_rows):
        return image
    raise ReferenceFileError(
        f"{name}: {image.shape[-2]} rows fit neither the IRS2 frame ({frame_rows} rows) nor "
        f"its normal pixels ({len(normal_rows)} rows)")


def flag_saturation_irs2(
    data: np.ndarray,
    groupdq: np.ndarray,
    thresholds: np.ndarray,
    normal_rows: np.ndarray,
    n_pix_grow_sat: int = 1,
    zeroframe: np.ndarray | None = None,
) -> None:
    """OR SATURATED (from each pixel's first group at or above its threshold, grown) and
    AD_FLOOR | DO_NOT_USE (groups at or below zero) into ``groupdq`` at the ``normal_rows``
    of IRS2 ramps; zero unusable ZEROFRAME values there.

    ``data`` [nints, ngroups, frame rows, nx]; ``thresholds`` (prepared, NO_SAT_CHECK
    never saturating) are [normal rows, nx]. Works in place on ``groupdq`` and
    ``zeroframe``; flags are only OR-ed in, so ``flag_second_group_irs2`` may come before or
    after.
    """
    for integration in range(data.shape[0]):
        flag_from_first_saturated_group(data[integration], groupdq[integration], thresholds,
                                        n_pix_grow_sat, normal_rows, flagged_saturate=False)
        if zeroframe is not None:
            plane = zeroframe[integration][normal_rows]
            clear_unusable_zeroframe(plane, thresholds, n_pix_grow_sat)
            zeroframe[integration][normal_rows] = plane


def flag_second_group_irs2(
    data: np.ndarray,
    groupdq: np.ndarray,
    thresholds: np.ndarray,
    normal_rows: np.ndarray,
    pattern: list[list[int]],
    bias: np.ndarray | None = None,
    n_pix_grow_sat: int = 1,
) -> None:
    """OR SATURATED into group 2 at the ``normal_rows`` of IRS2 ramps of 3 groups or more,
    grown, where group 3 alone reaches the threshold and a saturating event may have hit
    late in group 2 (``second_group_hits``; ``pattern`` the frames of each group, ``bias``
    [normal rows, nx]: None zero, NaN no test). In place; see ``flag_saturation_irs2``."""
    if data.shape[1] <= 2:
        return
    bias = np.zeros_like(thresholds) if bias is None else bias
    candidates = np.empty(thresholds.shape, bool)
    for integration in range(data.shape[0]):
        planes, flags = data[integration], groupdq[integration]
        for first in range(0, len(normal_rows), BAND_ROWS):  # (no copy of a whole group)
            rows = slice(first, first + BAND_ROWS)
            np.greater_equal(planes[2, normal_rows[rows]], thresholds[rows],
                             out=candidates[rows])
        hits = second_group_hits(planes, candidates, thresholds, bias, pattern, normal_rows)
        flags[1, normal_rows] |= np.where(grow(hits, n_pix_grow_sat), SAT,
                                          0).astype(np.uint8)
