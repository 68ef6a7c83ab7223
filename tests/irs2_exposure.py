"""A full-frame NIRSpec IRS2 exposure with matching reference files in a CRDS cache.

Test scaffolding for Stage 1 on IRS2 readouts (a known linear count rate on the normal
pixels, bias, per-output offsets and a common drift seen by every reference pixel, noise),
not the simulator. The raw frame is 3200 DMS rows (interleaved) by 2048 columns.
"""

from __future__ import annotations

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.irs2 import IRS2Layout
from calwebb.references.cache import write_local_cache
from detector1_exposure import label_reference

GAIN, READ_NOISE, TGROUP = 1.0, 10.0, 14.58889
#: rows of the IRS2 coefficient table: real and imaginary parts of 712 x 2048 frequencies
COEFFICIENT_ROWS = 2 * 712 * 2048


def irs2_table(cutoff: float = 500.0) -> np.ndarray:
    """An IRS2 coefficient table whose amplifier correction is the slow part of the
    interleaved reference pixels' signal: beta = 712/256 (their windows cover 256 of the 712
    samples of a readout row) below ``cutoff`` cycles per frame, 0 above; alpha = 0."""
    samples = COEFFICIENT_ROWS // 2
    frequency = np.abs(np.fft.fftfreq(samples, 1 / samples))
    beta = np.where(frequency < cutoff, 712 / 256, 0.0)
    columns = [f"alpha_{k}" for k in range(4)] + [f"beta_{k}" for k in range(4)]
    table = np.zeros(COEFFICIENT_ROWS, [(name, ">f4") for name in columns])
    for name in columns[4:]:
        table[name][0::2] = beta  # real parts; imaginary parts stay 0
    return table


def describe_reference(model, reftype, detector, readpatt=None):
    """``model`` labelled as a full-frame NIRSpec reference of ``detector``."""
    label_reference(model, reftype, "NIRSPEC", detector, "FULL", (2048, 2048),
                    (2, 1) if detector == "NRS1" else (-2, -1))
    if readpatt:
        model.meta.exposure.readpatt = readpatt
    return model


def write_irs2_exposure(directory, detector="NRS1", ngroups=4, seed=0):
    """(uncal path, CRDS cache root, true rate [DN/s] on the 2048 x 2048 normal pixels)."""
    rng = np.random.default_rng(seed)
    readpatt = "NRSIRS2RAPID"
    uncal = datamodels.Level1bModel(data=np.zeros((1, ngroups, 3200, 2048), np.uint16))
    meta = uncal.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = "NIRSPEC", detector
    meta.instrument.filter, meta.instrument.grating = "CLEAR", "PRISM"
    meta.exposure.type, meta.exposure.readpatt = "NRS_FIXEDSLIT", readpatt
    meta.exposure.nints, meta.exposure.ngroups = 1, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.nrs_normal, meta.exposure.nrs_reference = 16, 4
    meta.exposure.frame_time = meta.exposure.group_time = TGROUP
    meta.exposure.integration_time = TGROUP * (ngroups - 1)
    meta.exposure.noutputs = 4
    meta.exposure.integration_start, meta.exposure.integration_end = 1, 1
    meta.exposure.start_time, meta.exposure.mid_time, meta.exposure.end_time = (
        60000.0, 60000.001, 60000.002)
    meta.exposure.drop_frames1, meta.exposure.frame_divisor = 0, 1
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00.000"
    sub = meta.subarray
    sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = "FULL", 1, 1, 2048, 2048
    sub.fastaxis, sub.slowaxis = (2, 1) if detector == "NRS1" else (-2, -1)
    meta.visit.tsovisit = False

    layout = IRS2Layout.of(uncal)
    normal = layout.normal_rows()
    # the traditional reference pixels: 4 normal rows at each end of the interleaved axis
    # (detector columns) and 4 columns at each side (detector rows)
    lit = np.ones((2048, 2048), bool)
    lit[:4], lit[-4:], lit[:, :4], lit[:, -4:] = False, False, False, False
    rate = np.where(lit, rng.uniform(1, 30, (2048, 2048)), 0.0)
    rate[1000:1003, 700:703] = 3000.0  # saturates within the ramp
    electrons = rng.poisson(rate * GAIN * TGROUP, (ngroups, 2048, 2048)).cumsum(axis=0) / GAIN
    bias = rng.normal(12000, 40, (3200, 2048))
    output_offset = np.repeat(rng.normal(0, 30, 5), layout.section)[:, None]
    # a common drift per group: seen by the detector's reference rows, removed by the IRS2
    # correction's frame trend (it would shift every rate by about 1 DN/s)
    drift = rng.normal(0, 50, (ngroups, 1, 1))
    noise = rng.normal(0, READ_NOISE / np.sqrt(2), (ngroups, 3200, 2048))
    raw = bias + output_offset + drift + noise
    raw[:, normal] += electrons
    uncal.data[0] = np.clip(np.round(raw), 0, 65535).astype(np.uint16)
    uncal_path = directory / f"jw01234001001_01101_00001_{detector.lower()}_uncal.fits"
    uncal.save(uncal_path)

    mask = np.zeros((3200, 2048), np.uint32)
    reference_rows = np.ones(3200, bool)
    reference_rows[normal[4:-4]] = False
    mask[reference_rows] = dqflags.REFERENCE_PIXEL
    mask[:, :4] = mask[:, -4:] = dqflags.REFERENCE_PIXEL
    mask[normal[1500], 1500] = dqflags.DEAD | dqflags.DO_NOT_USE
    refpix = datamodels.IRS2Model(
        irs2_table=irs2_table(),
        dq_table=np.array([(2, 1, 0b101 << 3), (3, 2, 1 << 10)],  # a few bad reference pairs
                          [("OUTPUT", ">u2"), ("ODD_EVEN", ">u2"), ("MASK", ">u4")]))
    references = {
        "mask": datamodels.MaskModel(dq=mask),
        "saturation": datamodels.SaturationModel(data=np.full((2048, 2048), 60000, np.float32),
                                                 dq=np.zeros((2048, 2048), np.uint32)),
        "superbias": datamodels.SuperBiasModel(data=bias.astype(np.float32),
                                               err=np.zeros((3200, 2048), np.float32),
                                               dq=np.zeros((3200, 2048), np.uint32)),
        "refpix": refpix,
        "gain": datamodels.GainModel(data=np.full((2048, 2048), GAIN, np.float32)),
        "readnoise": datamodels.ReadnoiseModel(
            data=np.full((2048, 2048), READ_NOISE, np.float32)),
    }
    paths = []
    for serial, (reftype, model) in enumerate(sorted(references.items()), start=1):
        path = directory / "refs" / f"jwst_nirspec_{reftype}_{9000 + serial}.fits"
        path.parent.mkdir(exist_ok=True)
        pattern = readpatt if reftype in ("superbias", "readnoise", "refpix") else None
        describe_reference(model, reftype, detector, pattern).save(path)
        paths.append(path)
    cache = write_local_cache(paths, directory / "crds", "jwst_9000.pmap")
    return uncal_path, cache, rate
