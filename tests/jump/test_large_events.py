"""Snowballs and showers: region ellipses, flagging, and agreement with stcal."""

import numpy as np
import pytest
from stcal_oracle import run_stcal

from calwebb import datamodels, dqflags
from calwebb.jump.large_events import (
    ShowerParameters,
    SnowballParameters,
    draw_ellipse,
    find_ellipses,
    flag_showers,
    flag_snowballs,
)
from calwebb.jump.step import JumpStep

JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE
TGROUP = 10.737


def disk(shape, row, column, radius):
    rows, columns = np.indices(shape)
    return (rows - row) ** 2 + (columns - column) ** 2 <= radius**2


def test_region_ellipses():
    mask = disk((40, 40), 20, 15, 6)
    mask[2, 2] = True  # too small
    ellipses = find_ellipses(mask, 5)
    assert len(ellipses) == 1
    assert ellipses.column[0] == pytest.approx(15) and ellipses.row[0] == pytest.approx(20)
    assert ellipses.major[0] == pytest.approx(ellipses.minor[0])
    assert 11 < ellipses.major[0] < 13  # ≈ diameter − 1
    bar = np.zeros((20, 20), bool)
    bar[10, 3:15] = True
    line = find_ellipses(bar, 5)
    assert line.major[0] > 10 and line.minor[0] < 0.5 and abs(line.angle[0]) == pytest.approx(90)


def test_drawn_ellipse_is_clipped_at_the_edge():
    rows, columns, inside = draw_ellipse((30, 30), 1.2, 1.4, 10, 6, 0.0)
    assert rows.start == 0 and columns.start == 0
    assert inside[1, 1] and inside.sum() > 10
    # axis1 runs along columns, axis2 along rows
    assert inside[1, 1:6].all() and not inside[5, 1]


def test_snowball_grown_around_a_saturated_core():
    shape = (120, 120)
    groupdq = np.zeros((2, 6, *shape), np.uint8)
    core = disk(shape, 50, 50, 4)
    halo = disk(shape, 50, 50, 8)
    groupdq[0, 3][halo & ~core] = JUMP
    groupdq[0, 3:][:, core] = SAT
    lone = disk(shape, 70, 85, 3)  # a jump region without a core, far from the edge
    groupdq[0, 2][lone] = JUMP
    params = SnowballParameters(groups_masked_next_int=4)
    assert flag_snowballs(groupdq, params) == 1
    grown = disk(shape, 50, 50, 14) & ~disk(shape, 50, 50, 9)
    assert ((groupdq[0, 3][grown] & JUMP) != 0).mean() > 0.9
    assert (groupdq[0, 3][disk(shape, 50, 50, 4.9)] == SAT).all()  # core enlarged
    assert (groupdq[0, 2][lone] == JUMP).all() and not groupdq[0, 2][~lone].any()
    remembered = disk(shape, 50, 50, 2.9)  # the core ellipse, not enlarged
    assert (groupdq[1, 1:4][:, remembered] == JUMP).all() and not groupdq[1, 4:].any()
    assert not groupdq[1, 0].any()


def test_shower_flagged_and_counted():
    rng = np.random.default_rng(1)
    electrons = np.cumsum(rng.normal(10, 5, (1, 12, 64, 64)), axis=1)
    electrons[0, 6:][:, disk((64, 64), 30, 30, 12)] += 12
    groupdq = np.zeros(electrons.shape, np.uint8)
    pixeldq = np.zeros((64, 64), np.uint32)
    count = flag_showers(electrons, groupdq, pixeldq, np.full((64, 64), 5.0), 1,
                         ShowerParameters(max_amplitude=6 * TGROUP, groups_masked_after=1))
    assert count >= 1
    assert (groupdq[0, 6][disk((64, 64), 30, 30, 8)] == JUMP).all()
    assert (groupdq[0, 7][disk((64, 64), 30, 30, 8)] == JUMP).all()
    assert not groupdq[0, 8:].any()


def snowball_ramp(nints=2, ngroups=8, size=96, seed=5):
    rng = np.random.default_rng(seed)
    shape = (size, size)
    data = 20.0 * np.arange(1, ngroups + 1)[None, :, None, None] * np.ones((nints, 1, *shape))
    data += rng.normal(0, 7, data.shape)
    groupdq = np.zeros(data.shape, np.uint8)
    for i, (row, column, group) in enumerate([(48, 48, 3), (30, 60, 5), (70, 25, 2)]):
        halo = disk(shape, row, column, 7 + i)
        core = disk(shape, row, column, 3 + i)
        data[i % nints, group:][:, halo] += 4000
        groupdq[i % nints, group:][:, core] = SAT
    for row, column in rng.integers(5, size - 5, (30, 2)):
        data[0, 4:, row, column] += 600
    model = datamodels.RampModel(data=data.astype(np.float32), groupdq=groupdq)
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.group_time = TGROUP
    model.meta.exposure.nframes = 1
    refs = {"override_gain": datamodels.GainModel(data=np.full(shape, 2.0, np.float32)),
            "override_readnoise": datamodels.ReadnoiseModel(data=np.full(shape, 9.0, np.float32))}
    return model, refs


@pytest.mark.compare
def test_snowballs_match_stcal():
    model, refs = snowball_ramp()
    ours = JumpStep.call(model, expand_large_events=True, **refs)
    gdq, pdq, events = run_stcal(model, refs, snowballs=True)
    assert (ours.groupdq == gdq).mean() >= 0.999
    np.testing.assert_array_equal(ours.pixeldq, pdq)
    nints, ngroups, ny, nx = model.data.shape
    exposure_time = TGROUP * (nints * ngroups - nints)
    assert events > 3
    assert ours.meta.exposure.extended_emission_events == pytest.approx(
        1e6 * events / (exposure_time * ny * nx))


@pytest.mark.compare
def test_showers_match_stcal():
    rng = np.random.default_rng(2)
    shape = (80, 80)
    data = np.cumsum(rng.normal(8, 4, (1, 14, *shape)), axis=1)
    data[0, 7:][:, disk(shape, 40, 35, 15)] += 10
    model = datamodels.RampModel(data=data.astype(np.float32))
    model.meta.instrument.name = "MIRI"
    model.meta.exposure.group_time = TGROUP
    model.meta.exposure.nframes = 1
    refs = {"override_gain": datamodels.GainModel(data=np.full(shape, 1.0, np.float32)),
            "override_readnoise": datamodels.ReadnoiseModel(data=np.full(shape, 4.0, np.float32))}
    ours = JumpStep.call(model, find_showers=True, **refs)
    gdq, _, events = run_stcal(model, refs, showers=True)
    assert events >= 1
    assert ((ours.groupdq & JUMP) != 0).sum() > 300
    assert (ours.groupdq == gdq).mean() >= 0.999
