"""Jump detection: injected jumps found, thresholds respected, agreement with stcal."""

import numpy as np
import pytest
from stcal_oracle import run_stcal

from calwebb import datamodels, dqflags
from calwebb.jump.step import JumpStep

TGROUP = 10.737
JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE


def make_ramp(nints=1, ngroups=8, shape=(32, 32), rate=5.0, gain=2.0, read_noise=10.0, seed=0):
    rng = np.random.default_rng(seed)
    times = np.arange(1, ngroups + 1) * TGROUP
    mean = rate * times[None, :, None, None] * np.ones((nints, 1, *shape))
    data = mean + rng.normal(0, read_noise / np.sqrt(2), mean.shape)
    model = datamodels.RampModel(data=data.astype(np.float32))
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.group_time = TGROUP
    model.meta.exposure.nframes = 1
    references = {
        "override_gain": datamodels.GainModel(data=np.full(shape, gain, np.float32)),
        "override_readnoise": datamodels.ReadnoiseModel(
            data=np.full(shape, read_noise, np.float32)),
    }
    return model, references


def test_injected_jumps_are_found_with_neighbours():
    model, refs = make_ramp()
    model.data[0, 4:, 10, 10] += 2000
    model.data[0, 2:, 20, 20] += 400
    result = JumpStep.call(model, **refs)
    assert result.groupdq[0, 4, 10, 10] == JUMP and result.groupdq[0, 2, 20, 20] == JUMP
    for y, x in [(9, 10), (11, 10), (10, 9), (10, 11)]:
        assert result.groupdq[0, 4, y, x] == JUMP  # strong jump: neighbours flagged
    assert result.meta.cal_step.jump == "COMPLETE"
    assert result.meta.exposure.primary_cosmic_rays > 0
    false = (result.groupdq & JUMP) != 0
    false[0, :, 9:12, 9:12] = False
    false[0, :, 19:22, 19:22] = False
    assert false.mean() < 1e-3  # at 4 sigma few false positives


def test_threshold_depends_on_usable_differences():
    # 4 groups = 3 differences: the four-group threshold (5 sigma) applies
    model, refs = make_ramp(ngroups=4, read_noise=10.0, rate=0.0, seed=3)
    sigma = 10.0 * 2.0  # CDS noise in electrons, NFRAMES = 1
    model.data[0, 3:, 5, 5] += 4.5 * sigma / 2.0  # 4.5σ in DN: not a jump at 5σ
    model.data[0, 3:, 6, 6] += 8 * sigma / 2.0
    result = JumpStep.call(model, **refs)
    assert not result.groupdq[0, :, 5, 5].any()
    assert result.groupdq[0, 3, 6, 6] == JUMP
    relaxed = JumpStep.call(model, four_group_rejection_threshold=3.0, **refs)
    assert relaxed.groupdq[0, 3, 5, 5] == JUMP


def test_saturated_groups_are_never_jumps_and_short_ramps_skip():
    model, refs = make_ramp()
    model.data[0, 5:, 3, 3] = 70000
    model.groupdq[0, 5:, 3, 3] = SAT
    result = JumpStep.call(model, **refs)
    assert not (result.groupdq[0, :, 3, 3] & JUMP).any()
    short, refs = make_ramp(ngroups=2)
    assert JumpStep.call(short, **refs).meta.cal_step.jump == "SKIPPED"


def test_after_jump_flagging():
    model, refs = make_ramp(ngroups=10)
    model.data[0, 3:, 8, 8] += 5000
    result = JumpStep.call(model, after_jump_flag_dn1=1000, after_jump_flag_time1=2.5 * TGROUP,
                           flag_4_neighbors=False, **refs)
    assert (result.groupdq[0, 3:6, 8, 8] == JUMP).all() and result.groupdq[0, 6, 8, 8] == 0


@pytest.mark.compare
@pytest.mark.parametrize("ngroups", [4, 8, 12])
def test_matches_stcal(ngroups):
    rng = np.random.default_rng(ngroups)
    model, refs = make_ramp(nints=2, ngroups=ngroups, shape=(48, 48), seed=ngroups)
    hits = rng.integers(0, 48, (40, 2))
    for n, (y, x) in enumerate(hits):
        model.data[n % 2, 1 + n % (ngroups - 1):, y, x] += rng.uniform(50, 3000)
    model.groupdq[0, ngroups - 2:, 7, 7] = SAT
    model.groupdq[1, 1, 9, 9] = DNU
    ours = JumpStep.call(model, **refs)

    gdq, pdq, _ = run_stcal(model, refs)
    assert (ours.groupdq == gdq).mean() >= 0.9999
    np.testing.assert_array_equal(ours.pixeldq, pdq)


@pytest.mark.parametrize("single_pass", [False, True])
def test_row_sorting_settles_exactly_the_pixels_without_jumps(single_pass):
    """find_jumps (a row sorted at once, then a per-pixel search where needed) equals the
    per-pixel search on every pixel, with jumps, flags, NaN, inf, ties and bad gains."""
    from calwebb.jump.twopoint import _pixel_jumps, find_jumps
    from calwebb.kernels import sorting_network

    rng = np.random.default_rng(7)
    nints, ngroups, ny, nx = 2, 9, 12, 15
    data = (np.arange(ngroups)[None, :, None, None] * rng.uniform(0, 40, (1, 1, ny, nx))
            + rng.normal(0, 5, (nints, ngroups, ny, nx))).round().astype(np.float32)
    data += np.cumsum((rng.random(data.shape) < 0.05) * 400.0, axis=1).astype(np.float32)
    data[rng.random(data.shape) < 0.01] = np.nan
    data[0, 3, 2, 2] = np.inf
    groupdq = np.where(rng.random(data.shape) < 0.08, SAT, 0).astype(np.uint8)
    groupdq[rng.random(data.shape) < 0.04] |= DNU
    gain = rng.uniform(1, 3, (ny, nx)).astype(np.float32)
    gain[0, :3] = 0
    read_noise_2 = rng.uniform(0, 400, (ny, nx))
    thresholds, limits = np.array([4.0, 5.0, 6.0]), np.array([10.0, 1000.0])
    shape = (nints, ngroups - 1, ny, nx)
    found = [np.zeros(shape, bool), np.zeros(shape, bool), np.full(shape, np.nan, np.float32)]
    find_jumps(data, groupdq, gain, read_noise_2, thresholds, single_pass, limits,
               sorting_network(nints * (ngroups - 1)), *found, True)
    expected = [np.zeros(shape, bool), np.zeros(shape, bool), np.full(shape, np.nan, np.float32)]
    work = [np.empty(nints * (ngroups - 1)) for _ in range(3)]
    for y in range(ny):
        for x in range(nx):
            if gain[y, x] > 0:
                _pixel_jumps(data, groupdq, gain, read_noise_2, thresholds, single_pass, limits,
                             *expected, True, y, x, *work)
    assert expected[0].any()
    for ours, theirs in zip(found, expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("flag_neighbours", [True, False])
def test_group_flags_match_array_formulation(flag_neighbours):
    """Jumps flag their group and sources their 4 neighbours (edges included, rows with no
    source nearby skipped), SATURATED/DO_NOT_USE groups lose JUMP_DET: as whole-array
    shifts say."""
    from calwebb.jump.twopoint import flag_jump_groups

    rng = np.random.default_rng(11)
    shape = (2, 6, 9, 8)
    groupdq = rng.choice(np.array([0, 0, 0, 1, 2, 4, 6], np.uint8), shape)
    jumps = rng.random((2, 5, 9, 8)) < 0.05
    sources = rng.random((2, 5, 9, 8)) < 0.03
    sources[0, 1, 0, 0] = sources[1, 4, 8, 7] = True  # corners
    near = np.zeros_like(sources)
    near[..., 1:, :] |= sources[..., :-1, :]
    near[..., :-1, :] |= sources[..., 1:, :]
    near[..., 1:] |= sources[..., :-1]
    near[..., :-1] |= sources[..., 1:]
    hit = np.zeros(shape, bool)
    hit[:, 1:] = jumps | (near if flag_neighbours else False)
    unusable = (groupdq & 3) != 0
    expected = np.where(unusable, groupdq & ~np.uint8(4), np.where(hit, groupdq | 4, groupdq))
    flag_jump_groups(groupdq, jumps, sources, flag_neighbours)
    np.testing.assert_array_equal(groupdq, expected)
