"""DAOFind-style sharpness and roundness, nearest neighbours, segment shape properties and
orientations (stage3.md §2.7 steps 4, 9 and 10). Pure functions of arrays and a WCS."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.utils.exceptions import AstropyUserWarning
from photutils.segmentation import SegmentationImage, SourceCatalog
from scipy import ndimage
from scipy.spatial import cKDTree

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: where sources with a non-finite position are put so that no cutout overlaps the image
OFF_IMAGE = -1000.0


# -- sharpness and roundness --------------------------------------------------------------------
@dataclass(frozen=True)
class DaoKernel:
    """A circular Gaussian, truncated at max(2, 1.5σ), shifted and scaled to zero sum."""

    array: np.ndarray
    footprint: np.ndarray  # 1 inside the circle, 0 outside

    @property
    def centre(self) -> int:
        return (self.array.shape[0] - 1) // 2

    @classmethod
    def from_fwhm(cls, fwhm: float) -> DaoKernel:
        sigma = fwhm / FWHM_PER_SIGMA
        half_width = max(2.0, 1.5 * sigma)
        size = 2 * int(half_width) + 1
        centre = (size - 1) // 2
        yy, xx = np.mgrid[0:size, 0:size]
        radius2 = (xx - centre) ** 2 + (yy - centre) ** 2
        footprint = (np.sqrt(radius2) <= half_width).astype(float)
        gaussian = np.exp(-radius2 / (2.0 * sigma**2)) * footprint  # peak 1 at the centre
        count = footprint.sum()
        variance = np.sum(gaussian**2) - gaussian.sum() ** 2 / count
        array = (gaussian - gaussian.sum() / count) / variance * footprint
        return cls(array, footprint)


def _cutouts(image: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """(n, size, size) stamps of ``image`` centred on the pixel nearest each (x, y); zeros
    beyond the edges."""
    ny, nx = image.shape
    stamps = np.zeros((len(positions), size, size))
    for index, (x, y) in enumerate(positions):
        x0 = math.ceil(x - size / 2.0)
        y0 = math.ceil(y - size / 2.0)
        xs, ys = max(x0, 0), max(y0, 0)
        xe, ye = min(x0 + size, nx), min(y0 + size, ny)
        if xe <= xs or ye <= ys:
            continue
        stamps[index, ys - y0:ye - y0, xs - x0:xe - x0] = image[ys:ye, xs:xe]
    return stamps


def _finite_positions(positions: np.ndarray) -> np.ndarray:
    positions = np.array(positions, float, ndmin=2).reshape(-1, 2)
    positions[~np.isfinite(positions)] = OFF_IMAGE
    return positions


def sharpness_roundness(data: np.ndarray, positions: np.ndarray,
                        kernel_fwhm: float) -> tuple[np.ndarray, np.ndarray]:
    """DAOFind sharpness and (symmetry) roundness of sources at (x, y) ``positions``.

    The image (non-finite pixels as 0) is convolved with the zero-sum kernel of
    ``DaoKernel``. Sharpness = (centre pixel − mean of the other pixels in the kernel
    circle) / convolved centre value; roundness = 2 × (alternating sum of the four
    quadrants of the convolved stamp, centre excluded) / (sum of their absolute values)."""
    kernel = DaoKernel.from_fwhm(kernel_fwhm)
    positions = _finite_positions(positions)
    image = np.where(np.isfinite(data), data, 0.0).astype(float)
    convolved = ndimage.convolve(image, kernel.array, mode="constant", cval=0.0)
    size, centre = kernel.array.shape[0], kernel.centre
    stamps = _cutouts(image, positions, size)
    stamps_convolved = _cutouts(convolved, positions, size)

    peak = stamps[:, centre, centre]
    others = kernel.footprint.sum() - 1
    mean_others = (np.sum(stamps * kernel.footprint, axis=(1, 2)) - peak) / others
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpness = (peak - mean_others) / stamps_convolved[:, centre, centre]

    quads = stamps_convolved.copy()
    quads[:, centre, centre] = 0.0
    c = centre
    upper_right = quads[:, : c + 1, c + 1:].sum(axis=(1, 2))
    upper_left = quads[:, :c, : c + 1].sum(axis=(1, 2))
    lower_left = quads[:, c:, :c].sum(axis=(1, 2))
    lower_right = quads[:, c + 1:, c:].sum(axis=(1, 2))
    bilateral = -upper_right + upper_left - lower_left + lower_right
    fourfold = np.abs(quads).sum(axis=(1, 2))
    fourfold[fourfold == 0] = np.nan
    roundness = 2.0 * bilateral / fourfold
    return sharpness, roundness


# -- nearest neighbours ---------------------------------------------------------------------------
def nearest_neighbours(labels: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, distance in pixels) of each source's nearest other source; −1 / NaN for a
    lone source or a source with a non-finite position."""
    labels = np.asarray(labels)
    count = len(labels)
    nn_label = np.full(count, -1, dtype=np.int64)
    nn_dist = np.full(count, np.nan)
    if count < 2:
        return nn_label, nn_dist
    raw = np.array(positions, float, ndmin=2).reshape(-1, 2)
    bad = ~np.isfinite(raw).all(axis=1)
    distance, index = cKDTree(_finite_positions(raw)).query(_finite_positions(raw), k=[2])
    nn_label[:] = labels[index[:, 0]]
    nn_dist[:] = distance[:, 0]
    nn_label[bad] = -1
    nn_dist[bad] = np.nan
    return nn_label, nn_dist


# -- segment properties ---------------------------------------------------------------------------
SEGMENT_COLUMNS = ("isophotal_flux", "isophotal_flux_err", "isophotal_area", "semimajor_sigma",
                   "semiminor_sigma", "ellipticity", "orientation")
SKY_BBOX_COLUMNS = ("sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur")


def segment_properties(data: np.ndarray, segmentation: SegmentationImage,
                       convolved: np.ndarray | None, error: np.ndarray | None,
                       mask: np.ndarray | None, wcs=None, local_bkg_width: int = 0,
                       aperture_mask_method: str = "correct",
                       kron_params=None) -> dict[str, np.ndarray]:
    """Isophotal flux (and error), area (pix²), second-moment σ along the major and minor
    axes (pix), ellipticity, orientation (deg, photutils' convention) and the sky
    coordinates of the bounding-box corners, by label order, measured on ``data`` (the
    background-subtracted detection image) within each segment."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        catalog = SourceCatalog(data, segmentation, convolved_data=convolved, error=error,
                                mask=mask, wcs=wcs, local_bkg_width=local_bkg_width,
                                aperture_mask_method=aperture_mask_method,
                                kron_params=tuple(kron_params or (2.5, 1.4, 0.0)))
        values = {
            "label": np.asarray(catalog.label),
            "isophotal_flux": _plain(catalog.segment_flux),
            "isophotal_flux_err": (_plain(catalog.segment_flux_err) if error is not None
                                   else np.full(len(catalog.label), np.nan)),
            "isophotal_area": _plain(catalog.area),
            "semimajor_sigma": _plain(catalog.semimajor_axis),
            "semiminor_sigma": _plain(catalog.semiminor_axis),
            "ellipticity": _plain(catalog.ellipticity),
            "orientation": _plain(catalog.orientation),
        }
        for name in SKY_BBOX_COLUMNS:
            values[name] = getattr(catalog, name) if wcs is not None else None
    values["label"] = np.atleast_1d(values["label"])
    return values


def _plain(values) -> np.ndarray:
    if isinstance(values, u.Quantity):
        values = values.value
    return np.atleast_1d(np.asarray(values, float))


# -- orientations -------------------------------------------------------------------------------
def wrap_orientation(degrees: np.ndarray) -> np.ndarray:
    """Angles (deg) mapped into (−90, 90]: an ellipse axis has no direction."""
    return 90.0 - np.mod(90.0 - np.asarray(degrees, float), 180.0)


def north_angle(wcs, x: float, y: float, offset_arcsec: float = 1.0) -> float:
    """Angle (deg, counter-clockwise from +x) of the direction to celestial North at pixel
    (x, y): the pixel displacement of a point ``offset_arcsec`` north of it."""
    centre = wcs.pixel_to_world(x, y)
    if not isinstance(centre, SkyCoord):
        raise TypeError("the WCS does not give celestial coordinates")
    north = centre.directional_offset_by(0.0 * u.deg, offset_arcsec * u.arcsec)
    x_north, y_north = wcs.world_to_pixel(north)
    return float(np.degrees(np.arctan2(float(y_north) - y, float(x_north) - x)))


def sky_orientation(orientation: np.ndarray, north: float) -> np.ndarray:
    """Position angle (deg, East of North, in [0, 360)) of the major axis at ``orientation``
    (deg from +x) for an image whose North direction is at ``north`` deg from +x."""
    return np.mod(180.0 - north + np.asarray(orientation, float), 360.0)
