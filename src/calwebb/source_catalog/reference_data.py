"""Aperture radii, corrections, sky annulus and AB − Vega offset from the APCORR and
ABVEGAOFFSET tables (stage3.md §2.7 step 1).

Pure functions: the step opens the reference files and passes their tables here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from calwebb.errors import ParameterError, ReferenceFileError

log = logging.getLogger(__name__)

#: what the official step uses when no APCORR file is given: radii in pixels, no correction
DEFAULT_RADII = (1.0, 2.0, 3.0)
DEFAULT_BKG_RADII = (5.0, 10.0)
#: with no APCORR the official catalog names its apertures 1, 2, 3 instead of EE percents
DEFAULT_EE_TOKENS = (1, 2, 3)


@dataclass(frozen=True)
class ApertureParams:
    """The three circular apertures and the background annulus, in output pixels."""

    aperture_ee: tuple[int, ...]  # the EE percents (column-name tokens), increasing
    radii: tuple[float, ...]
    corrections: tuple[float, ...]  # APCORR: total flux / flux within the aperture
    bkg_inner_radius: float
    bkg_outer_radius: float

    def as_meta(self) -> dict:
        """The ``aperture_params`` entry of the catalog metadata (official key names)."""
        return {
            "aperture_ee": np.array(self.aperture_ee, int),
            "aperture_radii": np.array(self.radii, float),
            "aperture_corrections": np.array(self.corrections, float),
            "bkg_aperture_inner_radius": float(self.bkg_inner_radius),
            "bkg_aperture_outer_radius": float(self.bkg_outer_radius),
        }


def validate_aperture_ee(aperture_ee) -> tuple[int, int, int]:
    """The EE percents as ints: exactly three, strictly increasing, each in (0, 100)."""
    values = tuple(int(value) for value in aperture_ee)
    if len(values) != 3:
        raise ParameterError(f"aperture_ee1..3 must be three values, got {values}")
    if not all(later > earlier for earlier, later in zip(values, values[1:], strict=False)):
        raise ParameterError(
            f"aperture_ee1, aperture_ee2, aperture_ee3 must be strictly increasing, got {values}")
    if any(value <= 0 or value >= 100 for value in values):
        raise ParameterError(f"aperture_ee values must lie between 0 and 100, got {values}")
    return values


def default_aperture_params() -> ApertureParams:
    """Radii of 1, 2 and 3 pixels, no aperture correction, 5–10 px annulus."""
    log.warning("No APCORR reference file: using apertures of 1, 2 and 3 pixels without "
                "aperture corrections")
    return ApertureParams(DEFAULT_EE_TOKENS, DEFAULT_RADII, (1.0, 1.0, 1.0), *DEFAULT_BKG_RADII)


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode()
    return str(value).strip().upper()


def _column(table, name: str) -> np.ndarray:
    names = {key.lower(): key for key in _names(table)}
    if name.lower() not in names:
        raise ReferenceFileError(f"column {name!r} is missing (columns: {sorted(names)})")
    return np.asarray(table[names[name.lower()]])


def _names(table) -> list[str]:
    names = getattr(table, "colnames", None)
    if names is None:
        names = table.dtype.names or ()
    return list(names)


def _matching(table, selector: dict[str, str | None], source: str) -> np.ndarray:
    """Row indices whose selector columns equal the given values (case-insensitive)."""
    keep = np.ones(len(table), bool)
    for column, wanted in selector.items():
        try:
            values = _column(table, column)
        except ReferenceFileError as exc:
            raise ReferenceFileError(f"{source}: {exc}") from None
        keep &= np.array([_text(value) == _text(wanted) for value in values], bool)
    return np.flatnonzero(keep)


def apcorr_selector(instrument: str | None, filter_name: str | None, pupil: str | None,
                    subarray: str | None) -> dict[str, str | None] | None:
    """Which APCORR columns choose the rows: FILTER+PUPIL (NIRCam, NIRISS), FILTER+SUBARRAY
    (MIRI), none (FGS: every row)."""
    instrument = (instrument or "").upper()
    if instrument in ("NIRCAM", "NIRISS"):
        return {"filter": filter_name, "pupil": pupil}
    if instrument == "MIRI":
        return {"filter": filter_name, "subarray": subarray}
    if instrument == "FGS":
        return None
    raise ReferenceFileError(f"INSTRUME {instrument or 'None'} has no imaging aperture "
                             "corrections (NIRCAM, NIRISS, MIRI or FGS expected)")


def aperture_params_from_apcorr(table, aperture_ee, selector: dict | None,
                                pixel_scale_ratio: float | None = None,
                                source: str = "APCORR") -> ApertureParams:
    """The rows of ``table`` matching ``selector``; for each EE percent the one row whose
    round(100·EEFRACTION) equals it gives RADIUS and APCORR; SKYIN/SKYOUT must agree.

    Radii are divided by ``pixel_scale_ratio`` (output / native pixel scale; 1 if None).
    ReferenceFileError if no row matches the mode or SKYIN/SKYOUT differ between the rows;
    ParameterError if an EE percent has no row (or several)."""
    aperture_ee = validate_aperture_ee(aperture_ee)
    rows = np.arange(len(table)) if selector is None else _matching(table, selector, source)
    if len(rows) == 0:
        wanted = ", ".join(f"{key.upper()}={value}" for key, value in (selector or {}).items())
        raise ReferenceFileError(f"{source}: no aperture-correction rows for {wanted}")
    eefraction = _column(table, "eefraction")[rows].astype(float)
    percents = np.round(100.0 * eefraction).astype(int)
    chosen = []
    for ee in aperture_ee:
        found = rows[percents == ee]
        if len(found) != 1:
            available = sorted(set(percents.tolist()))
            what = "no row" if len(found) == 0 else f"{len(found)} rows"
            raise ParameterError(
                f"aperture encircled energy {ee}% is not usable: {source} has {what} with "
                f"EEFRACTION = {ee / 100:.2f} for this mode (available: {available})")
        chosen.append(int(found[0]))
    ratio = 1.0 if pixel_scale_ratio is None else float(pixel_scale_ratio)
    if not ratio > 0:
        raise ParameterError(f"pixel_scale_ratio (PXSCLRT) must be positive, got {ratio}")
    radii = _column(table, "radius")[chosen].astype(float) / ratio
    corrections = _column(table, "apcorr")[chosen].astype(float)
    skyin = np.unique(_column(table, "skyin")[chosen].astype(float))
    skyout = np.unique(_column(table, "skyout")[chosen].astype(float))
    if len(skyin) != 1 or len(skyout) != 1:
        raise ReferenceFileError(
            f"{source}: the background annulus differs between the EE rows (SKYIN "
            f"{skyin.tolist()}, SKYOUT {skyout.tolist()}); one annulus is expected")
    return ApertureParams(aperture_ee, tuple(radii.tolist()), tuple(corrections.tolist()),
                          float(skyin[0]) / ratio, float(skyout[0]) / ratio)


def abvega_selector(instrument: str | None, filter_name: str | None, pupil: str | None,
                    detector: str | None) -> dict[str, str | None]:
    """ABVEGAOFFSET row selection: FILTER+PUPIL (NIRCam, NIRISS), FILTER (MIRI), DETECTOR
    (FGS)."""
    instrument = (instrument or "").upper()
    if instrument in ("NIRCAM", "NIRISS"):
        return {"filter": filter_name, "pupil": pupil}
    if instrument == "MIRI":
        return {"filter": filter_name}
    if instrument == "FGS":
        return {"detector": detector}
    raise ReferenceFileError(f"INSTRUME {instrument or 'None'} has no AB − Vega offsets "
                             "(NIRCAM, NIRISS, MIRI or FGS expected)")


def abvega_offset_from_table(table, selector: dict, source: str = "ABVEGAOFFSET") -> float:
    """The ``abvega_offset`` (m_AB − m_Vega) of the single row matching ``selector``."""
    rows = _matching(table, selector, source)
    wanted = ", ".join(f"{key.upper()}={value}" for key, value in selector.items())
    if len(rows) != 1:
        what = "no row" if len(rows) == 0 else f"{len(rows)} rows"
        raise ReferenceFileError(f"{source}: {what} for {wanted}; exactly one expected")
    offset = float(_column(table, "abvega_offset")[rows[0]])
    log.info("AB − Vega magnitude offset %.5f (%s)", offset, wanted)
    return offset
