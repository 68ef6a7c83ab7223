"""The output grid of resample: a distortion-free tangent-plane gwcs (stage2.md §4.22,
stage3.md §2.6).

Pure functions of gwcs objects and numbers. Sky positions are (ra, dec) in degrees; pixel
positions are 0-based (x, y); shapes are numpy order (ny, nx) unless a name says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy import coordinates
from astropy.modeling import models
from gwcs import WCS
from gwcs import coordinate_frames as cf

from calwebb.errors import DataModelError, ParameterError

#: names of the pieces of a grid transform, so its FITS description can be read back
CRPIX_X, CRPIX_Y, LINEAR, PROJECTION, CELESTIAL = "crpix1", "crpix2", "cd", "tan", "crval"
SR_PER_DEG2 = (math.pi / 180.0) ** 2
ARCSEC2_PER_DEG2 = 3600.0**2


@dataclass(frozen=True)
class GridDescription:
    """The numbers of a TAN grid: 0-based ``crpix`` (x, y), ``crval`` (deg), CD (deg/pixel)."""

    crpix: tuple[float, float]
    crval: tuple[float, float]
    cd: np.ndarray
    shape: tuple[int, int]  # (ny, nx)

    @property
    def pixel_scale(self) -> float:
        """Linear scale (deg): the square root of |det CD|."""
        return float(math.sqrt(abs(np.linalg.det(self.cd))))


# -- sky geometry helpers ------------------------------------------------------------------------
def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])


def _separation(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance (deg), stable at small angles."""
    a, b = _unit_vectors(ra1, dec1), _unit_vectors(ra2, dec2)
    cross = np.linalg.norm(np.cross(a, b, axis=0), axis=0)
    return np.degrees(np.arctan2(cross, (a * b).sum(axis=0)))


def _east_north(ra, dec, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic (tangent-plane) offsets (deg) of (ra, dec) about (ra0, dec0): east, north."""
    ra, dec = np.radians(ra), np.radians(dec)
    ra0, dec0 = math.radians(ra0), math.radians(dec0)
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    east = np.cos(dec) * np.sin(ra - ra0) / cos_c
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return np.degrees(east), np.degrees(north)


def bounding_box_of(wcs: WCS, shape: tuple[int, int] | None = None) -> tuple[tuple, tuple]:
    """((x_lo, x_hi), (y_lo, y_hi)) of ``wcs``: its bounding box, else the pixel edges of
    ``shape`` (or of ``wcs.array_shape``)."""
    box = getattr(wcs, "bounding_box", None)
    if box is not None:
        try:
            (x_lo, x_hi), (y_lo, y_hi) = box.bounding_box(order="F")
        except AttributeError:
            (x_lo, x_hi), (y_lo, y_hi) = tuple(box)
        return (float(x_lo), float(x_hi)), (float(y_lo), float(y_hi))
    shape = shape or wcs.array_shape
    if shape is None:
        raise DataModelError("the WCS has neither a bounding box nor an array shape")
    ny, nx = shape
    return (-0.5, nx - 0.5), (-0.5, ny - 0.5)


def footprint(wcs: WCS, shape: tuple[int, int] | None = None,
              points_per_side: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) of points along the edges of the bounding box (corners included), so a
    distorted outline is enclosed too."""
    (x_lo, x_hi), (y_lo, y_hi) = bounding_box_of(wcs, shape)
    t = np.linspace(0.0, 1.0, points_per_side, endpoint=False)
    x = np.concatenate([x_lo + t * (x_hi - x_lo), np.full_like(t, x_hi),
                        x_hi - t * (x_hi - x_lo), np.full_like(t, x_lo)])
    y = np.concatenate([np.full_like(t, y_lo), y_lo + t * (y_hi - y_lo),
                        np.full_like(t, y_hi), y_hi - t * (y_hi - y_lo)])
    ra, dec = wcs(x, y, with_bounding_box=False)
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if not (np.isfinite(ra).all() and np.isfinite(dec).all()):
        raise DataModelError("the WCS gives no sky position for part of its bounding box edge")
    return ra, dec


def reference_pixel(wcs: WCS, shape: tuple[int, int] | None = None, ra_ref: float | None = None,
                    dec_ref: float | None = None) -> tuple[float, float]:
    """The pixel at (ra_ref, dec_ref) when given and inside the image, else the box centre."""
    (x_lo, x_hi), (y_lo, y_hi) = bounding_box_of(wcs, shape)
    if ra_ref is not None and dec_ref is not None:
        try:
            x, y = wcs.invert(ra_ref, dec_ref, with_bounding_box=False)
        except Exception:  # noqa: BLE001 - an inverse that fails means: use the centre
            x = y = np.nan
        if np.isfinite(x) and np.isfinite(y) and x_lo <= x <= x_hi and y_lo <= y <= y_hi:
            return float(x), float(y)
    return 0.5 * (x_lo + x_hi), 0.5 * (y_lo + y_hi)


def pixel_scale_deg(wcs: WCS, x: float, y: float) -> float:
    """Linear pixel scale (deg) at (x, y): the geometric mean of the sky lengths of the
    pixel's x and y sides."""
    ra, dec = wcs([x - 0.5, x + 0.5, x, x], [y, y, y - 0.5, y + 0.5], with_bounding_box=False)
    side_x = _separation(ra[0], dec[0], ra[1], dec[1])
    side_y = _separation(ra[2], dec[2], ra[3], dec[3])
    return float(np.sqrt(side_x * side_y))


def orientation(wcs: WCS, x: float, y: float) -> tuple[float, int]:
    """(position angle of +y in deg East of North, parity) at (x, y); parity is -1 for the
    usual sky orientation (East to the left of North) and +1 for a mirrored image."""
    ra, dec = wcs([x, x - 0.5, x + 0.5, x, x], [y, y, y, y - 0.5, y + 0.5],
                  with_bounding_box=False)
    east, north = _east_north(ra, dec, float(ra[0]), float(dec[0]))
    dx = np.array([east[2] - east[1], north[2] - north[1]])
    dy = np.array([east[4] - east[3], north[4] - north[3]])
    parity = -1 if dx[0] * dy[1] - dx[1] * dy[0] < 0 else 1
    return float(np.degrees(np.arctan2(dy[0], dy[1]))), parity


def mean_pixel_area(wcs: WCS, shape: tuple[int, int] | None = None) -> float:
    """Mean solid angle (sr) of the pixels inside the bounding box: the outline's area on the
    tangent plane about its centre divided by the number of pixels."""
    (x_lo, x_hi), (y_lo, y_hi) = bounding_box_of(wcs, shape)
    ra, dec = footprint(wcs, shape, points_per_side=32)
    centre = wcs(0.5 * (x_lo + x_hi), 0.5 * (y_lo + y_hi), with_bounding_box=False)
    east, north = _east_north(ra, dec, float(centre[0]), float(centre[1]))
    area_deg2 = 0.5 * abs(np.dot(east, np.roll(north, -1)) - np.dot(north, np.roll(east, -1)))
    return float(area_deg2 * SR_PER_DEG2 / ((x_hi - x_lo) * (y_hi - y_lo)))


def _fiducial(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """Centre of the points' extent: the mid-range of their unit vectors, back on the sky."""
    vectors = _unit_vectors(ra, dec)
    mid = 0.5 * (vectors.max(axis=1) + vectors.min(axis=1))
    return (float(np.degrees(np.arctan2(mid[1], mid[0])) % 360.0),
            float(np.degrees(np.arctan2(mid[2], np.hypot(mid[0], mid[1])))))


# -- the grid ------------------------------------------------------------------------------------
def cd_matrix(scale: float, rotation: float, parity: int = -1) -> np.ndarray:
    """CD (deg/pixel) of a grid whose +y axis is at position angle ``rotation`` (deg East of
    North); ``parity`` -1 puts East to the left of North (the usual sky view)."""
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return scale * np.array([[parity * c, s], [-parity * s, c]])


def tangent_plane_wcs(crval: tuple[float, float], crpix: tuple[float, float], cd: np.ndarray,
                      shape: tuple[int, int]) -> WCS:
    """gwcs of a TAN grid: 0-based pixel − ``crpix`` → CD (deg) → TAN → sky at ``crval``;
    bounding box, ``pixel_shape`` and ``array_shape`` from ``shape`` (ny, nx)."""
    shift_x, shift_y = models.Shift(-crpix[0], name=CRPIX_X), models.Shift(-crpix[1], name=CRPIX_Y)
    linear = models.AffineTransformation2D(matrix=np.asarray(cd, float), name=LINEAR)
    celestial = models.RotateNative2Celestial(crval[0], crval[1], 180.0, name=CELESTIAL)
    transform = (shift_x & shift_y) | linear | models.Pix2Sky_TAN(name=PROJECTION) | celestial
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), axes_names=("x", "y"),
                          unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world",
                              axes_names=("lon", "lat"), unit=(u.deg, u.deg))
    wcs = WCS([(detector, transform), (world, None)])
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    wcs.array_shape = (ny, nx)
    return wcs


def output_grid(wcs_list: list[WCS], shapes: list[tuple[int, int]], *,
                pixel_scale_ratio: float = 1.0, pixel_scale_arcsec: float | None = None,
                rotation: float | None = None, crpix: tuple[float, float] | None = None,
                crval: tuple[float, float] | None = None,
                output_shape: tuple[int, int] | None = None,
                reference: tuple[float, float] | None = None) -> tuple[WCS, float]:
    """The TAN grid enclosing every input's bounding box; returns (gwcs, pixel-scale ratio).

    Scale: the first input's pixel scale at ``reference`` (its RA_REF/DEC_REF, else its
    centre) × ``pixel_scale_ratio``, or ``pixel_scale_arcsec`` (the ratio is then relative to
    the first input's mean pixel area). Orientation: the first input's +y (``rotation`` None)
    or +y at position angle ``rotation`` (0 = North up), with the first input's parity.
    ``crval`` defaults to the centre of all footprints, ``crpix`` (0-based) to where that box
    centre lands in the middle of the image; ``output_shape`` is (nx, ny) as the parameter.
    """
    if not wcs_list:
        raise ParameterError("resample needs at least one input image")
    first, first_shape = wcs_list[0], shapes[0]
    ra_ref, dec_ref = reference if reference is not None else (None, None)
    x_ref, y_ref = reference_pixel(first, first_shape, ra_ref, dec_ref)
    if pixel_scale_arcsec is None:
        if pixel_scale_ratio <= 0:
            raise ParameterError(f"pixel_scale_ratio must be positive, got {pixel_scale_ratio}")
        scale = pixel_scale_deg(first, x_ref, y_ref) * pixel_scale_ratio
        ratio = float(pixel_scale_ratio)
    else:
        if pixel_scale_arcsec <= 0:
            raise ParameterError(f"pixel_scale must be positive, got {pixel_scale_arcsec}")
        scale = pixel_scale_arcsec / 3600.0
        ratio = scale / math.degrees(math.sqrt(mean_pixel_area(first, first_shape)))
    angle, parity = orientation(first, x_ref, y_ref)
    if rotation is not None:
        angle = float(rotation)
    outlines = [footprint(wcs, shape) for wcs, shape in zip(wcs_list, shapes, strict=True)]
    ra = np.concatenate([outline[0] for outline in outlines])
    dec = np.concatenate([outline[1] for outline in outlines])
    if crval is None:
        crval = _fiducial(ra, dec)
    cd = cd_matrix(scale, angle, parity)
    # pixel offsets of every outline point from crval on the new grid
    east, north = _east_north(ra, dec, crval[0], crval[1])
    if np.any(~np.isfinite(east)) or np.any(np.hypot(east, north) > 60.0):
        raise DataModelError("the inputs span too much sky for one tangent-plane grid")
    u_off, v_off = np.linalg.solve(cd, np.vstack([east, north]))
    low = np.array([u_off.min(), v_off.min()])
    high = np.array([u_off.max(), v_off.max()])
    if output_shape is not None:
        nx, ny = (int(n) for n in output_shape)
        if nx < 1 or ny < 1:
            raise ParameterError(f"output_shape must be positive, got {list(output_shape)}")
        if crpix is None:
            crpix = tuple((np.array([nx, ny]) - 1) / 2.0 - 0.5 * (low + high))
    elif crpix is None:
        # the smallest whole number of pixels holding the outline, centred on it
        nx, ny = (max(1, math.ceil(extent - 1e-6)) for extent in high - low)
        crpix = tuple((np.array([nx, ny]) - 1) / 2.0 - 0.5 * (low + high))
    else:
        nx, ny = (max(1, math.ceil(top + c + 0.5 - 1e-6)) for top, c in zip(high, crpix,
                                                                         strict=True))
    crpix = (float(crpix[0]), float(crpix[1]))
    crval = (float(crval[0]), float(crval[1]))
    return tangent_plane_wcs(crval, crpix, cd, (ny, nx)), ratio


#: leaf models of a :func:`tangent_plane_wcs` transform, in order, and its operators
TANGENT_PLANE_PARTS = (models.Shift, models.Shift, models.AffineTransformation2D,
                       models.Pix2Sky_TAN, models.RotateNative2Celestial)
TANGENT_PLANE_OPERATORS = ("|", "|", "|", "&")


def _tangent_plane_transform(wcs):
    """The forward transform of a grid made by :func:`tangent_plane_wcs` (its five parts in
    order: x shift, y shift, CD, TAN, rotation to the sky); None for any other WCS."""
    transform = getattr(wcs, "forward_transform", None)
    operators, node = [], transform
    while getattr(node, "op", None) is not None:
        operators.append(node.op)
        node = node.left
    if tuple(operators) != TANGENT_PLANE_OPERATORS or len(wcs.available_frames) != 2:
        return None
    leaves = [transform[index] for index in range(transform.n_submodels)]
    if len(leaves) != 5 or not all(type(leaf) is kind for leaf, kind in
                                   zip(leaves, TANGENT_PLANE_PARTS, strict=True)):
        return None
    return transform


def grid_key(wcs) -> tuple | None:
    """Hashable numbers of a grid made by :func:`tangent_plane_wcs` (every transform
    parameter, array shape, bounding box), equal for equal grids; None for any other WCS."""
    transform = _tangent_plane_transform(wcs)
    if transform is None:
        return None
    box = wcs.bounding_box
    return (tuple(float(value) for value in transform.parameters), wcs.array_shape,
            None if box is None else tuple(tuple(interval) for interval in box.bounding_box()))


def describe(wcs: WCS) -> GridDescription:
    """The TAN numbers of a grid made by :func:`tangent_plane_wcs`; for any other 2-D celestial
    gwcs, the tangent-plane approximation about its central pixel."""
    shape = wcs.array_shape
    if shape is None:
        raise DataModelError("the output WCS has no array_shape")
    transform = _tangent_plane_transform(wcs)
    if transform is not None:
        shift_x, shift_y, linear, _, celestial = (transform[index] for index in range(5))
        return GridDescription(
            crpix=(-float(shift_x.offset.value), -float(shift_y.offset.value)),
            crval=(float(celestial.lon.value), float(celestial.lat.value)),
            cd=np.array(linear.matrix.value, float), shape=tuple(shape))
    ny, nx = shape
    x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
    ra, dec = wcs([x0, x0 + 1, x0, x0 - 1, x0], [y0, y0, y0 + 1, y0, y0 - 1],
                  with_bounding_box=False)
    east, north = _east_north(ra, dec, float(ra[0]), float(dec[0]))
    cd = 0.5 * np.array([[east[1] - east[3], east[2] - east[4]],
                         [north[1] - north[3], north[2] - north[4]]])
    return GridDescription((x0, y0), (float(ra[0]) % 360.0, float(dec[0])), cd, tuple(shape))


def fits_keywords(description: GridDescription) -> dict:
    """``meta.wcsinfo`` entries of a TAN grid: CRPIX (1-based), CRVAL, CDELT and PC."""
    scale = description.pixel_scale
    pc = description.cd / scale
    return {
        "wcsaxes": 2,
        "ctype1": "RA---TAN", "ctype2": "DEC--TAN", "cunit1": "deg", "cunit2": "deg",
        "crpix1": description.crpix[0] + 1.0, "crpix2": description.crpix[1] + 1.0,
        "crval1": description.crval[0], "crval2": description.crval[1],
        "cdelt1": scale, "cdelt2": scale,
        "pc1_1": float(pc[0, 0]), "pc1_2": float(pc[0, 1]),
        "pc2_1": float(pc[1, 0]), "pc2_2": float(pc[1, 1]),
    }


def s_region(wcs: WCS) -> str:
    """``S_REGION`` of the grid: its bounding-box corners as a POLYGON ICRS string."""
    (x_lo, x_hi), (y_lo, y_hi) = bounding_box_of(wcs)
    ra, dec = wcs([x_lo, x_hi, x_hi, x_lo], [y_lo, y_lo, y_hi, y_hi], with_bounding_box=False)
    return "POLYGON ICRS " + " ".join(f"{r % 360.0:.9f} {d:.9f}" for r, d in zip(ra, dec,
                                                                                  strict=True))


def load_output_wcs(path: str, output_shape: tuple[int, int] | None = None) -> tuple[WCS, dict]:
    """The gwcs stored under ``wcs`` in an ASDF file, with its array shape set (from
    ``output_shape`` (nx, ny), the WCS, the file's ``array_shape``/``pixel_shape`` or the
    bounding box); also the file's ``pixel_scale`` (arcsec) and ``pixel_area`` (arcsec²)."""
    import copy

    import asdf

    try:
        with asdf.open(path) as af:
            wcs = copy.deepcopy(af.tree.get("wcs"))
            extras = {key: af.tree.get(key) for key in ("pixel_scale", "pixel_area",
                                                        "pixel_shape", "array_shape")}
    except (OSError, ValueError) as exc:
        raise ParameterError(f"output_wcs {path}: not a readable ASDF file ({exc})") from exc
    if not isinstance(wcs, WCS):
        raise ParameterError(f"output_wcs {path}: the ASDF tree has no gwcs under 'wcs'")
    if wcs.output_frame is None or wcs.output_frame.naxes != 2:
        raise ParameterError(f"output_wcs {path}: the WCS must have 2 world axes")
    if output_shape is not None:
        wcs.array_shape = (int(output_shape[1]), int(output_shape[0]))
    elif wcs.array_shape is None:
        if extras["array_shape"] is not None:
            wcs.array_shape = tuple(int(n) for n in extras["array_shape"])
        elif extras["pixel_shape"] is not None:
            wcs.array_shape = tuple(int(n) for n in extras["pixel_shape"][::-1])
        elif wcs.bounding_box is not None:
            (_, x_hi), (_, y_hi) = bounding_box_of(wcs)
            wcs.array_shape = (int(y_hi + 0.5), int(x_hi + 0.5))
        else:
            raise ParameterError(f"output_wcs {path}: the WCS has no array_shape, pixel_shape "
                                 "or bounding box; give output_shape")
    if wcs.bounding_box is None:
        ny, nx = wcs.array_shape
        wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    return wcs, {"pixel_scale": extras["pixel_scale"], "pixel_area": extras["pixel_area"]}
