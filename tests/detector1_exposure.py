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


#: per instrument: detector, subarray, readout pattern, exposure type, filter, FASTAXIS
SETUPS = {
    "NIRCAM": ("NRCA1", "SUB64P", "RAPID", "NRC_IMAGE", "F200W", -1),
    "MIRI": ("MIRIMAGE", "SUB64", "FASTR1", "MIR_IMAGE", "F770W", 1),
}
MIRI_FULL = (1024, 1032)


def _subarray(instrument, shape):
    return "FULL" if instrument == "MIRI" and shape == MIRI_FULL else SETUPS[instrument][1]


def label_reference(model, reftype, instrument, detector, subarray, shape, axes):
    """``model`` with the metadata a test reference file needs to be selected: ``shape``
    (ny, nx) of the ``subarray`` from (1, 1), ``axes`` (FASTAXIS, SLOWAXIS)."""
    model.meta.reftype = reftype.upper()
    model.meta.instrument.name = instrument
    model.meta.instrument.detector = detector
    model.meta.telescope = "JWST"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.pedigree = "DUMMY"
    model.meta.description = f"calwebb test {reftype}"
    model.meta.author = "calwebb tests"
    sub = model.meta.subarray
    sub.name, sub.xstart, sub.ystart = subarray, 1, 1
    sub.ysize, sub.xsize = shape
    sub.fastaxis, sub.slowaxis = axes
    return model


def _reference(model, reftype, instrument, shape):
    detector, _, *_, fastaxis = SETUPS[instrument]
    return label_reference(model, reftype, instrument, detector,
                           _subarray(instrument, shape), shape, (fastaxis, 2))


def write_exposure(directory, seed=0, instrument="NIRCAM", shape=SHAPE, ngroups=NGROUPS,
                   nints=NINTS):
    """(uncal path, CRDS cache root, true rate [DN/s]) in ``directory``.

    NIRCam: a corner subarray with 4 reference rows and columns; MIRI: reference columns
    at both sides (full frame is 1024 x 1032).
    """
    detector, _, readpatt, exp_type, filter_name, fastaxis = SETUPS[instrument]
    subarray = _subarray(instrument, shape)
    rng = np.random.default_rng(seed)
    ny, nx = shape
    is_miri = instrument == "MIRI"
    rate = rng.uniform(1, 40, shape)
    rate[30:34, 30:34] = 3000  # a bright star that saturates
    bias = rng.normal(12000, 30, shape)
    offsets = np.where(np.arange(nx) % 2, 20.0, -10.0)[None, :]
    times = np.arange(1, ngroups + 1) * TGROUP
    linear = rate[None, None] * times[None, :, None, None] * np.ones((nints, 1, 1, 1))
    electrons = rng.poisson(np.diff(np.concatenate(
        [np.zeros((nints, 1, ny, nx)), linear * GAIN], 1), axis=1)).cumsum(axis=1) / GAIN
    reference = np.zeros(shape, bool)
    reference[:, :4] = True  # reference pixels see no light
    if is_miri:
        reference[:, -4:] = True
    else:
        reference[:4, :] = True
    electrons[:, :, reference] = 0
    # so that raw + a·raw² ≈ linear; MIRI has no superbias step: its non-linearity acts on
    # the bias-included level
    level = electrons + (bias if is_miri else 0)
    raw_signal = level - NONLINEARITY * level**2 - (bias if is_miri else 0)
    drift = rng.normal(0, 3, (nints, ngroups, 1, 1))
    noise = rng.normal(0, READ_NOISE / np.sqrt(2), linear.shape)
    raw = bias + offsets + drift + raw_signal + noise
    raw = np.clip(np.round(raw), 0, 65535).astype(np.uint16)

    uncal = datamodels.Level1bModel(data=raw)
    meta = uncal.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = instrument, detector
    meta.instrument.filter = filter_name
    if not is_miri:
        meta.instrument.channel, meta.instrument.module = "SHORT", "A"
        meta.instrument.pupil = "CLEAR"
    meta.exposure.type, meta.exposure.readpatt = exp_type, readpatt
    meta.exposure.nints, meta.exposure.ngroups = nints, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.frame_time = meta.exposure.group_time = TGROUP
    meta.exposure.integration_time = TGROUP * (ngroups - 1)
    meta.exposure.noutputs = 1
    meta.exposure.integration_start, meta.exposure.integration_end = 1, nints
    meta.exposure.start_time, meta.exposure.mid_time, meta.exposure.end_time = (
        60000.0, 60000.001, 60000.002)
    meta.exposure.drop_frames1, meta.exposure.frame_divisor = 0, 1
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00.000"
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = subarray, 1, 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.subarray.fastaxis, meta.subarray.slowaxis = fastaxis, 2
    meta.visit.tsovisit = False
    uncal_path = directory / f"jw01234001001_01101_00001_{detector.lower()}_uncal.fits"
    uncal.save(uncal_path)

    mask = np.where(reference, dqflags.REFERENCE_PIXEL, 0).astype(np.uint32)
    mask[50, 50] = dqflags.DEAD | dqflags.DO_NOT_USE
    coeffs = np.zeros((3, ny, nx), np.float32)
    coeffs[1], coeffs[2] = 1.0, NONLINEARITY
    dark_shape = (ngroups + 2, ny, nx)
    if is_miri:
        dark = datamodels.DarkMIRIModel(data=np.zeros((1, *dark_shape), np.float32),
                                        err=np.zeros((1, *dark_shape), np.float32),
                                        dq=np.zeros((1, 1, ny, nx), np.uint32))
    else:
        dark = datamodels.DarkModel(data=np.zeros(dark_shape, np.float32),
                                    err=np.zeros(dark_shape, np.float32),
                                    dq=np.zeros(shape, np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = ngroups + 2
    dark.meta.exposure.type, dark.meta.exposure.readpatt = exp_type, readpatt
    dark.meta.exposure.noutputs = 1
    references = {
        "mask": datamodels.MaskModel(dq=mask),
        "saturation": datamodels.SaturationModel(data=np.full(shape, 60000, np.float32),
                                                 dq=np.zeros(shape, np.uint32)),
        "superbias": datamodels.SuperBiasModel(data=bias.astype(np.float32),
                                               err=np.zeros(shape, np.float32),
                                               dq=np.zeros(shape, np.uint32)),
        "linearity": datamodels.LinearityModel(coeffs=coeffs, dq=np.zeros(shape, np.uint32)),
        "dark": dark,
        "gain": datamodels.GainModel(data=np.full(shape, GAIN, np.float32)),
        "readnoise": datamodels.ReadnoiseModel(data=np.full(shape, READ_NOISE, np.float32)),
    }
    references["readnoise"].meta.exposure.readpatt = readpatt
    references["superbias"].meta.exposure.readpatt = readpatt
    paths = []
    for serial, (reftype, model) in enumerate(sorted(references.items()), start=1):
        path = directory / "refs" / f"jwst_{instrument.lower()}_{reftype}_{9000 + serial}.fits"
        path.parent.mkdir(exist_ok=True)
        _reference(model, reftype, instrument, shape).save(path)
        paths.append(path)
    cache = write_local_cache(paths, directory / "crds", "jwst_9000.pmap")
    return uncal_path, cache, rate


def assert_rates_agree(ours, theirs) -> np.ndarray:
    """The issue's agreement with the official rates: over pixels without DO_NOT_USE, median
    |Δrate|/ERR < 0.01 and median relative difference < 1e-4; DQ equal on ≥ 99.9 % of
    pixels. Returns the pixels compared."""
    good = ((ours.dq & dqflags.DO_NOT_USE) == 0) & np.isfinite(theirs.data)
    delta = np.abs(ours.data - theirs.data)[good]
    assert np.median(delta / theirs.err[good]) < 0.01
    assert np.median(delta / np.abs(theirs.data[good])) < 1e-4
    assert (ours.dq == theirs.dq).mean() >= 0.999
    return good


def assert_official_detector1_agrees(uncal, crds_path, ours) -> None:
    """The official Detector1Pipeline on ``uncal``, with the references of the cache at
    ``crds_path``, gives rates that agree with ``ours`` (``assert_rates_agree``)."""
    import pytest

    from offline_crds import offline_crds

    pipeline = pytest.importorskip("jwst.pipeline")
    with offline_crds(crds_path):
        theirs = pipeline.Detector1Pipeline.call(str(uncal))
    assert_rates_agree(ours, theirs)
