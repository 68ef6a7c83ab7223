"""Unit conversion, local background, circular-aperture photometry, magnitudes and
concentration indices (stage3.md §2.7 steps 3 and 5–8). Pure array functions."""

from __future__ import annotations

import warnings

import numpy as np
from astropy.stats import SigmaClip
from astropy.utils.exceptions import AstropyUserWarning
from photutils.aperture import CircularAnnulus, CircularAperture, aperture_photometry

from calwebb.errors import DataModelError

#: the only surface-brightness unit the catalog accepts
INPUT_UNIT = "MJy/sr"
#: AB magnitude of 1 Jy
AB_ZEROPOINT = 8.9


class UnitError(DataModelError, ValueError):
    """The image is not in the units the catalog needs (a ValueError, as officially)."""


def check_units(bunit_data: str | None, bunit_err: str | None) -> None:
    """UnitError unless SCI (BUNIT) and ERR are in MJy/sr."""
    for label, unit in (("SCI BUNIT", bunit_data), ("ERR BUNIT", bunit_err)):
        if unit != INPUT_UNIT:
            raise UnitError(f"{label} is {unit!r}; the source catalog needs data and errors "
                            f"in {INPUT_UNIT}")


def jansky_per_pixel(surface_brightness: np.ndarray, pixel_area_sr: float) -> np.ndarray:
    """MJy/sr → Jy per pixel (× 1e6 × PIXAR_SR), as a new array of the input's float
    precision (float32 stays float32, as the official catalog converts the i2d arrays in
    place)."""
    values = np.asarray(surface_brightness)
    return np.multiply(values, 1.0e6 * float(pixel_area_sr),
                       dtype=np.result_type(values.dtype, np.float32))


def _finite_positions(positions: np.ndarray) -> np.ndarray:
    """(x, y) rows with non-finite values moved far off the image (their results are NaN)."""
    positions = np.array(positions, float, ndmin=2).reshape(-1, 2)
    positions[~np.isfinite(positions)] = -1000.0
    return positions


def local_background(data: np.ndarray, positions: np.ndarray, inner_radius: float,
                     outer_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-source background per pixel and its error from a circular annulus.

    Pixels whose centres fall in the annulus are 3σ-clipped; the background is the median of
    the kept values and its error the standard error of a median, √(π / 2N) × std. Sources
    with no finite annulus pixel get NaN."""
    positions = _finite_positions(positions)
    annulus = CircularAnnulus(positions, inner_radius, outer_radius)
    clip = SigmaClip(sigma=3.0)
    median = np.full(len(positions), np.nan)
    error = np.full(len(positions), np.nan)
    masks = annulus.to_mask(method="center")
    for index, mask in enumerate(masks if isinstance(masks, list) else [masks]):
        values = mask.get_values(data)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            kept = np.ma.compressed(clip(values, masked=True))
        if kept.size == 0:
            continue
        median[index] = np.median(kept)
        error[index] = np.sqrt(np.pi / (2.0 * kept.size)) * np.std(kept)
    return median, error


def aperture_fluxes(data: np.ndarray, error: np.ndarray, positions: np.ndarray,
                    radii, background: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flux, flux error), each shaped (n_apertures, n_sources): sums within circles of the
    given radii (exact pixel overlap) minus ``background`` (per pixel) × aperture area."""
    positions = _finite_positions(positions)
    apertures = [CircularAperture(positions, radius) for radius in radii]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = aperture_photometry(data, apertures, error=error)
    fluxes, errors = [], []
    for index, aperture in enumerate(apertures):
        total = np.asarray(table[f"aperture_sum_{index}"], float)
        fluxes.append(total - np.asarray(background, float) * aperture.area)
        errors.append(np.asarray(table[f"aperture_sum_err_{index}"], float))
    return np.array(fluxes), np.array(errors)


def ab_magnitudes(flux: np.ndarray, flux_err: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitude −2.5 log10(flux / Jy) + 8.9 and error 2.5 log10(1 + err / flux); NaN for
    negative fluxes (and for the error when no error is known)."""
    flux = np.asarray(flux, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = -2.5 * np.log10(flux) + AB_ZEROPOINT
        if flux_err is None or np.all(np.isnan(flux_err)):
            magnitude_err = np.full_like(magnitude, np.nan)
        else:
            magnitude_err = 2.5 * np.log10(1.0 + np.asarray(flux_err, float) / flux)
    negative = flux < 0
    magnitude[negative] = np.nan
    magnitude_err[negative] = np.nan
    return magnitude, magnitude_err


#: concentration indices as (numerator, denominator) aperture indices: ee2/ee1, ee3/ee2, ee3/ee1
CI_PAIRS = ((1, 0), (2, 1), (2, 0))


def concentration_indices(fluxes: np.ndarray) -> list[np.ndarray]:
    """Flux ratios of the apertures for the pairs in ``CI_PAIRS`` (``fluxes`` by aperture)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return [np.asarray(fluxes[top], float) / np.asarray(fluxes[bottom], float)
                for top, bottom in CI_PAIRS]


def is_extended(ci_1: np.ndarray, ci_2: np.ndarray, threshold_1: float,
                threshold_2: float) -> np.ndarray:
    """True where both the first two concentration indices exceed their star limits."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(ci_1) > threshold_1) & (np.asarray(ci_2) > threshold_2)
