"""Relative and absolute alignment of image catalogs with tweakwcs (stage3.md §2.3).

Each image becomes a ``JWSTWCSCorrector`` carrying its source catalog (x, y in pixels) and
its exposure group; tweakwcs matches the catalogs in a common tangent plane and fits one
linear correction per group, which it inserts into the gwcs as a ``v2v3corr`` frame.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from tweakwcs.correctors import JWSTWCSCorrector
from tweakwcs.imalign import align_wcs
from tweakwcs.matchutils import XYXYMatch

from calwebb.errors import DataModelError, ParameterError

log = logging.getLogger(__name__)

FIT_GEOMETRIES = ("shift", "rshift", "rscale", "general")
#: all images share this group when they are aligned together to an absolute catalog
ABSOLUTE_GROUP = 987654


@dataclass
class MatchOptions:
    """Matching and fitting parameters of one alignment (relative or absolute)."""

    minobj: int = 15
    fitgeometry: str = "rshift"
    nclip: int = 3
    sigma: float = 3.0
    searchrad: float = 2.0  # arcsec
    use2dhist: bool = True
    separation: float = 1.0  # arcsec
    tolerance: float = 0.7  # arcsec
    xoffset: float = 0.0  # arcsec
    yoffset: float = 0.0  # arcsec

    def check(self, label: str) -> None:
        if self.fitgeometry not in FIT_GEOMETRIES:
            raise ParameterError(f"{label}fitgeometry must be one of {FIT_GEOMETRIES}, got "
                                 f"{self.fitgeometry!r}")
        if self.separation <= math.sqrt(2.0) * self.tolerance:
            raise ParameterError(
                f"{label}separation ({self.separation}) must be larger than √2 × "
                f"{label}tolerance ({self.tolerance}) for the matching to be unambiguous")

    def matcher(self) -> XYXYMatch:
        return XYXYMatch(searchrad=self.searchrad, separation=self.separation,
                         use2dhist=self.use2dhist, xoffset=self.xoffset, yoffset=self.yoffset,
                         tolerance=self.tolerance)


def make_corrector(wcs, wcsinfo: dict, catalog: Table, group_id, name: str):
    """A tweakwcs corrector for one image; ``catalog`` needs x and y (0-based pixels)."""
    return JWSTWCSCorrector(wcs, {"v2_ref": wcsinfo["v2_ref"], "v3_ref": wcsinfo["v3_ref"],
                                  "roll_ref": wcsinfo["roll_ref"]},
                            meta={"catalog": catalog, "name": name, "group_id": group_id})


def inside_bounding_box(catalog: Table, wcs) -> Table:
    """The sources strictly inside the WCS bounding box."""
    if len(catalog) == 0 or wcs.bounding_box is None:
        return catalog
    (x_lo, x_hi), (y_lo, y_hi) = wcs.bounding_box.bounding_box(order="F")
    x, y = np.asarray(catalog["x"]), np.asarray(catalog["y"])
    return catalog[(x > x_lo) & (x < x_hi) & (y > y_lo) & (y < y_hi)]


def align(correctors: list, options: MatchOptions, refcat: Table | None = None,
          enforce_user_order: bool = False, expand_refcat: bool = False) -> bool:
    """Fit the correctors (relative to each other, or to ``refcat`` with RA/DEC columns);
    False, with a warning, when tweakwcs cannot align them."""
    try:
        align_wcs(correctors, refcat=refcat, enforce_user_order=enforce_user_order,
                  expand_refcat=expand_refcat, minobj=options.minobj, match=options.matcher(),
                  fitgeom=options.fitgeometry, nclip=options.nclip,
                  sigma=(options.sigma, "rmse"))
    except ValueError as error:  # tweakwcs: not enough catalogs or matches
        log.warning("alignment failed: %s", error)
        return False
    return True


def largest_corner_shift(before: list, after: list) -> float:
    """The largest distance (arcsec) any footprint corner moved between two lists of WCSs."""
    largest = 0.0
    for old, new in zip(before, after, strict=True):
        a = SkyCoord(*np.asarray(old.footprint()).T, unit="deg")
        b = SkyCoord(*np.asarray(new.footprint()).T, unit="deg")
        largest = max(largest, float(a.separation(b).arcsec.max()))
    return largest


def fit_status(corrector) -> str:
    return corrector.meta.get("fit_info", {}).get("status", "SKIPPED")


def read_reference_catalog(path: str) -> Table:
    """An absolute reference catalog file as a table with RA and DEC (degrees): columns named
    RA/DEC in any case, or a ``sky_centroid`` SkyCoord column as source_catalog writes."""
    try:
        table = Table.read(path)
    except (OSError, ValueError) as error:
        raise DataModelError(f"{path}: cannot read the reference catalog ({error})") from None
    columns = {name.lower(): name for name in table.colnames}
    if "ra" in columns and "dec" in columns:
        ra, dec = table[columns["ra"]], table[columns["dec"]]
    elif "sky_centroid" in columns:
        sky = table[columns["sky_centroid"]]
        ra, dec = sky.ra.deg, sky.dec.deg
    else:
        raise DataModelError(f"{path}: the reference catalog needs RA and DEC columns (or "
                             f"sky_centroid); it has {', '.join(table.colnames)}")
    return Table({"RA": np.asarray(ra, float), "DEC": np.asarray(dec, float)})
