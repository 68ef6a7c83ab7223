"""Subtracting a dark ramp averaged to the science readout pattern (stage1.md §2.13).

The reference holds the accumulated dark of consecutive frames (normally NFRAMES=1,
GROUPGAP=0). Science group g averages frames [g·(NFRAMES+GROUPGAP), +NFRAMES); frames
beyond the reference are extrapolated with its last frame-to-frame difference. Groups are
built one at a time, so memory stays at two image planes whatever the ramp length.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from calwebb.kernels import float32_words, native_row

#: what NaN and ±inf in a dark frame become (as numpy.nan_to_num makes them in float32)
FLOAT32_MAX = np.float32(np.finfo(np.float32).max)


def frames_needed(ngroups: int, nframes: int, groupgap: int) -> int:
    return ngroups * nframes + (ngroups - 1) * groupgap


def can_represent(dark_nframes: int, dark_groupgap: int, nframes: int, groupgap: int) -> bool:
    """A dark averaged more, or with larger gaps, than the science cannot be used."""
    return dark_nframes <= nframes and dark_groupgap <= groupgap


def dark_frame(frames: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` of a dark stack [nframes, ny, nx], extrapolated past its end."""
    have = frames.shape[0]
    if index < have:
        return frames[index]
    step = frames[-1] - frames[-2] if have > 1 else 0.0
    return frames[-1] + step * (index - have + 1)


def dark_group(frames: np.ndarray, group: int, nframes: int, groupgap: int, dark_nframes: int,
               dark_groupgap: int) -> np.ndarray:
    """The dark to subtract from science group ``group`` (float32, NaN → 0; may be a view of
    ``frames``, not to be modified).

    When the dark already has the science NFRAMES/GROUPGAP its groups are used directly;
    otherwise frames are averaged.
    """
    if dark_nframes == nframes and dark_groupgap == groupgap:
        plane = np.asarray(dark_frame(frames, group), dtype=np.float32)
    else:
        start = group * (nframes + groupgap)
        plane = np.zeros(frames.shape[1:], np.float32)
        for index in range(start, start + nframes):
            plane += dark_frame(frames, index)
        plane /= nframes
    if np.isfinite(plane).all():  # the common case: no copy, no replacing
        return plane
    return np.nan_to_num(plane, nan=0.0)


def subtract_dark(data: np.ndarray, darks: list[np.ndarray], nframes: int, groupgap: int,
                  dark_nframes: int, dark_groupgap: int) -> None:
    """Subtract dark ramp ``i`` (the last one for later integrations) from integration i,
    in place; ``darks`` are frame stacks [nframes, ny, nx]."""
    for group in range(data.shape[1]):
        planes = [dark_group(frames, group, nframes, groupgap, dark_nframes, dark_groupgap)
                  for frames in darks]
        for integration in range(data.shape[0]):
            data[integration, group] -= planes[min(integration, len(planes) - 1)]


def subtract_frames(data: np.ndarray, frames: np.ndarray) -> None:
    """``subtract_dark`` for a dark of the science NFRAMES/GROUPGAP with a frame for every
    group (``frames`` [ngroups, ny, nx] or [ndark, ngroups, ny, nx], float32 in either byte
    order, such as a memory map of the stored reference), in one compiled pass per row: no
    copy of the dark is made."""
    stacks = frames if frames.ndim == 4 else frames[np.newaxis]
    _subtract_frames(data, *float32_words(stacks))


@njit(parallel=True, cache=True)
def _subtract_frames(data, words, swapped):
    """data[i, g] -= dark frame g of stack min(i, last) (``words``: the float32 bits,
    byte-swapped when ``swapped``), NaN as 0 and ±inf as ±FLOAT32_MAX."""
    nints, ngroups, ny, nx = data.shape
    for y in prange(ny):
        bits = np.empty(nx, np.uint32)
        frame = bits.view(np.float32)
        for g in range(ngroups):
            loaded = -1
            for i in range(nints):
                stack = min(i, words.shape[0] - 1)
                if stack != loaded:
                    _load_row(words[stack, g, y], swapped, bits, frame)
                    loaded = stack
                for x in range(nx):
                    data[i, g, y, x] -= frame[x]


@njit(cache=True, inline="always")
def _load_row(stored, swapped, bits, frame):
    """A dark row into ``bits`` (``frame`` views them as float32), NaN → 0, ±inf → ±max."""
    native_row(stored, swapped, bits)
    for x in range(frame.size):
        value = frame[x]
        if not np.isfinite(value):
            frame[x] = 0.0 if np.isnan(value) else (FLOAT32_MAX if value > 0 else -FLOAT32_MAX)


def averaged_dark(frames: np.ndarray, ngroups: int, nframes: int, groupgap: int,
                  dark_nframes: int, dark_groupgap: int) -> np.ndarray:
    """The whole dark ramp [ngroups, ny, nx] as subtracted (for ``dark_output``)."""
    return np.stack([dark_group(frames, group, nframes, groupgap, dark_nframes, dark_groupgap)
                     for group in range(ngroups)])
