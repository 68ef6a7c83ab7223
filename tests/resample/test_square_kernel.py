"""The one-pass square-kernel drizzle of several arrays against the drizzle package."""

from __future__ import annotations

import numpy as np
import pytest
from drizzle.resample import Drizzle
from resample_scenes import DEC0, RA0, SCALE, distorted_wcs

from calwebb.resample import grid
from calwebb.resample.drizzle_images import DrizzleInput, DrizzleSums, PixelMapper, pixel_weights
from calwebb.resample.square_kernel import TogetherDrizzle, footprint_box, row_split

IN_SHAPE = (300, 260)
OUT_SHAPE = (460, 470)
SHAPE = (96, 110)


def _scene(seed=3):
    """A rotated, scaled, slightly curved pixel map (first rows unmapped), random weights
    with 5 % zeros and three positive arrays."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:IN_SHAPE[0], 0:IN_SHAPE[1]].astype(float)
    angle, scale = np.deg2rad(23.0), 1.07
    pixmap = np.dstack([scale * (np.cos(angle) * x - np.sin(angle) * y) + 150 + 2e-4 * x * y,
                        scale * (np.sin(angle) * x + np.cos(angle) * y) + 40 - 1e-4 * x * x])
    pixmap[:4] = np.nan
    weights = rng.uniform(0.2, 1.0, IN_SHAPE).astype(np.float32)
    weights[rng.random(IN_SHAPE) < 0.05] = 0.0
    arrays = [rng.uniform(0.5, 2.0, IN_SHAPE).astype(np.float32) for _ in range(3)]
    return pixmap, weights, arrays


def _drizzle_package(array, weights, pixmap, pixfrac, out_shape=OUT_SHAPE):
    driz = Drizzle(kernel="square", fillval="NAN", out_shape=out_shape, disable_ctx=True)
    driz.add_image(array, exptime=1.0, pixmap=pixmap, weight_map=weights, pixfrac=pixfrac,
                   in_units="cps", xmin=0, xmax=IN_SHAPE[1] - 1, ymin=0,
                   ymax=IN_SHAPE[0] - 1)
    return driz.out_img, driz.out_wht


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_every_array_equals_its_own_drizzle_package_pass(pixfrac, parts):
    pixmap, weights, arrays = _scene()
    together = TogetherDrizzle(arrays, weights, pixmap, pixfrac, (0, IN_SHAPE[1] - 1),
                               (0, IN_SHAPE[0] - 1), OUT_SHAPE, parts=parts)
    together.run()
    y0, y1, x0, x1 = together.box
    for array, mean in zip(arrays, together.means, strict=True):
        expected, expected_weight = _drizzle_package(array, weights, pixmap, pixfrac)
        outside = np.ones(OUT_SHAPE, bool)
        outside[y0:y1, x0:x1] = False
        assert (expected_weight[outside] == 0).all()  # the box holds every contribution
        expected, expected_weight = expected[y0:y1, x0:x1], expected_weight[y0:y1, x0:x1]
        np.testing.assert_array_equal(np.isnan(mean), np.isnan(expected))
        # float32 running means: rounding differences only
        np.testing.assert_allclose(mean, expected, rtol=2e-6, equal_nan=True)
        np.testing.assert_allclose(together.weight, expected_weight, rtol=2e-6)


@pytest.mark.parametrize("pixfrac", [1.0, 0.6])
def test_products_do_not_depend_on_the_number_of_threads(pixfrac):
    """Each thread adds every input pixel's overlap with its own output rows, in input
    order: the same sums, bit for bit, as one thread."""
    pixmap, weights, arrays = _scene()
    runs = []
    for parts in (1, 2, 5):
        together = TogetherDrizzle(arrays, weights, pixmap, pixfrac, (0, IN_SHAPE[1] - 1),
                                   (0, IN_SHAPE[0] - 1), OUT_SHAPE, parts=parts)
        together.run()
        runs.append((together.means, together.weight))
    for means, weight in runs[1:]:
        np.testing.assert_array_equal(means, runs[0][0])
        np.testing.assert_array_equal(weight, runs[0][1])


def test_row_split_balances_the_mapped_centres():
    pixmap, _, _ = _scene()
    box = footprint_box(pixmap, 1.0, (0, IN_SHAPE[1] - 1), (0, IN_SHAPE[0] - 1), OUT_SHAPE)
    edges = row_split(pixmap, 0, IN_SHAPE[1] - 1, 0, IN_SHAPE[0] - 1, box[0], box[1], 4)
    assert edges[0] == box[0] and edges[-1] == box[1] and (np.diff(edges) >= 0).all()
    rows = np.floor(pixmap[..., 1] + 0.5)
    counts = [np.count_nonzero((rows >= low) & (rows < high))
              for low, high in zip(edges[:-1], edges[1:], strict=True)]
    mapped = np.count_nonzero(np.isfinite(rows))
    assert sum(counts) == mapped
    np.testing.assert_allclose(counts, mapped / 4, rtol=0.02)


def test_as_sigma_drizzles_the_square_root_of_the_clipped_arrays():
    pixmap, weights, arrays = _scene()
    variances = [array**2 for array in arrays]
    variances[0][10:20] = -1.0  # clipped to 0
    together = TogetherDrizzle(variances, weights, pixmap, 1.0, (0, IN_SHAPE[1] - 1),
                               (0, IN_SHAPE[0] - 1), OUT_SHAPE, parts=2, as_sigma=True)
    together.run()
    y0, y1, x0, x1 = together.box
    sigma = np.sqrt(np.clip(variances[0], 0, None))
    expected, _ = _drizzle_package(sigma, weights, pixmap, 1.0)
    np.testing.assert_allclose(together.means[0], expected[y0:y1, x0:x1], rtol=2e-6,
                               atol=1e-7, equal_nan=True)


def test_uniform_unit_map_gives_back_the_input():
    y, x = np.mgrid[0:50, 0:40].astype(float)
    pixmap = np.dstack([x + 5.0, y + 7.0])
    data = np.arange(2000, dtype=np.float32).reshape(50, 40)
    together = TogetherDrizzle([data], np.ones((50, 40), np.float32), pixmap, 1.0, (0, 39),
                               (0, 49), (70, 60))
    together.run()
    y0, _, x0, _ = together.box
    np.testing.assert_allclose(together.means[0][7 - y0:57 - y0, 5 - x0:45 - x0], data,
                               rtol=1e-6)
    np.testing.assert_allclose(together.weight[7 - y0:57 - y0, 5 - x0:45 - x0], 1.0,
                               rtol=1e-6)


def test_no_box_when_pixels_land_outside_or_nowhere():
    pixmap, _, _ = _scene()
    whole = (0, IN_SHAPE[1] - 1), (0, IN_SHAPE[0] - 1)
    assert footprint_box(pixmap, 1.0, *whole, OUT_SHAPE) is not None
    assert footprint_box(pixmap, 1.0, *whole, (300, OUT_SHAPE[1])) is None  # cut by the edge
    assert footprint_box(pixmap, 1.0, (0, 10), (0, 3), OUT_SHAPE) is None  # rows unmapped


def test_drizzle_sums_variances_match_the_drizzle_package_and_fall_back_at_edges():
    """Variances through DrizzleSums (one pass here) equal the official per-array scheme,
    also when the output grid cuts the image (then the package does every array)."""
    wcs = distorted_wcs(SHAPE, distortion=2e-5)
    output, _ = grid.output_grid([wcs], [SHAPE], rotation=17.0)
    rng = np.random.default_rng(8)
    variances = {name: rng.uniform(0.01, 0.05, SHAPE).astype(np.float32)
                 for name in ("var_poisson", "var_rnoise", "var_flat")}
    item = DrizzleInput(data=rng.uniform(1, 2, SHAPE).astype(np.float32), wcs=wcs,
                        variances=variances)
    ny, nx = output.array_shape
    cut = grid.output_grid([wcs], [SHAPE], rotation=17.0, output_shape=(nx, ny // 2))[0]
    for out_wcs in (output, cut):
        sums = DrizzleSums(out_wcs, weight_type=None)
        sums.add(item)
        result = sums.result()
        pixmap = PixelMapper(wcs, out_wcs, SHAPE).pixmap()
        one_pass = footprint_box(pixmap, 1.0, (0, SHAPE[1] - 1), (0, SHAPE[0] - 1),
                                 out_wcs.array_shape) is not None
        assert one_pass == (out_wcs is output)
        weights = np.ones(SHAPE, np.float32)
        for name, variance in variances.items():
            driz = Drizzle(kernel="square", fillval="NAN", out_shape=out_wcs.array_shape,
                           disable_ctx=True)
            driz.add_image(np.sqrt(variance), exptime=1.0, pixmap=pixmap, weight_map=weights,
                           in_units="cps")
            np.testing.assert_allclose(result.variances[name], driz.out_img**2, rtol=5e-6,
                                       equal_nan=True)


def _package_reference(items, output, weight_type, error_too=False):
    """SCI, WHT, CON and DQ (and the ERR drizzle) of ``items`` drizzled by the drizzle
    package alone, one array per pass, as the official resample does."""
    driz = Drizzle(kernel="square", fillval="NAN", out_shape=output.array_shape,
                   begin_ctx_id=0, max_ctx_id=len(items) - 1)
    error = Drizzle(kernel="square", fillval="NAN", out_shape=output.array_shape,
                    disable_ctx=True)
    for item in items:
        pixmap = PixelMapper(item.wcs, output, item.data.shape).pixmap()
        options = dict(exptime=1.0, pixmap=pixmap, in_units="cps",
                       weight_map=pixel_weights(item, weight_type))
        driz.add_image(item.data - np.float32(item.background), dq=item.dq, **options)
        if error_too:
            error.add_image(item.err, **options)
    return driz, error


@pytest.mark.parametrize("cut", [False, True])
@pytest.mark.parametrize(("weight_type", "propagate_dq"),
                         [("exptime", False), ("ivm", False), ("ivm", True)])
def test_drizzle_sums_equal_the_drizzle_package(cut, weight_type, propagate_dq):
    """SCI, WHT, CON, ERR (and DQ) of two images (one with a sky level, one with a NaN
    pixel) through DrizzleSums equal the drizzle package's own passes within float32
    rounding, the context and DQ exactly: in one pass of the square kernel when the images
    lie inside the grid (SCI, DQ and ERR by the package with ``propagate_dq``), by the
    package when the grid cuts them."""
    wcses = [distorted_wcs(SHAPE, distortion=2e-5),
             distorted_wcs(SHAPE, crval=(RA0 + 4.3 * SCALE, DEC0 + 2.6 * SCALE), angle=3.0)]
    output, _ = grid.output_grid(wcses, [SHAPE, SHAPE], rotation=17.0)
    if cut:
        ny, nx = output.array_shape
        output = grid.output_grid(wcses, [SHAPE, SHAPE], rotation=17.0,
                                  output_shape=(nx, ny // 2))[0]
    rng = np.random.default_rng(9)
    items = [DrizzleInput(data=rng.uniform(1, 2, SHAPE).astype(np.float32), wcs=wcs,
                          err=rng.uniform(0.1, 0.2, SHAPE).astype(np.float32),
                          variances={"var_rnoise": rng.uniform(0.01, 0.02, SHAPE).astype(
                              np.float32)}, exposure_time=time, background=sky,
                          dq=rng.choice(np.array([0, 4, 32], np.uint32), SHAPE))
             for wcs, time, sky in zip(wcses, (100.0, 300.0), (0.0, 0.4), strict=True)]
    items[0].data[5, 7] = np.nan  # no weight
    for wcs in wcses:
        one_pass = footprint_box(PixelMapper(wcs, output, SHAPE).pixmap(), 1.0,
                                 (0, SHAPE[1] - 1), (0, SHAPE[0] - 1),
                                 output.array_shape) is not None
        assert one_pass is not cut
    for error in ("variances", "err"):
        sums = DrizzleSums(output, weight_type=weight_type, n_inputs=2, error=error,
                           propagate_dq=propagate_dq)
        for item in items:
            sums.add(item)
        result = sums.result()
        package, package_error = _package_reference(items, output, weight_type,
                                                    error_too=error == "err")
        np.testing.assert_allclose(result.weight, package.out_wht, rtol=2e-6)
        np.testing.assert_allclose(result.data, package.out_img, rtol=2e-6, equal_nan=True)
        np.testing.assert_array_equal(result.context, package.out_ctx)
        if propagate_dq:
            np.testing.assert_array_equal(result.dq, package.out_dq)
            assert set(np.unique(result.dq)) == {0, 4, 32, 36}
        if error == "err":
            np.testing.assert_allclose(result.error, package_error.out_img, rtol=2e-6,
                                       equal_nan=True)
    assert set(np.unique(result.context)) == {0, 1, 2, 3}  # each image alone and both


def test_one_image_variances_equal_those_made_through_the_sums():
    """A single image's resampled variances are its products as they are; made through the
    Σ w²·v / (Σ w)² sums instead (as for several images), they agree to float32 rounding,
    NaN where the weight is 0."""
    wcs = distorted_wcs(SHAPE, distortion=2e-5)
    output, _ = grid.output_grid([wcs], [SHAPE])
    rng = np.random.default_rng(9)
    variances = {name: rng.uniform(0.01, 0.05, SHAPE).astype(np.float32)
                 for name in ("var_poisson", "var_rnoise", "var_flat")}
    variances["var_rnoise"][20:30, 40:50] = 0.0  # no 'ivm' weight: NaN in every variance
    item = DrizzleInput(data=rng.uniform(1, 2, SHAPE).astype(np.float32), wcs=wcs,
                        variances=variances)
    results = []
    for through_sums in (False, True):
        sums = DrizzleSums(output, weight_type="ivm")
        sums.add(item)
        if through_sums:
            sums.state()  # the state of a partial drizzle holds the sums
        results.append(sums.result())
    for name in variances:
        np.testing.assert_allclose(results[0].variances[name], results[1].variances[name],
                                   rtol=3e-7, equal_nan=True)
        assert np.isnan(results[0].variances[name]).any()
    np.testing.assert_allclose(results[0].error, results[1].error, rtol=3e-7, equal_nan=True)
    with pytest.raises(RuntimeError, match="already taken"):
        sums.result()
