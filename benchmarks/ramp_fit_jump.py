"""Jump detection and ramp fitting on a NIRCam-sized ramp (2048×2048, 10 groups), calwebb vs
stcal, each case in a fresh process (wall time and peak memory from benchmarks/measure.py).

Every case imports its package and builds the same synthetic ramp first; the "set-up" rows
(import and ramp only) are that cost, to be subtracted from the rows that use the package;
each case also prints the time of its step or library call alone, measured inside it.
Run: ``python benchmarks/ramp_fit_jump.py [size] [ngroups]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from measure import measure, report  # noqa: E402

TGROUP = 10.737
GAIN, READ_NOISE = 2.0, 10.0


def make_ramp(size: int, ngroups: int, with_jumps: bool):
    """Poisson + read-noise ramps with cosmic rays and a saturated corner."""
    rng = np.random.default_rng(0)
    rate = rng.uniform(0.5, 50, (size, size)).astype(np.float32)
    steps = rng.poisson((rate * TGROUP * GAIN)[None], (1, ngroups, size, size))
    data = np.cumsum(steps, axis=1, dtype=np.float32) / GAIN
    data += rng.normal(0, READ_NOISE / np.sqrt(2), data.shape).astype(np.float32)
    groupdq = np.zeros(data.shape, np.uint8)
    hits = rng.integers(0, size, (size * size // 200, 2))
    groups = rng.integers(1, ngroups, hits.shape[0])
    for (y, x), g in zip(hits, groups, strict=True):
        data[0, g:, y, x] += rng.uniform(100, 3000)
        if with_jumps:
            groupdq[0, g, y, x] = 4
    groupdq[0, ngroups // 2:, : size // 8, : size // 8] = 2
    gain = np.full((size, size), GAIN, np.float32)
    read_noise = np.full((size, size), READ_NOISE, np.float32)
    return data, groupdq, gain, read_noise


def _timed(label: str, func, *args, **kwargs) -> None:
    """Call ``func`` and print its wall time (the part without imports and set-up)."""
    start = time.perf_counter()
    func(*args, **kwargs)
    print(f"  {label}: {time.perf_counter() - start:.2f} s in the call alone", flush=True)


def _model(data, groupdq):
    from calwebb import datamodels

    model = datamodels.RampModel(data=data, groupdq=groupdq)
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.group_time = model.meta.exposure.frame_time = TGROUP
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 1, 0
    return model


def _references(gain, read_noise):
    from calwebb import datamodels

    return {"override_gain": datamodels.GainModel(data=gain),
            "override_readnoise": datamodels.ReadnoiseModel(data=read_noise)}


def calwebb_setup(size, ngroups):
    from calwebb.jump.step import JumpStep  # noqa: F401
    from calwebb.ramp_fitting.step import RampFitStep  # noqa: F401

    data, groupdq, gain, read_noise = make_ramp(size, ngroups, with_jumps=True)
    _model(data, groupdq), _references(gain, read_noise)


def stcal_setup(size, ngroups):
    from stcal.jump.jump import detect_jumps_data  # noqa: F401
    from stcal.ramp_fitting.ramp_fit import ramp_fit_data  # noqa: F401

    make_ramp(size, ngroups, with_jumps=True)


def calwebb_jump(size, ngroups):
    from calwebb.jump.step import JumpStep

    data, groupdq, gain, read_noise = make_ramp(size, ngroups, with_jumps=False)
    model, references = _model(data, groupdq), _references(gain, read_noise)
    _timed(f"calwebb jump {size}", JumpStep.call, model, **references)


def calwebb_ramp_fit(size, ngroups):
    from calwebb.ramp_fitting.step import RampFitStep

    data, groupdq, gain, read_noise = make_ramp(size, ngroups, with_jumps=True)
    model, references = _model(data, groupdq), _references(gain, read_noise)
    _timed(f"calwebb ramp_fit {size}", RampFitStep.call, model, **references)


def stcal_jump(size, ngroups):
    from stcal.jump.jump import detect_jumps_data
    from stcal.jump.jump_class import JumpData

    from calwebb import dqflags

    data, groupdq, gain, read_noise = make_ramp(size, ngroups, with_jumps=False)
    jump_data = JumpData(gain2d=gain, rnoise2d=read_noise, dqflags=dqflags.PIXEL)
    jump_data.init_arrays_from_arrays(data, groupdq, np.zeros((size, size), np.uint32))
    jump_data.nframes = 1
    jump_data.dt_group = np.ones(1)
    jump_data.n_reads_groupdiff = np.ones(1) * 2
    jump_data.set_detection_settings(4.0, 6.0, 5.0, 1000, 10, True)
    jump_data.set_after_jump(0.0, 0, 0.0, 0)
    jump_data.set_snowball_info(False, 5.0, 1.0, 2.0, True, 2.5, 4, 25)
    jump_data.set_shower_info(False, 1.2, 90, 1, 2.6, 1.1, 10, 400)
    jump_data.set_sigma_clipping_info(3, 100, True)
    jump_data.max_cores = "1"
    jump_data.grp_time = TGROUP
    _timed(f"stcal jump {size}", detect_jumps_data, jump_data)


def stcal_ramp_fit(size, ngroups):
    from stcal.ramp_fitting.ramp_fit import ramp_fit_data
    from stcal.ramp_fitting.ramp_fit_class import RampData

    from calwebb import dqflags

    data, groupdq, gain, read_noise = make_ramp(size, ngroups, with_jumps=True)
    ramp_data = RampData()
    ramp_data.algorithm = "OLS_C"
    ramp_data.set_arrays(data, groupdq, np.zeros((size, size), np.uint32),
                         np.zeros((size, size), np.float32))
    ramp_data.set_meta(name="NIRCAM", frame_time=TGROUP, group_time=TGROUP, groupgap=0,
                       nframes=1, drop_frames1=0)
    ramp_data.set_dqflags(dqflags.PIXEL)
    ramp_data.suppress_one_group_ramps = True
    _timed(f"stcal ramp_fit {size}", ramp_fit_data, ramp_data, False, read_noise, gain,
           "OLS_C", "optimal", "1")


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 2048
    ngroups = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    measure(calwebb_jump, 64, 4)  # compile and cache the numba kernels first
    measure(calwebb_ramp_fit, 64, 4)
    try:
        import stcal  # noqa: F401
        have_stcal = True
    except ImportError:
        have_stcal = False
    shape = f"{size}x{size}x{ngroups}"
    rows = [(f"set-up {shape}", *measure(calwebb_setup, size, ngroups),
             *(measure(stcal_setup, size, ngroups) if have_stcal else (None, None)))]
    for name, ours, theirs in (("jump", calwebb_jump, stcal_jump),
                               ("ramp_fit", calwebb_ramp_fit, stcal_ramp_fit)):
        official = measure(theirs, size, ngroups) if have_stcal else (None, None)
        rows.append((f"{name} {shape} (1 core)", *measure(ours, size, ngroups),
                     *official))
    print(report(rows))


if __name__ == "__main__":
    main()
