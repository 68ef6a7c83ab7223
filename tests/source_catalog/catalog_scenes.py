"""Synthetic i2d mosaics and APCORR / ABVEGAOFFSET references for the source_catalog tests.

Stars are circular Gaussians of σ = ``PSF_SIGMA`` px integrated over each pixel, so the pixel
values sum to the injected flux exactly. Exact-overlap aperture photometry of such an image
measures, to good accuracy, a Gaussian of variance σ² + 2/12 px² (the pixel box once from the
integration and once from treating each pixel as uniform inside the circle), so the test
APCORR uses that width: the radius of encircled energy EE is σ√(−2 ln(1 − EE)) and
APCORR = 1 / EE.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table
from scipy.special import erf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "resample"))
import resample_scenes  # noqa: E402

from calwebb import datamodels  # noqa: E402

PSF_SIGMA = 1.5  # px
MEASURED_SIGMA = math.sqrt(PSF_SIGMA**2 + 2.0 / 12.0)
PIXAR_SR = float(np.radians(resample_scenes.SCALE) ** 2)
JY_PER_MJYSR = 1.0e6 * PIXAR_SR  # Jy per pixel for 1 MJy/sr
NOISE = 0.01  # MJy/sr per pixel
SKY = 0.5  # MJy/sr
ABVEGA_OFFSET = 1.83
SKY_IN, SKY_OUT = 7.0, 11.0  # px, background annulus of the test APCORR


def gaussian_pixels(shape, x0, y0, sigma_x, sigma_y=None, angle_deg=0.0, flux=1.0):
    """A 2-D Gaussian of total ``flux`` on pixel grid ``shape``; axis-aligned ones are
    integrated over each pixel exactly, rotated ones sampled on a 5×5 sub-grid."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    ny, nx = shape
    if angle_deg == 0.0:
        def profile(edges, centre, sigma):
            return 0.5 * np.diff(erf((edges - centre) / (math.sqrt(2.0) * sigma)))

        px = profile(np.arange(nx + 1) - 0.5, x0, sigma_x)
        py = profile(np.arange(ny + 1) - 0.5, y0, sigma_y)
        return flux * np.outer(py, px)
    sub = (np.arange(5) - 2) / 5.0
    yy, xx = np.indices(shape, dtype=float)
    image = np.zeros(shape)
    cos, sin = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    for dy in sub:
        for dx in sub:
            u = (xx + dx - x0) * cos + (yy + dy - y0) * sin
            v = -(xx + dx - x0) * sin + (yy + dy - y0) * cos
            image += np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return flux * image / image.sum()


def star_positions(count, shape, margin=14.0, min_separation=26.0, seed=1):
    """Random (x, y) positions at least ``min_separation`` apart and ``margin`` from edges."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    chosen: list[tuple[float, float]] = []
    while len(chosen) < count:
        x, y = rng.uniform(margin, nx - 1 - margin), rng.uniform(margin, ny - 1 - margin)
        if all(math.hypot(x - a, y - b) >= min_separation for a, b in chosen):
            chosen.append((x, y))
    return np.array(chosen)


def optimal_snr(flux_jy, sigma=PSF_SIGMA, noise=NOISE):
    """S/N of a PSF-fit measurement of a Gaussian star: F / (noise × √(4πσ²))."""
    return np.asarray(flux_jy) / (noise * JY_PER_MJYSR * math.sqrt(4.0 * math.pi * sigma**2))


def mosaic(shape, sources_jy, sky=SKY, noise=NOISE, seed=2, angle=0.0):
    """An i2d-like ImageModel (MJy/sr) of ``sources_jy`` (an image in Jy per pixel) on a
    TAN gwcs, with constant sky, Gaussian noise, ERR = ``noise`` and WHT = 1."""
    rng = np.random.default_rng(seed)
    data = sources_jy / JY_PER_MJYSR + sky + rng.normal(0.0, noise, shape)
    wcs = resample_scenes.distorted_wcs(shape, distortion=0.0, angle=angle)
    model = resample_scenes.image_model(data.astype(np.float32), wcs,
                                        name="jw01234-o001_t001_nircam_clear-f200w_i2d.fits")
    model.err = np.full(shape, noise, np.float32)
    model.wht = np.ones(shape, np.float32)
    model.meta.photometry.pixelarea_steradians = PIXAR_SR
    model.meta.resample.pixel_scale_ratio = 1.0
    model.meta.wcsinfo.crpix1 = (shape[1] - 1) / 2.0 + 1.0
    model.meta.wcsinfo.crpix2 = (shape[0] - 1) / 2.0 + 1.0
    return model


def star_field(shape=(200, 200), count=20, seed=1, flux_range=(1e-6, 1e-4)):
    """(model, truth table x, y, flux) of isolated stars with log-uniform fluxes (Jy)."""
    positions = star_positions(count, shape, seed=seed)
    rng = np.random.default_rng(seed + 10)
    fluxes = np.exp(rng.uniform(*np.log(flux_range), count))
    image = np.zeros(shape)
    for (x, y), flux in zip(positions, fluxes, strict=True):
        image += gaussian_pixels(shape, x, y, PSF_SIGMA, flux=flux)
    truth = Table({"x": positions[:, 0], "y": positions[:, 1], "flux": fluxes})
    return mosaic(shape, image, seed=seed + 20), truth


def radius_for(ee, sigma=MEASURED_SIGMA):
    return sigma * math.sqrt(-2.0 * math.log(1.0 - ee))


def apcorr_model(filter_name="F200W", pupil="CLEAR", sigma=MEASURED_SIGMA,
                 skyin=SKY_IN, skyout=SKY_OUT):
    """A NIRCam APCORR table for a Gaussian PSF (EE 10–90 %), plus decoy rows of F150W."""
    dtype = [("filter", "S12"), ("pupil", "S12"), ("eefraction", ">f4"), ("radius", ">f4"),
             ("apcorr", ">f4"), ("skyin", ">f4"), ("skyout", ">f4")]
    rows = []
    for ee in np.arange(1, 10) / 10.0:
        rows.append((filter_name, pupil, ee, radius_for(ee, sigma), 1.0 / ee, skyin, skyout))
        rows.append(("F150W", pupil, ee, 9.0, 9.0, 20.0, 30.0))
    model = datamodels.NrcImgApcorrModel(apcorr_table=np.array(rows, dtype=dtype))
    model.meta.instrument.name = "NIRCAM"
    model.meta.telescope = "JWST"
    return model


def abvega_model(offset=ABVEGA_OFFSET, filter_name="F200W", pupil="CLEAR"):
    model = datamodels.ABVegaOffsetModel()
    model.abvega_offset = Table({"filter": [filter_name, "F150W"], "pupil": [pupil, pupil],
                                 "abvega_offset": [offset, 9.99]})
    model.meta.instrument.name = "NIRCAM"
    model.meta.telescope = "JWST"
    return model


def reference_files(directory: Path, **apcorr_kwargs) -> dict[str, str]:
    """Saved test references as step keyword arguments (override_apcorr/abvegaoffset)."""
    apcorr = apcorr_model(**apcorr_kwargs).save(directory / "test_apcorr.fits")
    abvega = abvega_model().save(directory / "test_abvegaoffset.asdf")
    return {"override_apcorr": str(apcorr), "override_abvegaoffset": str(abvega)}
