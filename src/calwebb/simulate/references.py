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
