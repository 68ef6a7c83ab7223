"""Small striped NIRCam exposures (multistripe, superstripe) with matching references in a
CRDS cache, for Stage 1 tests.

Test scaffolding, not the simulator: a known count rate on the detector rows each stripe
reads, a bias per detector pixel, amplifier offsets that drift from group to group, a
little non-linearity and read noise. The rows every stripe reads are written out here by
hand (``STRIPED_ROWS``), independently of ``calwebb.stripes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.references.cache import write_local_cache

NGROUPS, NINTS, TGROUP = 6, 2, 10.73677
GAIN, READ_NOISE, NONLINEARITY = 2.0, 8.0, 2e-6
XSTART, XSIZE = 481, 64  # straddles amplifiers A and B
DETECTOR = 2048


@dataclass(frozen=True)
class StripedSetup:
    detector: str
    fastaxis: int
    slowaxis: int
    subarray: str
    keywords: dict  # meta.subarray multistripe/superstripe values
    ystart: int  # the readout start in science coordinates
    #: per stripe, the detector rows read (readout order); the first 4 are reference rows
    rows: tuple[tuple[int, ...], ...]
    #: times each stripe reads its rows within a group (in equal parts of the frame)
    repeats: int = 1
    instrument: str = "NIRCAM"
    #: NIRISS: the slow axis runs along the science frame's columns (FASTAXIS ±2); the
    #: exposure is made as for NIRCam (slow axis along rows) and its arrays transposed
    transposed: bool = False
    #: the collated ramp spans the whole detector along the slow axis (SOSS superstripes)
    whole_slow_axis: bool = False

    @property
    def nstripes(self) -> int:
        return len(self.rows)


def _rows(*ranges: tuple[int, int]) -> tuple[int, ...]:
    return tuple(row for start, stop in ranges for row in range(start, stop))


SETUPS = {
    # 4 reference rows, skip 40, then three 20-row pieces 10 rows apart
    "multistripe": StripedSetup(
        "NRCA1", -1, 2, "SUB164STRIPE4_DHS",
        dict(multistripe_reads1=4, multistripe_skips1=40, multistripe_reads2=20,
             multistripe_skips2=10, repeat_stripe=0, interleave_reads1=0, superstripe_step=0,
             num_superstripe=0),
        1, (_rows((0, 4), (44, 64), (74, 94), (104, 124)),)),
    # 4 reference rows, skip 60, then 16 rows; three stripes 16 rows apart. SLOWAXIS -2: the
    # readout starts at the science frame's last row
    "superstripe": StripedSetup(
        "NRCA2", 1, -2, "SUB64P_SUPSTP008",
        dict(multistripe_reads1=4, multistripe_skips1=60, multistripe_reads2=0,
             multistripe_skips2=0, repeat_stripe=0, interleave_reads1=0, superstripe_step=16,
             num_superstripe=3),
        2048, tuple(_rows((0, 4), (64 + 16 * s, 80 + 16 * s)) for s in range(3))),
    # three stripes 4 rows apart, each read three times per group (reference rows first)
    "repeated": StripedSetup(
        "NRCA2", 1, -2, "SUB64P_SUPSTP002",
        dict(multistripe_reads1=4, multistripe_skips1=60, multistripe_reads2=4,
             multistripe_skips2=0, repeat_stripe=1, interleave_reads1=0, superstripe_step=4,
             num_superstripe=3),
        2048, tuple(_rows(*[(0, 4), (64 + 4 * s, 68 + 4 * s)] * 3) for s in range(3)), 3),
    # NIRISS SOSS superstripes (FASTAXIS -2, SLOWAXIS -1: the readout starts at the science
    # frame's last column): as "superstripe", collated over the whole detector width
    "soss": StripedSetup(
        "NIS", -2, -1, "SUB60STRIPE_SOSS",
        dict(multistripe_reads1=4, multistripe_skips1=60, multistripe_reads2=0,
             multistripe_skips2=0, repeat_stripe=0, interleave_reads1=0, superstripe_step=16,
             num_superstripe=3),
        2048, tuple(_rows((0, 4), (64 + 16 * s, 80 + 16 * s)) for s in range(3)),
        instrument="NIRISS", transposed=True, whole_slow_axis=True),
}


def science_rows(setup: StripedSetup, stripe: int) -> np.ndarray:
    """The science-frame detector row of every row of a stripe's striped frame."""
    rows = np.array(setup.rows[stripe])
    return rows if setup.slowaxis > 0 else (DETECTOR - 1 - rows)[::-1]


def amplifier_columns(setup: StripedSetup) -> tuple[np.ndarray, np.ndarray]:
    """(amplifier, parity) of each science column, as the striped refpix correction sees
    them: detector-frame column x of the subarray belongs to amplifier (XSTART - 1 + x) //
    512, its parity is x % 2."""
    columns = np.arange(XSIZE)
    x = columns if setup.fastaxis > 0 else XSIZE - 1 - columns
    return (XSTART - 1 + x) // 512, x % 2


def collated_rows(setup: StripedSetup) -> np.ndarray:
    """Science-frame detector rows of the superstripe ramp after collation."""
    rows = sorted({row for stripe in setup.rows for row in stripe if row >= 4})
    science = np.array(rows) if setup.slowaxis > 0 else DETECTOR - 1 - np.array(rows)
    return np.sort(science)


def write_striped_exposure(directory, mode: str = "superstripe", seed: int = 0,
                           ngroups: int = NGROUPS, nints: int = NINTS):
    """(uncal path, CRDS cache root, true rate [2048, XSIZE] DN/s on science-frame detector
    rows) in ``directory``; ``nints`` integrations (of every stripe, for superstripes)."""
    setup = SETUPS[mode]
    rng = np.random.default_rng(seed)
    rate = rng.uniform(1, 40, (DETECTOR, XSIZE))
    bright = science_rows(setup, 0)[10]
    rate[bright:bright + 2, 20:22] = 3000  # saturates
    bias = rng.normal(12000, 30, (DETECTOR, XSIZE))
    reference_rows = np.zeros(DETECTOR, bool)
    reference_rows[[0, 1, 2, 3] if setup.slowaxis > 0 else [2044, 2045, 2046, 2047]] = True
    rate[reference_rows] = 0
    amplifier, parity = amplifier_columns(setup)
    nrows = len(setup.rows[0])
    # [ngroups, striped row]: a repeated piece is read a part of the group time later
    piece = np.arange(nrows) // (nrows // setup.repeats)
    if setup.slowaxis < 0:
        piece = piece[::-1]
    times = (np.arange(ngroups)[:, None] + (piece + 1) / setup.repeats) * TGROUP
    frames = []
    for _ in range(nints):
        for stripe in range(setup.nstripes):
            rows = science_rows(setup, stripe)
            linear = rate[rows][None] * times[:, :, None]
            electrons = rng.poisson(np.diff(np.concatenate(
                [np.zeros((1, *linear.shape[1:])), linear * GAIN]), axis=0)).cumsum(0) / GAIN
            signal = electrons - NONLINEARITY * electrons**2
            offsets = rng.normal(0, 20, (ngroups, 2, 2))[:, amplifier, parity][:, None, :]
            noise = rng.normal(0, READ_NOISE / np.sqrt(2), signal.shape)
            frames.append(bias[rows][None] + offsets + signal + noise)
    raw = np.clip(np.round(np.array(frames)), 0, 65535).astype(np.uint16)
    ny = raw.shape[-2]

    uncal = datamodels.Level1bModel(data=_oriented(setup, raw))
    _describe(uncal, setup, ngroups, nints)
    _window(uncal, setup, XSTART, setup.ystart, XSIZE, ny)
    uncal.meta.subarray.name = setup.subarray
    uncal.meta.subarray.update(setup.keywords)
    start = 60000.0 + np.arange(len(frames)) * 1e-3
    table = np.zeros(len(frames), datamodels.INT_TIMES_DTYPE)
    table["integration_number"] = np.arange(1, len(frames) + 1)
    for scale, shift in (("MJD_UTC", 0.0), ("BJD_TDB", 0.0008)):
        table[f"int_start_{scale}"] = start + shift
        table[f"int_mid_{scale}"] = start + shift + 4e-4
        table[f"int_end_{scale}"] = start + shift + 8e-4
    uncal.int_times = table
    name = f"jw01234001001_01101_00001_{setup.detector.lower()}"
    uncal_path = directory / f"{name}_uncal.fits"
    uncal.save(uncal_path)

    mask = np.where(reference_rows[:, None], dqflags.REFERENCE_PIXEL, 0).astype(np.uint32)
    mask = np.broadcast_to(mask, bias.shape).copy()
    mask[science_rows(setup, 0)[8], 40] = dqflags.DEAD | dqflags.DO_NOT_USE
    mask[reference_rows.nonzero()[0][1], 50] = dqflags.DO_NOT_USE  # a bad reference pixel
    coeffs = np.zeros((3, DETECTOR, XSIZE), np.float32)
    coeffs[1], coeffs[2] = 1.0, NONLINEARITY
    image = np.zeros(bias.shape, np.float32)
    references = {
        "mask": datamodels.MaskModel(dq=mask),
        "saturation": datamodels.SaturationModel(data=np.full(bias.shape, 60000, np.float32),
                                                 dq=np.zeros(bias.shape, np.uint32)),
        "superbias": datamodels.SuperBiasModel(data=bias.astype(np.float32), err=image,
                                               dq=np.zeros(bias.shape, np.uint32)),
        "linearity": datamodels.LinearityModel(coeffs=coeffs, dq=np.zeros(bias.shape, np.uint32)),
        "gain": datamodels.GainModel(data=np.full(bias.shape, GAIN, np.float32)),
        "readnoise": datamodels.ReadnoiseModel(data=np.full(bias.shape, READ_NOISE, np.float32)),
    }
    for model in references.values():
        _reference_window(model, setup, XSTART, 1, XSIZE, DETECTOR)
    references["dark"] = _dark(setup, ngroups, ny)
    references["readnoise"].meta.exposure.readpatt = _readpatt(setup)
    references["superbias"].meta.exposure.readpatt = _readpatt(setup)
    paths = []
    for serial, (reftype, model) in enumerate(sorted(references.items()), start=1):
        model.meta.reftype = reftype.upper()
        model.meta.description = f"calwebb striped test {reftype}"
        filename = f"jwst_{setup.instrument.lower()}_{reftype}_{9100 + serial}.fits"
        path = directory / "refs" / filename
        path.parent.mkdir(exist_ok=True)
        model.save(path)
        paths.append(path)
    cache = write_local_cache(paths, directory / "crds", "jwst_9100.pmap")
    return uncal_path, cache, rate


def _readpatt(setup: StripedSetup) -> str:
    return "NISRAPID" if setup.instrument == "NIRISS" else "RAPID"


def _exposure_type(setup: StripedSetup) -> str:
    return "NIS_SOSS" if setup.instrument == "NIRISS" else "NRC_IMAGE"


def _oriented(setup: StripedSetup, array: np.ndarray) -> np.ndarray:
    """An array made with the slow axis along rows, in the setup's science frame."""
    return np.ascontiguousarray(np.swapaxes(array, -1, -2)) if setup.transposed else array


def _window(model, setup: StripedSetup, xstart, ystart, xsize, ysize) -> None:
    """``meta.subarray`` of a model made with the slow axis along rows (y), in the setup's
    science frame."""
    if setup.transposed:
        xstart, ystart, xsize, ysize = ystart, xstart, ysize, xsize
    sub = model.meta.subarray
    sub.xstart, sub.ystart, sub.xsize, sub.ysize = xstart, ystart, xsize, ysize
    sub.fastaxis, sub.slowaxis = setup.fastaxis, setup.slowaxis


def _describe(model, setup: StripedSetup, ngroups: int, nints: int) -> None:
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = setup.instrument, setup.detector
    if setup.instrument == "NIRISS":
        meta.instrument.filter, meta.instrument.pupil = "CLEAR", "GR700XD"
    else:
        meta.instrument.filter, meta.instrument.pupil = "F200W", "CLEAR"
        meta.instrument.channel, meta.instrument.module = "SHORT", setup.detector[3]
    meta.exposure.type, meta.exposure.readpatt = _exposure_type(setup), _readpatt(setup)
    meta.exposure.nints, meta.exposure.ngroups = nints * setup.nstripes, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.frame_time = meta.exposure.group_time = TGROUP
    meta.exposure.integration_time = TGROUP * (ngroups - 1)
    meta.exposure.noutputs = 1
    meta.exposure.integration_start = 1
    meta.exposure.integration_end = nints * setup.nstripes
    meta.exposure.start_time, meta.exposure.mid_time, meta.exposure.end_time = (
        60000.0, 60000.001, 60000.002)
    meta.exposure.drop_frames1, meta.exposure.frame_divisor = 0, 1
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00.000"
    meta.visit.tsovisit = False


def _reference_window(model, setup: StripedSetup, xstart, ystart, xsize, ysize):
    """A reference made with the slow axis along rows, labelled and oriented for the setup."""
    model.meta.instrument.name, model.meta.instrument.detector = setup.instrument, setup.detector
    model.meta.telescope = "JWST"
    model.meta.useafter = "2000-01-01T00:00:00"
    model.meta.pedigree = "DUMMY"
    model.meta.author = "calwebb tests"
    model.meta.subarray.name = setup.subarray
    _window(model, setup, xstart, ystart, xsize, ysize)
    for name, spec in type(model).arrays.items():
        if model.has_array(name) and not spec.is_table and getattr(model, name).ndim >= 2:
            setattr(model, name, _oriented(setup, getattr(model, name)))
    return model


def _dark(setup: StripedSetup, ngroups: int, striped_rows: int):
    """A zero dark matching the ramp dark_current sees: the striped frame, or for
    superstripes the collated one (the whole detector for SOSS)."""
    if setup.whole_slow_axis:
        ystart, ysize = 1, DETECTOR
    elif setup.nstripes > 1:
        rows = collated_rows(setup)
        ystart, ysize = int(rows[0]) + 1, len(rows)
    else:
        ystart, ysize = setup.ystart, striped_rows
    shape = (ngroups + 2, ysize, XSIZE)
    dark = datamodels.DarkModel(data=np.zeros(shape, np.float32),
                                err=np.zeros(shape, np.float32),
                                dq=np.zeros(shape[1:], np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.ngroups = ngroups + 2
    dark.meta.exposure.type, dark.meta.exposure.readpatt = _exposure_type(setup), _readpatt(setup)
    dark.meta.exposure.noutputs = 1
    return _reference_window(dark, setup, XSTART, ystart, XSIZE, ysize)
