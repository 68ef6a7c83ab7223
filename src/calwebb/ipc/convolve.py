"""Inter-pixel capacitance deconvolution by convolving with a kernel (stage1.md §2.5)."""

from __future__ import annotations

import numpy as np


def reference_border(instrument: str, xstart: int, ystart: int, xsize: int,
                     ysize: int) -> tuple[int, int, int, int]:
    """(bottom, top, left, right) reference rows/columns inside a subarray (1-based starts)."""
    x0, y0 = xstart - 1, ystart - 1
    left, right = max(0, 4 - x0), max(0, x0 + xsize - (1028 if instrument == "MIRI" else 2044))
    if instrument == "MIRI":
        return 0, 0, left, right
    return max(0, 4 - y0), max(0, y0 + ysize - 2044), left, right


def convolve_plane(plane: np.ndarray, kernel: np.ndarray,
                   border: tuple[int, int, int, int]) -> None:
    """Replace the science region of ``plane`` by its convolution with ``kernel``, in place.

    ``kernel`` is [k, k] or per pixel [k, k, ny, nx]; reference pixels neither change nor
    contribute (they count as zero). The kernel's centre term is added last, as officially,
    so float32 sums agree bit for bit.
    """
    bottom, top, left, right = border
    ny, nx = plane.shape[0] - bottom - top, plane.shape[1] - left - right
    kshape = kernel.shape[:2]
    below, before = kshape[0] // 2, kshape[1] // 2
    padded = np.zeros((ny + kshape[0] - 1, nx + kshape[1] - 1), dtype=plane.dtype)
    padded[below:below + ny, before:before + nx] = plane[bottom:bottom + ny, left:left + nx]
    science = plane[bottom:bottom + ny, left:left + nx]
    science[...] = 0
    offsets = [(j, i) for j in range(kshape[0]) for i in range(kshape[1])
               if (j, i) != (below, before)]
    for j, i in [*offsets, (below, before)]:
        weight = kernel[j, i]
        if kernel.ndim == 4:
            weight = weight[bottom:bottom + ny, left:left + nx]
        row, column = kshape[0] - j - 1, kshape[1] - i - 1
        science += weight * padded[row:row + ny, column:column + nx]


def convolve_rows(plane: np.ndarray, rows: np.ndarray, kernel: np.ndarray,
                  border: tuple[int, int, int, int]) -> None:
    """``convolve_plane`` on the image made of ``plane``'s ``rows`` (the normal rows of an
    IRS2 frame), written back in place; the other rows are untouched."""
    image = plane[rows]
    convolve_plane(image, kernel, border)
    plane[rows] = image
