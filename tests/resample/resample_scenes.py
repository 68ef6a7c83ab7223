"""Synthetic inputs for the resample tests: distorted TAN gwcs, Gaussian sources, models."""

from __future__ import annotations

import math

import numpy as np
from astropy.modeling import fitting, models
from gwcs import WCS

from calwebb import datamodels
from calwebb.resample import grid

SCALE = 0.1 / 3600.0  # deg per pixel
RA0, DEC0 = 53.16, -27.78


def distorted_wcs(shape, crval=(RA0, DEC0), angle=0.0, distortion=2e-5, parity=-1,
                  scale=SCALE) -> WCS:
    """TAN gwcs whose pixels first pass a quadratic distortion (x' = x + d·(x−xc)² ...) with a
    fitted polynomial inverse; ``angle`` is the PA of +y (deg), bounding box = pixel edges."""
    ny, nx = shape
    xc, yc = (nx - 1) / 2.0, (ny - 1) / 2.0
    tan = grid.tangent_plane_wcs(crval, (xc, yc), grid.cd_matrix(scale, angle, parity), shape)
    if distortion:
        centre = models.Shift(-xc) & models.Shift(-yc)
        warp = models.Mapping((0, 1, 0, 1)) | (
            models.Polynomial2D(2, c1_0=1, c2_0=distortion, c1_1=0.5 * distortion)
            & models.Polynomial2D(2, c0_1=1, c0_2=-distortion, c1_1=distortion))
        back = models.Shift(xc) & models.Shift(yc)
        forward_pixels = centre | warp | back
        # a polynomial inverse fitted on a grid covering the image (≪ 1e-4 pixel error)
        yy, xx = np.meshgrid(np.linspace(-2, ny + 1, max(ny // 3, 8)),
                             np.linspace(-2, nx + 1, max(nx // 3, 8)), indexing="ij")
        xw, yw = forward_pixels(xx, yy)
        fitter = fitting.LinearLSQFitter()
        inverse_x = fitter(models.Polynomial2D(4), xw - xc, yw - yc, xx - xc)
        inverse_y = fitter(models.Polynomial2D(4), xw - xc, yw - yc, yy - yc)
        forward_pixels.inverse = (models.Shift(-xc) & models.Shift(-yc)) | models.Mapping(
            (0, 1, 0, 1)) | (inverse_x & inverse_y) | (models.Shift(xc) & models.Shift(yc))
        transform = forward_pixels | tan.forward_transform
    else:
        transform = tan.forward_transform
    wcs = WCS([(tan.input_frame, transform), (tan.output_frame, None)])
    wcs.bounding_box = ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    wcs.pixel_shape = (nx, ny)
    return wcs


def pixel_solid_angles(wcs, shape, step=1e-3) -> np.ndarray:
    """Solid angle (sr) of every pixel from the WCS Jacobian (central differences)."""
    yy, xx = np.indices(shape, dtype=float)
    ra0, dec0 = wcs(xx, yy)
    columns = []
    for dx, dy in ((step, 0.0), (0.0, step)):
        ra_p, dec_p = wcs(xx + dx, yy + dy)
        ra_m, dec_m = wcs(xx - dx, yy - dy)
        d_east = ((ra_p - ra_m + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec0))
        columns.append((np.radians(d_east) / (2 * step), np.radians(dec_p - dec_m) / (2 * step)))
    (ex, nx_), (ey, ny_) = columns
    return np.abs(ex * ny_ - nx_ * ey)


def offsets_arcsec(ra, dec, ra0, dec0):
    """Small-angle east/north offsets (arcsec) of (ra, dec) from (ra0, dec0)."""
    east = ((np.asarray(ra) - ra0 + 180.0) % 360.0 - 180.0) * math.cos(math.radians(dec0))
    return east * 3600.0, (np.asarray(dec) - dec0) * 3600.0


def gaussian_scene(wcs, shape, ra0, dec0, sigma_arcsec=0.15, peak=50.0, sky=0.0):
    """Surface brightness of a round Gaussian at (ra0, dec0) sampled at the pixel centres."""
    yy, xx = np.indices(shape, dtype=float)
    ra, dec = wcs(xx, yy)
    east, north = offsets_arcsec(ra, dec, ra0, dec0)
    return (sky + peak * np.exp(-(east**2 + north**2) / (2 * sigma_arcsec**2))).astype(np.float32)


def image_model(data, wcs, var_rnoise=0.01, var_poisson=0.02, var_flat=0.001,
                name="jw01234001001_01101_00001_nrca1_cal.fits", exposure_time=100.0,
                group_id=None):
    """An imaging cal-like ImageModel in MJy/sr with constant variances and a gwcs."""
    shape = data.shape
    model = datamodels.ImageModel(
        data=np.asarray(data, np.float32), dq=np.zeros(shape, np.uint32),
        var_poisson=np.full(shape, var_poisson, np.float32),
        var_rnoise=np.full(shape, var_rnoise, np.float32),
        var_flat=np.full(shape, var_flat, np.float32))
    model.err = np.sqrt(model.var_poisson + model.var_rnoise + model.var_flat)
    meta = model.meta
    meta.wcs = wcs
    meta.filename = name
    meta.bunit_data = meta.bunit_err = "MJy/sr"
    meta.instrument.name, meta.instrument.detector = "NIRCAM", "NRCA1"
    meta.instrument.filter, meta.instrument.pupil = "F200W", "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.exposure.exposure_time = exposure_time
    meta.exposure.measurement_time = exposure_time * 0.9
    meta.exposure.duration = exposure_time * 1.1
    meta.exposure.start_time, meta.exposure.end_time = 60000.0, 60000.0 + exposure_time / 86400
    meta.photometry.pixelarea_steradians = float(np.radians(SCALE) ** 2)
    meta.photometry.pixelarea_arcsecsq = (SCALE * 3600.0) ** 2
    meta.cal_step.assign_wcs = meta.cal_step.flat_field = meta.cal_step.photom = "COMPLETE"
    if group_id is not None:
        meta.group_id = group_id
    (ra, dec) = wcs((shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    meta.wcsinfo.ra_ref, meta.wcsinfo.dec_ref = float(ra), float(dec)
    meta.wcsinfo.v2_ref, meta.wcsinfo.v3_ref, meta.wcsinfo.roll_ref = 120.0, -527.0, 0.0
    meta.wcsinfo.v3yangle, meta.wcsinfo.vparity = 0.0, -1
    corners = grid.footprint(wcs, shape, points_per_side=1)
    meta.wcsinfo.s_region = "POLYGON ICRS " + " ".join(
        f"{r:.9f} {d:.9f}" for r, d in zip(*corners, strict=True))
    return model


def dithered_pair(shape=(96, 110), angles=(15.0, 40.0), scene=None, **kwargs):
    """Two distorted exposures of the same sky, offset by a few arcsec and rotated."""
    wcs_a = distorted_wcs(shape, crval=(RA0, DEC0), angle=angles[0])
    wcs_b = distorted_wcs(shape, crval=(RA0 + 1.3 / 3600.0, DEC0 - 0.9 / 3600.0),
                          angle=angles[1], distortion=-1.5e-5)
    models_ = []
    for index, wcs in enumerate((wcs_a, wcs_b)):
        data = scene(wcs, shape) if scene is not None else np.full(shape, 3.5, np.float32)
        models_.append(image_model(
            data, wcs, name=f"jw01234001001_01101_0000{index + 1}_nrca1_cal.fits",
            group_id=f"jw01234001001_01101_0000{index + 1}", **kwargs))
    return models_
