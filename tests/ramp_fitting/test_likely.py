"""Likelihood ramp fitting (algorithm='LIKELY'): analytic covariance, noiseless and noisy
ramps, jumps and saturation, fall-backs, the χ² product, and agreement with stcal."""

import numpy as np
import pytest
from ramp_simulation import TFRAME, flagged_ramps, simulate

from calwebb import datamodels, dqflags
from calwebb.errors import DataModelError
from calwebb.ramp_fitting.likely import difference_covariance, fit_ramps_likely, read_times
from calwebb.ramp_fitting.step import RampFitStep

JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE


def test_difference_covariance_matches_a_brute_force_calculation():
    """α, β against the covariance of resultant differences built from individual reads."""
    times = read_times(5, nframes=3, groupgap=2, frame_time=2.0)
    cov = difference_covariance(times)
    reads = np.concatenate(times)
    owner = np.repeat(np.arange(5), 3)
    average = (owner[None, :] == np.arange(5)[:, None]) / 3.0  # resultants from reads
    difference = (np.eye(5)[1:] - np.eye(5)[:-1]) / cov["delta_t"][:, None]
    to_rates = difference @ average
    # unit rate/gain: Cov(read_a, read_b) = min(t_a, t_b); unit read variance: identity
    photon = to_rates @ np.minimum.outer(reads, reads) @ to_rates.T
    read = to_rates @ to_rates.T
    np.testing.assert_allclose(np.diag(photon), cov["alpha_photon"], rtol=1e-12)
    np.testing.assert_allclose(np.diag(photon, 1), cov["beta_photon"], rtol=1e-12)
    np.testing.assert_allclose(np.diag(read), cov["alpha_read"], rtol=1e-12)
    np.testing.assert_allclose(np.diag(read, 1), cov["beta_read"], rtol=1e-12)
    assert np.allclose(np.triu(photon, 2), 0) and np.allclose(np.triu(read, 2), 0)
    np.testing.assert_allclose(cov["delta_t"], 5 * 2.0)


@pytest.mark.parametrize("nframes,groupgap", [(1, 0), (4, 1)])
def test_noiseless_linear_ramps_give_the_exact_slope(nframes, groupgap):
    truth = np.linspace(0.5, 300, 16).reshape(4, 4)
    model, refs = simulate(truth, nints=2, nframes=nframes, groupgap=groupgap, noise=False)
    rate, rateints = RampFitStep.call(model, algorithm="LIKELY", **refs)
    np.testing.assert_allclose(rate.data, truth, rtol=1e-5)
    np.testing.assert_allclose(rateints.data, np.broadcast_to(truth, (2, 4, 4)), rtol=1e-5)
    assert not rate.dq.any() and (rate.err > 0).all()
    np.testing.assert_allclose(rate.err**2, rate.var_poisson + rate.var_rnoise, rtol=1e-5)
    assert rate.meta.cal_step.ramp_fit == "COMPLETE" and rate.meta.bunit_data == "DN/s"


def test_noisy_ramps_are_unbiased_with_errors_describing_the_scatter():
    truth = np.repeat(np.array([2.0, 20.0, 200.0]), 1200).reshape(60, 60)
    model, refs = simulate(truth, nints=2, ngroups=8, seed=4)
    rate, rateints = RampFitStep.call(model, algorithm="LIKELY", **refs)
    for product in (rate, rateints):
        pull = (product.data - truth) / product.err
        assert abs(np.mean(pull)) < 0.05
        assert abs(np.std(pull) - 1) < 0.05
    for level in (2.0, 20.0, 200.0):  # per flux level: scatter vs. the quoted error
        values = rate.data[truth == level]
        assert abs(np.mean(values) / level - 1) < 3 * np.std(values) / level / np.sqrt(
            values.size) + 1e-3
        assert abs(np.std(values) / np.median(rate.err[truth == level]) - 1) < 0.06
    assert (rate.dq & JUMP).mean() < 0.01  # few false jumps in clean data


def test_jumps_are_found_or_skipped_and_saturation_truncates():
    model, refs = simulate(np.full((4, 4), 10.0), ngroups=10, seed=7)
    model.data[0, 5:, 0, 0] += 2000  # unflagged: the likelihood search finds it
    model.data[0, 4:, 0, 1] += 2000  # flagged by the jump step: those differences are skipped
    model.groupdq[0, 4, 0, 1] = JUMP
    model.groupdq[0, 6:, 0, 2] = SAT
    model.groupdq[0, :, 0, 3] = SAT
    model.groupdq[0, 2, 1, 0] = DNU
    model.pixeldq[1, 1] = DNU | dqflags.DEAD
    rate, _ = RampFitStep.call(model, algorithm="LIKELY", **refs)
    for x in (0, 1, 2):
        assert abs(rate.data[0, x] - 10.0) < 5 * rate.err[0, x]
    assert rate.dq[0, 0] == JUMP and rate.dq[0, 1] == JUMP and rate.dq[0, 2] == SAT
    assert rate.err[0, 2] > rate.err[2, 2]  # fewer usable differences
    assert np.isnan(rate.data[0, 3]) and rate.dq[0, 3] == DNU | SAT
    assert rate.dq[1, 0] == 0 and abs(rate.data[1, 0] - 10.0) < 5 * rate.err[1, 0]
    # a DO_NOT_USE pixel keeps its flag; as in the official code its ramp is still fitted
    assert rate.dq[1, 1] == DNU | dqflags.DEAD and np.isfinite(rate.data[1, 1])


def test_multi_integration_combination_and_dq():
    model, refs = simulate(np.full((3, 3), 5.0), nints=3, ngroups=6, seed=2)
    model.groupdq[0, :, 0, 0] = SAT  # one integration unusable
    model.groupdq[:, :, 1, 1] = SAT  # every integration unusable
    rate, rateints = RampFitStep.call(model, algorithm="LIKELY", **refs)
    assert rateints.dq[0, 0, 0] == DNU | SAT and np.isnan(rateints.data[0, 0, 0])
    assert rate.dq[0, 0] == SAT and np.isfinite(rate.data[0, 0])
    assert rate.dq[1, 1] == DNU | SAT and np.isnan(rate.data[1, 1])
    # equal-quality integrations: the exposure rate sits between them, with a smaller error
    good = rateints.data[:, 2, 2]
    assert good.min() <= rate.data[2, 2] <= good.max()
    assert rate.err[2, 2] < rateints.err[:, 2, 2].min()


def test_fewer_than_four_groups_fall_back_to_ols():
    model, refs = simulate(np.full((3, 3), 5.0), ngroups=3, seed=1)
    likely, _ = RampFitStep.call(model, algorithm="LIKELY", **refs)
    ols, _ = RampFitStep.call(model, **refs)
    np.testing.assert_array_equal(likely.data, ols.data)
    np.testing.assert_array_equal(likely.err, ols.err)


def test_explicit_read_times_select_likely():
    model, refs = simulate(np.full((3, 3), 5.0), ngroups=6, seed=5)
    model.meta.exposure.read_times = [list(t) for t in read_times(6, 1, 0, TFRAME)]
    forced, _ = RampFitStep.call(model, **refs)  # algorithm OLS_C is overridden
    del model.tree["meta"]["exposure"]["read_times"]
    likely, _ = RampFitStep.call(model, algorithm="LIKELY", **refs)
    ols, _ = RampFitStep.call(model, **refs)
    np.testing.assert_array_equal(forced.data, likely.data)
    assert not np.array_equal(forced.data, ols.data)
    model.meta.exposure.read_times = [[10.0], [20.0]]
    with pytest.raises(DataModelError, match="read_times"):
        RampFitStep.call(model, **refs)


def test_read_times_set_the_covariance():
    """Unevenly spaced reads: the fit follows the given times (exact on a noiseless ramp)."""
    times = [[5.0], [10.0], [30.0, 40.0], [70.0], [100.0, 110.0, 120.0]]
    rate = 3.0
    data = np.array([np.mean(t) * rate for t in times], np.float32)[None, :, None, None]
    data = np.broadcast_to(data, (1, 5, 2, 2)).copy()
    image, _ = fit_ramps_likely(data, np.zeros(data.shape, np.uint8),
                                np.zeros((2, 2), np.uint32), np.full((2, 2), 2, np.float32),
                                np.full((2, 2), 5, np.float32), np.zeros((2, 2), np.float32),
                                times)
    np.testing.assert_allclose(image["slope"], rate, rtol=1e-6)


def test_save_opt_writes_the_chisq_image(tmp_path):
    model, refs = simulate(np.full((40, 40), 30.0), ngroups=10, seed=9)
    model.meta.filename = "jw01_nrca1_ramp.fits"
    step = RampFitStep(algorithm="LIKELY", save_opt=True, output_dir=str(tmp_path), **refs)
    rate, _ = step.run(model)
    chisq = step.optional_model
    # χ² of a good fit: about (differences − 1 fitted rate) on average
    assert abs(np.median(chisq.data) - 8) < 1.5
    saved = datamodels.ImageModel(tmp_path / "jw01_nrca1_likely_chisq.fits")
    np.testing.assert_array_equal(saved.data, chisq.data)


# -- agreement with the official implementation ----------------------------------------------
def stcal_likely(model, refs):
    ramp_fit = pytest.importorskip("stcal.ramp_fitting.ramp_fit")
    from stcal.ramp_fitting.ramp_fit_class import RampData

    exposure = model.meta.exposure
    ramp_data = RampData()
    ramp_data.set_arrays(model.data.copy(), model.groupdq.copy(), model.pixeldq.copy(),
                         model.average_dark_current.copy(),
                         zeroframe=model.zeroframe.copy() if model.has_array("zeroframe")
                         else None)
    ramp_data.set_meta(name="NIRCAM", frame_time=exposure.frame_time,
                       group_time=exposure.group_time, groupgap=exposure.groupgap,
                       nframes=exposure.nframes, drop_frames1=0)
    ramp_data.set_dqflags(dqflags.PIXEL)
    image, integ, _ = ramp_fit.ramp_fit_data(
        ramp_data, False, refs["override_readnoise"].data.copy(),
        refs["override_gain"].data.copy(), "LIKELY", "optimal", "1")
    return image, integ


@pytest.mark.compare
@pytest.mark.parametrize("ngroups,nframes,groupgap,zeroframe,size", [
    (10, 1, 0, False, 64), (8, 4, 1, True, 64), (4, 2, 0, False, 32),
    (60, 1, 0, False, 16),  # long ramps: determinant rescaling, short pixel blocks
])
def test_matches_stcal_likely(ngroups, nframes, groupgap, zeroframe, size):
    model, refs = flagged_ramps(ngroups=ngroups, nframes=nframes, groupgap=groupgap, size=size)
    if zeroframe:
        rng = np.random.default_rng(1)
        model.zeroframe = (model.data[:, 0] * 0.25 + rng.normal(0, 4, model.data[:, 0].shape)
                           ).astype(np.float32)
    step = RampFitStep(algorithm="LIKELY", save_opt=True, **refs)
    rate, rateints = step.run(model)
    image, integ = stcal_likely(model, refs)
    np.testing.assert_allclose(step.optional_model.data, image["chisq"], rtol=1e-5,
                               equal_nan=True)
    for ours, theirs in ((rate, image), (rateints, integ)):
        assert (np.isnan(ours.data) == np.isnan(theirs["slope"])).all()
        good = np.isfinite(ours.data) & (ours.err > 0)
        delta = np.abs(ours.data - theirs["slope"])[good]
        assert np.median(delta / np.abs(theirs["slope"][good])) < 1e-4
        assert np.median(delta / ours.err[good]) < 0.01
        assert (ours.dq == theirs["dq"]).mean() >= 0.999
        for name, key in (("data", "slope"), ("err", "err"), ("var_poisson", "var_poisson"),
                          ("var_rnoise", "var_rnoise")):
            np.testing.assert_allclose(getattr(ours, name), theirs[key], rtol=1e-5, atol=0,
                                       equal_nan=True, err_msg=name)
        np.testing.assert_array_equal(ours.dq, theirs["dq"])
    assert (rate.dq & JUMP).any()


def test_likely_keeps_ramps_that_ols_would_refuse():
    """No MIRI group trimming and no 'all first groups saturated' shortcut for LIKELY."""
    model, refs = simulate(np.full((3, 3), 5.0), ngroups=6, seed=3)
    model.meta.instrument.name = "MIRI"
    model.groupdq[:, 0] = SAT
    assert RampFitStep.call(model, **refs) == (None, None)
    rate, rateints = RampFitStep.call(model, algorithm="LIKELY", **refs)
    assert rate.data.shape == (3, 3) and (rate.dq & SAT).all()
    assert np.isfinite(rate.data).all()  # the unflagged later groups still give a rate
