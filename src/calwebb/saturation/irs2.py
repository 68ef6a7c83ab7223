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
    pattern: list[list[int]] | None = None,
    bias: np.ndarray | None = None,
    zeroframe: np.ndarray | None = None,
) -> None:
    """OR SATURATED / AD_FLOOR / DO_NOT_USE into ``groupdq`` at the ``normal_rows`` of IRS2
    ramps; zero unusable ZEROFRAME values there.

    ``data`` [nints, ngroups, frame rows, nx]; ``thresholds`` (prepared, NO_SAT_CHECK
    never saturating) and ``bias`` (None: zero; NaN: no group-2 test) are [normal rows, nx];
    ``pattern`` the frames of each group (None: no group-2 test). Works in place on
    ``groupdq`` and ``zeroframe``.
    """
    ngroups = data.shape[1]
    bias = np.zeros_like(thresholds) if bias is None else bias
    for integration in range(data.shape[0]):
        planes, flags = data[integration], groupdq[integration]
        flag_from_first_saturated_group(planes, flags, thresholds, n_pix_grow_sat, normal_rows,
                                        flagged_saturate=False)
        if pattern is not None and ngroups > 2:
            hits = second_group_hits(planes, planes[2, normal_rows] >= thresholds, thresholds,
                                     bias, pattern, normal_rows)
            flags[1, normal_rows] |= np.where(grow(hits, n_pix_grow_sat), SAT,
                                              0).astype(np.uint8)
        if zeroframe is not None:
            plane = zeroframe[integration][normal_rows]
            clear_unusable_zeroframe(plane, thresholds, n_pix_grow_sat)
            zeroframe[integration][normal_rows] = plane
