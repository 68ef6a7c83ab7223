"""Subtracting the MIRI reset-anomaly correction (stage1.md §2.10)."""

import numpy as np


def subtract_reset(data: np.ndarray, correction: np.ndarray, first_integration: int = 0) -> None:
    """Subtract ``correction`` [nints_ref, ngroups_ref, ny, nx] from the leading groups, in place.

    Integration ``i`` of ``data`` (exposure integration ``first_integration + i``) uses
    reference integration ``min(first_integration + i, nints_ref - 1)``; NaN counts as zero.
    """
    nints_ref, ngroups_ref = correction.shape[:2]
    ngroups = min(ngroups_ref, data.shape[1])
    for index in range(data.shape[0]):
        plane = correction[min(first_integration + index, nints_ref - 1), :ngroups]
        data[index, :ngroups] -= np.nan_to_num(plane).astype(data.dtype)
