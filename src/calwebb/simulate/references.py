"""Reference files built from the detector truth, in the official formats, and their cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.references.cache import write_local_cache
from calwebb.simulate.detector import DetectorTruth, cut

USEAFTER = "2000-01-01T00:00:00"
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


def write_detector_references(truth: DetectorTruth, directory: Path, serial: int,
                              readpatt: str, exposure_type: str, subarrays: dict) -> list[Path]:
    """Mask, saturation, superbias, linearity, gain, readnoise (full frame) and one dark per
    subarray; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    zeros = np.zeros(truth.detector.full_shape, np.uint32)
    coeffs = np.zeros((3, *truth.detector.full_shape), np.float32)
    coeffs[1], coeffs[2] = 1.0, truth.nonlinearity
    models = {
        "mask": datamodels.MaskModel(dq=truth.mask),
        "saturation": datamodels.SaturationModel(data=truth.saturation, dq=zeros),
        "superbias": datamodels.SuperBiasModel(
            data=truth.bias, err=np.zeros_like(truth.bias), dq=zeros),
        "linearity": datamodels.LinearityModel(coeffs=coeffs, dq=zeros),
        "gain": datamodels.GainModel(data=truth.gain),
        "readnoise": datamodels.ReadnoiseModel(data=truth.read_noise),
    }
    instrument = truth.detector.instrument.lower()
    paths = []
    for reftype, model in models.items():
        _describe(model, reftype, truth)
        serial += 1
        path = directory / f"jwst_{instrument}_{reftype}_{serial:04d}.fits"
        model.save(path)
        paths.append(path)
    for name, window in subarrays.items():
        serial += 1
        path = directory / f"jwst_{instrument}_dark_{serial:04d}.fits"
        _dark(truth, name, window, readpatt, exposure_type).save(path)
        paths.append(path)
    return paths


def _dark(truth: DetectorTruth, subarray: str, window, readpatt: str, exposure_type: str):
    """Accumulated dark per frame (NFRAMES=1, GROUPGAP=0) from the truth dark rate."""
    from calwebb.simulate.instruments import frame_time

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
    nircam = instrument == "NIRCAM"
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
    for model in (flat, pixel_area):
        model.meta.instrument.filter = filter_name.upper()
        if nircam:
            model.meta.instrument.pupil = pupil.upper()
    pixel_area.meta.photometry.pixelarea_steradians = nominal_sr
    pixel_area.meta.photometry.pixelarea_arcsecsq = nominal_a2

    filters = instruments.FILTERS[instrument]
    values = [instruments.photmjsr(instrument, name) for name in filters]
    columns = [("filter", "S12"), ("pupil" if nircam else "subarray", "S17"),
               ("photmjsr", ">f4"), ("uncertainty", ">f4")]
    table = np.zeros(len(filters), dtype=columns)
    table["filter"] = list(filters)
    table[columns[1][0]] = "CLEAR" if nircam else "GENERIC"
    table["photmjsr"], table["uncertainty"] = values, np.multiply(values, 0.01)
    photom = datamodels.reference_model_class("photom", instrument)(phot_table=table)
    photom.meta.photometry.pixelarea_steradians = nominal_sr
    photom.meta.photometry.pixelarea_arcsecsq = nominal_a2

    distortion_model = datamodels.DistortionModel()
    distortion_model.transform = distortion.astropy_model()
    distortion_model.meta.input_units, distortion_model.meta.output_units = "pixel", "arcsec"
    if nircam:
        distortion_model.meta.instrument.p_pupil = "CLEAR|"
    filteroffset = datamodels.FilteroffsetModel()
    filteroffset.filters = [
        {"filter": name, "pupil": "CLEAR", "column_offset": column, "row_offset": row}
        if nircam else {"filter": name, "column_offset": column, "row_offset": row}
        for name, (column, row) in FILTER_OFFSETS.items() if name in filters]
    filteroffset.meta.input_units = "pixel"

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    files = (("flat", flat, "fits"), ("area", pixel_area, "fits"), ("photom", photom, "fits"),
             ("distortion", distortion_model, "asdf"), ("filteroffset", filteroffset, "asdf"))
    for reftype, model, extension in files:
        _describe(model, reftype, truth)
        model.meta.exposure.type = detector.exposure_type
        serial += 1
        path = directory / f"jwst_{instrument.lower()}_{reftype}_{serial:04d}.{extension}"
        model.save(path)
        paths.append(path)
    return paths
