"""outlier_detection.flagging: gradient image, derivative test, simple test and recording
outliers, on hand-computed arrays."""

import numpy as np

from calwebb import dqflags
from calwebb.outlier_detection.flagging import (
    absolute_gradient,
    flag_against_blot,
    flag_against_reference,
    good_pixels,
    record_outliers,
)


def test_good_pixels_from_good_bits():
    dq = np.array([0, dqflags.DO_NOT_USE, dqflags.JUMP_DET, dqflags.DO_NOT_USE | 4], np.uint32)
    np.testing.assert_array_equal(
        good_pixels(dq, dqflags.interpret_bit_flags("~DO_NOT_USE")), [1, 0, 1, 0])
    np.testing.assert_array_equal(good_pixels(dq, 0), [1, 0, 0, 0])  # only GOOD is good
    assert good_pixels(dq, None).all() and good_pixels(None, 0, (2, 2)).shape == (2, 2)


def test_absolute_gradient_is_largest_difference_to_four_neighbours():
    image = np.array([[0.0, 0.0, 0.0],
                      [0.0, 4.0, 1.0],
                      [0.0, 0.0, np.nan]], np.float32)
    expected = np.array([[0.0, 4.0, 1.0],
                         [4.0, 4.0, 3.0],
                         [0.0, 4.0, np.nan]], np.float32)
    np.testing.assert_array_equal(absolute_gradient(image), expected)


def test_derivative_test_grows_first_mask_and_requires_second():
    shape = (12, 12)
    blot = np.full(shape, 10.0, np.float32)  # flat: G = 0
    err = np.ones(shape, np.float32)
    data = blot.copy()
    data[3, 3] += 6.0  # > snr1 = 5: first-pass outlier
    data[3, 4] += 4.5  # between snr2 and snr1, next to it: caught by the grown mask
    data[3, 6] += 4.5  # the same, but two pixels away: not caught
    data[9, 9] += 4.5  # isolated, between snr2 and snr1: not an outlier
    data[6, 9] -= 8.0  # negative departures count too
    flagged = flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7)
    assert set(zip(*np.nonzero(flagged), strict=True)) == {(3, 3), (3, 4), (6, 9)}


def test_derivative_test_tolerates_departures_where_the_blot_is_steep():
    blot = np.zeros((9, 9), np.float32)
    blot[4, 4] = 100.0  # G = 100 around the peak
    err = np.ones((9, 9), np.float32)
    data = blot.copy()
    data[4, 4] = 70.0  # 30 below: < 1.2·100 + 5
    data[4, 5] = 50.0  # 50 above a neighbour with G = 100: < 120 + 5
    assert not flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7).any()
    # ... but the same departures on a flat blot are outliers
    assert flag_against_blot(data, err, np.zeros_like(blot), 5.0, 4.0, 1.2, 0.7)[4, 4]


def test_derivative_test_background_nan_error_and_nan_blot():
    blot = np.full((5, 5), 2.0, np.float32)
    data = blot + 3.0  # a sky of 3 not in the blot
    err = np.full((5, 5), 0.1, np.float32)
    assert flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7).all()
    assert not flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7, background=3.0).any()
    err[0, 0] = np.nan  # NaN error → 0: any departure counts
    data = blot.copy()
    data[0, 0] += 1e-3
    assert flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7)[0, 0]
    blot[0, 0] = np.nan  # no blot: never an outlier
    assert not flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7)[0, 0]


def test_simple_test_against_reference():
    data = np.array([1.0, 7.0, -5.0, np.nan, 9.0], np.float32)
    reference = np.array([1.0, 1.0, 1.0, 1.0, np.nan], np.float32)
    err = np.array([1.0, 1.0, 1.0, 1.0, 1.0], np.float32)
    np.testing.assert_array_equal(flag_against_reference(data, err, reference, 5.0),
                                  [False, True, True, False, False])


def test_record_outliers_sets_flags_and_nans_everywhere():
    dq = np.array([0, 0, dqflags.DO_NOT_USE, 4], np.uint32)
    sci = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    err = np.array([0.1, 0.1, 0.1, np.nan], np.float32)
    var = np.array([0.01, 0.01, 0.01, 0.01], np.float32)
    found = record_outliers(np.array([False, True, False, False]), dq, sci, err, var)
    assert found == 1
    np.testing.assert_array_equal(dq, [0, dqflags.DO_NOT_USE | dqflags.OUTLIER,
                                       dqflags.DO_NOT_USE, 4 | dqflags.DO_NOT_USE])
    for array in (sci, err, var):
        np.testing.assert_array_equal(np.isnan(array), [False, True, True, True])


def _numpy_derivative_test(data, err, blot, snr1, snr2, scale1, scale2, background):
    """The derivative test written with whole-array numpy operations (the oracle)."""
    from scipy import ndimage

    sigma = np.nan_to_num(err)
    rows, columns = np.abs(np.diff(blot, axis=0)), np.abs(np.diff(blot, axis=1))
    rows, columns = np.nan_to_num(rows), np.nan_to_num(columns)
    gradient = np.zeros(blot.shape, np.float32)
    for part, values in ((np.s_[1:], rows), (np.s_[:-1], rows), (np.s_[:, 1:], columns),
                         (np.s_[:, :-1], columns)):
        np.maximum(gradient[part], values, out=gradient[part])
    gradient[np.isnan(blot)] = np.nan
    difference = np.abs(data - blot - np.float32(background))
    first = difference > scale1 * gradient + snr1 * sigma
    second = difference > scale2 * gradient + snr2 * sigma
    return ndimage.binary_dilation(first, structure=np.ones((3, 3), bool)) & second


def test_derivative_test_equals_the_whole_array_formulation_bit_for_bit():
    rng = np.random.default_rng(11)
    shape = (64, 57)
    blot = rng.normal(10.0, 3.0, shape).astype(np.float32)
    data = (blot + rng.normal(0.0, 1.0, shape)).astype(np.float32)
    data[rng.random(shape) < 0.03] += 40.0
    err = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    for array, fraction in ((blot, 0.02), (err, 0.02), (data, 0.01)):
        array[rng.random(shape) < fraction] = np.nan
    with np.errstate(invalid="ignore"):
        expected = _numpy_derivative_test(data, err, blot, 5.0, 4.0, 1.2, 0.7, 0.3)
    np.testing.assert_array_equal(
        flag_against_blot(data, err, blot, 5.0, 4.0, 1.2, 0.7, background=0.3), expected)
    assert 10 < expected.sum() < 200
