"""drizzle_images on analytic scenes: surface brightness, flux, position, weights, variances,
exclusion of bad pixels, context bits and the pixel map."""

import math

import numpy as np
import pytest
from drizzle.utils import calc_pixmap
from resample_scenes import (
    DEC0,
    RA0,
    SCALE,
    distorted_wcs,
    gaussian_scene,
    offsets_arcsec,
    pixel_solid_angles,
)

from calwebb import dqflags
from calwebb.errors import DataModelError, ParameterError
from calwebb.resample import grid
from calwebb.resample.drizzle_images import (
    DrizzleInput,
    PixelMapper,
    PixmapScratch,
    drizzle_images,
    excluded_pixels,
    pixel_weights,
)

SHAPE = (96, 110)
SOURCE = (RA0 + 0.4 / 3600, DEC0 - 0.3 / 3600)


def _pair(angles=(15.0, 40.0), distortions=(2e-5, -1.5e-5)):
    first = distorted_wcs(SHAPE, crval=(RA0, DEC0), angle=angles[0], distortion=distortions[0])
    second = distorted_wcs(SHAPE, crval=(RA0 + 1.3 / 3600, DEC0 - 0.9 / 3600), angle=angles[1],
                           distortion=distortions[1])
    return first, second


def _fully_covered_by_both(result):
    """Output pixels whose whole area is covered by both inputs (partial overlaps at the edges
    change the weights of the mean)."""
    return (result.context[0] == 3) & (result.weight >= 0.999 * result.weight.max())


def _input(data, wcs, var_rnoise=0.01, var_poisson=0.02, **kwargs):
    shape = data.shape
    return DrizzleInput(data=np.asarray(data, np.float32), wcs=wcs,
                        dq=np.zeros(shape, np.uint32),
                        variances={"var_rnoise": np.full(shape, var_rnoise, np.float32),
                                   "var_poisson": np.full(shape, var_poisson, np.float32)},
                        **kwargs)


def _identity_grid(wcs, shape=SHAPE):
    """An output grid equal to an undistorted input's own pixels."""
    ny, nx = shape
    crpix = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    return grid.tangent_plane_wcs(wcs(*crpix), crpix, grid.describe_cd(wcs, crpix), shape) \
        if hasattr(grid, "describe_cd") else _tan_like(wcs, shape)


def _tan_like(wcs, shape):
    wcs.array_shape = shape
    description = grid.describe(wcs)
    return grid.tangent_plane_wcs(description.crval, description.crpix, description.cd, shape)


def test_constant_surface_brightness_stays_constant_through_two_distorted_inputs():
    first, second = _pair()
    output, _ = grid.output_grid([first, second], [SHAPE, SHAPE], rotation=0.0)
    result = drizzle_images([_input(np.full(SHAPE, 3.5), first),
                             _input(np.full(SHAPE, 3.5), second)], output)
    covered = result.weight > 0
    assert covered.mean() > 0.5
    np.testing.assert_allclose(result.data[covered], 3.5, rtol=1e-5)
    assert np.isnan(result.data[~covered]).all()  # fillval NaN where no data
    assert result.data.dtype == result.weight.dtype == np.float32
    assert result.context.dtype == np.int32 and result.context.shape == (1, *output.array_shape)
    assert set(np.unique(result.context)) == {0, 1, 2, 3}


def test_point_source_total_flux_and_position_are_kept():
    first, second = _pair()
    output, _ = grid.output_grid([first, second], [SHAPE, SHAPE], rotation=0.0)
    inputs = [_input(gaussian_scene(w, SHAPE, *SOURCE, sigma_arcsec=0.2), w)
              for w in (first, second)]
    # Σ SCI·Ω of each input, with each pixel's solid angle from the WCS Jacobian
    fluxes_in = [float(np.sum(item.data * pixel_solid_angles(item.wcs, SHAPE)))
                 for item in inputs]
    assert fluxes_in[0] == pytest.approx(fluxes_in[1], rel=2e-3)
    result = drizzle_images(inputs, output)
    image = np.nan_to_num(result.data)
    omega_out = math.radians(grid.describe(output).pixel_scale) ** 2
    flux_out = float(image.sum()) * omega_out
    assert flux_out == pytest.approx(np.mean(fluxes_in), rel=0.005)
    yy, xx = np.indices(image.shape)
    x_c, y_c = (image * xx).sum() / image.sum(), (image * yy).sum() / image.sum()
    ra, dec = output(x_c, y_c)
    east, north = offsets_arcsec(ra, dec, *SOURCE)
    assert math.hypot(east, north) * 1000 < 1.0  # mas


def test_single_input_flux_is_conserved_at_another_pixel_scale():
    first, _ = _pair()
    data = gaussian_scene(first, SHAPE, *SOURCE, sigma_arcsec=0.25, sky=0.0)
    flux_in = float(np.sum(data * pixel_solid_angles(first, SHAPE)))
    for ratio in (0.5, 1.7):
        output, _ = grid.output_grid([first], [SHAPE], pixel_scale_ratio=ratio)
        result = drizzle_images([_input(data, first)], output, pixel_scale_ratio=ratio)
        omega_out = math.radians(grid.describe(output).pixel_scale) ** 2
        assert np.nansum(result.data) * omega_out == pytest.approx(flux_in, rel=0.005)


def test_ivm_weights_give_the_inverse_variance_mean():
    # undistorted inputs: every input pixel has the same area, so the weights are exact
    first, second = _pair(angles=(20.0, 20.0), distortions=(0.0, 0.0))
    output, _ = grid.output_grid([first, second], [SHAPE, SHAPE])
    inputs = [_input(np.full(SHAPE, 1.0), first, var_rnoise=0.01),
              _input(np.full(SHAPE, 2.0), second, var_rnoise=0.04)]
    result = drizzle_images(inputs, output, weight_type="ivm")
    both = _fully_covered_by_both(result)
    assert both.sum() > 1000
    expected = (1.0 / 0.01 + 2.0 / 0.04) / (1 / 0.01 + 1 / 0.04)
    np.testing.assert_allclose(result.data[both], expected, rtol=1e-5)
    only_first = (result.context[0] == 1) & (result.weight > 0)
    np.testing.assert_allclose(result.data[only_first], 1.0, rtol=1e-5)
    # and WHT sums the weights: 1/0.01 + 1/0.04 per unit of covered area
    assert np.nanmax(result.weight) == pytest.approx(125.0, rel=1e-4)


def test_exptime_and_unit_weights():
    first, second = _pair(angles=(20.0, 20.0), distortions=(0.0, 0.0))
    output, _ = grid.output_grid([first, second], [SHAPE, SHAPE])

    def run(weight_type):
        inputs = [_input(np.full(SHAPE, 1.0), first, exposure_time=100.0),
                  _input(np.full(SHAPE, 2.0), second, exposure_time=300.0)]
        return drizzle_images(inputs, output, weight_type=weight_type)

    both = _fully_covered_by_both(run(None))
    np.testing.assert_allclose(run("exptime").data[both], (100 + 600) / 400, rtol=1e-5)
    np.testing.assert_allclose(run(None).data[both], 1.5, rtol=1e-5)
    with pytest.raises(ParameterError, match="weight_type"):
        run("ivm-sky")


def test_do_not_use_non_science_and_nan_pixels_are_left_out_other_flags_kept():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    data = np.full(SHAPE, 1.0, np.float32)
    dq = np.zeros(SHAPE, np.uint32)
    data[10, 10], dq[10, 10] = 1e6, dqflags.DO_NOT_USE
    data[20, 20], dq[20, 20] = 1e6, dqflags.NON_SCIENCE
    data[30, 30] = np.nan  # harmonised: NaN counts as DO_NOT_USE
    data[40, 40], dq[40, 40] = 5.0, dqflags.SATURATED | dqflags.JUMP_DET  # still used
    item = DrizzleInput(data=data, wcs=wcs, dq=dq,
                        variances={"var_rnoise": np.full(SHAPE, 0.01, np.float32)})
    item.variances["var_rnoise"][50, 50] = np.nan  # a non-finite variance excludes it too
    before = data.copy(), dq.copy()
    # pixfrac < 1: each drop lies inside its own output pixel (no round-off slivers)
    result = drizzle_images([item], output, pixfrac=0.9)
    for y, x in ((10, 10), (20, 20), (30, 30), (50, 50)):
        assert np.isnan(result.data[y, x]) and result.weight[y, x] == 0
    assert result.data[40, 40] == pytest.approx(5.0)
    excluded = excluded_pixels(item)
    assert excluded.sum() == 4 and not excluded[40, 40]
    np.testing.assert_array_equal(data, before[0])  # the input is not modified
    np.testing.assert_array_equal(dq, before[1])


def test_pixel_weights():
    wcs = distorted_wcs((4, 4), distortion=0.0)
    variance = np.array([[0.01, 0.0, -1.0, np.inf]] * 4, np.float32)
    item = DrizzleInput(data=np.ones((4, 4), np.float32), wcs=wcs,
                        variances={"var_rnoise": variance}, exposure_time=50.0)
    weights = pixel_weights(item, "ivm")
    np.testing.assert_allclose(weights[0], [100.0, 0.0, 0.0, 0.0])
    assert weights.dtype == np.float32
    assert (pixel_weights(item, "exptime")[:, 0] == 50.0).all()
    no_variance = DrizzleInput(data=np.ones((4, 4), np.float32), wcs=wcs)
    assert (pixel_weights(no_variance, "ivm") == 1.0).all()


def test_numeric_fillval():
    first, second = _pair()
    output, _ = grid.output_grid([first, second], [SHAPE, SHAPE], rotation=0.0)
    result = drizzle_images([_input(np.full(SHAPE, 2.0), first)], output, fillval="-7")
    assert (result.data[result.weight == 0] == -7).all()
    with pytest.raises(ParameterError, match="fillval"):
        drizzle_images([_input(np.full(SHAPE, 2.0), first)], output, fillval="none of it")


def test_variances_are_identical_for_one_input_on_its_own_grid():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    rng = np.random.default_rng(4)
    variances = {name: rng.uniform(0.01, 0.05, SHAPE).astype(np.float32)
                 for name in ("var_poisson", "var_rnoise", "var_flat")}
    data = rng.uniform(1.0, 2.0, SHAPE).astype(np.float32)
    result = drizzle_images([DrizzleInput(data=data, wcs=wcs, variances=variances)], output,
                            pixfrac=1.0)
    np.testing.assert_allclose(result.data, data, rtol=1e-5)
    for name, variance in variances.items():
        np.testing.assert_allclose(result.variances[name], variance, rtol=1e-4)
        assert result.variances[name].dtype == np.float32
    np.testing.assert_allclose(result.error, np.sqrt(sum(variances.values())), rtol=1e-4)


def test_variances_of_two_inputs_combine_with_squared_weights():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    first = _input(np.full(SHAPE, 1.0), wcs, var_rnoise=0.01, var_poisson=0.5)
    second = _input(np.full(SHAPE, 1.0), wcs, var_rnoise=0.04, var_poisson=0.2)
    result = drizzle_images([first, second], output, weight_type="ivm")
    w1, w2 = 1 / 0.01, 1 / 0.04
    expected_rn = (w1**2 * 0.01 + w2**2 * 0.04) / (w1 + w2) ** 2  # = 1 / (w1 + w2)
    expected_p = (w1**2 * 0.5 + w2**2 * 0.2) / (w1 + w2) ** 2
    np.testing.assert_allclose(result.variances["var_rnoise"], expected_rn, rtol=1e-5)
    np.testing.assert_allclose(result.variances["var_poisson"], expected_p, rtol=1e-5)
    assert "var_flat" not in result.variances  # neither input has it
    np.testing.assert_allclose(result.error, math.sqrt(expected_rn + expected_p), rtol=1e-5)


def test_variances_scale_with_the_inverse_square_of_the_pixel_scale_ratio():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output, ratio = grid.output_grid([wcs], [SHAPE], pixel_scale_ratio=2.0)
    result = drizzle_images([_input(np.full(SHAPE, 1.0), wcs, var_rnoise=0.04)], output,
                            pixel_scale_ratio=ratio)
    full = result.weight >= 0.999 * result.weight.max()
    np.testing.assert_allclose(result.variances["var_rnoise"][full], 0.04 / 4, rtol=1e-4)


def test_error_from_err_and_no_error():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    item = _input(np.full(SHAPE, 1.0), wcs)
    item.err = np.full(SHAPE, 0.3, np.float32)
    result = drizzle_images([item], output, error="err", variance_names=())
    np.testing.assert_allclose(result.error, 0.3, rtol=1e-5)
    assert result.variances == {}
    assert drizzle_images([item], output, error=None).error is None


def test_context_has_one_bit_per_input_and_a_plane_per_32_inputs():
    shape = (8, 8)
    wcs = distorted_wcs(shape, distortion=0.0)
    output = _tan_like(wcs, shape)
    inputs = [DrizzleInput(data=np.full(shape, float(i), np.float32), wcs=wcs)
              for i in range(33)]
    inputs[31].data[0, 0] = np.nan  # input 31 (bit 31, the sign bit) misses one pixel
    result = drizzle_images(inputs, output, weight_type=None, n_inputs=33, pixfrac=0.9)
    context = result.context.view(np.uint32)
    assert context.shape == (2, *shape)
    assert context[0, 1, 1] == 0xFFFFFFFF and context[1, 1, 1] == 1
    assert context[0, 0, 0] == 0x7FFFFFFF
    np.testing.assert_allclose(result.data[1, 1], np.mean(np.arange(33)), rtol=1e-6)


def test_propagated_dq_is_the_or_of_contributing_pixels():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    item = _input(np.full(SHAPE, 1.0), wcs)
    item.dq[5, 5] = dqflags.SATURATED
    result = drizzle_images([item], output, propagate_dq=True)
    assert result.dq[5, 5] & dqflags.SATURATED and result.dq[6, 6] == 0
    assert drizzle_images([item], output).dq is None


def test_interpolated_pixel_map_is_close_to_the_exact_one():
    wcs_in = distorted_wcs((200, 230), angle=10.0, distortion=1e-4)
    output, _ = grid.output_grid([wcs_in], [(200, 230)], rotation=0.0)
    exact = calc_pixmap(wcs_in, output, (200, 230))
    # the default (verified bicubic) map is exact to the tolerance it checks
    assert np.abs(PixelMapper(wcs_in, output, (200, 230)).pixmap() - exact).max() < 1e-4
    linear = PixelMapper(wcs_in, output, (200, 230), stepsize=10, order=1).pixmap()
    cubic = PixelMapper(wcs_in, output, (200, 230), stepsize=10, order=3).pixmap()
    assert np.abs(linear - exact).max() < 0.01
    assert np.abs(cubic - exact).max() < 1e-4
    with pytest.raises(ParameterError, match="pixmap_order"):
        PixelMapper(wcs_in, output, (200, 230), stepsize=10, order=2).pixmap()


def test_pixel_maps_made_in_a_scratch_array_reuse_it_and_change_nothing():
    """Maps made one after another in a PixmapScratch are the same maps, in one array (a new
    one when the image shape changes); drizzles sharing one give the same products."""
    shapes = ((200, 230), (200, 230), (120, 90))
    wcses = [distorted_wcs(shape, angle=10.0 * k, distortion=1e-4)
             for k, shape in enumerate(shapes)]
    output, _ = grid.output_grid(wcses, list(shapes), rotation=0.0)
    scratch = PixmapScratch()
    arrays = []
    for wcs, shape in zip(wcses, shapes, strict=True):
        mapper = PixelMapper(wcs, output, shape)
        made = mapper.pixmap(scratch)
        np.testing.assert_array_equal(made, mapper.pixmap())
        arrays.append(made)
    assert arrays[0] is arrays[1] and arrays[2] is not arrays[1]
    rng = np.random.default_rng(2)
    items = [DrizzleInput(data=rng.uniform(1, 2, shape).astype(np.float32), wcs=wcs)
             for wcs, shape in zip(wcses, shapes, strict=True)]
    alone = [drizzle_images([item], output) for item in items]
    shared = [drizzle_images([item], output, scratch=scratch) for item in items]
    for one, other in zip(alone, shared, strict=True):
        np.testing.assert_array_equal(one.data, other.data)
        np.testing.assert_array_equal(one.context, other.context)


def test_pixel_mapper_serves_equal_grids_with_the_same_map(monkeypatch):
    """The WCS is evaluated once (``_fit``) however often the map is used: by itself, by a
    drizzle and again; the map stays the exact one within 1e-4 pixel."""
    import copy

    wcs_in = distorted_wcs((200, 230), angle=10.0, distortion=1e-4)
    output, _ = grid.output_grid([wcs_in], [(200, 230)], rotation=0.0)
    mapper = PixelMapper(wcs_in, output, (200, 230))
    fits = []
    original_fit = PixelMapper._fit
    monkeypatch.setattr(PixelMapper, "_fit",
                        lambda self: fits.append(self) or original_fit(self))
    first = mapper.pixmap()
    assert np.abs(first - calc_pixmap(wcs_in, output, (200, 230))).max() < 1e-4
    np.testing.assert_array_equal(mapper.pixmap(), first)  # made again from its splines
    assert mapper.serves(copy.deepcopy(output), (200, 230), 1.0, 1)
    other, _ = grid.output_grid([wcs_in], [(200, 230)], rotation=5.0)
    assert not mapper.serves(other, (200, 230), 1.0, 1)
    assert not mapper.serves(output, (200, 230), 4.0, 1)
    assert not mapper.serves(wcs_in, (200, 230), 1.0, 1)  # not a tangent-plane grid
    item = DrizzleInput(data=np.ones((200, 230), np.float32), wcs=wcs_in, pixel_mapper=mapper)
    fresh = DrizzleInput(data=np.ones((200, 230), np.float32), wcs=wcs_in)
    mapped = drizzle_images([item], output).data
    assert fits == [mapper]  # the drizzle used the mapper's map
    np.testing.assert_array_equal(mapped, drizzle_images([fresh], output).data)


def test_default_pixel_map_falls_back_to_the_exact_one_for_a_wiggly_wcs():
    """A distortion with structure finer than the interpolation nodes fails the check, and
    the exact per-pixel evaluation is returned."""
    from astropy.modeling import models
    from gwcs import WCS

    shape = (128, 128)
    smooth = distorted_wcs(shape, distortion=0.0)
    x_wiggle = (models.Identity(1) + models.Sine1D(amplitude=0.3, frequency=1 / 7.0)) \
        & models.Identity(1)
    wcs_in = WCS([(smooth.input_frame, x_wiggle | smooth.forward_transform),
                  (smooth.output_frame, None)])
    wcs_in.bounding_box = ((-0.5, 127.5), (-0.5, 127.5))
    exact = calc_pixmap(wcs_in, smooth, shape)
    np.testing.assert_array_equal(PixelMapper(wcs_in, smooth, shape).pixmap(), exact)


def test_bad_inputs_name_the_image_and_array():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    output = _tan_like(wcs, SHAPE)
    bad = DrizzleInput(data=np.ones(SHAPE, np.float32), wcs=wcs, dq=np.zeros((3, 3), np.uint32),
                       name="x_cal.fits")
    with pytest.raises(DataModelError, match="x_cal.fits: DQ has shape"):
        drizzle_images([bad], output)
    cube = DrizzleInput(data=np.ones((2, *SHAPE), np.float32), wcs=wcs, name="y_calints.fits")
    with pytest.raises(DataModelError, match="y_calints.fits: resample needs a 2-D"):
        drizzle_images([cube], output)
    with pytest.raises(DataModelError, match="no input images"):
        drizzle_images([], output)
    with pytest.raises(ParameterError, match="kernel"):
        drizzle_images([bad], output, kernel="box")


def test_scale_is_the_one_of_the_scene():
    wcs = distorted_wcs(SHAPE, distortion=0.0)
    assert grid.pixel_scale_deg(wcs, 10, 10) == pytest.approx(SCALE, rel=1e-9)
