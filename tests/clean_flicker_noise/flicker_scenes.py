"""Ramps with injected flicker noise and known truth, plus a CRDS cache of the references
the draft ramp fit (gain, read noise) and the flat need. Test scaffolding, not the simulator.

The ramps are in the state clean_flicker_noise sees in Detector1 (bias removed, linear,
after jump). Flicker noise is one offset per detector line per group read, correlated
along the slow axis (1/f-like): per row for NIRCam, per column for MIRI banding and for
NIRSpec (whose fast axis is DMS y).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.references.cache import write_local_cache

TGROUP = 10.73677
GAIN, READ_NOISE = 2.0, 5.0

#: per instrument: detector, subarray, exposure type, readout pattern, filter, (fast, slow),
#: axis along which the flicker offsets vary (0: one offset per row, 1: per column)
SETUPS = {
    "NIRCAM": ("NRCA1", "SUB256", "NRC_IMAGE", "RAPID", "F200W", (-1, 2), 0),
    "MIRI": ("MIRIMAGE", "SUB256", "MIR_IMAGE", "FASTR1", "F770W", (1, 2), 1),
    "NIRSPEC": ("NRS1", "SUB512", "NRS_FIXEDSLIT", "NRSRAPID", "F290LP", (2, 1), 1),
}


@dataclass
class Exposure:
    model: datamodels.RampModel
    truth: np.ndarray  # noise-free ramp (DN) [nints, ngroups, ny, nx]
    flicker: np.ndarray  # injected flicker offsets (DN), shaped like the ramp
    rate: np.ndarray  # true count rate (DN/s)
    sources: np.ndarray  # bool: pixels holding > 5 % of the background in sources
    disc: np.ndarray  # bool: the faint extended disc


def scene(shape, seed=0, n_stars=25, disc_level=1.0, background=0.4):
    """(rate DN/s, source pixels, disc pixels): flat background, Gaussian stars, and one
    faint, sharp-edged elliptical disc (each group difference sees it below the noise, the
    rate image well above) that fills 40 % of the lines it crosses."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    rate = np.full(shape, background)
    for _ in range(n_stars):
        cy, cx = rng.uniform(10, ny - 10), rng.uniform(10, nx - 10)
        rate += rng.uniform(5, 150) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 1.5**2))
    disc = ((y - ny * 0.55) / (ny / 8)) ** 2 + ((x - nx * 0.4) / (nx / 5)) ** 2 < 1
    rate += disc_level * disc
    return rate, rate - background > 0.05 * background, disc


def flicker_offsets(nlines, ngroups, nints, amplitude, rng):
    """Per read, per line: 1/f-like offsets (random walk plus white), RMS ``amplitude``."""
    walk = np.cumsum(rng.normal(0, 1, (nints, ngroups, nlines)), axis=-1)
    walk -= walk.mean(axis=-1, keepdims=True)
    offsets = walk / walk.std(axis=-1, keepdims=True) + rng.normal(0, 1, walk.shape)
    return amplitude * offsets / np.sqrt(2)


def make_exposure(instrument="NIRCAM", shape=(256, 256), ngroups=5, nints=1, seed=0,
                  flicker=4.0, read_noise=READ_NOISE, **scene_args) -> Exposure:
    """A RampModel with Poisson and read noise plus flicker noise of RMS ``flicker`` DN."""
    detector, subarray, exp_type, readpatt, filter_name, (fast, slow), axis = SETUPS[instrument]
    rng = np.random.default_rng(seed)
    ny, nx = shape
    rate, sources, disc = scene(shape, seed, **scene_args)
    times = TGROUP * np.arange(1, ngroups + 1)
    truth = np.broadcast_to(rate * times[:, None, None], (nints, ngroups, ny, nx)).copy()
    increments = np.diff(np.concatenate([np.zeros((nints, 1, ny, nx)), truth], 1), axis=1)
    counts = rng.poisson(increments * GAIN).cumsum(axis=1) / GAIN
    offsets = flicker_offsets(shape[axis], ngroups, nints, flicker, rng)
    noise = offsets[..., :, None] if axis == 0 else offsets[..., None, :]
    noise = np.broadcast_to(noise, truth.shape)
    data = counts + noise + rng.normal(0, read_noise, truth.shape)

    model = datamodels.RampModel(data=data.astype(np.float32),
                                 groupdq=np.zeros(truth.shape, np.uint8),
                                 pixeldq=np.zeros(shape, np.uint32))
    meta = model.meta
    meta.telescope = "JWST"
    meta.filename = f"jw01234001001_01101_00001_{detector.lower()}_ramp.fits"
    meta.instrument.name, meta.instrument.detector = instrument, detector
    meta.instrument.filter = filter_name
    if instrument == "NIRCAM":
        meta.instrument.channel, meta.instrument.module, meta.instrument.pupil = (
            "SHORT", "A", "CLEAR")
    if instrument == "NIRSPEC":
        meta.instrument.grating = "G395H"
    meta.exposure.type, meta.exposure.readpatt = exp_type, readpatt
    meta.exposure.nints, meta.exposure.ngroups = nints, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.frame_time = meta.exposure.group_time = TGROUP
    meta.exposure.integration_time = TGROUP * (ngroups - 1)
    meta.exposure.noutputs = 1
    meta.exposure.drop_frames1, meta.exposure.frame_divisor = 0, 1
    meta.exposure.start_time, meta.exposure.mid_time, meta.exposure.end_time = (
        60000.0, 60000.001, 60000.002)
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00.000"
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = subarray, 1, 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.subarray.fastaxis, meta.subarray.slowaxis = fast, slow
    meta.visit.tsovisit = False
    return Exposure(model, truth, noise, rate, sources, disc)


def _describe(reference, reftype, model):
    meta = reference.meta
    meta.reftype = reftype.upper()
    meta.telescope = "JWST"
    meta.instrument.name = model.meta.instrument.name
    meta.instrument.detector = model.meta.instrument.detector
    meta.useafter, meta.pedigree = "2000-01-01T00:00:00", "DUMMY"
    meta.description, meta.author = f"calwebb test {reftype}", "calwebb tests"
    sub = meta.subarray
    sub.name, sub.xstart, sub.ystart = model.meta.subarray.name, 1, 1
    sub.ysize, sub.xsize = model.data.shape[-2:]
    sub.fastaxis, sub.slowaxis = model.meta.subarray.fastaxis, model.meta.subarray.slowaxis
    return reference


def reference_files(directory: Path, model, flat: np.ndarray | None = None,
                    flat_dq: np.ndarray | None = None) -> list[Path]:
    """Gain, read noise (and flat) reference files for ``model``, written in ``directory``."""
    shape = model.data.shape[-2:]
    references = {
        "gain": datamodels.GainModel(data=np.full(shape, GAIN, np.float32)),
        "readnoise": datamodels.ReadnoiseModel(
            data=np.full(shape, READ_NOISE * np.sqrt(2), np.float32)),
    }
    references["readnoise"].meta.exposure.readpatt = model.meta.exposure.readpatt
    if flat is not None:
        references["flat"] = datamodels.FlatModel(
            data=flat.astype(np.float32), err=np.zeros(shape, np.float32),
            dq=np.zeros(shape, np.uint32) if flat_dq is None else flat_dq)
        flat_meta = references["flat"].meta
        flat_meta.exposure.type = model.meta.exposure.type
        flat_meta.instrument.filter = model.meta.instrument.filter
        flat_meta.exposure.readpatt = model.meta.exposure.readpatt
    paths = []
    instrument = model.meta.instrument.name.lower()
    for serial, (reftype, reference) in enumerate(sorted(references.items()), start=1):
        path = directory / "refs" / f"jwst_{instrument}_{reftype}_{9310 + serial}.fits"
        path.parent.mkdir(parents=True, exist_ok=True)
        _describe(reference, reftype, model).save(path)
        paths.append(path)
    return paths


def write_cache(directory: Path, paths: list[Path]) -> Path:
    """A CRDS cache selecting ``paths``; its own context name keeps the crds client from
    reusing mappings that other tests' caches loaded under the usual name."""
    return write_local_cache(paths, directory / "crds", "jwst_9310.pmap")
