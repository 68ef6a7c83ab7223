"""outlier_detection.median: weight threshold, NaN-median (in memory and in row sections on
disk) and the rolling median, against hand-computed values and numpy."""

import warnings

import numpy as np
import pytest

from calwebb.errors import DataModelError, ParameterError
from calwebb.outlier_detection.median import (
    ImageStack,
    mask_low_weight,
    nanmedian,
    rolling_median,
    weight_threshold,
)


def test_weight_threshold_is_maskpt_times_clipped_mean_of_finite_nonzero_weights():
    weights = np.full((20, 20), 2.0)
    weights[0, :5] = 0.0  # zeros are left out
    weights[1, :3] = np.nan  # so are NaN ...
    weights[2, 0] = np.inf  # ... and infinite values
    weights[3, 0] = 500.0  # a single wild value is clipped
    assert weight_threshold(weights, 0.7) == pytest.approx(1.4)
    assert weight_threshold(np.array([1.0, 3.0]), 0.5) == pytest.approx(1.0)
    assert np.isnan(weight_threshold(np.zeros((4, 4)), 0.7))  # nothing usable


def test_weight_threshold_matches_astropy_sigma_clip_value_for_value():
    from astropy.stats import sigma_clip

    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 10, 501, 5000):
        for dtype in (np.float32, np.float64):
            weights = (rng.normal(10.0, 2.0, size) * rng.uniform(0.5, 2.0)).astype(dtype)
            weights[rng.random(size) < 0.05] = 1e4  # clipped in the first round
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept = sigma_clip(weights, sigma=3.0, maxiters=5, masked=False)
            assert weight_threshold(weights, 0.7) == float(np.mean(kept, dtype=np.float64)) * 0.7


def test_mask_low_weight_sets_nan_below_threshold_only():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    weights = np.array([[1.0, 0.69, 0.7], [0.0, 2.0, np.nan]])
    masked = mask_low_weight(data, weights, 0.7)
    np.testing.assert_array_equal(np.isnan(masked), [[False, True, False], [True, False, False]])
    assert not np.isnan(data).any()  # a new array
    # a NaN threshold (no usable weight) masks nothing
    assert not np.isnan(mask_low_weight(data, weights, np.nan)).any()


@pytest.mark.parametrize("depth", [1, 2, 5, 6, 40])
def test_nanmedian_matches_numpy(depth):
    rng = np.random.default_rng(depth)
    stack = rng.normal(size=(depth, 17, 13)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.3] = np.nan
    stack[:, 0, 0] = np.nan  # a pixel without any value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(stack.astype(np.float64), axis=0)
    result = nanmedian(stack)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(result[0, 0])


def test_nanmedian_hand_values():
    stack = np.array([[[1.0, np.nan]], [[7.0, 2.0]], [[3.0, np.nan]], [[np.nan, 4.0]]])
    np.testing.assert_array_equal(nanmedian(stack), [[3.0, 3.0]])
    with pytest.raises(DataModelError, match="3-D"):
        nanmedian(np.zeros((3, 3)))


def test_on_disk_stack_in_row_sections_matches_memory(tmp_path):
    rng = np.random.default_rng(7)
    images = rng.normal(size=(5, 23, 11)).astype(np.float32)
    images[rng.random(images.shape) < 0.2] = np.nan
    with ImageStack(5, (23, 11)) as memory:
        for index, image in enumerate(images):
            memory[index] = image
        expected = memory.median()
    # a section of ~3 rows: 5 images × 3 rows × 11 columns × 4 bytes
    with ImageStack(5, (23, 11), directory=tmp_path, section_bytes=5 * 3 * 11 * 4) as disk:
        assert disk.on_disk and disk.rows_per_section() == 3
        assert len(list(tmp_path.iterdir())) == 1
        for index, image in enumerate(images):
            disk[index] = image
        result = disk.median()
    np.testing.assert_array_equal(result, expected)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
    with pytest.raises(DataModelError, match="shape"):
        ImageStack(2, (3, 3))[0] = np.zeros((3, 4))


def test_rolling_median_centres_windows_and_copies_edges():
    values = np.array([5.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0], np.float32)
    cube = values[:, None, None] * np.ones((1, 2, 2), np.float32)
    odd = rolling_median(cube, 3)[:, 0, 0]
    # windows [5,1,9] [1,9,2] [9,2,8] [2,8,3] [8,3,7] → 5 2 8 3 7 at planes 1..5
    np.testing.assert_array_equal(odd, [5, 5, 2, 8, 3, 7, 7])
    even = rolling_median(cube, 4)[:, 0, 0]
    # windows of 4 → medians 3.5 5 5.5 5 at planes 2..5
    np.testing.assert_array_equal(even, [3.5, 3.5, 3.5, 5.0, 5.5, 5.0, 5.0])
    cube[3, 0, 0] = np.nan  # NaN values are ignored inside a window
    assert rolling_median(cube, 3)[3, 0, 0] == pytest.approx(8.5)
    with pytest.raises(ParameterError):
        rolling_median(cube, 8)
