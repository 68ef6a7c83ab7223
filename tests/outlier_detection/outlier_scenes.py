"""Synthetic dithered exposures of one star field with noise and injected cosmic rays."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "resample"))

import resample_scenes as scenes  # noqa: E402

SKY = 1.0
PEAK = 1000.0  # star peak; with POISSON_SCALE the peak S/N is ~1000
POISSON_SCALE = 1e-3  # VAR_POISSON = POISSON_SCALE × signal
VAR_RNOISE = 0.01
VAR_FLAT = 1e-4
STAR_SIGMA_ARCSEC = 0.15  # 1.5 pixels
#: (east, north) offsets (arcsec) of the stars from the field centre
STARS = ((-2.2, -2.0), (1.8, -2.4), (0.1, 0.3), (-2.5, 2.1), (2.3, 1.9), (-0.4, -3.0))
#: (east, north) pointing offsets (arcsec) and +y position angles (deg) of the exposures
POINTINGS = (((0.0, 0.0), 0.0), ((0.55, 0.32), 3.0), ((-0.41, 0.6), -2.0),
             ((0.28, -0.52), 5.0), ((-0.6, -0.3), 1.0))


@dataclass
class Exposure:
    model: object
    truth: np.ndarray  # noiseless signal
    cosmic_rays: np.ndarray = field(default=None)  # bool: injected cosmic-ray pixels
    star_core: np.ndarray = field(default=None)  # bool: pixels ≤ 2 px from a star centre
    near_star: np.ndarray = field(default=None)  # bool: pixels ≤ 8 px from a star centre


def _sky_position(east: float, north: float) -> tuple[float, float]:
    dec = scenes.DEC0 + north / 3600.0
    ra = scenes.RA0 + east / 3600.0 / np.cos(np.radians(scenes.DEC0))
    return ra, dec


def star_field(wcs, shape) -> np.ndarray:
    """Sky plus the Gaussian stars sampled at the pixel centres."""
    image = np.full(shape, SKY, np.float32)
    for east, north in STARS:
        ra, dec = _sky_position(east, north)
        image += scenes.gaussian_scene(wcs, shape, ra, dec, sigma_arcsec=STAR_SIGMA_ARCSEC,
                                       peak=PEAK)
    return image


def _distance_to_stars(wcs, shape) -> np.ndarray:
    yy, xx = np.indices(shape, dtype=float)
    distance = np.full(shape, np.inf)
    for east, north in STARS:
        x, y = wcs.invert(*_sky_position(east, north))
        distance = np.minimum(distance, np.hypot(xx - x, yy - y))
    return distance


def _inject_cosmic_rays(data, err, avoid, rng, n_single=25, n_blobs=8, margin=12):
    """Single-pixel and 2×2 cosmic rays (each pixel ≥ 15 σ) away from ``avoid`` and edges."""
    ny, nx = data.shape
    hits = np.zeros(data.shape, bool)
    blocked = avoid.copy()
    placed = 0
    while placed < n_single + n_blobs:
        y, x = rng.integers(margin, ny - margin), rng.integers(margin, nx - margin)
        size = 1 if placed < n_single else 2
        window = (slice(y - 2, y + size + 2), slice(x - 2, x + size + 2))
        if blocked[window].any():
            continue
        core = (slice(y, y + size), slice(x, x + size))
        data[core] += rng.uniform(15.0, 100.0, (size, size)) * err[core]
        hits[core] = True
        blocked[window] = True
        placed += 1
    return hits


def dithered_exposures(n=4, shape=(100, 100), seed=1, cosmic_rays=True, noise=True,
                       dithered=True, **model_kwargs) -> list[Exposure]:
    """``n`` exposures of the star field, each its own exposure group, with noise drawn
    from the VAR_* arrays and (optionally) injected cosmic rays."""
    rng = np.random.default_rng(seed)
    exposures = []
    for index in range(n):
        (east, north), angle = POINTINGS[index] if dithered else ((0.0, 0.0), 0.0)
        crval = _sky_position(east, north)
        distortion = (2e-5, -1.5e-5, 1e-5, -1e-5, 1.5e-5)[index] if dithered else 2e-5
        wcs = scenes.distorted_wcs(shape, crval=crval, angle=angle, distortion=distortion)
        truth = star_field(wcs, shape)
        var_poisson = (POISSON_SCALE * np.clip(truth, 0, None)).astype(np.float32)
        data = truth.copy()
        if noise:
            data += rng.normal(0.0, np.sqrt(var_poisson + VAR_RNOISE + VAR_FLAT)).astype(
                np.float32)
        name = f"jw01234001001_01101_{index + 1:05d}_nrca1_cal.fits"
        model = scenes.image_model(data, wcs, var_rnoise=VAR_RNOISE, var_flat=VAR_FLAT,
                                   name=name, group_id=f"jw01234001001_01101_{index + 1:05d}",
                                   **model_kwargs)
        model.var_poisson = var_poisson
        model.err = np.sqrt(model.var_poisson + model.var_rnoise + model.var_flat)
        distance = _distance_to_stars(wcs, shape)
        exposure = Exposure(model, truth, star_core=distance <= 2.0, near_star=distance <= 8.0)
        exposure.cosmic_rays = _inject_cosmic_rays(model.data, model.err, distance <= 10.0,
                                                   rng) if cosmic_rays else \
            np.zeros(shape, bool)
        exposures.append(exposure)
    return exposures
