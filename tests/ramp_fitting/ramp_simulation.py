"""Simulated ramps for the ramp-fitting tests, built frame by frame."""

import numpy as np

from calwebb import datamodels, dqflags

JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE

TFRAME = 10.737


def simulate(rate, nints=1, ngroups=10, nframes=1, groupgap=0, gain=2.0, read_noise=10.0,
             seed=0, noise=True):
    """Ramps built frame by frame: Poisson electrons accumulate, each frame gets read noise
    (CDS noise ``read_noise`` DN), groups average ``nframes`` frames; plus references."""
    rng = np.random.default_rng(seed)
    rate = np.asarray(rate, np.float64)
    ny, nx = rate.shape
    nframes_total = ngroups * (nframes + groupgap)
    electrons_per_frame = rate * TFRAME * gain
    if noise:
        counts = rng.poisson(np.broadcast_to(electrons_per_frame, (nints, nframes_total, ny, nx)))
        frames = counts.cumsum(axis=1) / gain
        frames = frames + rng.normal(0, read_noise / np.sqrt(2), frames.shape)
    else:
        frames = (np.arange(1, nframes_total + 1)[None, :, None, None] * rate * TFRAME
                  * np.ones((nints, 1, 1, 1)))
    frames = frames.reshape(nints, ngroups, nframes + groupgap, ny, nx)[:, :, :nframes]
    model = datamodels.RampModel(data=frames.mean(axis=2).astype(np.float32))
    model.meta.instrument.name = "NIRCAM"
    exposure = model.meta.exposure
    exposure.frame_time = TFRAME
    exposure.group_time = TFRAME * (nframes + groupgap)
    exposure.nframes, exposure.groupgap, exposure.drop_frames1 = nframes, groupgap, 0
    references = {
        "override_gain": datamodels.GainModel(data=np.full((ny, nx), gain, np.float32)),
        "override_readnoise": datamodels.ReadnoiseModel(
            data=np.full((ny, nx), read_noise, np.float32)),
    }
    return model, references


def flagged_ramps(nints=2, ngroups=10, nframes=1, groupgap=0, size=64, seed=0):
    """Noisy ramps with unflagged and flagged jumps, saturation and DO_NOT_USE groups."""
    rng = np.random.default_rng(seed)
    model, refs = simulate(rng.uniform(0.5, 80, (size, size)), nints=nints, ngroups=ngroups,
                           nframes=nframes, groupgap=groupgap, seed=seed)
    data, groupdq = model.data, model.groupdq
    for _ in range(size * size // 10):
        i, g, y, x = rng.integers(nints), rng.integers(ngroups), *rng.integers(0, size, 2)
        data[i, g:, y, x] += rng.uniform(30, 3000)
        if g > 0 and rng.random() < 0.5:
            groupdq[i, g, y, x] |= JUMP
    for _ in range(size * size // 20):
        i, g, y, x = rng.integers(nints), rng.integers(ngroups), *rng.integers(0, size, 2)
        groupdq[i, g:, y, x] |= SAT
    for _ in range(size * size // 40):
        i, g, y, x = rng.integers(nints), rng.integers(ngroups), *rng.integers(0, size, 2)
        groupdq[i, g, y, x] |= DNU
    model.pixeldq[3, 3] = DNU
    model.pixeldq[4, 4] = SAT
    refs["override_gain"].data[5, 5] = 0
    model.average_dark_current = np.full((size, size), 0.05, np.float32)
    return model, refs
