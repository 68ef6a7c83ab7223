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


def plain_weight_threshold(weight, maskpt):
    """The weight threshold computed the straightforward way: boolean selections, np.median
    and np.std on the kept values in their original order."""
    values = np.asarray(weight).ravel()
    values = values[np.isfinite(values) & (values != 0)]
    for _ in range(5):
        if values.size == 0:
            return np.nan
        centre, spread = np.median(values), np.std(values)
        kept = values[(values >= centre - spread * 3.0) & (values <= centre + spread * 3.0)]
        changed, values = kept.size != values.size, kept
        if not changed:
            break
    return np.nan if values.size == 0 else float(np.mean(values, dtype=np.float64)) * maskpt


def random_weights(rng, shape, dtype):
    """Weights about a random level with wild values, NaN, infinities and zeros."""
    weights = (rng.normal(10.0, 2.0, shape) * rng.uniform(0.5, 2.0)).astype(dtype)
    for value, fraction in ((1e4, 0.05), (0.01, 0.02), (np.nan, 0.03), (np.inf, 0.01),
                            (-np.inf, 0.01), (0.0, 0.1), (-0.0, 0.01)):
        weights[rng.random(shape) < fraction] = value
    return weights


def drizzle_like_weights(rng, shape=(300, 400)):
    """A weight map as drizzling gives it: zero outside the footprint, lower on its edges
    and in a gap, noisy inside (float32)."""
    weights = rng.normal(1100.0, 40.0, shape).astype(np.float32)
    weights[:, :30] = 0.0
    weights[:20] *= np.float32(0.5)
    weights[150:155] = rng.uniform(0.0, 300.0, (5, shape[1])).astype(np.float32)
    return weights


def test_weight_threshold_matches_astropy_sigma_clip_value_for_value():
    from astropy.stats import sigma_clip

    rng = np.random.default_rng(3)
    for size in (1, 2, 3, 10, 501, 5000, 100_000):
        for dtype in (np.float32, np.float64):
            weights = random_weights(rng, size, dtype)
            usable = weights[np.isfinite(weights) & (weights != 0)]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kept = sigma_clip(usable, sigma=3.0, maxiters=5, masked=False)
            assert weight_threshold(weights, 0.7) == float(np.mean(kept, dtype=np.float64)) * 0.7


@pytest.mark.parametrize("seed", range(6))
def test_weight_threshold_equals_the_straightforward_computation(seed):
    rng = np.random.default_rng(seed)
    cases = [random_weights(rng, (37, 53), np.float32), random_weights(rng, 20_001, np.float64),
             drizzle_like_weights(rng), rng.integers(0, 50, 999),
             drizzle_like_weights(rng).astype(">f4")]
    for weights in cases:
        expected = plain_weight_threshold(weights, 0.7)
        assert weight_threshold(weights, 0.7) == expected
    for weights in (np.zeros(5, np.float32), np.full(3, np.nan), np.array([np.inf, 0.0])):
        assert np.isnan(weight_threshold(weights, 0.7))


def test_mask_low_weight_sets_nan_below_threshold_only():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    weights = np.array([[1.0, 0.69, 0.7], [0.0, 2.0, np.nan]])
    masked = mask_low_weight(data, weights, 0.7)
    np.testing.assert_array_equal(np.isnan(masked), [[False, True, False], [True, False, False]])
    assert not np.isnan(data).any()  # a new array
    # a NaN threshold (no usable weight) masks nothing
    assert not np.isnan(mask_low_weight(data, weights, np.nan)).any()


def stable_nanmedian(stack):
    """The per-pixel median the straightforward way: the non-NaN values in plane order,
    stably sorted, the middle one or the float64 mean of the middle two; float32."""
    out = np.full(stack.shape[1:], np.nan, np.float32)
    for index in np.ndindex(*stack.shape[1:]):
        values = stack[(slice(None), *index)].astype(np.float64)
        values = np.sort(values[~np.isnan(values)], kind="stable")
        middle = values.size // 2
        if values.size % 2:
            out[index] = values[middle]
        elif values.size:
            out[index] = 0.5 * (values[middle - 1] + values[middle])
    return out


@pytest.mark.parametrize("depth", [1, 2, 5, 6, 8, 33, 40])
def test_nanmedian_matches_numpy(depth):
    rng = np.random.default_rng(depth)
    stack = rng.normal(size=(depth, 17, 130)).astype(np.float32)
    stack[rng.random(stack.shape) < 0.3] = np.nan
    stack[rng.random(stack.shape) < 0.05] = np.inf
    stack[:, :, 5] = np.round(stack[:, :, 5])  # ties
    stack[:, 0, 0] = np.nan  # a pixel without any value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(stack.astype(np.float64), axis=0).astype(np.float32)
    result = nanmedian(stack)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(nanmedian(stack.astype(np.float64)), expected)
    assert np.isnan(result[0, 0])


def test_nanmedian_is_bit_for_bit_the_stable_per_pixel_median_with_positive_zero():
    rng = np.random.default_rng(11)
    # zeros of both signs among the values: every zero median is +0
    stack = rng.choice(np.array([0.0, -0.0, 1.0, -2.0, np.nan], np.float32), (8, 40, 50))
    result = nanmedian(stack)
    expected = stable_nanmedian(stack) + np.float32(0.0)
    assert (expected == 0).any()
    np.testing.assert_array_equal(result.view(np.uint32), expected.view(np.uint32))
    for zeros in ([0.0, -0.0, 5.0], [-0.0, 0.0, 5.0], [-0.0, -0.0, 5.0], [-0.0, -0.0]):
        median = nanmedian(np.array(zeros, np.float32).reshape(-1, 1, 1))[0, 0]
        assert median == 0 and not np.signbit(median)


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
        assert disk.on_disk and disk.sections()[:2] == [(0, 3), (3, 6)]
        assert len(list(tmp_path.iterdir())) == 1
        for index, image in enumerate(images):
            disk[index] = image
        result = disk.median()
    np.testing.assert_array_equal(result, expected)
    assert list(tmp_path.iterdir()) == []  # the temporary file is gone
    with pytest.raises(DataModelError, match="shape"):
        ImageStack(2, (3, 3))[0] = np.zeros((3, 4))


@pytest.mark.parametrize("on_disk", [False, True])
def test_stack_images_never_filled_count_as_nan(tmp_path, on_disk):
    images = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)
    images[0, 0, 0] = np.nan
    with ImageStack(3, (4, 3), directory=tmp_path if on_disk else None) as stack:
        stack[0] = images[0]
        stack[-1] = images[1]  # the second image is never given
        result = stack.median()
    np.testing.assert_array_equal(result, nanmedian(images))


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
