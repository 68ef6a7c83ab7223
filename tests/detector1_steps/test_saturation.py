"""Saturation flagging: forward, growth, averaging and group-2 passes (stage1.md §2.4)."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.saturation.flag import flag_saturation, prepare_thresholds, read_pattern
from calwebb.saturation.step import SaturationStep

DNU, SAT, LOW = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.AD_FLOOR


def test_forward_pass_growth_and_ad_floor():
    data = np.full((1, 4, 7, 7), 100.0, np.float32)
    data[0, 2:, 3, 3] = 1000
    data[0, 1, 0, 6] = -5
    gdq = np.zeros(data.shape, np.uint8)
    thresholds = np.full((7, 7), 500.0, np.float32)
    flag_saturation(data, gdq, thresholds, np.zeros((7, 7), bool), n_pix_grow_sat=1)
    assert (gdq[0, 2:, 2:5, 2:5] == SAT).all() and not gdq[0, 2:, 1, 1].any()
    assert not gdq[0, :2, 3, 3].any()
    assert gdq[0, 1, 0, 6] == LOW | DNU and gdq[0, 2, 0, 6] == 0  # floor: that group only


def test_no_sat_check_and_nan_thresholds():
    thresholds = np.array([[100.0, np.nan]], np.float32)
    ref_dq = np.array([[dqflags.NO_SAT_CHECK, 0]], np.uint32)
    limits, dq = prepare_thresholds(thresholds, ref_dq)
    assert (limits == 65536).all() and (dq & dqflags.NO_SAT_CHECK).all()


def test_averaged_groups_hide_saturation_in_their_last_frame():
    nframes = 4
    pattern = read_pattern(3, nframes)
    data = np.full((1, 3, 3, 3), 100.0, np.float32)
    data[0, :, 1, 1] = [100, 900, 1000]  # group 2 saturated; group 1 average ≥ 1000·dilution
    gdq = np.zeros(data.shape, np.uint8)
    thresholds = np.full((3, 3), 1000.0, np.float32)
    flag_saturation(data, gdq, thresholds, np.zeros((3, 3), bool), 0, pattern)
    dilution = np.mean(pattern[1]) / pattern[1][-1]
    assert 900 >= 1000 * dilution
    assert gdq[0, 1, 1, 1] & DNU and not gdq[0, 1, 1, 1] & SAT and gdq[0, 2, 1, 1] & SAT


def test_zeroframe_unusable_values_become_zero():
    """Saturated values are zeroed with their neighbours; values at or below zero alone."""
    data = np.full((1, 2, 7, 7), 10.0, np.float32)
    zeroframe = np.full((1, 7, 7), 10.0, np.float32)
    zeroframe[0, 0, 0] = 2000
    zeroframe[0, 4, 4] = -3
    flag_saturation(data, np.zeros(data.shape, np.uint8), np.full((7, 7), 1000.0, np.float32),
                    np.zeros((7, 7), bool), 1, zeroframe=zeroframe)
    expected = np.full((7, 7), 10.0, np.float32)
    expected[:2, :2] = expected[4, 4] = 0
    np.testing.assert_array_equal(zeroframe[0], expected)


def test_step_propagates_reference_dq():
    model = datamodels.RampModel((1, 3, 4, 4))
    model.data[...] = 10
    model.meta.exposure.nframes = 1
    reference = datamodels.SaturationModel(data=np.full((4, 4), 50.0, np.float32),
                                           dq=np.zeros((4, 4), np.uint32))
    reference.dq[0, 0] = dqflags.NO_SAT_CHECK
    result = datamodels.RampModel(model)
    result = SaturationStep.call(model, override_saturation=reference, override_superbias="N/A")
    assert result.pixeldq[0, 0] == dqflags.NO_SAT_CHECK
    assert result.meta.cal_step.saturation == "COMPLETE"


@pytest.mark.compare
def test_matches_stcal():
    stcal_saturation = pytest.importorskip("stcal.saturation.saturation")
    rng = np.random.default_rng(3)
    nframes = 4
    data = np.cumsum(rng.uniform(0, 400, (2, 6, 40, 40)), axis=1).astype(np.float32)
    data[0, 1, 5, 5] = -3
    thresholds = rng.uniform(800, 1500, (40, 40)).astype(np.float32)
    thresholds[7, 7] = np.nan
    ref_dq = np.zeros((40, 40), np.uint32)
    ref_dq[9, 9] = dqflags.NO_SAT_CHECK
    bias = rng.uniform(0, 50, (40, 40)).astype(np.float32)
    limits, dq_out = prepare_thresholds(thresholds, ref_dq)
    gdq = np.zeros(data.shape, np.uint8)
    flag_saturation(data, gdq, limits, (dq_out & dqflags.NO_SAT_CHECK) != 0, 1,
                    read_pattern(6, nframes), bias)
    theirs_gdq, theirs_pdq, _ = stcal_saturation.flag_saturated_pixels(
        data.copy(), np.zeros(data.shape, np.uint8), np.zeros((40, 40), np.uint32),
        thresholds.copy(), ref_dq.copy(), 65535, dqflags.PIXEL, n_pix_grow_sat=1,
        read_pattern=read_pattern(6, nframes), bias=bias)
    np.testing.assert_array_equal(gdq, theirs_gdq)
    np.testing.assert_array_equal(dq_out, theirs_pdq)


@pytest.mark.compare
def test_zeroframe_and_nan_bias_match_stcal():
    """ZEROFRAME zeroing and the group-2 test with NaNs in the superbias (those pixels are
    exempt) as ``flag_saturated_pixels`` does them."""
    stcal_saturation = pytest.importorskip("stcal.saturation.saturation")
    rng = np.random.default_rng(8)
    shape = (2, 4, 50, 50)
    data = np.cumsum(rng.uniform(0, 500, shape), axis=1).astype(np.float32)
    data[:, 1] = np.where(rng.random(shape[-2:]) < 0.3, data[:, 2] + 50, data[:, 1])
    thresholds = rng.uniform(900, 1300, shape[-2:]).astype(np.float32)
    bias = rng.uniform(0, 50, shape[-2:]).astype(np.float32)
    bias[rng.random(shape[-2:]) < 0.2] = np.nan
    zeroframe = rng.uniform(-300, 1500, (2, 50, 50)).astype(np.float32)
    pattern = read_pattern(4, 3)
    limits, _ = prepare_thresholds(thresholds, np.zeros(shape[-2:], np.uint32))
    gdq, ours_zeroframe = np.zeros(shape, np.uint8), zeroframe.copy()
    flag_saturation(data, gdq, limits, np.zeros(shape[-2:], bool), 1, pattern, bias,
                    ours_zeroframe)
    theirs_gdq, _, theirs_zeroframe = stcal_saturation.flag_saturated_pixels(
        data.copy(), np.zeros(shape, np.uint8), np.zeros(shape[-2:], np.uint32),
        thresholds.copy(), np.zeros(shape[-2:], np.uint32), 65535, dqflags.PIXEL,
        n_pix_grow_sat=1, read_pattern=pattern, zframe=zeroframe.copy(), bias=bias)
    np.testing.assert_array_equal(gdq, theirs_gdq)
    np.testing.assert_array_equal(ours_zeroframe, theirs_zeroframe)
    zero_bias_gdq = np.zeros(shape, np.uint8)  # NaN read as zero would flag more pixels
    flag_saturation(data, zero_bias_gdq, limits, np.zeros(shape[-2:], bool), 1, pattern,
                    np.nan_to_num(bias))
    assert (zero_bias_gdq != gdq).any()
    assert 0.05 < (ours_zeroframe == 0).mean() < 0.95


@pytest.mark.parametrize("n_pix_grow_sat", [0, 1, 2])
def test_flags_equal_per_group_dilation_of_the_saturated_sets(n_pix_grow_sat):
    """Random ramps (NaNs, negatives, SATURATED already set): SATURATED on every group whose
    cumulative saturated set, dilated by the (2n+1)-box, holds the pixel; AD_FLOOR and
    DO_NOT_USE where the value is at or below zero."""
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(11)
    shape = (2, 9, 23, 31)
    data = rng.normal(600, 300, shape).astype(np.float32)
    data[rng.random(shape) < 0.02] = np.nan
    gdq = np.where(rng.random(shape) < 0.01, SAT, 0).astype(np.uint8)
    thresholds = rng.normal(1350, 100, shape[-2:]).astype(np.float32)
    flagged = gdq.copy()
    flag_saturation(data, flagged, thresholds, np.zeros(shape[-2:], bool), n_pix_grow_sat)
    box = np.ones((2 * n_pix_grow_sat + 1,) * 2, bool)
    for integration in range(shape[0]):
        reached = np.zeros(shape[-2:], bool)
        for group in range(shape[1]):
            reached |= (data[integration, group] >= thresholds) | (
                gdq[integration, group] & SAT != 0)
            expected = binary_dilation(reached, box) if n_pix_grow_sat else reached
            np.testing.assert_array_equal(flagged[integration, group] & SAT != 0, expected)
            low = data[integration, group] <= 0
            np.testing.assert_array_equal(flagged[integration, group] & (LOW | DNU),
                                          np.where(low, LOW | DNU, 0))
    assert 0.05 < (flagged & SAT != 0).mean() < 0.95  # both kinds of pixel are exercised


def test_second_group_check_matches_array_expressions():
    """The late-saturation check of group 2, compiled, flags what the array expressions
    (float64 extrapolation, float32 jump limit) flag."""
    from calwebb.saturation.flag import DNU, SAT, _flag_second_group, read_pattern

    rng = np.random.default_rng(5)
    planes = rng.uniform(0, 60000, (4, 40, 50)).astype(np.float32)
    thresholds = rng.uniform(20000, 50000, (40, 50)).astype(np.float32)
    bias = rng.uniform(0, 12000, (40, 50)).astype(np.float32)
    dq = np.where(rng.random((4, 40, 50)) < 0.5, SAT, 0).astype(np.uint8)
    pattern = read_pattern(4, 4)
    expected = dq.copy()
    first = planes[0] - bias
    expected_third = first / np.mean(pattern[0]) * pattern[2][-1] + bias
    jump = planes[1] - planes[0]
    suspicious = ((expected_third < thresholds) & (jump > (thresholds - planes[0]) / len(
        pattern[1])) & ((dq[2] & SAT) != 0) & ((dq[1] & SAT) == 0))
    expected[1] |= np.where(suspicious, DNU, 0).astype(np.uint8)
    assert suspicious.sum() > 10
    _flag_second_group(planes, dq, thresholds, pattern, bias)
    np.testing.assert_array_equal(dq, expected)
