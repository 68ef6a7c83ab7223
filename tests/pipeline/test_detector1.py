"""calwebb_detector1 end to end on a small exposure: truth, products, and the official result."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.cli.main import main
from detector1_exposure import assert_rates_agree, write_exposure
from offline_crds import offline_crds


@pytest.fixture
def exposure(tmp_path):
    uncal, cache, rate = write_exposure(tmp_path)
    with offline_crds(cache):
        yield uncal, rate, tmp_path


@pytest.mark.slow
def test_detector1_recovers_the_true_rate(exposure):
    uncal, truth, directory = exposure
    before = uncal.read_bytes()
    assert main(["run", "calwebb_detector1", str(uncal), "--output_dir", str(directory / "out"),
                 "--steps.jump.rejection_threshold=5", "--save_calibrated_ramp=true",
                 "--quiet"]) == 0
    assert uncal.read_bytes() == before
    out = directory / "out"
    names = sorted(path.name for path in out.iterdir())
    stem = "jw01234001001_01101_00001_nrca1"
    assert names == [f"{stem}_ramp.fits", f"{stem}_rate.fits", f"{stem}_rateints.fits"]
    rate = datamodels.open(out / f"{stem}_rate.fits")
    rateints = datamodels.open(out / f"{stem}_rateints.fits")
    assert isinstance(rate, datamodels.ImageModel) and isinstance(rateints, datamodels.CubeModel)
    assert rateints.data.shape == (2, 64, 64)
    status = rate.meta.cal_step
    for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub", "jump",
                 "ramp_fit"):
        assert getattr(status, step) == "COMPLETE", step
    assert status.ipc == "SKIPPED"  # no IPC reference in this context
    assert rate.meta.ref_file.gain.name == "crds://jwst_nircam_gain_9002.fits"
    assert rate.meta.ref_file.crds.context_used == "jwst_9000.pmap"
    clean = (rate.dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)) == 0
    clean[:4, :] = clean[:, :4] = False
    pull = (rate.data - truth)[clean] / rate.err[clean]
    assert abs(np.std(pull) - 1) < 0.05 and abs(np.median(pull)) < 0.05
    assert np.isnan(rate.data[50, 50]) and rate.dq[50, 50] & dqflags.DEAD
    assert (rate.dq[30:34, 30:34] & dqflags.SATURATED).all()


@pytest.mark.slow
@pytest.mark.compare
def test_detector1_agrees_with_the_official_pipeline(exposure):
    pipeline = pytest.importorskip("jwst.pipeline")
    uncal, _, _ = exposure
    from calwebb.pipeline.detector1 import Detector1Pipeline

    assert_rates_agree(Detector1Pipeline.call(str(uncal)),
                       pipeline.Detector1Pipeline.call(str(uncal)))


@pytest.mark.slow
@pytest.mark.compare
def test_miri_detector1_agrees_with_the_official_pipeline(tmp_path):
    pipeline = pytest.importorskip("jwst.pipeline")
    from calwebb.pipeline.detector1 import Detector1Pipeline

    uncal, cache, truth = write_exposure(tmp_path, instrument="MIRI", shape=(64, 72),
                                         ngroups=10, nints=2)
    with offline_crds(cache):
        ours = Detector1Pipeline.call(str(uncal))
        theirs = pipeline.Detector1Pipeline.call(str(uncal))
    assert ours.meta.cal_step.lastframe == "COMPLETE" and ours.meta.cal_step.refpix == "SKIPPED"
    good = assert_rates_agree(ours, theirs)
    clean = good & ((ours.dq & (dqflags.SATURATED | dqflags.JUMP_DET)) == 0)
    clean[:, :4] = clean[:, -4:] = False
    pull = (ours.data - truth)[clean] / ours.err[clean]
    assert abs(np.std(pull) - 1) < 0.1
