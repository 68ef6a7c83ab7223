"""Rescaling groups averaged on board with a divisor other than NFRAMES."""

import numpy as np


def group_scale_factor(nframes: int | None, frame_divisor: int | None) -> float | None:
    """FRMDIVSR / NFRAMES, or None when no rescaling applies (stage1.md §2.1)."""
    if not nframes:
        return None
    if frame_divisor is None or frame_divisor == nframes:
        return None
    return frame_divisor / nframes


def scale_groups(data: np.ndarray, factor: float) -> None:
    """Multiply every group by ``factor``, in place."""
    data *= np.float32(factor)
