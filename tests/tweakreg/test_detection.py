"""The fast parts of source finding against the straightforward code they replace: the mesh
expansion (photutils' spline zoom), the circular peak search (photutils ``find_peaks`` with
``min_separation``, and a circular maximum filter), the threshold median and whole
star-finder runs."""

import warnings

import numpy as np
import pytest
from astropy.convolution import Gaussian2DKernel, convolve
from astropy.stats import SigmaClip
from photutils.background import Background2D, MedianBackground
from photutils.detection import DAOStarFinder, IRAFStarFinder
from photutils.detection import find_peaks as photutils_find_peaks
from scipy import ndimage

from calwebb.tweakreg.detection import (
    FWHM_PER_SIGMA,
    FinderOptions,
    estimate_background,
    expand_mesh,
    find_peaks,
    find_sources,
    median_unmasked,
    smooth_masked,
)


def _star_field(shape=(300, 340), n_stars=60, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    image = 3.0 + 0.002 * xx + rng.normal(0.0, 1.0, shape)
    for x0, y0, flux in zip(rng.uniform(5, shape[1] - 5, n_stars),
                            rng.uniform(5, shape[0] - 5, n_stars),
                            rng.uniform(50, 2000, n_stars), strict=True):
        image += flux / (2 * np.pi) * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / 2.0)
    return image


@pytest.mark.parametrize("mesh_shape, box, shape", [((4, 5), (50, 60), (180, 290)),
                                                    ((2, 2), (40, 40), (80, 75)),
                                                    ((1, 3), (30, 20), (25, 60))])
def test_expand_mesh_equals_spline_zoom(mesh_shape, box, shape):
    """The tensor-product expansion equals scipy's 2-D zoom (cubic, reflect, grid mode) of
    the whole mesh, cropped and clipped to the mesh range, to rounding."""
    mesh = np.random.default_rng(1).normal(10.0, 2.0, mesh_shape)
    zoomed = ndimage.zoom(mesh, box, order=3, mode="reflect", grid_mode=True)
    expected = np.clip(zoomed[:shape[0], :shape[1]], mesh.min(), mesh.max())
    np.testing.assert_allclose(expand_mesh(mesh, box, shape), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_background_equals_photutils_background2d(dtype, tolerance):
    image = _star_field().astype(dtype)
    mask = np.zeros(image.shape, bool)
    mask[:, :12] = True
    background, rms = estimate_background(np.where(mask, 0, image), mask, 64)
    reference = Background2D(np.where(mask, 0, image), 64, coverage_mask=mask,
                             filter_size=(3, 3), sigma_clip=SigmaClip(sigma=3.0),
                             bkg_estimator=MedianBackground(), fill_value=0.0)
    assert background.dtype == reference.background.dtype == dtype
    np.testing.assert_allclose(background, reference.background, rtol=0, atol=tolerance)
    np.testing.assert_allclose(rms, reference.background_rms, rtol=0, atol=tolerance)


@pytest.mark.parametrize("radius", [2, 3, 4.5])
def test_find_peaks_equals_photutils(radius):
    rng = np.random.default_rng(2)
    image = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (200, 230)), 1.0)
    image[50:53, 60:62] = 5.0  # a flat-topped peak: every tied pixel is kept
    mask = np.zeros(image.shape, bool)
    mask[100:120, :] = True
    table = photutils_find_peaks(image, 0.1, mask=mask, min_separation=radius)
    expected = np.column_stack([table["x_peak"], table["y_peak"]])
    np.testing.assert_array_equal(find_peaks(image, 0.1, mask, radius), expected)
    assert find_peaks(np.ones((20, 20)), 0.0, None, radius).shape == (0, 2)


@pytest.mark.parametrize("finder_class, starfinder", [(IRAFStarFinder, "iraf"),
                                                      (DAOStarFinder, "dao")])
def test_star_finder_equals_photutils_run(finder_class, starfinder):
    """find_sources with its own peak search finds what the photutils finder finds by
    itself on the same background-subtracted image."""
    image = _star_field()
    mask = np.zeros(image.shape, bool)
    mask[-20:, :] = True
    options = FinderOptions(starfinder=starfinder, bkg_boxsize=64, snr_threshold=5.0)
    detection = find_sources(image, mask, options)
    subtracted = np.where(mask, 0.0, image - detection.background)
    threshold = float(np.median(5.0 * detection.background_rms[~mask]))
    finder = finder_class(threshold, options.kernel_fwhm, sigma_radius=options.sigma_radius,
                          n_brightest=options.brightest, min_separation=2,
                          sharpness_range=(options.sharplo, options.sharphi),
                          roundness_range=(options.roundlo, options.roundhi))
    expected = finder(subtracted, mask=mask)
    assert len(detection.sources) == len(expected) > 10
    np.testing.assert_allclose(detection.sources["xcentroid"], expected["x_centroid"],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(detection.sources["ycentroid"], expected["y_centroid"],
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(detection.sources["flux"], expected["flux"], rtol=1e-9)


@pytest.mark.parametrize("radius", [1, 2, 2.5, 3, 4.5])
def test_find_peaks_equals_circular_maximum_filter(radius):
    """Only pixels above the threshold are compared with their neighbours: the same peaks as
    comparing the whole image with its maximum filter (0 outside the image), ties and
    peaks at the edges included."""
    rng = np.random.default_rng(3)
    image = np.round(ndimage.gaussian_filter(rng.normal(0.0, 1.0, (120, 150)), 1.0), 2)
    image[0, 40:43] = 3.0  # flat-topped peak on the edge
    image[-2:, -1] = -0.5  # negative corner, to be compared with the 0 outside the image
    mask = rng.random(image.shape) < 0.05
    steps = np.arange(-radius, radius + 1)
    circle = steps[:, None] ** 2 + steps[None, :] ** 2 <= radius ** 2
    maximum = ndimage.maximum_filter(image, footprint=circle, mode="constant", cval=0.0)
    for threshold in (-0.6, 0.0, 0.2):
        expected = (image == maximum) & (image > threshold) & ~mask
        y, x = np.nonzero(expected)
        np.testing.assert_array_equal(find_peaks(image, threshold, mask, radius),
                                      np.column_stack([x, y]))


@pytest.mark.parametrize("shape", [(31, 42), (30, 41)])  # odd and even unmasked counts
def test_median_unmasked_equals_numpy_median(shape):
    rng = np.random.default_rng(4)
    image = rng.normal(5.0, 1.0, shape)
    mask = np.zeros(shape, bool)
    mask[:, 0] = True
    expected = np.median((10.0 * image)[~mask])
    assert median_unmasked(image, mask, scale=10.0) == expected
    assert median_unmasked(image, mask) == np.median(image[~mask])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_find_sources_leaves_its_input_alone_and_masks_non_finite_pixels(dtype):
    """The image is processed in place on a private copy; NaNs count as masked."""
    image = _star_field().astype(dtype)
    image[10:20, 30:40] = np.nan
    before = image.copy()
    options = FinderOptions(bkg_boxsize=64, snr_threshold=5.0)
    detection = find_sources(image, None, options)
    np.testing.assert_array_equal(image, before)
    mask = ~np.isfinite(image)
    filled = np.where(mask, image.dtype.type(0), image)
    same = find_sources(filled, mask, options)
    assert detection.background.dtype == dtype  # measured in the input's precision
    np.testing.assert_array_equal(detection.background, same.background)
    assert np.all(detection.background[mask] == 0.0)
    np.testing.assert_array_equal(detection.sources["xcentroid"], same.sources["xcentroid"])
    np.testing.assert_array_equal(detection.sources["flux"], same.sources["flux"])


@pytest.mark.parametrize("fwhm", [2.0, 3.3])
def test_smooth_masked_equals_astropy_convolve(fwhm):
    """Masked pixels, a masked block wider than the kernel (NaN inside), a NaN and the image
    edges: the same as astropy's masked convolution with a Gaussian2DKernel."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(90, 110))
    mask = rng.random(data.shape) < 0.05
    mask[20:50, 30:60] = True
    data[3, 4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about the NaN it interpolates
        expected = convolve(np.where(mask, 0.0, data), Gaussian2DKernel(fwhm / FWHM_PER_SIGMA),
                            mask=mask | np.isnan(data))
    smoothed = smooth_masked(data, mask, fwhm)
    np.testing.assert_array_equal(np.isnan(smoothed), np.isnan(expected))
    assert np.isnan(smoothed[35, 45])
    np.testing.assert_allclose(smoothed, expected, rtol=1e-12, atol=1e-14, equal_nan=True)
