"""The source catalog table: measurements in the official column order, with descriptions,
display formats, units and metadata (stage3.md §2.7 steps 5–10 and "Output columns")."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import QTable

from calwebb.source_catalog import morphology, photometry
from calwebb.source_catalog.reference_data import ApertureParams

#: package versions recorded in the catalog metadata ("version" as photutils names the key)
VERSION_PACKAGES = ("numpy", "scipy", "astropy", "photutils", "gwcs", "calwebb")


@dataclass
class Measurements:
    """What the catalog is built from (all pixel positions 0-based, fluxes in Jy)."""

    labels: np.ndarray
    x: np.ndarray
    y: np.ndarray
    data: np.ndarray  # Jy per pixel, not background-subtracted
    error: np.ndarray  # Jy per pixel
    apertures: ApertureParams
    abvega_offset: float
    kernel_fwhm: float
    ci_thresholds: tuple[float, float]
    wcs: object | None = None
    #: ``morphology.segment_properties`` output (segmentation finder), else None
    segments: dict | None = None
    #: angle (deg from +x) of celestial North at the reference pixel, None if unknown
    north: float | None = None
    #: finder settings recorded in the metadata (the segment catalog's, as officially)
    finder_meta: dict | None = None


def column_names(aperture_ee) -> list[str]:
    """The catalog columns in order, with the EE percents as aperture tokens."""
    ee = [int(value) for value in aperture_ee]
    names = ["label", "xcentroid", "ycentroid", "sky_centroid", "aper_bkg_flux",
             "aper_bkg_flux_err"]
    for kind in ("flux", "abmag", "vegamag"):
        for value in ee:
            names += [f"aper{value}_{kind}", f"aper{value}_{kind}_err"]
        names += [f"aper_total_{kind}", f"aper_total_{kind}_err"]
    names += [f"CI_{ee[top]}_{ee[bottom]}" for top, bottom in photometry.CI_PAIRS]
    names += ["is_extended", "sharpness", "roundness", "nn_label", "nn_dist",
              "isophotal_flux", "isophotal_flux_err", "isophotal_abmag", "isophotal_abmag_err",
              "isophotal_vegamag", "isophotal_vegamag_err", "isophotal_area", "semimajor_sigma",
              "semiminor_sigma", "ellipticity", "orientation", "sky_orientation",
              *morphology.SKY_BBOX_COLUMNS]
    return names


def _descriptions(aperture_ee) -> dict[str, str]:
    ee = [int(value) for value in aperture_ee]
    text = {
        "label": "Source label (segment number); unique within the catalog",
        "xcentroid": "Centroid column position in pixels, counted from 0",
        "ycentroid": "Centroid row position in pixels, counted from 0",
        "sky_centroid": "Centroid position on the sky (ICRS)",
        "aper_bkg_flux": "Local background per pixel: 3-sigma-clipped median in the "
                         "circular background annulus",
        "aper_bkg_flux_err": "Standard error of the local background median",
        "is_extended": "True where both concentration indices exceed the star limits",
        "sharpness": "DAOFind sharpness of the source",
        "roundness": "DAOFind symmetry roundness of the source",
        "nn_label": "Label of the closest other source (-1 if none)",
        "nn_dist": "Distance to the closest other source in pixels",
        "isophotal_flux": "Flux summed over the source segment",
        "isophotal_flux_err": "Error of the flux summed over the source segment",
        "isophotal_abmag": "AB magnitude of the segment flux",
        "isophotal_abmag_err": "Error of the segment AB magnitude",
        "isophotal_vegamag": "Vega magnitude of the segment flux",
        "isophotal_vegamag_err": "Error of the segment Vega magnitude",
        "isophotal_area": "Number of unmasked pixels in the source segment",
        "semimajor_sigma": "Standard deviation along the major axis of the Gaussian with the "
                           "same second moments as the source",
        "semiminor_sigma": "Standard deviation along the minor axis of the Gaussian with the "
                           "same second moments as the source",
        "ellipticity": "1 - semiminor_sigma / semimajor_sigma",
        "orientation": "Angle in degrees from the +x axis to the major axis, counter-clockwise, "
                       "in (-90, 90]",
        "sky_orientation": "Position angle of the major axis in degrees East of North",
    }
    corners = {"ll": "lower-left", "ul": "upper-left", "lr": "lower-right", "ur": "upper-right"}
    for key, where in corners.items():
        text[f"sky_bbox_{key}"] = f"Sky position of the {where} corner of the source bounding box"
    kinds = {"flux": "Flux", "abmag": "AB magnitude", "vegamag": "Vega magnitude"}
    for kind, label in kinds.items():
        for value in ee:
            text[f"aper{value}_{kind}"] = (
                f"{label} in the circular aperture of the {value}% encircled-energy radius, "
                "local background removed")
            text[f"aper{value}_{kind}_err"] = f"Error of aper{value}_{kind}"
        text[f"aper_total_{kind}"] = (
            f"{label} of the total (aperture-corrected) flux from the {ee[-1]}% aperture; "
            "meaningful for point sources only")
        text[f"aper_total_{kind}_err"] = f"Error of aper_total_{kind}"
    for top, bottom in photometry.CI_PAIRS:
        text[f"CI_{ee[top]}_{ee[bottom]}"] = (
            f"Concentration index aper{ee[top]}_flux / aper{ee[bottom]}_flux")
    return text


def display_format(name: str) -> str | None:
    """The display format of a column (formats requested for the official catalogs)."""
    if name in ("xcentroid", "ycentroid") or name.startswith("CI_"):
        return ".4f"
    if "flux" in name:
        return ".6e"
    if "abmag" in name or "vegamag" in name or name in (
            "nn_dist", "sharpness", "roundness", "semimajor_sigma", "semiminor_sigma",
            "ellipticity", "orientation", "sky_orientation"):
        return ".6f"
    return None


def versions() -> dict[str, str | None]:
    """Python and package versions for the catalog metadata."""
    found: dict[str, str | None] = {"Python": platform.python_version()}
    for package in VERSION_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def _nan_sky(count: int) -> SkyCoord:
    return SkyCoord(np.full(count, np.nan) * u.deg, np.full(count, np.nan) * u.deg, frame="icrs")


def build_catalog(measured: Measurements) -> QTable:
    """Every catalog column for the sources in ``measured`` (see ``column_names``)."""
    count = len(measured.labels)
    params = measured.apertures
    positions = np.column_stack([measured.x, measured.y]).astype(float)
    values: dict[str, object] = {
        "label": np.asarray(measured.labels, dtype=np.int64),
        "xcentroid": np.asarray(measured.x, float),
        "ycentroid": np.asarray(measured.y, float),
    }
    if measured.wcs is not None:
        values["sky_centroid"] = measured.wcs.pixel_to_world(values["xcentroid"],
                                                             values["ycentroid"])
    else:
        values["sky_centroid"] = _nan_sky(count)

    background, background_err = photometry.local_background(
        measured.data, positions, params.bkg_inner_radius, params.bkg_outer_radius)
    values["aper_bkg_flux"] = background * u.Jy
    values["aper_bkg_flux_err"] = background_err * u.Jy
    fluxes, flux_errs = photometry.aperture_fluxes(measured.data, measured.error, positions,
                                                   params.radii, background)
    correction = params.corrections[-1]
    total, total_err = correction * fluxes[-1], correction * flux_errs[-1]
    ee = params.aperture_ee
    for index, token in enumerate(ee):
        _fill_photometry(values, f"aper{token}", fluxes[index], flux_errs[index],
                         measured.abvega_offset)
    _fill_photometry(values, "aper_total", total, total_err, measured.abvega_offset)

    cis = photometry.concentration_indices(fluxes)
    for (top, bottom), ci in zip(photometry.CI_PAIRS, cis, strict=True):
        values[f"CI_{ee[top]}_{ee[bottom]}"] = ci
    values["is_extended"] = photometry.is_extended(cis[0], cis[1], *measured.ci_thresholds)
    values["sharpness"], values["roundness"] = morphology.sharpness_roundness(
        measured.data, positions, measured.kernel_fwhm)
    nn_label, nn_dist = morphology.nearest_neighbours(values["label"], positions)
    values["nn_label"], values["nn_dist"] = nn_label, nn_dist * u.pix

    _fill_segment_columns(values, measured, count)

    table = QTable()
    descriptions = _descriptions(ee)
    for name in column_names(ee):
        table[name] = values[name]
        table[name].info.description = descriptions[name]
        fmt = display_format(name)
        if fmt is not None:
            table[name].info.format = fmt
    table.meta["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    table.meta["version"] = versions()
    table.meta.update(measured.finder_meta or {})
    table.meta["aperture_params"] = params.as_meta()
    table.meta["abvega_offset"] = float(measured.abvega_offset)
    return table


def _fill_photometry(values: dict, prefix: str, flux: np.ndarray, flux_err: np.ndarray,
                     abvega_offset: float) -> None:
    abmag, abmag_err = photometry.ab_magnitudes(flux, flux_err)
    values[f"{prefix}_flux"] = np.asarray(flux, float) * u.Jy
    values[f"{prefix}_flux_err"] = np.asarray(flux_err, float) * u.Jy
    values[f"{prefix}_abmag"], values[f"{prefix}_abmag_err"] = abmag, abmag_err
    values[f"{prefix}_vegamag"] = abmag - abvega_offset
    values[f"{prefix}_vegamag_err"] = abmag_err.copy()


def _fill_segment_columns(values: dict, measured: Measurements, count: int) -> None:
    """Segment properties in the order of ``measured.labels``; NaN without segments."""
    nan = np.full(count, np.nan)
    segments = measured.segments
    order = None
    if segments is not None:
        order = _order(np.asarray(segments["label"]), np.asarray(measured.labels))
        pick = {name: np.asarray(segments[name], float)[order]
                for name in morphology.SEGMENT_COLUMNS}
    else:
        pick = {name: nan.copy() for name in morphology.SEGMENT_COLUMNS}
    _fill_photometry(values, "isophotal", pick["isophotal_flux"], pick["isophotal_flux_err"],
                     measured.abvega_offset)
    values["isophotal_area"] = pick["isophotal_area"] * u.pix**2
    values["semimajor_sigma"] = pick["semimajor_sigma"] * u.pix
    values["semiminor_sigma"] = pick["semiminor_sigma"] * u.pix
    values["ellipticity"] = pick["ellipticity"] * u.dimensionless_unscaled
    orientation = morphology.wrap_orientation(pick["orientation"])
    values["orientation"] = orientation * u.deg
    north = np.nan if measured.north is None else measured.north
    values["sky_orientation"] = morphology.sky_orientation(orientation, north) * u.deg
    for name in morphology.SKY_BBOX_COLUMNS:
        corners = None if segments is None else segments.get(name)
        values[name] = _nan_sky(count) if corners is None else corners[order]


def _order(segment_labels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices into ``segment_labels`` giving ``labels`` (every label must be present)."""
    position = {int(label): index for index, label in enumerate(segment_labels)}
    return np.array([position[int(label)] for label in labels], dtype=int)
