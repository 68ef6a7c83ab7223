"""S_REGION of a resampled product: the inputs' outlines on the output grid (stage3.md §2.6).

Each input outline (a convex quadrilateral on the output pixel grid) is clipped to the output
image; outlines that overlap are merged into their convex hull, so a dithered stack gives one
polygon and separate fields (e.g. two detectors with a gap) give one polygon each. The hull
can cover slightly more sky than the exact union where rotated outlines meet.
"""

from __future__ import annotations

import numpy as np


def clip_to_box(polygon: np.ndarray, x_lo: float, x_hi: float, y_lo: float,
                y_hi: float) -> np.ndarray:
    """(N, 2) vertices of a convex ``polygon`` clipped to the rectangle (Sutherland-Hodgman);
    an empty (0, 2) array when nothing is left."""
    edges = ((0, x_lo, 1.0), (0, x_hi, -1.0), (1, y_lo, 1.0), (1, y_hi, -1.0))
    points = np.asarray(polygon, float)
    for axis, limit, sign in edges:
        if len(points) == 0:
            break
        inside = sign * (points[:, axis] - limit) >= 0
        following = np.roll(points, -1, axis=0)
        following_inside = np.roll(inside, -1)
        kept = []
        for point, next_point, now_in, next_in in zip(points, following, inside,
                                                      following_inside, strict=True):
            if now_in:
                kept.append(point)
            if now_in != next_in:
                t = (limit - point[axis]) / (next_point[axis] - point[axis])
                kept.append(point + t * (next_point - point))
        points = np.array(kept, float).reshape(-1, 2)
    return points


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Counter-clockwise convex hull (monotone chain) of (N, 2) points."""
    unique = np.unique(np.asarray(points, float), axis=0)
    if len(unique) < 3:
        return unique

    def half(ordered):
        chain: list[np.ndarray] = []
        for point in ordered:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], point) <= 0:
                chain.pop()
            chain.append(point)
        return chain[:-1]

    return np.array(half(unique) + half(unique[::-1]))


def _cross(o, a, b) -> float:
    return float((a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]))


def convex_overlap(first: np.ndarray, second: np.ndarray) -> bool:
    """True when two convex polygons intersect (separating-axis test; touching counts)."""
    for polygon in (first, second):
        edges = np.roll(polygon, -1, axis=0) - polygon
        normals = np.column_stack([-edges[:, 1], edges[:, 0]])
        a, b = first @ normals.T, second @ normals.T
        if np.any((a.max(axis=0) < b.min(axis=0)) | (b.max(axis=0) < a.min(axis=0))):
            return False
    return True


def merged_outlines(polygons: list[np.ndarray], box: tuple[float, float, float, float]
                    ) -> list[np.ndarray]:
    """Clip each polygon to ``box`` (x_lo, x_hi, y_lo, y_hi), then merge overlapping ones into
    their convex hulls; returns the list of resulting polygons (pixel coordinates)."""
    clipped = [convex_hull(clip_to_box(p, *box)) for p in polygons]
    groups = [p for p in clipped if len(p) >= 3]
    merged = True
    while merged and len(groups) > 1:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                if convex_overlap(groups[i], groups[j]):
                    groups[i] = convex_hull(np.vstack([groups[i], groups.pop(j)]))
                    merged = True
                    break
            if merged:
                break
    return groups


def s_region(output_wcs, input_outlines: list[tuple[np.ndarray, np.ndarray]]) -> str | None:
    """``S_REGION`` (one ``POLYGON ICRS`` per merged outline) of the inputs' sky outlines
    ``[(ra, dec), ...]`` within ``output_wcs``'s bounding box; None when none falls inside."""
    from calwebb.resample.grid import bounding_box_of

    (x_lo, x_hi), (y_lo, y_hi) = bounding_box_of(output_wcs)
    polygons = []
    for ra, dec in input_outlines:
        x, y = output_wcs.invert(np.asarray(ra), np.asarray(dec), with_bounding_box=False)
        if np.all(np.isfinite(x)) and np.all(np.isfinite(y)):
            polygons.append(np.column_stack([x, y]))
    parts = []
    for polygon in merged_outlines(polygons, (x_lo, x_hi, y_lo, y_hi)):
        ra, dec = output_wcs(polygon[:, 0], polygon[:, 1], with_bounding_box=False)
        parts.append("POLYGON ICRS " + " ".join(
            f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(ra, dec, strict=True)))
    return " ".join(parts) or None
