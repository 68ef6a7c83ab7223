"""Reference files built from the detector truth, in the official formats, and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.references.cache import write_local_cache
from calwebb.simulate.detector import (
    RESET_GROUPS,
    RSCD_GROUPS,
    DetectorTruth,
    cut,
    ipc_deconvolution_kernel,
    irs2_mask,
    reset_anomaly,
)
from calwebb.simulate.instruments import READOUT_PATTERNS, SUBARRAYS, frame_time, wheels

USEAFTER = "2000-01-01T00:00:00"
#: rows of an IRS2 coefficient table: real and imaginary parts of 712 x 2048 frequencies
IRS2_COEFFICIENT_ROWS = 2 * 712 * 2048
DARK_FRAMES = 8  # the dark step extrapolates linearly beyond these


def _describe(model, reftype: str, truth: DetectorTruth, subarray=None, window=None):
    detector = truth.detector
    meta = model.meta
    meta.reftype = reftype.upper()
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = detector.instrument, detector.name
    if detector.instrument == "NIRCAM":
        meta.instrument.module, meta.instrument.channel = detector.module, detector.channel
    meta.useafter, meta.pedigree = USEAFTER, "SIMULATION"
    meta.author, meta.description = "calwebb.simulate", f"simulated {reftype} for {detector.name}"
    ny, nx = detector.full_shape
    x0, y0, xsize, ysize = window or (1, 1, nx, ny)
    meta.subarray.name = subarray or "FULL"
    meta.subarray.xstart, meta.subarray.ystart = x0, y0
    meta.subarray.xsize, meta.subarray.ysize = xsize, ysize
    meta.subarray.fastaxis, meta.subarray.slowaxis = detector.fastaxis, detector.slowaxis
    return model


def _save_described(files, truth: DetectorTruth, directory: Path, serial: int,
                    exposure_type: str | None = None) -> list[Path]:
    """Describe and save each (reftype, model, extension) of ``files`` as
    ``jwst_<instrument>_<reftype>_<number>.<extension>``, numbered on from ``serial``
    (``exposure_type``: also set as the models' EXP_TYPE); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    instrument = truth.detector.instrument.lower()
    paths = []
    for number, (reftype, model, extension) in enumerate(files, start=serial + 1):
        _describe(model, reftype, truth)
        if exposure_type is not None:
            model.meta.exposure.type = exposure_type
        path = directory / f"jwst_{instrument}_{reftype}_{number:04d}.{extension}"
        model.save(path)
        paths.append(path)
    return paths


def write_detector_references(truth: DetectorTruth, directory: Path, serial: int,
                              readpatt: str, exposure_type: str, subarrays: dict) -> list[Path]:
    """Mask, saturation, superbias, linearity, gain, readnoise, IPC when the detector has it,
    RSCD for MIRI (full frame), and per subarray a dark and, for MIRI, a reset reference;
    returns their paths. For an IRS2 readout, the mask and superbias have the 3200 rows of
    its frames, and a REFPIX reference holds the IRS2 coefficients; the references that
    depend on the readout pattern are labelled with ``readpatt``."""
    directory.mkdir(parents=True, exist_ok=True)
    zeros = np.zeros(truth.detector.full_shape, np.uint32)
    coeffs = np.zeros((3, *truth.detector.full_shape), np.float32)
    coeffs[1], coeffs[2] = 1.0, truth.nonlinearity
    irs2 = truth.irs2_bias is not None
    bias, mask = (truth.irs2_bias, irs2_mask(truth)) if irs2 else (truth.bias, truth.mask)
    models = {
        "mask": datamodels.MaskModel(dq=mask),
        "saturation": datamodels.SaturationModel(data=truth.saturation, dq=zeros),
        "superbias": datamodels.SuperBiasModel(
            data=bias, err=np.zeros_like(bias), dq=np.zeros(bias.shape, np.uint32)),
        "linearity": datamodels.LinearityModel(coeffs=coeffs, dq=zeros),
        "gain": datamodels.GainModel(data=truth.gain),
        "readnoise": datamodels.ReadnoiseModel(data=truth.read_noise),
    }
    if irs2:
        models["refpix"] = datamodels.IRS2Model(
            irs2_table=irs2_table(),
            dq_table=np.zeros(0, [("OUTPUT", ">u2"), ("ODD_EVEN", ">u2"), ("MASK", ">u4")]))
        for reftype in ("superbias", "readnoise", "refpix"):
            models[reftype].meta.exposure.readpatt = readpatt
    if truth.ipc_alpha:
        models["ipc"] = datamodels.IPCModel(data=ipc_deconvolution_kernel(truth.ipc_alpha))
    if truth.first_group_transient is not None:
        models["rscd"] = _rscd(truth.detector.instrument)
    instrument = truth.detector.instrument.lower()
    paths = _save_described([(reftype, model, "fits") for reftype, model in models.items()],
                            truth, directory, serial)
    serial += len(paths)
    for name, window in subarrays.items():
        serial += 1
        path = directory / f"jwst_{instrument}_dark_{serial:04d}.fits"
        _dark(truth, name, window, readpatt, exposure_type).save(path)
        paths.append(path)
        if truth.reset_amplitude is not None:
            serial += 1
            path = directory / f"jwst_{instrument}_reset_{serial:04d}.fits"
            _reset(truth, name, window, readpatt, exposure_type).save(path)
            paths.append(path)
    return paths


def irs2_table(cutoff: float = 500.0) -> np.ndarray:
    """IRS2 coefficients that correct each amplifier by the slow part of its interleaved
    reference pixels' signal: beta = 712/256 (their windows cover 256 of the 712 samples of
    a readout row) below ``cutoff`` cycles per frame, 0 above; alpha (the reference output's
    weight) 0."""
    samples = IRS2_COEFFICIENT_ROWS // 2
    frequency = np.abs(np.fft.fftfreq(samples, 1 / samples))
    beta = np.where(frequency < cutoff, 712 / 256, 0.0)
    columns = [f"alpha_{k}" for k in range(4)] + [f"beta_{k}" for k in range(4)]
    table = np.zeros(IRS2_COEFFICIENT_ROWS, [(name, ">f4") for name in columns])
    for name in columns[4:]:
        table[name][0::2] = beta  # real parts; imaginary parts stay 0
    return table


def _reset(truth: DetectorTruth, subarray: str, window, readpatt: str, exposure_type: str):
    """The MIRI reset anomaly of one subarray and readout pattern, one integration deep."""
    anomaly = reset_anomaly(cut(truth.reset_amplitude, window), RESET_GROUPS)[None]
    reset = datamodels.ResetModel(data=anomaly, err=np.zeros_like(anomaly),
                                  dq=np.zeros(anomaly.shape[-2:], np.uint32))
    _describe(reset, "reset", truth, subarray, window)
    reset.meta.exposure.readpatt, reset.meta.exposure.type = readpatt, exposure_type
    reset.meta.exposure.nints, reset.meta.exposure.ngroups = 1, RESET_GROUPS
    return reset


def _rscd(instrument: str) -> datamodels.RSCDModel:
    """Groups the first-group transient disturbs, for every subarray and readout pattern."""
    rows = [(subarray, readpatt, *RSCD_GROUPS) for subarray in SUBARRAYS[instrument]
            for readpatt in READOUT_PATTERNS[instrument]]
    table = np.array(rows, dtype=[("subarray", "S17"), ("readpatt", "S12"),
                                  ("group_skip1", ">i4"), ("group_skip", ">i4")])
    return datamodels.RSCDModel(rscd_group_skip_table=table)


def _dark(truth: DetectorTruth, subarray: str, window, readpatt: str, exposure_type: str):
    """Accumulated dark per frame (NFRAMES=1, GROUPGAP=0) from the truth dark rate."""
    x0, y0, nx, ny = window
    tframe = frame_time(truth.detector.instrument, nx, ny, 4 if (nx, ny) == (2048, 2048) else 1,
                        readpatt)
    rate = cut(truth.dark_rate, window)
    frames = np.arange(1, DARK_FRAMES + 1, dtype=np.float32)[:, None, None] * tframe * rate
    miri = truth.detector.instrument == "MIRI"
    if miri:
        dark = datamodels.DarkMIRIModel(data=frames[None], err=np.zeros_like(frames[None]),
                                        dq=np.zeros((1, 1, ny, nx), np.uint32))
    else:
        dark = datamodels.DarkModel(data=frames, err=np.zeros_like(frames),
                                    dq=np.zeros((ny, nx), np.uint32))
    _describe(dark, "dark", truth, subarray, window)
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = DARK_FRAMES
    dark.meta.exposure.readpatt, dark.meta.exposure.type = readpatt, exposure_type
    return dark


def write_cache(reference_files: list[Path], crds_path: Path,
                context: str = "jwst_9000.pmap") -> Path:
    """A CRDS cache selecting these files, readable offline by the crds client."""
    return write_local_cache(reference_files, crds_path, context)


def write_optics_references(truth: DetectorTruth, response: np.ndarray, filter_name: str,
                            pupil: str, directory: Path, serial: int) -> list[Path]:
    """DISTORTION and FILTEROFFSET (ASDF), FLAT, AREA and PHOTOM for one detector and filter,
    from the simulator's optics; returns their paths."""
    from calwebb.simulate import instruments
    from calwebb.simulate.optics import (
        FILTER_OFFSETS,
        Distortion,
        ExposureGeometry,
        Pointing,
    )

    detector = truth.detector
    instrument = detector.instrument
    has_pupil = instrument != "MIRI"
    distortion = Distortion.of(detector)
    offset = FILTER_OFFSETS.get(filter_name.upper(), (0.0, 0.0))
    unpointed = Pointing(0.0, 0.0, 0.0, detector.v2_ref, detector.v3_ref)
    area = ExposureGeometry(distortion, unpointed, 1, 1, offset).relative_area(
        detector.full_shape)
    nominal_a2 = distortion.nominal_area_arcsec2()
    nominal_sr = nominal_a2 / 206264.80624709636 ** 2

    flat_values = response * area
    no_flat = np.random.default_rng(serial).random(flat_values.shape) < 5e-5
    flat_values[no_flat & ~truth.reference] = np.nan
    flat = datamodels.FlatModel(data=flat_values.astype(np.float32),
                                err=np.full(flat_values.shape, 0.005, np.float32),
                                dq=np.zeros(flat_values.shape, np.uint32))
    pixel_area = datamodels.PixelAreaModel(data=area)
    exposure_filter, exposure_pupil = instruments.wheels(instrument, filter_name, pupil)
    for model in (flat, pixel_area):
        model.meta.instrument.filter = exposure_filter
        if has_pupil:
            model.meta.instrument.pupil = exposure_pupil
    pixel_area.meta.photometry.pixelarea_steradians = nominal_sr
    pixel_area.meta.photometry.pixelarea_arcsecsq = nominal_a2

    filters = instruments.FILTERS[instrument]
    wheel_rows = _wheel_rows(instrument, filters)
    values = [instruments.photmjsr(instrument, name) for name in filters]
    columns = [("filter", "S12"), ("pupil" if has_pupil else "subarray", "S17"),
               ("photmjsr", ">f4"), ("uncertainty", ">f4")]
    table = np.zeros(len(filters), dtype=columns)
    if has_pupil:
        table["filter"], table["pupil"] = zip(*wheel_rows, strict=True)
    else:
        table["filter"], table["subarray"] = list(filters), "GENERIC"
    table["photmjsr"], table["uncertainty"] = values, np.multiply(values, 0.01)
    photom = datamodels.reference_model_class("photom", instrument)(phot_table=table)
    photom.meta.photometry.pixelarea_steradians = nominal_sr
    photom.meta.photometry.pixelarea_arcsecsq = nominal_a2

    distortion_model = datamodels.DistortionModel()
    distortion_model.transform = distortion.astropy_model()
    distortion_model.meta.input_units, distortion_model.meta.output_units = "pixel", "arcsec"
    if instrument == "NIRCAM":
        distortion_model.meta.instrument.p_pupil = "CLEAR|"
    entries = []
    for name, (filter_keyword, pupil_keyword) in zip(filters, wheel_rows, strict=True):
        if name in FILTER_OFFSETS:
            column, row = FILTER_OFFSETS[name]
            entry = {"filter": filter_keyword, "column_offset": column, "row_offset": row}
            entries.append({**entry, "pupil": pupil_keyword} if has_pupil else entry)
    filteroffset = datamodels.FilteroffsetModel()
    filteroffset.filters = entries
    filteroffset.meta.input_units = "pixel"

    files = (("flat", flat, "fits"), ("area", pixel_area, "fits"), ("photom", photom, "fits"),
             ("distortion", distortion_model, "asdf"), ("filteroffset", filteroffset, "asdf"))
    return _save_described(files, truth, directory, serial, detector.exposure_type)


#: encircled-energy fractions tabulated in the simulated APCORR references
EE_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def encircled_energy_radii(fwhm_pixels: float, fractions=EE_FRACTIONS,
                           oversample: int = 10) -> np.ndarray:
    """Radii (pixels) enclosing ``fractions`` of a point source as it is measured on a
    mosaic at the native scale: the Gaussian PSF convolved with four one-pixel boxes (the
    detector pixel; the drizzle drop's overlap with the output pixel, a triangle = two boxes;
    the aperture sum treating output pixels as uniform), integrated numerically on an
    ``oversample``-times finer grid."""
    sigma = fwhm_pixels / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    half = int(np.ceil(6 * sigma + 4))
    axis = (np.arange(-half * oversample, half * oversample + 1)) / oversample
    profile = np.exp(-0.5 * (axis / sigma) ** 2)
    box = np.ones(oversample) / oversample
    for _ in range(4):
        profile = np.convolve(profile, box, mode="same")
    image = np.outer(profile, profile)
    radius = np.hypot(*np.meshgrid(axis, axis)).ravel()
    order = np.argsort(radius)
    energy = np.cumsum(image.ravel()[order])
    return np.interp(np.asarray(fractions) * energy[-1], energy, radius[order])


def ab_minus_vega(wavelength_um: float) -> float:
    """AB − Vega magnitude of the simulated photometric system: Vega taken as 700 Jy at
    2 µm falling as λ⁻² (its Rayleigh-Jeans tail)."""
    return float(2.5 * np.log10(3631.0 / (700.0 * (2.0 / wavelength_um) ** 2)))


def write_catalog_references(truth: DetectorTruth, directory: Path, serial: int) -> list[Path]:
    """APCORR (every filter, and for MIRI every subarray, as its catalog step selects by
    subarray: EE radii of the simulated PSF, 1/EE corrections, a sky annulus) and
    ABVEGAOFFSET for one detector; returns their paths."""
    from astropy.table import Table

    from calwebb.simulate import instruments

    detector = truth.detector
    instrument = detector.instrument
    has_pupil = instrument != "MIRI"
    filters = instruments.FILTERS[instrument]
    rows = []
    wheel_rows = _wheel_rows(instrument, filters)
    for name, (filter_keyword, pupil_keyword) in zip(filters, wheel_rows, strict=True):
        fwhm = instruments.psf_fwhm_pixels(instrument, name, detector.pixel_scale)
        radii = encircled_energy_radii(fwhm)
        sky_in = float(np.ceil(2.0 * radii[-1]))
        for second_key in [pupil_keyword] if has_pupil else SUBARRAYS[instrument]:
            rows += [(filter_keyword, second_key, fraction, radius, 1.0 / fraction, sky_in,
                      sky_in + 5.0) for fraction, radius in zip(EE_FRACTIONS, radii, strict=True)]
    columns = [("filter", "S12"), ("pupil" if has_pupil else "subarray", "S15"),
               ("eefraction", ">f4"), ("radius", ">f4"), ("apcorr", ">f4"), ("skyin", ">f4"),
               ("skyout", ">f4")]
    apcorr = datamodels.reference_model_class("apcorr", instrument)(
        apcorr_table=np.array(rows, dtype=columns))
    offsets = datamodels.ABVegaOffsetModel()
    table = Table({"filter": [row[0] for row in wheel_rows], "abvega_offset": [
        ab_minus_vega(wavelength) for wavelength in filters.values()]})
    if has_pupil:
        table["pupil"] = [row[1] for row in wheel_rows]
    offsets.abvega_offset = table
    return _save_described((("apcorr", apcorr, "fits"), ("abvegaoffset", offsets, "asdf")),
                           truth, directory, serial, detector.exposure_type)


def _wheel_rows(instrument: str, filters) -> list[tuple[str, str | None]]:
    """(FILTER, PUPIL) of each of ``filters`` as the tables of the references list them."""
    return [wheels(instrument, name, "CLEAR") for name in filters]
