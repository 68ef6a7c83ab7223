"""Subtracting a dark ramp averaged to the science readout pattern (stage1.md §2.13)."""

from __future__ import annotations

import numpy as np


def frames_needed(ngroups: int, nframes: int, groupgap: int) -> int:
    return ngroups * nframes + (ngroups - 1) * groupgap


def extend_dark(frames: np.ndarray, needed: int) -> np.ndarray:
    """Extrapolate a dark frame stack [nframes, ny, nx] by repeating the last difference."""
    have = frames.shape[0]
    if needed <= have:
        return frames
    step = frames[-1] - frames[-2] if have > 1 else np.zeros_like(frames[-1])
    extra = frames[-1] + step * np.arange(1, needed - have + 1, dtype=np.float32)[:, None, None]
    return np.concatenate([frames, extra.astype(frames.dtype)])


def average_dark(frames: np.ndarray, ngroups: int, nframes: int, groupgap: int) -> np.ndarray:
    """Dark groups matching the science pattern: mean of NFRAMES frames, skipping GROUPGAP."""
    frames = extend_dark(frames, frames_needed(ngroups, nframes, groupgap))
    starts = np.arange(ngroups) * (nframes + groupgap)
    return np.stack([frames[start:start + nframes].mean(axis=0) for start in starts])


def science_dark(dark: np.ndarray, dark_nframes: int, dark_groupgap: int, ngroups: int,
                 nframes: int, groupgap: int) -> np.ndarray | None:
    """The dark [ngroups, ny, nx] to subtract, or None when it cannot represent the science.

    ``dark`` holds the reference's groups (normally one frame each, no gap).
    """
    if dark_nframes > nframes or dark_groupgap > groupgap:
        return None
    dark = np.nan_to_num(dark.astype(np.float32))
    if dark_nframes == nframes and dark_groupgap == groupgap:
        if dark.shape[0] < ngroups:
            dark = extend_dark(dark, ngroups)
        return dark[:ngroups]
    return average_dark(dark, ngroups, nframes, groupgap)


def subtract_dark(data: np.ndarray, dark_by_integration: list[np.ndarray]) -> None:
    """Subtract dark ramp ``i`` (the last one for later integrations) from integration i."""
    for integration in range(data.shape[0]):
        data[integration] -= dark_by_integration[min(integration, len(dark_by_integration) - 1)]
