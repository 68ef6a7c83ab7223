"""The output grid of resample: a distortion-free tangent-plane gwcs (stage2.md §4.22)."""

from __future__ import annotations

import astropy.units as u
import numpy as np
from astropy import coordinates
from astropy.modeling import models
from gwcs import WCS
from gwcs import coordinate_frames as cf

DEGREE = np.pi / 180.0


def tangent_plane_wcs(crval: tuple[float, float], crpix: tuple[float, float],
                      cd: np.ndarray, shape: tuple[int, int]) -> WCS:
    """gwcs of a TAN grid: 0-based pixel → (CD matrix, deg) → TAN → sky; ``shape`` (ny, nx)."""
    transform = (models.Shift(-crpix[0]) & models.Shift(-crpix[1])) | models.AffineTransformation2D(
        matrix=np.asarray(cd, float)) | models.Pix2Sky_TAN() | models.RotateNative2Celestial(
        crval[0], crval[1], 180.0)
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")
    wcs = WCS([(detector, transform), (world, None)])
    ny, nx = shape
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    wcs.array_shape = (ny, nx)
    return wcs


def cd_matrix(scale_deg: float, rotation_deg: float) -> np.ndarray:
    """CD of a grid with RA increasing to the left and +y at position angle ``rotation``."""
    c, s = np.cos(rotation_deg * DEGREE), np.sin(rotation_deg * DEGREE)
    return scale_deg * np.array([[-c, s], [s, c]])


def pixel_scale_deg(wcs, x: float, y: float) -> float:
    """Linear pixel scale (deg): the square root of the pixel's solid angle at (x, y)."""
    ra, dec = wcs([x - 0.5, x + 0.5, x, x], [y, y, y - 0.5, y + 0.5])
    east = (ra - ra[0] + 180) % 360 - 180
    east = east * np.cos(dec[0] * DEGREE)
    dx = np.array([east[1] - east[0], dec[1] - dec[0]])
    dy = np.array([east[3] - east[2], dec[3] - dec[2]])
    return float(np.sqrt(abs(dx[0] * dy[1] - dx[1] * dy[0])))


def position_angle_of_y(wcs, x: float, y: float) -> float:
    """Position angle (deg, east of north) of the image's +y axis at (x, y)."""
    ra, dec = wcs([x, x], [y - 0.5, y + 0.5])
    east = ((ra[1] - ra[0] + 180) % 360 - 180) * np.cos(0.5 * (dec[0] + dec[1]) * DEGREE)
    return float(np.degrees(np.arctan2(east, dec[1] - dec[0])))


def _corners(wcs, shape) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    return wcs(x, y)


def _mean_direction(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    vector = np.array([np.cos(dec * DEGREE) * np.cos(ra * DEGREE),
                       np.cos(dec * DEGREE) * np.sin(ra * DEGREE), np.sin(dec * DEGREE)]).sum(1)
    return (float(np.degrees(np.arctan2(vector[1], vector[0])) % 360),
            float(np.degrees(np.arctan2(vector[2], np.hypot(vector[0], vector[1])))))


def output_grid(wcs_list: list, shapes: list[tuple[int, int]], pixel_scale_ratio: float = 1.0,
                pixel_scale: float | None = None, rotation: float | None = None,
                crpix: tuple[float, float] | None = None,
                crval: tuple[float, float] | None = None,
                output_shape: tuple[int, int] | None = None) -> WCS:
    """The grid enclosing every input: the first input's scale at its centre × ratio (or
    ``pixel_scale`` arcsec), its orientation (``rotation`` None) or +y at PA ``rotation``;
    ``crpix`` 0-based, ``output_shape`` as (nx, ny)."""
    first, first_shape = wcs_list[0], shapes[0]
    centre = ((first_shape[1] - 1) / 2.0, (first_shape[0] - 1) / 2.0)
    if pixel_scale is not None:
        scale = pixel_scale / 3600.0
    else:
        scale = pixel_scale_deg(first, *centre) * pixel_scale_ratio
    angle = position_angle_of_y(first, *centre) if rotation is None else rotation
    corners = [_corners(wcs, shape) for wcs, shape in zip(wcs_list, shapes, strict=True)]
    ra = np.concatenate([c[0] for c in corners])
    dec = np.concatenate([c[1] for c in corners])
    if crval is None:
        crval = _mean_direction(ra, dec)
    cd = cd_matrix(scale, angle)
    trial = tangent_plane_wcs(crval, (0.0, 0.0), cd, (1, 1))
    x, y = trial.invert(ra, dec, with_bounding_box=False)
    if output_shape is not None:
        nx, ny = int(output_shape[0]), int(output_shape[1])
    else:
        nx = int(np.ceil(x.max() - x.min() - 1e-6))  # tolerance: an exact fit stays exact
        ny = int(np.ceil(y.max() - y.min() - 1e-6))
    if crpix is None:
        # the enclosing box's centre lands on the output's centre
        crpix = ((nx - 1) / 2.0 - 0.5 * (x.max() + x.min()),
                 (ny - 1) / 2.0 - 0.5 * (y.max() + y.min()))
        if output_shape is not None:
            crpix = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    return tangent_plane_wcs(crval, crpix, cd, (ny, nx))


def fits_keywords(wcs: WCS) -> dict:
    """wcsinfo entries describing a ``tangent_plane_wcs`` (CRPIX 1-based, CDELT and PC)."""
    shift_x, shift_y, affine, _, rotate = (wcs.forward_transform[i] for i in range(5))
    cd = np.asarray(affine.matrix.value)
    scale = float(np.sqrt(abs(np.linalg.det(cd))))
    pc = cd / scale
    return {
        "ctype1": "RA---TAN", "ctype2": "DEC--TAN", "cunit1": "deg", "cunit2": "deg",
        "crpix1": float(-shift_x.offset.value) + 1, "crpix2": float(-shift_y.offset.value) + 1,
        "crval1": float(rotate.lon.value), "crval2": float(rotate.lat.value),
        "cdelt1": scale, "cdelt2": scale,
        "pc1_1": float(pc[0, 0]), "pc1_2": float(pc[0, 1]),
        "pc2_1": float(pc[1, 0]), "pc2_2": float(pc[1, 1]),
        "wcsaxes": 2,
    }
