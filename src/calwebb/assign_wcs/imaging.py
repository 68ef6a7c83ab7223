"""The imaging WCS: detector → v2v3 → v2v3vacorr → world, as a gwcs pipeline (stage2.md §4.1).

Pure functions of transforms and numbers; the step gathers them from the model and its
references.
"""

from __future__ import annotations

from dataclasses import dataclass

import astropy.units as u
import numpy as np
from astropy import coordinates
from astropy.modeling import Model, bind_bounding_box, models
from astropy.modeling.rotations import RotationSequence3D
from gwcs import WCS
from gwcs import coordinate_frames as cf
from gwcs.geometry import CartesianToSpherical, SphericalToCartesian

from calwebb.errors import DataModelError, ReferenceFileError


@dataclass(frozen=True)
class Pointing:
    """Where the telescope's V frame points (from the product's wcsinfo keywords)."""

    ra_ref: float  # deg: sky position of the aperture reference point
    dec_ref: float
    roll_ref: float  # deg: position angle of V3 at the reference point
    v2_ref: float  # arcsec: the aperture reference point in the telescope frame
    v3_ref: float
    va_scale: float = 1.0  # differential velocity-aberration scale


POINTING_KEYWORDS = {"ra_ref": "RA_REF", "dec_ref": "DEC_REF", "roll_ref": "ROLL_REF",
                     "v2_ref": "V2_REF", "v3_ref": "V3_REF"}


def pointing_from(wcsinfo, va_scale: float | None, source: str) -> Pointing:
    """The pointing from a model's ``meta.wcsinfo``; names every missing keyword."""
    values = {name: getattr(wcsinfo, name) for name in POINTING_KEYWORDS}
    missing = [keyword for name, keyword in POINTING_KEYWORDS.items() if values[name] is None]
    if missing:
        raise DataModelError(
            f"{source}: no world coordinates can be assigned without the pointing keywords "
            f"{', '.join(missing)} (SCI header)")
    return Pointing(**{name: float(value) for name, value in values.items()},
                    va_scale=1.0 if va_scale is None else float(va_scale))


def velocity_aberration(pointing: Pointing) -> Model:
    """v' = s·v + (1 − s)·v_ref for V2 and V3 (arcsec)."""
    s = pointing.va_scale
    model = (models.Scale(s) & models.Scale(s)) | (
        models.Shift((1 - s) * pointing.v2_ref) & models.Shift((1 - s) * pointing.v3_ref))
    model.name = "dva_correction"
    return model


def v2v3_to_sky(pointing: Pointing) -> Model:
    """V2/V3 (arcsec) → RA/Dec (deg) through the rotations z, y, x, y, z by
    (V2_REF, −V3_REF, ROLL_REF, DEC_REF, −RA_REF)."""
    angles = [pointing.v2_ref / 3600.0, -pointing.v3_ref / 3600.0, pointing.roll_ref,
              pointing.dec_ref, -pointing.ra_ref]
    model = (models.Scale(1 / 3600.0) & models.Scale(1 / 3600.0)) | SphericalToCartesian(
        wrap_lon_at=180) | RotationSequence3D(angles, axes_order="zyxyz") | CartesianToSpherical(
        wrap_lon_at=360)
    model.name = "v23tosky"
    return model


def detector_to_v2v3(distortion: Model, shape: tuple[int, int], xstart: int, ystart: int,
                     filter_offset: tuple[float, float] | None, source: str) -> Model:
    """Subarray pixel (0-based) → full frame → (+ filter offset) → distortion → V2/V3."""
    _check_coverage(distortion, shape, xstart, ystart, source)
    transform = distortion
    if filter_offset is not None and any(filter_offset):
        transform = (models.Shift(filter_offset[0]) & models.Shift(filter_offset[1])) | transform
    if (xstart, ystart) != (1, 1):
        transform = (models.Shift(xstart - 1) & models.Shift(ystart - 1)) | transform
    return transform


def _check_coverage(distortion: Model, shape, xstart, ystart, source) -> None:
    try:
        (x_low, x_high), (y_low, y_high) = distortion.bounding_box.bounding_box(order="F")
    except NotImplementedError:
        return  # no bounding box: the transform is defined everywhere
    ny, nx = shape
    x0, y0 = xstart - 1, ystart - 1
    if x0 - 0.5 < x_low - 1e-6 or x0 + nx - 0.5 > x_high + 1e-6 or \
            y0 - 0.5 < y_low - 1e-6 or y0 + ny - 0.5 > y_high + 1e-6:
        raise ReferenceFileError(
            f"{source}: the distortion transform covers detector pixels x {x_low}..{x_high}, "
            f"y {y_low}..{y_high}, but the data span x {x0 - 0.5}..{x0 + nx - 0.5}, "
            f"y {y0 - 0.5}..{y0 + ny - 0.5} (full-frame, 0-based)")


def imaging_wcs(detector_to_v2v3_model: Model, pointing: Pointing,
                shape: tuple[int, int]) -> WCS:
    """The gwcs object of an imaging exposure of ``shape`` (ny, nx)."""
    detector = cf.Frame2D(name="detector", axes_order=(0, 1), unit=(u.pix, u.pix))
    v2v3 = cf.Frame2D(name="v2v3", axes_order=(0, 1), axes_names=("v2", "v3"),
                      unit=(u.arcsec, u.arcsec))
    v2v3vacorr = cf.Frame2D(name="v2v3vacorr", axes_order=(0, 1), axes_names=("v2", "v3"),
                            unit=(u.arcsec, u.arcsec))
    world = cf.CelestialFrame(reference_frame=coordinates.ICRS(), name="world")
    to_v2v3 = detector_to_v2v3_model.copy()
    ny, nx = shape
    bind_bounding_box(to_v2v3, ((-0.5, nx - 0.5), (-0.5, ny - 0.5)), order="F")  # x, y
    wcs = WCS([(detector, to_v2v3), (v2v3, velocity_aberration(pointing)),
               (v2v3vacorr, v2v3_to_sky(pointing)), (world, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def footprint_region(wcs: WCS) -> str:
    """``S_REGION``: the bounding-box corners on the sky as a POLYGON ICRS string."""
    corners = wcs.footprint()
    return "POLYGON ICRS " + " ".join(f"{ra:.9f} {dec:.9f}" for ra, dec in corners)


#: wcsinfo entries a SIP fit writes (removed first so a refit leaves no stale terms)
SIP_PREFIXES = ("a_", "b_", "ap_", "bp_")


def sip_keywords(wcs: WCS, max_pix_error: float, degree: int | None,
                 max_inv_pix_error: float, inv_degree: int | None, npoints: int) -> dict:
    """FITS TAN-SIP approximation of ``wcs`` as lower-case wcsinfo names → values."""
    header = wcs.to_fits_sip(max_pix_error=max_pix_error, degree=degree,
                             max_inv_pix_error=max_inv_pix_error, inv_degree=inv_degree,
                             npoints=npoints)
    values = {}
    for keyword, value in header.items():
        name = keyword.lower().replace("-", "_")
        if name.startswith("naxis") or keyword in ("COMMENT", "HISTORY", ""):
            continue
        values[name] = value.item() if isinstance(value, np.generic) else value
    return values


def write_sip(wcsinfo, wcs: WCS, max_pix_error: float, degree: int | None,
              max_inv_pix_error: float, inv_degree: int | None, npoints: int) -> None:
    """Replace the SIP approximation in ``wcsinfo`` (meta.wcsinfo) by a fit of ``wcs``."""
    values = sip_keywords(wcs, max_pix_error, degree, max_inv_pix_error, inv_degree, npoints)
    for name in list(wcsinfo):
        if name.startswith(SIP_PREFIXES) or name in ("cdelt1", "cdelt2") or \
                name.startswith("pc"):
            delattr(wcsinfo, name)
    for name, value in values.items():
        setattr(wcsinfo, name, value)
