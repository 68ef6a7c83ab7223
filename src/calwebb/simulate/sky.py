"""The sky: stars and Sérsic galaxies with known positions and fluxes, and multi-object
spectra, rendered to count rates."""

from __future__ import annotations

import numpy as np
from astropy.modeling.models import Sersic2D
from astropy.table import Table
from scipy import ndimage
from scipy.special import erf


def make_catalog(ra: float, dec: float, radius_arcsec: float, n_stars: int, n_galaxies: int,
                 rng: np.random.Generator) -> Table:
    """Truth sources uniformly spread within ``radius_arcsec`` of (ra, dec)."""
    n = n_stars + n_galaxies
    offset = radius_arcsec / 3600.0 * np.sqrt(rng.uniform(0, 1, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    table = Table()
    table["id"] = np.arange(1, n + 1)
    table["kind"] = ["star"] * n_stars + ["galaxy"] * n_galaxies
    table["ra"] = ra + offset * np.cos(angle) / np.cos(np.radians(dec))
    table["dec"] = dec + offset * np.sin(angle)
    table["flux_ujy"] = 10 ** rng.uniform(0.3, 3.0, n)  # 2 µJy … 1 mJy
    table["half_light_radius_arcsec"] = np.where(
        np.arange(n) < n_stars, 0.0, rng.uniform(0.1, 0.5, n))
    table["sersic_index"] = np.where(np.arange(n) < n_stars, 0.0, rng.uniform(0.7, 4.0, n))
    table["ellipticity"] = np.where(np.arange(n) < n_stars, 0.0, rng.uniform(0.0, 0.6, n))
    table["theta"] = rng.uniform(0, np.pi, n)
    table["ra"].unit = table["dec"].unit = "deg"
    table["flux_ujy"].unit = "uJy"
    return table


def dn_per_s(flux_ujy: np.ndarray, photmjsr: float, pixel_area_sr: float) -> np.ndarray:
    """Total count rate of a source: F = Σ rate·PHOTMJSR·10⁶·Ω  ⇒  rate = F / (PHOTMJSR·10⁶·Ω)."""
    return flux_ujy * 1e-6 / (photmjsr * 1e6 * pixel_area_sr)


def render(catalog: Table, x: np.ndarray, y: np.ndarray, shape: tuple[int, int],
           fwhm_pixels: float, pixel_scale: float, totals_dn_s: np.ndarray) -> np.ndarray:
    """Count rate [DN/s] of the catalog's sources at 0-based pixel positions ``x, y``, each
    source's PSF-convolved profile integrated over pixels and scaled to its total."""
    ny, nx = shape
    rate = np.zeros(shape, np.float64)
    sigma = fwhm_pixels / 2.3548
    half = int(np.ceil(6 * sigma)) + 2
    for index, row in enumerate(catalog):
        cx, cy = x[index], y[index]
        stamp_half = half
        if row["kind"] == "galaxy":
            radius = row["half_light_radius_arcsec"] / pixel_scale
            stamp_half = half + int(np.ceil(5 * radius))
        x0, x1 = int(np.floor(cx)) - stamp_half, int(np.floor(cx)) + stamp_half + 1
        y0, y1 = int(np.floor(cy)) - stamp_half, int(np.floor(cy)) + stamp_half + 1
        if x1 <= 0 or y1 <= 0 or x0 >= nx or y0 >= ny:
            continue
        if row["kind"] == "star":
            stamp = _pixel_integrated_gaussian(cx - x0, cy - y0, sigma, y1 - y0, x1 - x0)
        else:
            stamp = _galaxy(cx - x0, cy - y0, radius, row, sigma, y1 - y0, x1 - x0)
        stamp *= totals_dn_s[index] / stamp.sum()
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y1, ny), min(x1, nx)
        rate[ya:yb, xa:xb] += stamp[ya - y0:yb - y0, xa - x0:xb - x0]
    return rate


def _pixel_integrated_gaussian(cx, cy, sigma, ny, nx) -> np.ndarray:
    edges_x = (np.arange(nx + 1) - 0.5 - cx) / (np.sqrt(2) * sigma)
    edges_y = (np.arange(ny + 1) - 0.5 - cy) / (np.sqrt(2) * sigma)
    return np.outer(np.diff(erf(edges_y)), np.diff(erf(edges_x))) / 4.0


def _galaxy(cx, cy, radius, row, sigma, ny, nx, oversample=3) -> np.ndarray:
    fine_y, fine_x = np.mgrid[0:ny * oversample, 0:nx * oversample]
    fine_x = (fine_x + 0.5) / oversample - 0.5
    fine_y = (fine_y + 0.5) / oversample - 0.5
    model = Sersic2D(amplitude=1.0, r_eff=max(radius, 0.3), n=row["sersic_index"], x_0=cx,
                     y_0=cy, ellip=row["ellipticity"], theta=row["theta"])
    image = model(fine_x, fine_y).reshape(ny, oversample, nx, oversample).sum(axis=(1, 3))
    return ndimage.gaussian_filter(image, sigma, mode="constant")


def make_spectra(n_stars: int, n_galaxies: int, shape: tuple[int, int],
                 rng: np.random.Generator) -> Table:
    """Truth spectra of multi-object slit spectroscopy: one trace per source, dispersed along
    the DMS rows (x) over part of the detector, at 0-based row ``y`` of the middle column,
    tilted and curved slightly; a power-law continuum (peak count rate ``peak_dn_s`` at the
    trace's middle, ``slope`` over its length) and one emission line. Galaxies are wider
    across the dispersion."""
    ny, nx = shape
    n = n_stars + n_galaxies
    table = Table()
    table["id"] = np.arange(1, n + 1)
    table["kind"] = ["star"] * n_stars + ["galaxy"] * n_galaxies
    table["y"] = rng.uniform(12, ny - 12, n)
    length = rng.uniform(0.3, 0.6, n) * nx
    table["x_start"] = rng.uniform(4, nx - 4 - length)
    table["x_end"] = table["x_start"] + length
    table["sigma"] = np.where(np.arange(n) < n_stars, 1.0, rng.uniform(1.5, 3.0, n))
    table["tilt"] = rng.normal(0, 2e-3, n)  # rows per column
    table["curvature"] = rng.normal(0, 2e-6, n)  # rows per column²
    table["peak_dn_s"] = 10 ** rng.uniform(-0.5, 2.0, n)
    table["slope"] = rng.uniform(-2.0, 1.0, n)
    table["line_x"] = rng.uniform(table["x_start"], table["x_end"])
    table["line_dn_s"] = table["peak_dn_s"] * 10 ** rng.uniform(0.3, 1.5, n)
    return table


def render_spectra(spectra: Table, shape: tuple[int, int], row_offset: float = 0.0,
                   line_sigma: float = 1.5) -> np.ndarray:
    """Count rate [DN/s] of the ``spectra`` (``make_spectra``) moved ``row_offset`` rows
    along the slits: each column's flux spread over rows by the pixel-integrated profile."""
    ny, nx = shape
    rate = np.zeros(shape, np.float64)
    for row in spectra:
        x = np.arange(max(int(np.ceil(row["x_start"])), 0), min(int(row["x_end"]), nx))
        middle = 0.5 * (row["x_start"] + row["x_end"])
        relative = (x - middle) / (row["x_end"] - row["x_start"])
        column_flux = row["peak_dn_s"] * np.sqrt(2 * np.pi) * row["sigma"] * (
            (1 + relative) ** row["slope"] + row["line_dn_s"] / row["peak_dn_s"]
            * np.exp(-0.5 * ((x - row["line_x"]) / line_sigma) ** 2))
        centre = row["y"] + row_offset + row["tilt"] * (x - nx / 2) + row["curvature"] * (
            x - nx / 2) ** 2
        half = int(np.ceil(6 * row["sigma"])) + 1
        rows = np.arange(int(np.floor(centre.min())) - half, int(np.ceil(centre.max())) + half)
        rows = rows[(rows >= 0) & (rows < ny)]
        scale = np.sqrt(2) * row["sigma"]
        profile = 0.5 * (erf((rows[:, None] + 0.5 - centre) / scale)
                         - erf((rows[:, None] - 0.5 - centre) / scale))
        rate[rows[:, None], x] += profile * column_flux
    return rate
