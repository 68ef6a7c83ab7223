"""Footprints, overlaps and sky levels of skymatch (stage3.md §2.4).

Pure functions on arrays and simple objects:

* :func:`footprint` — an image's outline (pixel-edge bounding box) on the sky as a
  ``spherical_geometry`` polygon;
* :func:`overlap_mask` — the pixels of one image that fall inside its intersections with
  other footprints, and the solid angle of those intersections;
* :func:`group_local_sky`, :func:`group_overlap_sky` — combining the members of a sky group
  (all detectors of one exposure);
* :func:`solve_sky_deltas` — the pairwise matching equations solved by pseudo-inverse;
* :func:`sky_levels` — the ``local``, ``global``, ``match`` and ``global+match`` methods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
from spherical_geometry.polygon import MalformedPolygonError, SphericalPolygon

from calwebb.errors import ParameterError

log = logging.getLogger(__name__)

#: methods that compute skies from the data (``user`` reads them from a file instead)
COMPUTED_METHODS = ("local", "global", "match", "global+match")
#: tolerance of the pseudo-inverse and of the rank test of the matching equations
RCOND = 1.0e-12


def footprint(forward: Callable, shape: tuple[int, int],
              stepsize: int | None = None) -> SphericalPolygon:
    """The outline of a ``shape`` (ny, nx) image on the sky: the pixel edges from (-0.5, -0.5)
    to (nx - 0.5, ny - 0.5) mapped by ``forward(x, y) -> (ra, dec)`` (degrees). Without
    ``stepsize`` only the four corners are used; with it, each side gets vertices no more
    than ``stepsize`` pixels apart (follows curved, distorted edges)."""
    ny, nx = shape

    def side(length: int) -> np.ndarray:
        segments = 1 if stepsize is None else max(1, math.ceil(length / stepsize))
        return np.linspace(-0.5, length - 0.5, segments + 1)

    xs, ys = side(nx), side(ny)
    x = np.concatenate([xs[:-1], np.full(ys.size - 1, xs[-1]), xs[::-1][:-1],
                        np.full(ys.size - 1, xs[0])])
    y = np.concatenate([np.full(xs.size - 1, ys[0]), ys[:-1], np.full(xs.size - 1, ys[-1]),
                        ys[::-1][:-1]])
    ra, dec = forward(x, y)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec))):
        raise ValueError("the WCS does not map every edge of the image to the sky")
    return SphericalPolygon.from_radec(np.append(ra, ra[0]), np.append(dec, dec[0]))


def intersection(first: SphericalPolygon, second: SphericalPolygon) -> SphericalPolygon:
    """The intersection of two footprints. ``spherical_geometry`` can fail on nearly
    identical polygons; then ``first`` itself is taken as the overlap (as the official
    step does)."""
    try:
        return first.intersection(second)
    except MalformedPolygonError as exc:
        log.debug("footprint intersection failed (%s); using the whole footprint", exc)
        return first.copy()


def pixels_in_polygon(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """True at the pixels of a ``shape`` image whose centres lie inside the polygon with
    vertices (``x``, ``y``) in pixel coordinates (even-odd rule; non-finite vertices are
    dropped). A scanline fill: each pixel row's edge crossings, sorted and paired, bound the
    runs of inside pixels; a centre exactly on an edge may fall on either side."""
    mask = np.zeros(shape, dtype=bool)
    finite = np.isfinite(x) & np.isfinite(y)
    x, y = np.asarray(x, float)[finite], np.asarray(y, float)[finite]
    if x.size < 3:
        return mask
    ny, nx = shape
    y0, y1 = max(0, math.ceil(y.min())), min(ny - 1, math.floor(y.max()))
    if y0 > y1:
        return mask
    rows = np.arange(y0, y1 + 1, dtype=float)[:, None]
    x_end, y_end = np.roll(x, -1), np.roll(y, -1)
    # an edge crosses a row when its ends lie on different sides (half-open in y, so a vertex
    # on the row counts once)
    crosses = (y <= rows) != (y_end <= rows)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = x + (rows - y) * (x_end - x) / (y_end - y)
    crossings = np.sort(np.where(crosses, at, np.inf), axis=1)
    pairs = crossings[:, :2 * (x.size // 2)].reshape(rows.size, -1, 2)
    left, right = pairs[..., 0], pairs[..., 1]
    runs = np.isfinite(right)
    # run of pixel centres c with left <= c < right, clipped to the image
    start = np.clip(np.ceil(left[runs]), 0, nx).astype(int)
    stop = np.clip(np.ceil(right[runs]), 0, nx).astype(int)
    row = np.nonzero(runs)[0]
    edges = np.zeros((rows.size, nx + 1), dtype=np.int8)  # runs are disjoint: sums are 0 or 1
    np.add.at(edges, (row, start), 1)
    np.add.at(edges, (row, stop), -1)
    mask[y0:y1 + 1] = np.cumsum(edges, axis=1, dtype=np.int8)[:, :nx] > 0
    return mask


def overlap_mask(own: SphericalPolygon, others: Sequence[SphericalPolygon],
                 inverse: Callable, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Pixels of an image (footprint ``own``, ``inverse(ra, dec) -> (x, y)``) inside its
    intersection with any of ``others``, and the summed solid angle (sr) of those
    intersections; an all-False mask and 0 when there is no overlap."""
    mask = np.zeros(shape, dtype=bool)
    area = 0.0
    for other in others:
        common = intersection(own, other)
        common_area = abs(float(common.area()))
        if common_area == 0.0:
            continue
        area += common_area
        for ra, dec in common.to_radec():
            if len(ra) < 4:  # fewer than three distinct vertices
                continue
            x, y = inverse(np.asarray(ra, float), np.asarray(dec, float))
            mask |= pixels_in_polygon(np.asarray(x), np.asarray(y), shape)
    return mask, area


def group_local_sky(values: Sequence[float | None]) -> float | None:
    """Sky of a group measured over whole images: the lowest of its members' skies (None
    when no member has one)."""
    known = [value for value in values if value is not None]
    return min(known) if known else None


def group_overlap_sky(values: Sequence[float | None], counts: Sequence[int],
                      areas: Sequence[float]) -> tuple[float | None, int]:
    """Sky of a group inside an overlap: its members' overlap skies weighted by their pixel
    counts, and the total count; (None, count) when no pixel or no overlap area is left."""
    weight = 0
    total = 0.0
    for value, count in zip(values, counts, strict=True):
        if value is not None and count > 0:
            total += value * count
            weight += count
    if weight == 0 or sum(areas) == 0.0:
        return None, weight
    return total / weight, weight


def solve_sky_deltas(sky: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Sky offsets that equalise overlapping images.

    ``sky[i, j]`` is image i's sky inside its overlap with image j (NaN: not measured) and
    ``counts[i, j]`` the number of pixels it used. Each pair with both counts > 0 gives the
    equation ``w·Δi − w·Δj = w·(sky[i, j] − sky[j, i])`` with ``w`` the mean of the two
    counts; the system is solved by pseudo-inverse (``rcond`` 1e-12). Images in no equation
    get NaN. The offsets are defined up to a constant per connected set of images.
    """
    sky = np.asarray(sky, float)
    counts = np.asarray(counts, float)
    n = sky.shape[0]
    rows, right = [], []
    used = np.zeros(n, dtype=bool)
    for i in range(n):
        for j in range(i + 1, n):
            if not (counts[i, j] > 0 and counts[j, i] > 0
                    and np.isfinite(sky[i, j]) and np.isfinite(sky[j, i])):
                continue
            weight = 0.5 * (counts[i, j] + counts[j, i])
            row = np.zeros(n)
            row[i], row[j] = weight, -weight
            rows.append(row)
            right.append(weight * (sky[i, j] - sky[j, i]))
            used[i] = used[j] = True
    deltas = np.full(n, np.nan)
    if not rows:
        if n > 1:
            log.warning("No overlapping images with valid data: sky differences cannot be "
                        "computed")
        return deltas
    matrix = np.array(rows)
    rank = np.linalg.matrix_rank(matrix, RCOND)
    if rank < n - 1:
        log.warning("Only %d independent matching equations for %d images: sky is matched "
                    "only within separate subsets of the images", rank, n)
    solution = np.linalg.pinv(matrix, rcond=RCOND) @ np.array(right)
    deltas[used] = solution[used]
    return deltas


def sky_levels(method: str, local: Sequence[float | None] | None = None,
               overlap_sky: np.ndarray | None = None, overlap_counts: np.ndarray | None = None,
               match_down: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(level, valid) per image or group for one of :data:`COMPUTED_METHODS`.

    ``local``: each one's own sky (None: could not be measured), needed by every method
    except ``match``; ``overlap_sky``/``overlap_counts``: the pairwise measurements of
    :func:`solve_sky_deltas`, needed by ``match`` and ``global+match``.

    * ``local`` — its own sky; invalid where None.
    * ``global`` — the lowest local sky, for all; none valid when no sky was measured.
    * ``match`` — the matching offsets minus their minimum (``match_down``) or maximum, so
      the reference image gets 0; images in no overlap equation are invalid.
    * ``global+match`` — ``match``, then the lowest of (local − matched) added to all.
    """
    if method not in COMPUTED_METHODS:
        raise ParameterError(f"skymethod must be one of {', '.join(COMPUTED_METHODS)} or "
                             f"'user'; got {method!r}")
    do_match = "match" in method
    if do_match:
        deltas = solve_sky_deltas(overlap_sky, overlap_counts)
        valid = np.isfinite(deltas)
        levels = np.zeros(deltas.size)
        if valid.any():
            reference = deltas[valid].min() if match_down else deltas[valid].max()
            levels[valid] = deltas[valid] - reference
        if method == "match":
            return levels, valid
        relative = [value - level for value, level in zip(local, levels, strict=True)
                    if value is not None]
        if not relative:
            log.warning("Unable to compute a global sky value")
            return levels, valid
        return levels + min(relative), np.ones(levels.size, dtype=bool)
    known = np.array([value is not None for value in local])
    values = np.array([0.0 if value is None else value for value in local])
    if method == "local":
        return values, known
    if not known.any():
        log.warning("Unable to compute a global sky value")
        return np.zeros(values.size), np.zeros(values.size, dtype=bool)
    return np.full(values.size, values[known].min()), np.ones(values.size, dtype=bool)
