"""Sharpness/roundness, nearest neighbours, orientations (stage3.md §2.7 steps 9–10)."""

import math

import numpy as np
import pytest
from catalog_scenes import gaussian_pixels, resample_scenes

from calwebb.source_catalog import morphology


def test_dao_kernel_has_zero_sum_inside_its_circle():
    kernel = morphology.DaoKernel.from_fwhm(2.0)
    sigma = 2.0 / morphology.FWHM_PER_SIGMA
    assert kernel.array.shape == (2 * int(max(2.0, 1.5 * sigma)) + 1,) * 2 == (5, 5)
    assert kernel.array.sum() == pytest.approx(0.0, abs=1e-12)
    assert kernel.footprint.sum() == 13  # pixels within 2 px of the centre
    assert not kernel.array[kernel.footprint == 0].any()
    assert kernel.array[2, 2] == kernel.array.max()
    wide = morphology.DaoKernel.from_fwhm(8.0)
    assert wide.array.shape == (2 * int(1.5 * 8.0 / morphology.FWHM_PER_SIGMA) + 1,) * 2


def test_round_star_is_round_and_sharpness_follows_width():
    shape = (41, 41)
    narrow = gaussian_pixels(shape, 20.0, 20.0, 1.0, flux=100.0)
    wide = gaussian_pixels(shape, 20.0, 20.0, 2.5, flux=100.0)
    elongated = gaussian_pixels(shape, 20.0, 20.0, 3.0, 1.0, flux=100.0)
    values = {}
    for name, image in (("narrow", narrow), ("wide", wide), ("elongated", elongated)):
        values[name] = [float(v[0]) for v in
                        morphology.sharpness_roundness(image, [[20.0, 20.0]], 2.0)]
    assert values["narrow"][1] == pytest.approx(0.0, abs=1e-9)
    assert values["wide"][1] == pytest.approx(0.0, abs=1e-9)
    assert values["narrow"][0] > values["wide"][0] > 0
    assert abs(values["elongated"][1]) > 0.3
    # sharpness scales with the image; roundness does not depend on the flux
    doubled = morphology.sharpness_roundness(2 * elongated, [[20.0, 20.0]], 2.0)
    assert doubled[1][0] == pytest.approx(values["elongated"][1])


def test_sources_off_the_image_get_nan():
    image = gaussian_pixels((30, 30), 15.0, 15.0, 1.5)
    sharp, round_ = morphology.sharpness_roundness(image, [[np.nan, 3.0], [15, 15]], 2.0)
    assert np.isnan(sharp[0]) and np.isnan(round_[0])
    assert np.isfinite(sharp[1])


def test_nearest_neighbours():
    labels = np.array([4, 7, 9, 12])
    positions = np.array([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0], [np.nan, 1.0]])
    nn_label, nn_dist = morphology.nearest_neighbours(labels, positions)
    np.testing.assert_array_equal(nn_label, [7, 4, 7, -1])
    np.testing.assert_allclose(nn_dist[:3], [5.0, 5.0, math.hypot(7.0, 4.0)])
    assert np.isnan(nn_dist[3])
    lone_label, lone_dist = morphology.nearest_neighbours(np.array([1]), np.array([[2.0, 2.0]]))
    assert lone_label.tolist() == [-1] and np.isnan(lone_dist[0])


def test_orientation_is_wrapped_into_minus_90_to_90():
    wrapped = morphology.wrap_orientation([0.0, 90.0, -90.0, 135.0, 270.0, 359.0, -135.0])
    np.testing.assert_allclose(wrapped, [0.0, 90.0, 90.0, -45.0, 90.0, -1.0, 45.0])


@pytest.mark.parametrize("pa_of_y", [0.0, 30.0, -50.0])
def test_north_angle_and_sky_orientation(pa_of_y):
    """resample_scenes' ``angle`` is the position angle of +y, so North lies at 90° − angle
    counter-clockwise from +x; an axis along +y then has position angle ``angle`` (mod 180)."""
    wcs = resample_scenes.distorted_wcs((100, 100), distortion=0.0, angle=pa_of_y)
    north = morphology.north_angle(wcs, 49.5, 49.5)
    assert north == pytest.approx(90.0 - pa_of_y, abs=1e-6)
    position_angle = morphology.sky_orientation(np.array([90.0]), north)[0]
    assert 0.0 <= position_angle < 360.0
    assert math.remainder(position_angle - pa_of_y, 180.0) == pytest.approx(0.0, abs=1e-6)
