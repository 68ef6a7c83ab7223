"""bkg_subtract (imaging): sigma-clipped mean of the backgrounds, DQ OR, ERR unchanged."""

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.background.combine import average_background, clipped_mean
from calwebb.background.step import BackgroundStep
from image2_models import rate_model


def _backgrounds(tmp_path, levels, outlier=None):
    paths = []
    for index, level in enumerate(levels):
        model = rate_model(seed=10 + index)
        model.data[:] = level
        model.err[:] = 0.1 * (index + 1)
        if outlier is not None and index == outlier:
            model.data[2, 3] = 1000.0
        model.dq[4, 5] = dqflags.HOT if index == 0 else 0
        paths.append(str(model.save(tmp_path / f"bkg{index}_rate.fits")))
    return paths


def test_subtracts_the_clipped_mean_and_keeps_err(tmp_path):
    # with n values one outlier can be at most (n−1)/√n σ away: 12 exposures can clip at 3σ
    levels = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98, 1.01, 0.99, 1.03, 0.97]
    paths = _backgrounds(tmp_path, levels, outlier=2)
    rate = rate_model()
    result = BackgroundStep.call(rate, bkg_list=paths)
    assert result.meta.cal_step.bkg_subtract == "COMPLETE"
    np.testing.assert_allclose(result.data[0, 0], rate.data[0, 0] - np.mean(levels), rtol=1e-6)
    without_outlier = np.mean([v for i, v in enumerate(levels) if i != 2])
    np.testing.assert_allclose(result.data[2, 3], rate.data[2, 3] - without_outlier, rtol=1e-6)
    np.testing.assert_array_equal(result.err, rate.err)
    assert result.dq[4, 5] & dqflags.HOT


def test_error_of_the_mean_and_integrations_first():
    data = np.array([[[1.0]], [[3.0]]], np.float32)
    err = np.array([[[0.3]], [[0.4]]], np.float32)
    dq = np.zeros((2, 1, 1), np.uint32)
    mean, error, _ = clipped_mean(data, err, dq, sigma=3.0, maxiters=None)
    assert mean[0, 0] == 2.0 and np.isclose(error[0, 0], 0.25)
    cube = (np.array([[[1.0]], [[2.0]], [[3.0]]], np.float32), np.ones((3, 1, 1), np.float32),
            np.zeros((3, 1, 1), np.uint32))
    image = (np.array([[6.0]], np.float32), np.ones((1, 1), np.float32),
             np.zeros((1, 1), np.uint32))
    mean, _, _ = average_background([cube, image], sigma=3.0, maxiters=None)
    assert mean[0, 0] == 4.0  # (mean of the integrations = 2, then 6) / 2


def test_no_backgrounds_skips(tmp_path):
    rate = rate_model()
    result = BackgroundStep.call(rate)
    assert result.meta.cal_step.bkg_subtract == "SKIPPED"
    np.testing.assert_array_equal(result.data, rate.data)


def test_background_of_another_shape_is_refused(tmp_path):
    import pytest

    from calwebb.errors import DataModelError

    other = datamodels.ImageModel(data=np.zeros((10, 10), np.float32))
    path = other.save(tmp_path / "small_rate.fits")
    with pytest.raises(DataModelError, match="background SCI"):
        BackgroundStep.call(rate_model(), bkg_list=[str(path)])
