"""Ramp fitting: analytic ramps, noise statistics, and agreement with stcal (stage1.md §4)."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.ramp_fitting.prepare import apply_group_range, drop_unusable_miri_groups
from calwebb.ramp_fitting.step import RampFitStep

TGROUP = 10.737
JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE


def make_ramp(rate, nints=1, ngroups=10, gain=2.0, read_noise=10.0, seed=0, noise=True):
    """Ramps of ``rate`` (DN/s) with Poisson and read noise, plus GAIN/READNOISE models."""
    rng = np.random.default_rng(seed)
    rate = np.asarray(rate, np.float64)
    ny, nx = rate.shape
    times = np.arange(1, ngroups + 1) * TGROUP
    mean = rate[None, None] * times[None, :, None, None] * np.ones((nints, 1, 1, 1))
    if noise:
        increments = np.diff(np.concatenate([np.zeros((nints, 1, ny, nx)), mean], 1), axis=1)
        electrons = rng.poisson(increments * gain).cumsum(axis=1) / gain
        mean = electrons + rng.normal(0, read_noise / np.sqrt(2), mean.shape)
    model = datamodels.RampModel(data=mean.astype(np.float32))
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.group_time = model.meta.exposure.frame_time = TGROUP
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 1, 0
    references = {
        "override_gain": datamodels.GainModel(data=np.full((ny, nx), gain, np.float32)),
        "override_readnoise": datamodels.ReadnoiseModel(
            data=np.full((ny, nx), read_noise, np.float32)),
    }
    return model, references


def test_noiseless_linear_ramp_gives_the_exact_slope():
    model, refs = make_ramp(np.full((4, 4), 3.5), noise=False)
    rate, rateints = RampFitStep.call(model, **refs)
    np.testing.assert_allclose(rate.data, 3.5, rtol=1e-6)
    np.testing.assert_allclose(rateints.data, 3.5, rtol=1e-6)
    assert rate.meta.cal_step.ramp_fit == "COMPLETE" and rate.meta.bunit_data == "DN/s"
    # read-noise variance of a 10-group uniform-weight fit: 12 r² / ((n³ − n) t² G²)
    r = 10.0 * 2.0 / np.sqrt(2.0)
    expected = 12 * r**2 / ((10**3 - 10) * TGROUP**2 * 2.0**2)
    np.testing.assert_allclose(rate.var_rnoise, expected, rtol=1e-5)
    np.testing.assert_allclose(rate.var_poisson, 3.5 / (TGROUP * 2.0 * 9), rtol=1e-5)


def test_slope_coefficients_are_the_weighted_least_squares_slope():
    """Every (exponent, length): a straight line's slope exactly (sum c = 0, sum c k = 1);
    exponent 0 (equal weights): the ordinary least-squares coefficients (k - mean) / S_kk;
    a higher exponent: numpy's weighted polynomial fit with weights sqrt(|(k - m)/m|^P)."""
    from calwebb.ramp_fitting.ols import EXPONENTS, slope_coefficients

    table = slope_coefficients(10)
    for n in range(3, 11):
        k = np.arange(n, dtype=float)
        for p in range(EXPONENTS.size):
            c = table[p, n, :n]
            np.testing.assert_allclose([c.sum(), (c * k).sum()], [0.0, 1.0], atol=1e-12)
        centred = k - k.mean()
        np.testing.assert_allclose(table[0, n, :n], centred / (centred**2).sum(), atol=1e-14)
        y = np.random.default_rng(n).normal(size=n)
        weights = np.abs((k - (n - 1) / 2) / ((n - 1) / 2)) ** EXPONENTS[3]
        expected = np.polyfit(k, y, 1, w=np.sqrt(weights))[0]
        assert (table[3, n, :n] * y).sum() == pytest.approx(expected, rel=1e-10)


def test_jump_splits_the_ramp_and_saturation_truncates_it():
    model, refs = make_ramp(np.full((3, 3), 2.0), noise=False)
    model.data[0, 6:, 1, 1] += 1000
    model.groupdq[0, 6, 1, 1] = JUMP
    model.data[0, 4:, 2, 2] = 60000
    model.groupdq[0, 4:, 2, 2] = SAT
    rate, _ = RampFitStep.call(model, **refs)
    np.testing.assert_allclose(rate.data[1, 1], 2.0, rtol=1e-5)
    np.testing.assert_allclose(rate.data[2, 2], 2.0, rtol=1e-5)
    assert rate.dq[1, 1] == JUMP and rate.dq[2, 2] == SAT


def test_unusable_pixels_are_nan_with_zero_variance():
    model, refs = make_ramp(np.full((3, 3), 2.0), noise=False)
    model.groupdq[0, :, 0, 0] = SAT
    model.pixeldq[1, 1] = DNU | dqflags.DEAD
    model.groupdq[0, 1:, 2, 2] = DNU  # one good group: suppressed by default
    rate, rateints = RampFitStep.call(model, **refs)
    for y, x in [(0, 0), (1, 1), (2, 2)]:
        assert np.isnan(rate.data[y, x]) and rate.err[y, x] == 0 and rate.dq[y, x] & DNU
    assert rateints.dq[0, 0, 0] == DNU | SAT


def test_errors_describe_the_scatter():
    truth = np.random.default_rng(3).uniform(0.5, 80, (60, 60))
    model, refs = make_ramp(truth, nints=2, ngroups=8, seed=4)
    rate, _ = RampFitStep.call(model, **refs)
    pull = (rate.data - truth) / rate.err
    assert abs(np.std(pull) - 1) < 0.05 and abs(np.mean(pull)) < 0.05


def test_group_range_and_miri_trimming():
    dq = np.zeros((1, 6, 2, 2), np.uint8)
    apply_group_range(dq, 1, 3)
    assert (dq[0, [0, 4, 5]] == DNU).all() and not dq[0, 1:4].any()
    data = np.zeros((1, 5, 2, 2), np.float32)
    dq = np.zeros((1, 5, 2, 2), np.uint8)
    dq[:, 0] = DNU
    dq[:, 1] = JUMP
    dq[:, -1] = DNU
    trimmed, trimmed_dq = drop_unusable_miri_groups(data, dq)
    assert trimmed.shape[1] == 3 and not trimmed_dq[:, 0].any()
    dq[:, :4] = DNU
    assert drop_unusable_miri_groups(data, dq) == (None, None)


@pytest.mark.compare
def test_matches_stcal_ols():
    ramp_fit = pytest.importorskip("stcal.ramp_fitting.ramp_fit")
    from stcal.ramp_fitting.ramp_fit_class import RampData

    rng = np.random.default_rng(0)
    truth = rng.uniform(0.5, 50, (64, 64))
    model, refs = make_ramp(truth, nints=2, ngroups=10, seed=1)
    model.data[0, 5:, 3, 3] += 500
    model.groupdq[0, 5, 3, 3] = JUMP
    model.groupdq[1, 7:, 4, 4] = SAT
    model.groupdq[:, 1:, 5, 5] = SAT
    model.groupdq[0, 3, 7, 7] = DNU
    model.pixeldq[8, 8] = DNU
    refs["override_gain"].data[10, 10] = 0
    rate, rateints = RampFitStep.call(model, **refs)

    ramp_data = RampData()
    ramp_data.set_arrays(model.data.copy(), model.groupdq.copy(), model.pixeldq.copy(),
                         np.zeros((64, 64), np.float32))
    ramp_data.set_meta(name="NIRCAM", frame_time=TGROUP, group_time=TGROUP, groupgap=0,
                       nframes=1, drop_frames1=0)
    ramp_data.set_dqflags(dqflags.PIXEL)
    ramp_data.suppress_one_group_ramps = True
    image, integ, _ = ramp_fit.ramp_fit_data(
        ramp_data, False, refs["override_readnoise"].data.copy(),
        refs["override_gain"].data.copy(), "OLS_C", "optimal", "1")
    assert (np.isnan(rate.data) == np.isnan(image["slope"])).all()
    good = np.isfinite(rate.data)
    delta = np.abs(rate.data - image["slope"])[good]
    assert np.median(delta / rate.err[good]) < 0.01
    assert np.median(delta / np.abs(image["slope"][good])) < 1e-4
    assert (rate.dq == image["dq"]).mean() >= 0.999
    np.testing.assert_allclose(rate.var_poisson, image["var_poisson"], rtol=1e-4)
    np.testing.assert_allclose(rate.var_rnoise, image["var_rnoise"], rtol=1e-4)
    np.testing.assert_allclose(rateints.data, integ["slope"], rtol=1e-4)
    assert (rateints.dq == integ["dq"]).mean() >= 0.999


def test_one_and_two_group_ramps():
    model, refs = make_ramp(np.full((2, 2), 4.0), ngroups=2, noise=False)
    rate, _ = RampFitStep.call(model, **refs)
    np.testing.assert_allclose(rate.data, 4.0, rtol=1e-6)
    r = 10.0 * 2.0 / np.sqrt(2.0)
    np.testing.assert_allclose(rate.var_rnoise, 12 * r**2 / (6 * TGROUP**2 * 4.0), rtol=1e-5)
    np.testing.assert_allclose(rate.var_poisson, 4.0 / (TGROUP * 2.0), rtol=1e-5)
    single, refs = make_ramp(np.full((2, 2), 4.0), ngroups=1, noise=False)
    rate, _ = RampFitStep.call(single, **refs)  # NFRAMES = 1: one_group_time = TFRAME
    np.testing.assert_allclose(rate.data, 4.0, rtol=1e-6)


def test_first_group_only_and_zeroframe_rescue():
    model, refs = make_ramp(np.full((2, 2), 4.0), ngroups=4, noise=False)
    model.groupdq[0, 1:, 0, 0] = SAT  # only group 0 good
    model.groupdq[0, :, 1, 1] = SAT  # saturated everywhere: the ZEROFRAME rescues it
    model.zeroframe = np.full((1, 2, 2), 4.0 * TGROUP, np.float32)
    suppressed, _ = RampFitStep.call(model, **refs)
    assert np.isnan(suppressed.data[0, 0]) and np.isnan(suppressed.data[1, 1])
    rescued, _ = RampFitStep.call(model, suppress_one_group=False, **refs)
    np.testing.assert_allclose(rescued.data[0, 0], 4.0, rtol=1e-6)  # timing (NFRAMES+1)/2·TFRAME
    np.testing.assert_allclose(rescued.data[1, 1], 4.0, rtol=1e-6)  # timing TFRAME
    assert rescued.dq[1, 1] == SAT


def flagged_ramp(ngroups, nints, seed, charge_loss=False, zeroframe=False):
    """Noisy ramps with random saturation, jumps, DO_NOT_USE and CHARGELOSS groups."""
    rng = np.random.default_rng(seed)
    model, refs = make_ramp(rng.uniform(0.5, 50, (32, 32)), nints=nints, ngroups=ngroups,
                            seed=seed)
    groupdq = model.groupdq
    for _ in range(60):
        i, g, (y, x), kind = rng.integers(nints), rng.integers(ngroups), rng.integers(0, 32, 2), \
            rng.integers(4)
        if kind == 0:
            groupdq[i, g:, y, x] = SAT
        elif kind == 1 and g > 0:
            groupdq[i, g, y, x] |= JUMP
            model.data[i, g:, y, x] += 300
        elif kind == 2:
            groupdq[i, g, y, x] |= DNU
        elif kind == 3 and charge_loss:
            groupdq[i, g:, y, x] |= DNU | dqflags.CHARGELOSS
    groupdq[:, :, 0, 0] = SAT
    groupdq[:, 1:, 0, 1] = SAT
    groupdq[0, :, 0, 2] = SAT
    if zeroframe:
        model.zeroframe = (model.data[:, 0] * 0.5).astype(np.float32)
        model.zeroframe[:, 1, 1] = 0
        groupdq[:, :, 1, 1:4] = SAT
    return model, refs


def stcal_fit(model, refs, suppress):
    ramp_fit = pytest.importorskip("stcal.ramp_fitting.ramp_fit")
    from stcal.ramp_fitting.ramp_fit_class import RampData

    ramp_data = RampData()
    ramp_data.algorithm = "OLS_C"
    charge_loss = (model.groupdq & dqflags.CHARGELOSS).any()
    ramp_data.set_arrays(model.data.copy(), model.groupdq.copy(), model.pixeldq.copy(),
                         np.zeros(model.pixeldq.shape, np.float32),
                         orig_gdq=model.groupdq.copy() if charge_loss else None,
                         zeroframe=model.zeroframe.copy() if model.has_array("zeroframe")
                         else None)
    ramp_data.set_meta(name="NIRCAM", frame_time=TGROUP, group_time=TGROUP, groupgap=0,
                       nframes=1, drop_frames1=0)
    ramp_data.set_dqflags(dqflags.PIXEL)
    ramp_data.suppress_one_group_ramps = suppress and model.data.shape[1] > 1
    image, integ, _ = ramp_fit.ramp_fit_data(
        ramp_data, False, refs["override_readnoise"].data.copy(),
        refs["override_gain"].data.copy(), "OLS_C", "optimal", "1")
    return image, integ


@pytest.mark.compare
@pytest.mark.parametrize("ngroups,nints,suppress,charge_loss,zeroframe", [
    (1, 3, True, False, False), (2, 3, True, False, False), (2, 1, False, False, False),
    (3, 3, True, False, False), (5, 3, False, False, False), (10, 3, True, False, False),
    (5, 2, False, False, True), (6, 2, True, True, False), (6, 3, False, True, False),
])
def test_matches_stcal_special_cases(ngroups, nints, suppress, charge_loss, zeroframe):
    model, refs = flagged_ramp(ngroups, nints, ngroups * 10 + nints, charge_loss, zeroframe)
    rate, rateints = RampFitStep.call(model, suppress_one_group=suppress, **refs)
    image, integ = stcal_fit(model, refs, suppress)
    for ours, theirs in ((rate, image), (rateints, integ)):
        for name, key in (("data", "slope"), ("err", "err"), ("var_poisson", "var_poisson"),
                          ("var_rnoise", "var_rnoise")):
            np.testing.assert_allclose(getattr(ours, name), theirs[key], rtol=1e-4, atol=1e-7,
                                       err_msg=name)
        np.testing.assert_array_equal(ours.dq, theirs["dq"])


def _separate_fit(model, refs, suppress):
    """The one-integration products fitted into separate rate and rateints arrays."""
    from calwebb.kernels import sorting_network
    from calwebb.ramp_fitting.ols import PRODUCT_TYPES, fit_ramps, slope_coefficients

    nints, ngroups, ny, nx = model.data.shape
    zeroframe = model.zeroframe if model.has_array("zeroframe") else np.zeros((nints, 1, 1),
                                                                              np.float32)
    arguments = (model.data, model.groupdq, model.pixeldq, refs["override_gain"].data,
                 refs["override_readnoise"].data, np.zeros((ny, nx), np.float32), zeroframe,
                 model.has_array("zeroframe"), slope_coefficients(ngroups),
                 sorting_network(ngroups - 1), TGROUP, TGROUP, 1, suppress)
    image = [np.empty((ny, nx), kind) for kind in PRODUCT_TYPES]
    cube = [np.empty((nints, ny, nx), kind) for kind in PRODUCT_TYPES]
    fit_ramps(*arguments, 0, *image, *cube)
    return arguments, image, cube


@pytest.mark.parametrize("suppress", [True, False])
@pytest.mark.parametrize("charge_loss, zeroframe", [(False, False), (True, True)])
def test_one_integration_shares_only_identical_planes(suppress, charge_loss, zeroframe):
    from calwebb.ramp_fitting.ols import fit_one_integration

    model, refs = flagged_ramp(6, 1, seed=3, charge_loss=charge_loss, zeroframe=zeroframe)
    arguments, image, cube = _separate_fit(model, refs, suppress)
    shared_image, shared_cube = fit_one_integration(arguments, (32, 32), band=5)
    for ours, theirs in zip([*shared_image, *shared_cube], [*image, *cube], strict=True):
        assert ours.shape == theirs.shape and ours.tobytes() == theirs.tobytes()
    for rate, ints in zip(shared_image, shared_cube, strict=True):
        assert np.shares_memory(rate, ints) == (rate.tobytes() == ints[0].tobytes())
    assert not np.shares_memory(shared_image[1], shared_cube[1])  # ERR
    rate, rateints = RampFitStep.call(model, suppress_one_group=suppress, **refs)
    assert np.shares_memory(rate.data, rateints.data)
    assert rate.data.tobytes() == image[0].tobytes()


def test_one_integration_unshares_a_plane_at_its_first_difference(monkeypatch):
    """A plane whose rateints values differ from the rate's in a later band gets memory of
    its own, with the earlier bands' values."""
    from calwebb.ramp_fitting import ols

    model, refs = flagged_ramp(6, 1, seed=4)
    arguments, image, cube = _separate_fit(model, refs, True)
    fit = ols.fit_ramps

    def differing(*args):
        fit(*args)
        first, ints_var_p = args[14], args[-2]
        if first == 10:
            ints_var_p[0, 1, 3] += 1
    monkeypatch.setattr(ols, "fit_ramps", differing)
    shared_image, shared_cube = ols.fit_one_integration(arguments, (32, 32), band=5)
    expected = cube[3].copy()
    expected[0, 11, 3] += 1
    assert shared_cube[3].tobytes() == expected.tobytes()
    assert shared_image[3].tobytes() == image[3].tobytes()
    assert not np.shares_memory(shared_image[3], shared_cube[3])
    assert np.shares_memory(shared_image[0], shared_cube[0])
