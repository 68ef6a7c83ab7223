"""Instrument facts the simulator needs: detectors, readout patterns, frame times, filters."""

from __future__ import annotations

from dataclasses import dataclass

from calwebb.errors import SimulationError

#: (NFRAMES, GROUPGAP) of each readout pattern
READOUT_PATTERNS = {
    "NIRCAM": {"RAPID": (1, 0), "BRIGHT1": (1, 1), "BRIGHT2": (2, 0), "SHALLOW2": (2, 3),
               "SHALLOW4": (4, 1), "MEDIUM2": (2, 8), "MEDIUM8": (8, 2), "DEEP2": (2, 18),
               "DEEP8": (8, 12)},
    "MIRI": {"FASTR1": (1, 0), "SLOWR1": (1, 0)},
    "NIRISS": {"NISRAPID": (1, 0), "NIS": (4, 1)},
    "NIRSPEC": {"NRSRAPID": (1, 0), "NRSRAPIDD1": (1, 1), "NRSRAPIDD2": (1, 2),
                "NRSRAPIDD6": (1, 5), "NRS": (4, 1), "NRSIRS2RAPID": (1, 0), "NRSIRS2": (5, 0)},
}
#: IRS2 readouts: NRS_NORM normal pixels between NRS_REF interleaved reference pixels, and the
#: samples a readout row of one output takes (640 pixels and 72 idle samples)
IRS2_NORMAL, IRS2_REFERENCE, IRS2_ROW_SAMPLES = 16, 4, 712


@dataclass(frozen=True)
class Detector:
    """One detector: its size, reference-pixel layout and nominal properties."""

    instrument: str
    name: str
    full_shape: tuple[int, int]  # (ny, nx) in science orientation
    pixel_scale: float  # arcsec
    fastaxis: int
    slowaxis: int
    channel: str | None
    module: str | None
    v2_ref: float  # arcsec, aperture reference point in the telescope frame
    v3_ref: float
    v3_yangle: float  # deg
    exposure_type: str


DETECTORS = {
    name: Detector("NIRCAM", name, (2048, 2048), 0.0311, fast, 2, "SHORT", name[3],
                   v2, v3, -0.5, "NRC_IMAGE")
    for name, fast, v2, v3 in (
        ("NRCA1", -1, 120.6, -527.5), ("NRCA2", 1, 120.7, -459.6),
        ("NRCA3", -1, 51.3, -527.8), ("NRCA4", 1, 52.0, -459.5),
        ("NRCB1", 1, -120.6, -527.4), ("NRCB2", -1, -120.5, -459.7),
        ("NRCB3", 1, -51.9, -527.6), ("NRCB4", -1, -52.3, -459.4),
    )
}
DETECTORS["NRCALONG"] = Detector("NIRCAM", "NRCALONG", (2048, 2048), 0.0630, -1, 2, "LONG",
                                 "A", 86.1, -493.2, -0.6, "NRC_IMAGE")
DETECTORS["NRCBLONG"] = Detector("NIRCAM", "NRCBLONG", (2048, 2048), 0.0630, 1, 2, "LONG",
                                 "B", -89.5, -493.4, -0.3, "NRC_IMAGE")
DETECTORS["MIRIMAGE"] = Detector("MIRI", "MIRIMAGE", (1024, 1032), 0.1108, 1, 2, None, None,
                                 -453.4, -373.8, 4.45, "MIR_IMAGE")
# NIRISS reads along the DMS columns (FASTAXIS -2, SLOWAXIS -1)
DETECTORS["NIS"] = Detector("NIRISS", "NIS", (2048, 2048), 0.0656, -2, -1, None, None,
                            -290.1, -697.5, -0.57, "NIS_IMAGE")
# NIRSpec reads along the DMS columns (FASTAXIS ±2) and disperses along the rows; NRS2 is
# stored rotated by 180 degrees. Multi-object spectra (the simulator draws their traces).
DETECTORS.update({
    name: Detector("NIRSPEC", name, (2048, 2048), 0.1, fast, slow, None, None, 378.6, -428.6,
                   138.5, "NRS_MSASPEC")
    for name, fast, slow in (("NRS1", 2, 1), ("NRS2", -2, -1))
})

#: subarray name -> (xstart, ystart, xsize, ysize), 1-based, science orientation. The
#: simulator places NIRCam subarrays at the detector corner so that they include reference
#: pixels.
SUBARRAYS = {
    "NIRCAM": {"FULL": (1, 1, 2048, 2048), "SUB640": (1, 1, 640, 640),
               "SUB320": (1, 1, 320, 320), "SUB160": (1, 1, 160, 160),
               "SUB64P": (1, 1, 64, 64)},
    "MIRI": {"FULL": (1, 1, 1032, 1024), "SUB256": (413, 51, 256, 256),
             "SUB64": (1, 779, 72, 64)},
    "NIRISS": {"FULL": (1, 1, 2048, 2048), "SUB256": (1, 1, 256, 256),
               "SUB128": (1, 1, 128, 128), "SUB64": (1, 1, 64, 64)},
    "NIRSPEC": {"FULL": (1, 1, 2048, 2048)},
}

#: filter -> pivot wavelength (µm)
FILTERS = {
    "NIRCAM": {"F070W": 0.704, "F090W": 0.901, "F115W": 1.154, "F150W": 1.501, "F200W": 1.990,
               "F277W": 2.786, "F356W": 3.563, "F444W": 4.421},
    "MIRI": {"F560W": 5.635, "F770W": 7.639, "F1000W": 9.953, "F1500W": 15.064,
             "F2100W": 20.795},
    "NIRISS": {"F090W": 0.901, "F115W": 1.154, "F140M": 1.404, "F150W": 1.501, "F158M": 1.587,
               "F200W": 1.990, "F277W": 2.776, "F356W": 3.593, "F380M": 3.825, "F430M": 4.285,
               "F444W": 4.426, "F480M": 4.817},
}
#: NIRISS filters mounted in the pupil wheel (FILTER = CLEAR); the others sit in the filter
#: wheel with PUPIL = CLEARP
NIRISS_PUPIL_WHEEL = ("F090W", "F115W", "F140M", "F150W", "F158M", "F200W")
PRIMARY_MIRROR = 6.5  # m
#: MJy/sr per DN/s of each filter (the PHOTOM reference's PHOTMJSR)
PHOTMJSR = {
    instrument: {name: round(0.18 + 0.03 * index, 3) for index, name in enumerate(filters)}
    for instrument, filters in FILTERS.items()
}


def wheels(instrument: str, filter_name: str, pupil: str) -> tuple[str, str | None]:
    """(FILTER, PUPIL) keywords of an exposure through ``filter_name``: NIRISS puts its short
    filters in the pupil wheel behind CLEAR, its long ones in the filter wheel before CLEARP;
    NIRCam keeps ``pupil``; MIRI has no pupil."""
    filter_name = filter_name.upper()
    if instrument == "NIRISS":
        return ("CLEAR", filter_name) if filter_name in NIRISS_PUPIL_WHEEL else (filter_name,
                                                                               "CLEARP")
    return filter_name, pupil.upper() if instrument == "NIRCAM" else None


def nominal_filter(instrument: str, filter_keyword: str, pupil_keyword: str | None) -> str:
    """The filter an exposure's FILTER and PUPIL keywords name (``wheels`` undone)."""
    if instrument == "NIRISS" and (filter_keyword or "").upper() == "CLEAR":
        return (pupil_keyword or "").upper()
    return (filter_keyword or "").upper()


def detector(name: str) -> Detector:
    try:
        return DETECTORS[name.upper()]
    except KeyError:
        raise SimulationError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}") from None


def readout(instrument: str, pattern: str) -> tuple[int, int]:
    try:
        return READOUT_PATTERNS[instrument][pattern.upper()]
    except KeyError:
        known = ", ".join(READOUT_PATTERNS.get(instrument, {}))
        raise SimulationError(
            f"{instrument} has no readout pattern {pattern!r}; known: {known}") from None


def subarray(instrument: str, name: str) -> tuple[int, int, int, int]:
    try:
        return SUBARRAYS[instrument][name.upper()]
    except KeyError:
        known = ", ".join(SUBARRAYS.get(instrument, {}))
        raise SimulationError(f"{instrument} has no subarray {name!r}; known: {known}") from None


def is_irs2(pattern: str) -> bool:
    """Whether a readout pattern is a NIRSpec IRS2 one (interleaved reference pixels)."""
    return pattern.upper().startswith("NRSIRS2")


def frame_time(instrument: str, xsize: int, ysize: int, noutputs: int, pattern: str) -> float:
    """Seconds per frame, 10 µs per sample: NIRCam (nx/outputs + 12)(ny + 1) samples, NIRISS
    and NIRSpec the same along their DMS columns (ny/outputs + 12)(nx + 1), NIRSpec IRS2
    712 (nx + 1); MIRI fast/slow mode."""
    if instrument == "NIRCAM":
        return (xsize / noutputs + 12) * (ysize + 1) * 10e-6
    if instrument in ("NIRISS", "NIRSPEC"):
        samples = IRS2_ROW_SAMPLES if is_irs2(pattern) else ysize / noutputs + 12
        return samples * (xsize + 1) * 10e-6
    per_row = 2.775 / 1024 if pattern.upper() == "FASTR1" else 23.89 / 1024
    return per_row * ysize * (xsize / 1032 if xsize < 1032 else 1.0)


def photmjsr(instrument: str, filter_name: str) -> float:
    try:
        return PHOTMJSR[instrument][filter_name.upper()]
    except KeyError:
        known = ", ".join(PHOTMJSR.get(instrument, {}))
        raise SimulationError(
            f"{instrument} has no filter {filter_name!r}; known: {known}") from None


def psf_fwhm_pixels(instrument: str, filter_name: str, pixel_scale: float) -> float:
    """Diffraction-limited FWHM ≈ 1.03 λ/D, in pixels."""
    wavelength = FILTERS[instrument][filter_name.upper()] * 1e-6
    return 1.03 * wavelength / PRIMARY_MIRROR * 206264.806 / pixel_scale
