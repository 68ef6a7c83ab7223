"""calwebb_detector1 on a full-frame NIRSpec IRS2 exposure: truth, and the official result."""

import numpy as np
import pytest

from calwebb import dqflags
from calwebb.pipeline.detector1 import Detector1Pipeline
from detector1_exposure import assert_rates_agree
from irs2_exposure import write_irs2_exposure
from offline_crds import offline_crds


@pytest.fixture(scope="module")
def irs2_run(tmp_path_factory):
    """(our rate, uncal path, truth) of an NRS2 exposure, reference files in a local CRDS
    cache (used for the module's tests only)."""
    directory = tmp_path_factory.mktemp("irs2")
    uncal, cache, truth = write_irs2_exposure(directory, detector="NRS2")
    with offline_crds(cache):
        yield Detector1Pipeline.call(str(uncal)), uncal, truth


@pytest.mark.slow
def test_irs2_rate_has_the_normal_pixels_and_recovers_the_truth(irs2_run):
    rate, _, truth = irs2_run
    assert rate.data.shape == (2048, 2048)
    status = rate.meta.cal_step
    for step in ("dq_init", "saturation", "superbias", "refpix", "jump", "ramp_fit"):
        assert getattr(status, step) == "COMPLETE", step
    assert rate.meta.ref_file.refpix.name == "crds://jwst_nirspec_refpix_9004.fits"
    clean = (rate.dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)) == 0
    clean[:4] = clean[-4:] = clean[:, :4] = clean[:, -4:] = False
    pull = (rate.data - truth)[clean] / rate.err[clean]
    assert abs(np.median(pull)) < 0.05
    assert abs(np.std(pull) - 1) < 0.05


@pytest.mark.slow
@pytest.mark.compare
def test_irs2_detector1_agrees_with_the_official_pipeline(irs2_run):
    pipeline = pytest.importorskip("jwst.pipeline")
    ours, uncal, _ = irs2_run
    assert_rates_agree(ours, pipeline.Detector1Pipeline.call(str(uncal)))
