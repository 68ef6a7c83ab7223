"""Units, local background, aperture sums, magnitudes, concentration (stage3.md §2.7 3, 5–8)."""

import math

import numpy as np
import pytest
from astropy.stats import sigma_clip

from calwebb.source_catalog import photometry


def test_units_must_be_mjy_per_sr():
    photometry.check_units("MJy/sr", "MJy/sr")
    with pytest.raises(ValueError, match="BUNIT.*DN/s"):
        photometry.check_units("DN/s", "MJy/sr")
    with pytest.raises(photometry.UnitError, match="ERR BUNIT"):
        photometry.check_units("MJy/sr", None)


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float32, 1e-7), (np.float64, 1e-15)])
def test_jansky_per_pixel_in_the_input_precision(dtype, tolerance):
    image = np.array([[2.0, -1.0]], dtype)
    values = photometry.jansky_per_pixel(image, 2.5e-13)
    np.testing.assert_allclose(values, [[2.0 * 1e6 * 2.5e-13, -2.5e-7]], rtol=tolerance)
    assert values.dtype == dtype
    assert image[0, 0] == 2.0  # a new array


def test_local_background_is_the_clipped_median_with_its_standard_error():
    rng = np.random.default_rng(5)
    data = rng.normal(10.0, 2.0, (60, 60))
    data[30, 38] = 1.0e4  # an outlier inside the annulus: clipped away
    x0, y0, inner, outer = 30.3, 29.6, 5.05, 9.95
    median, error = photometry.local_background(data, [[x0, y0]], inner, outer)
    yy, xx = np.indices(data.shape)
    distance = np.hypot(xx - x0, yy - y0)
    kept = np.ma.compressed(sigma_clip(data[(distance >= inner) & (distance < outer)],
                                       sigma=3.0))
    assert kept.size == np.count_nonzero((distance >= inner) & (distance < outer)) - 1
    assert median[0] == pytest.approx(np.median(kept), rel=1e-12)
    assert error[0] == pytest.approx(math.sqrt(math.pi / (2 * kept.size)) * np.std(kept),
                                     rel=1e-12)


def test_local_background_without_finite_pixels_is_nan():
    data = np.full((40, 40), np.nan)
    median, error = photometry.local_background(data, [[20.0, 20.0], [np.nan, 3.0]], 3, 6)
    assert np.isnan(median).all() and np.isnan(error).all()


def test_aperture_sums_are_exact_and_background_is_removed():
    data = np.full((50, 50), 3.0)
    error = np.full((50, 50), 0.5)
    positions = np.array([[20.2, 24.7], [30.0, 30.0]])
    radii = (1.5, 3.0, 4.5)
    flux, flux_err = photometry.aperture_fluxes(data, error, positions, radii,
                                                background=np.array([0.0, 3.0]))
    assert flux.shape == (3, 2)
    for index, radius in enumerate(radii):
        area = math.pi * radius**2
        assert flux[index, 0] == pytest.approx(3.0 * area, rel=1e-9)
        assert flux[index, 1] == pytest.approx(0.0, abs=1e-9)  # constant sky removed
        assert flux_err[index, 0] == pytest.approx(0.5 * math.sqrt(area), rel=1e-9)


def test_ab_magnitudes():
    flux = np.array([1.0, 3631e-6, 1e-6, -2e-6, 0.0])
    err = np.array([0.1, 1e-6, 1e-7, 1e-7, 1e-7])
    mag, mag_err = photometry.ab_magnitudes(flux, err)
    np.testing.assert_allclose(mag[:3], -2.5 * np.log10(flux[:3]) + 8.9, rtol=0, atol=1e-12)
    assert mag[0] == pytest.approx(8.9)
    assert mag[1] == pytest.approx(8.9 - 2.5 * math.log10(3631e-6))
    np.testing.assert_allclose(mag_err[:3], 2.5 * np.log10(1 + err[:3] / flux[:3]), atol=1e-12)
    assert np.isnan(mag[3]) and np.isnan(mag_err[3])  # negative flux
    assert np.isinf(mag[4])
    _, no_err = photometry.ab_magnitudes(flux, np.full(5, np.nan))
    assert np.isnan(no_err).all()


def test_concentration_indices_and_is_extended():
    fluxes = np.array([[1.0, 1.0], [1.7, 2.5], [2.3, 5.0]])
    ci = photometry.concentration_indices(fluxes)
    np.testing.assert_allclose(ci[0], [1.7, 2.5])
    np.testing.assert_allclose(ci[1], [2.3 / 1.7, 2.0])
    np.testing.assert_allclose(ci[2], [2.3, 5.0])
    np.testing.assert_array_equal(photometry.is_extended(ci[0], ci[1], 2.0, 1.8),
                                  [False, True])
    assert not photometry.is_extended(np.array([2.5]), np.array([1.7]), 2.0, 1.8)[0]
