"""Footprints, overlaps and sky levels of skymatch (stage3.md §2.4).

Pure functions on arrays and simple objects:

* :func:`footprint` — an image's outline (pixel-edge bounding box) on the sky as a
  ``spherical_geometry`` polygon;
* :func:`overlaps_by_group` — every image's intersections with the footprints of the other
  groups and their solid angles, each pair intersected once;
* :func:`overlap_masks` — the pixels of one image inside those intersections;
* :func:`group_local_sky`, :func:`group_overlap_sky` — combining the members of a sky group
  (all detectors of one exposure);
* :func:`solve_sky_deltas` — the pairwise matching equations solved by pseudo-inverse;
* :func:`sky_levels` — the ``local``, ``global``, ``match`` and ``global+match`` methods.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import combinations, islice

import numpy as np
from numba import njit
from spherical_geometry.polygon import MalformedPolygonError, SphericalPolygon

from calwebb.errors import ParameterError

log = logging.getLogger(__name__)

#: methods that compute skies from the data (``user`` reads them from a file instead)
COMPUTED_METHODS = ("local", "global", "match", "global+match")
#: tolerance of the pseudo-inverse and of the rank test of the matching equations
RCOND = 1.0e-12
#: an intersection of two footprints and its solid angle (sr)
Overlap = tuple[SphericalPolygon, float]


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


def overlaps_by_group(footprints: Sequence[SphericalPolygon],
                      groups: Sequence[int]) -> list[dict[int, list[Overlap]]]:
    """For each footprint (of a member of group ``groups[i]``), its overlaps with the
    footprints of every other group: ``{group: [(intersection, solid angle in sr), ...]}``,
    in footprint order and with only the intersections of non-zero area (an empty list: no
    overlap). Each pair of footprints is intersected once."""
    overlaps = [{group: [] for group in sorted(set(groups)) if group != own} for own in groups]
    for first, second in combinations(range(len(groups)), 2):
        if groups[first] == groups[second]:
            continue
        seen_from = _pair_overlap(footprints[first], footprints[second])
        for own, other, (polygon, area) in zip((first, second), (second, first), seen_from,
                                               strict=True):
            if area > 0.0:
                overlaps[own][groups[other]].append((polygon, area))
    return overlaps


def _pair_overlap(first: SphericalPolygon, second: SphericalPolygon) -> list[Overlap]:
    """(overlap, its solid angle) as seen from each of two footprints: their intersection,
    computed once; when ``spherical_geometry`` fails on it, each one's :func:`intersection`."""
    try:
        common = first.intersection(second)
    except MalformedPolygonError as exc:  # first's own view is then first (see intersection)
        log.debug("footprint intersection failed (%s); using the whole footprint", exc)
        return [(polygon, abs(float(polygon.area())))
                for polygon in (first.copy(), intersection(second, first))]
    area = abs(float(common.area()))
    return [(common, area), (common, area)]


def pixels_in_polygon(x: np.ndarray, y: np.ndarray, shape: tuple[int, int],
                      out: np.ndarray | None = None) -> np.ndarray:
    """True at the pixels of a ``shape`` image whose centres lie inside the polygon with
    vertices (``x``, ``y``) in pixel coordinates (even-odd rule; non-finite vertices are
    dropped). A scanline fill: each pixel row's edge crossings, sorted and paired, bound the
    runs of inside pixels; a centre exactly on an edge may fall on either side. With ``out``
    (a boolean ``shape`` array) those pixels are set in it, in place, and it is returned."""
    mask = np.zeros(shape, dtype=bool) if out is None else out
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
    start = np.clip(np.ceil(left[runs]), 0, nx).astype(np.int64)
    stop = np.clip(np.ceil(right[runs]), 0, nx).astype(np.int64)
    _fill_runs(mask, np.nonzero(runs)[0] + y0, start, stop)
    return mask


@njit(cache=True, nogil=True)
def _fill_runs(mask, rows, starts, stops):
    """Set ``mask[row, start:stop]`` for every run."""
    for run in range(rows.size):
        mask[rows[run], starts[run]:stops[run]] = True


def overlap_masks(overlaps: Mapping[int, Sequence[SphericalPolygon]], inverse: Callable,
                  shape: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    """(key, mask) for every entry of ``overlaps``, made one at a time: the pixels of a
    ``shape`` image inside any of the key's polygons, whose vertices ``inverse(ra, dec) ->
    (x, y)`` maps to pixels."""
    outlines_of = {key: [(np.asarray(ra, float), np.asarray(dec, float))
                         for polygon in polygons for ra, dec in polygon.to_radec()
                         if len(ra) >= 4]  # at least three distinct vertices
                   for key, polygons in overlaps.items()}
    pixel_outlines = iter(_to_pixels([outline for outlines in outlines_of.values()
                                      for outline in outlines], inverse))
    for key, outlines in outlines_of.items():
        mask = np.zeros(shape, dtype=bool)
        for x, y in islice(pixel_outlines, len(outlines)):
            pixels_in_polygon(x, y, shape, out=mask)
        yield key, mask


def _to_pixels(outlines: list[tuple[np.ndarray, np.ndarray]],
               inverse: Callable) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ra, dec) outlines mapped to (x, y) by a single call of ``inverse`` (building a WCS
    inverse costs far more than evaluating it)."""
    if not outlines:
        return []
    x, y = inverse(np.concatenate([ra for ra, _ in outlines]),
                   np.concatenate([dec for _, dec in outlines]))
    ends = np.cumsum([ra.size for ra, _ in outlines])[:-1]
    return list(zip(np.split(np.asarray(x, float), ends), np.split(np.asarray(y, float), ends),
                    strict=True))


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
