"""calwebb_detector1 on striped readouts (tests/stripe_exposure.py): truth, products, tiling,
and the official result."""

import logging
import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.pipeline.detector1 import Detector1Pipeline
from stripe_exposure import SETUPS, collated_rows, science_rows


@pytest.mark.parametrize("mode", ["multistripe", "superstripe", "soss"])
def test_striped_detector1_recovers_the_true_rate(striped_exposure, tmp_path, caplog, mode):
    uncal, truth = striped_exposure(mode)
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO):
        rate = Detector1Pipeline.call(str(uncal), save_results=True, output_dir=str(out),
                                      max_memory="100KB")  # striped: never tiled
    assert "Striped readout: the ramp is processed whole" in caplog.text
    setup = SETUPS[mode]
    rows = science_rows(setup, 0) if mode == "multistripe" else collated_rows(setup)
    # the products with the slow axis along rows (NIRISS: transposed), on the rows read
    data, err, dq = (np.swapaxes(array, -1, -2) if setup.transposed else array
                     for array in (rate.data, rate.err, rate.dq))
    if setup.whole_slow_axis:  # SOSS: the collated ramp spans the detector
        assert data.shape == truth.shape
        data, err, dq = data[rows], err[rows], dq[rows]
    assert data.shape == (len(rows), truth.shape[1])
    status = rate.meta.cal_step
    for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub",
                 "jump", "ramp_fit"):
        assert getattr(status, step) == "COMPLETE", step
    clean = (dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)) == 0
    clean &= truth[rows] > 0  # not the reference rows
    pull = (data - truth[rows])[clean] / err[clean]
    assert abs(np.std(pull) - 1) < 0.15 and abs(np.median(pull)) < 0.1
    assert (rate.dq & dqflags.DEAD).sum() == dqflags.DEAD  # the one dead pixel, where read
    rateints = datamodels.open(out / uncal.name.replace("uncal", "rateints"))
    assert rateints.data.shape[0] == 2
    if setup.nstripes > 1:
        assert rate.meta.subarray.num_superstripe is None and rate.meta.exposure.nints == 2
        np.testing.assert_array_equal(rateints.int_times_stripe["stripe_number"],
                                      [1, 2, 3, 1, 2, 3])
        np.testing.assert_array_equal(rateints.int_times["integration_number"], [1, 2])
    else:
        assert rate.meta.subarray.multistripe_reads2 == 20
        assert not rateints.has_array("int_times_stripe")


@pytest.mark.slow
@pytest.mark.compare
@pytest.mark.parametrize("mode", ["multistripe", "superstripe", "repeated", "soss"])
def test_striped_detector1_agrees_with_the_official_pipeline(striped_exposure, mode):
    pipeline = pytest.importorskip("jwst.pipeline")
    uncal, _ = striped_exposure(mode)
    ours = Detector1Pipeline.call(str(uncal))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the official schema's warnings)
        theirs = pipeline.Detector1Pipeline.call(str(uncal))
    assert ours.data.shape == theirs.data.shape
    good = ((ours.dq & dqflags.DO_NOT_USE) == 0) & np.isfinite(theirs.data)
    delta = np.abs(ours.data - theirs.data)
    assert np.median(delta[good] / theirs.err[good]) < 1e-3
    unflagged = good & (ours.dq == 0)
    assert (delta[unflagged] / theirs.err[unflagged]).max() < 1e-3
    np.testing.assert_array_equal(ours.dq, theirs.dq)
    if mode == "repeated":  # three reads per group: LIKELY on explicit read times
        assert ours.meta.exposure.ngroups == theirs.meta.exposure.ngroups == 18
