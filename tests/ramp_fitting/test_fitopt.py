"""The optional OLS_C product (save_opt=True, ``fitopt``): analytic segments, the file, and
agreement with stcal's optional results."""

import numpy as np
import pytest
from ramp_simulation import TFRAME, flagged_ramps, simulate

from calwebb import datamodels, dqflags
from calwebb.ramp_fitting.step import RampFitStep

JUMP, SAT, DNU = dqflags.JUMP_DET, dqflags.SATURATED, dqflags.DO_NOT_USE
OPTIONAL_ARRAYS = ("slope", "sigslope", "var_poisson", "var_rnoise", "yint", "sigyint",
                   "pedestal", "weights", "crmag")


def test_segments_of_a_noiseless_ramp_with_a_jump(tmp_path):
    model, refs = simulate(np.full((3, 3), 2.0), ngroups=10, noise=False)
    model.data[0, 6:, 1, 1] += 1000
    model.groupdq[0, 6, 1, 1] = JUMP
    model.groupdq[0, :, 2, 2] = SAT
    model.meta.filename = "jw01_nrca1_ramp.fits"
    step = RampFitStep(save_opt=True, output_dir=str(tmp_path), **refs)
    step.run(model)
    opt = step.optional_model
    assert opt.slope.shape == (1, 2, 3, 3) and opt.crmag.shape == (1, 1, 3, 3)
    # groups 0-5, then the jump group starts the second segment (groups 6-9)
    np.testing.assert_allclose(opt.slope[0, :, 1, 1], 2.0, rtol=1e-5)
    np.testing.assert_allclose(opt.slope[0, :, 0, 0], [2.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(opt.yint[0, :, 1, 1], [2.0 * TFRAME, 2.0 * TFRAME + 1000],
                               rtol=1e-5)
    np.testing.assert_allclose(opt.crmag[0, 0, 1, 1], 1000 + 2.0 * TFRAME, rtol=1e-5)
    r = 10.0 * 2.0 / np.sqrt(2.0)  # read noise per group in electrons
    var_r = 12 * r**2 / (np.array([6**3 - 6, 4**3 - 4]) * TFRAME**2 * 2.0**2)
    np.testing.assert_allclose(opt.var_rnoise[0, :, 1, 1], var_r, rtol=1e-5)
    np.testing.assert_allclose(opt.weights[0, :, 1, 1], 1 / var_r, rtol=1e-5)
    # 10 groups, rate 2: Poisson variance from the median rate
    np.testing.assert_allclose(opt.var_poisson[0, 0, 0, 0], 2.0 / (TFRAME * 2.0 * 9), rtol=1e-5)
    # pedestal = group 0 − rate·((NFRAMES + 1)/2 + DRPFRMS1)/(NFRAMES + GROUPGAP)
    np.testing.assert_allclose(opt.pedestal[0, 0, 0], 2.0 * TFRAME - 2.0, rtol=1e-5)
    assert opt.pedestal[0, 2, 2] == 0 and not opt.slope[0, :, 2, 2].any()
    saved = datamodels.open(tmp_path / "jw01_nrca1_fitopt.fits")
    assert isinstance(saved, datamodels.RampFitOutputModel)
    for name in OPTIONAL_ARRAYS:
        np.testing.assert_array_equal(getattr(saved, name), getattr(opt, name))


def test_without_save_opt_there_is_no_optional_product():
    model, refs = simulate(np.full((2, 2), 2.0), ngroups=4, noise=False)
    step = RampFitStep(**refs)
    step.run(model)
    assert step.optional_model is None


def stcal_optional(model, refs, suppress):
    ramp_fit = pytest.importorskip("stcal.ramp_fitting.ramp_fit")
    from stcal.ramp_fitting.ramp_fit_class import RampData

    exposure = model.meta.exposure
    ramp_data = RampData()
    ramp_data.algorithm = "OLS_C"
    charge_loss = (model.groupdq & dqflags.CHARGELOSS).any()
    ramp_data.set_arrays(model.data.copy(), model.groupdq.copy(), model.pixeldq.copy(),
                         model.average_dark_current.copy(),
                         orig_gdq=model.groupdq.copy() if charge_loss else None,
                         zeroframe=model.zeroframe.copy() if model.has_array("zeroframe")
                         else None)
    ramp_data.set_meta(name="NIRCAM", frame_time=exposure.frame_time,
                       group_time=exposure.group_time, groupgap=exposure.groupgap,
                       nframes=exposure.nframes, drop_frames1=exposure.drop_frames1)
    ramp_data.set_dqflags(dqflags.PIXEL)
    ramp_data.suppress_one_group_ramps = suppress and model.data.shape[1] > 1
    return ramp_fit.ramp_fit_data(ramp_data, True, refs["override_readnoise"].data.copy(),
                                  refs["override_gain"].data.copy(), "OLS_C", "optimal", "1")


@pytest.mark.compare
@pytest.mark.parametrize("ngroups,nints,nframes,groupgap,suppress,charge_loss,zeroframe", [
    (10, 2, 1, 0, True, False, False), (10, 2, 4, 1, True, False, False),
    (3, 3, 1, 0, True, False, False), (2, 2, 1, 0, False, False, False),
    (1, 2, 1, 0, False, False, False), (5, 2, 1, 0, False, False, True),
    (6, 2, 2, 0, True, True, False),
])
def test_matches_stcal_optional_results(ngroups, nints, nframes, groupgap, suppress,
                                        charge_loss, zeroframe):
    model, refs = flagged_ramps(nints=nints, ngroups=ngroups, nframes=nframes,
                                groupgap=groupgap, size=32, seed=ngroups + nframes)
    model.meta.exposure.drop_frames1 = 1 if nframes > 1 else 0
    rng = np.random.default_rng(3)
    if charge_loss:
        for _ in range(40):
            i, g, y, x = rng.integers(nints), rng.integers(ngroups), *rng.integers(0, 32, 2)
            model.groupdq[i, g:, y, x] |= DNU | dqflags.CHARGELOSS
    if zeroframe:
        model.zeroframe = (model.data[:, 0] * 0.5).astype(np.float32)
        model.groupdq[:, :, 1, 1:4] = SAT
        model.zeroframe[:, 1, 1] = 0
    model.groupdq[:, 1:, 6, 6] = SAT  # single good group
    step = RampFitStep(save_opt=True, suppress_one_group=suppress, **refs)
    _, rateints = step.run(model)
    image, integ, theirs = stcal_optional(model, refs, suppress)
    np.testing.assert_allclose(rateints.data, integ["slope"], rtol=1e-4, equal_nan=True)
    opt = step.optional_model
    for name in OPTIONAL_ARRAYS:
        ours, official = getattr(opt, name), theirs[name]
        assert ours.shape == official.shape, name
        np.testing.assert_allclose(ours, official, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   err_msg=name)
    good = opt.slope != 0
    delta = np.abs(opt.slope - theirs["slope"])[good]
    assert np.nanmedian(delta / np.abs(theirs["slope"][good])) < 1e-4
