"""A small NIRCam exposure with matching reference files in a CRDS cache, for Stage 1 tests.

This is test scaffolding (a known linear count rate pushed through bias, dark,
non-linearity, reference-pixel offsets and noise), not the simulator.
"""

from __future__ import annotations

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.references.cache import write_local_cache

SHAPE = (64, 64)
NGROUPS, NINTS, TGROUP = 8, 2, 10.73677
GAIN, READ_NOISE, NONLINEARITY = 2.0, 8.0, 2e-6


def _reference(model, reftype, subarray=True):
    model.meta.reftype = reftype.upper()
    model.meta.instrument.name = "NIRCAM"
    model.meta.instrument.detector = "NRCA1"
    model.meta.telescope = "JWST"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.pedigree = "DUMMY"
    model.meta.description = f"calwebb test {reftype}"
    model.meta.author = "calwebb tests"
    if subarray:
        sub = model.meta.subarray
        sub.name, sub.xstart, sub.ystart = "SUB64P", 1, 1
        sub.ysize, sub.xsize = SHAPE
        sub.fastaxis, sub.slowaxis = -1, 2
    return model


def write_exposure(directory, seed=0):
    """(uncal path, CRDS cache root, true rate [DN/s]) in ``directory``."""
    rng = np.random.default_rng(seed)
    ny, nx = SHAPE
    rate = rng.uniform(1, 40, SHAPE)
    rate[30:34, 30:34] = 3000  # a bright star that saturates
    bias = rng.normal(12000, 30, SHAPE)
    offsets = np.where(np.arange(nx) % 2, 20.0, -10.0)[None, :]
    times = np.arange(1, NGROUPS + 1) * TGROUP
    linear = rate[None, None] * times[None, :, None, None] * np.ones((NINTS, 1, 1, 1))
    electrons = rng.poisson(np.diff(np.concatenate(
        [np.zeros((NINTS, 1, ny, nx)), linear * GAIN], 1), axis=1)).cumsum(axis=1) / GAIN
    electrons[:, :, :4, :] = 0
    electrons[:, :, :, :4] = 0  # reference pixels see no light
    raw_signal = electrons - NONLINEARITY * electrons**2  # so that raw + a raw² ≈ linear
    drift = rng.normal(0, 3, (NINTS, NGROUPS, 1, 1))
    noise = rng.normal(0, READ_NOISE / np.sqrt(2), linear.shape)
    raw = bias + offsets + drift + raw_signal + noise
    raw = np.clip(np.round(raw), 0, 65535).astype(np.uint16)

    uncal = datamodels.Level1bModel(data=raw)
    meta = uncal.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = "NIRCAM", "NRCA1"
    meta.instrument.channel, meta.instrument.module = "SHORT", "A"
    meta.instrument.filter, meta.instrument.pupil = "F200W", "CLEAR"
    meta.exposure.type, meta.exposure.readpatt = "NRC_IMAGE", "RAPID"
    meta.exposure.nints, meta.exposure.ngroups = NINTS, NGROUPS
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.frame_time = meta.exposure.group_time = TGROUP
    meta.exposure.integration_time = TGROUP * (NGROUPS - 1)
    meta.exposure.noutputs = 1
    meta.exposure.integration_start, meta.exposure.integration_end = 1, NINTS
    meta.exposure.start_time, meta.exposure.mid_time, meta.exposure.end_time = (
        60000.0, 60000.001, 60000.002)
    meta.exposure.drop_frames1, meta.exposure.frame_divisor = 0, 1
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00.000"
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "SUB64P", 1, 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.subarray.fastaxis, meta.subarray.slowaxis = -1, 2
    meta.visit.tsovisit = False
    uncal_path = directory / "jw01234001001_01101_00001_nrca1_uncal.fits"
    uncal.save(uncal_path)

    mask = np.zeros(SHAPE, np.uint32)
    mask[:4, :] = mask[:, :4] = dqflags.REFERENCE_PIXEL
    mask[50, 50] = dqflags.DEAD | dqflags.DO_NOT_USE
    coeffs = np.zeros((3, ny, nx), np.float32)
    coeffs[1], coeffs[2] = 1.0, NONLINEARITY
    dark = datamodels.DarkModel(data=np.zeros((NGROUPS + 2, ny, nx), np.float32),
                                err=np.zeros((NGROUPS + 2, ny, nx), np.float32),
                                dq=np.zeros(SHAPE, np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = NGROUPS + 2
    dark.meta.exposure.type, dark.meta.exposure.readpatt = "NRC_IMAGE", "RAPID"
    dark.meta.exposure.noutputs = 1
    references = {
        "mask": datamodels.MaskModel(dq=mask),
        "saturation": datamodels.SaturationModel(data=np.full(SHAPE, 60000, np.float32),
                                                 dq=np.zeros(SHAPE, np.uint32)),
        "superbias": datamodels.SuperBiasModel(data=bias.astype(np.float32),
                                               err=np.zeros(SHAPE, np.float32),
                                               dq=np.zeros(SHAPE, np.uint32)),
        "linearity": datamodels.LinearityModel(coeffs=coeffs, dq=np.zeros(SHAPE, np.uint32)),
        "dark": dark,
        "gain": datamodels.GainModel(data=np.full(SHAPE, GAIN, np.float32)),
        "readnoise": datamodels.ReadnoiseModel(data=np.full(SHAPE, READ_NOISE, np.float32)),
    }
    references["readnoise"].meta.exposure.readpatt = "RAPID"
    references["superbias"].meta.exposure.readpatt = "RAPID"
    paths = []
    for serial, (reftype, model) in enumerate(sorted(references.items()), start=1):
        path = directory / "refs" / f"jwst_nircam_{reftype}_{9000 + serial}.fits"
        path.parent.mkdir(exist_ok=True)
        _reference(model, reftype).save(path)
        paths.append(path)
    cache = write_local_cache(paths, directory / "crds", "jwst_9000.pmap")
    return uncal_path, cache, rate
