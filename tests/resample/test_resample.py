"""resample: analytic drizzle cases on small synthetic images with a distorted gwcs."""

import numpy as np
import pytest
from astropy.modeling import models

from calwebb import datamodels, dqflags
from calwebb.resample import grid
from calwebb.resample.step import ResampleStep

SCALE = 0.1 / 3600  # deg per pixel


def _wcs(shape, ra=10.0, dec=-20.0, angle=0.0, distortion=3e-5):
    """A TAN gwcs with a mild quadratic distortion in pixel space."""
    tan = grid.tangent_plane_wcs((ra, dec), ((shape[1] - 1) / 2, (shape[0] - 1) / 2),
                                 grid.cd_matrix(SCALE, angle), shape)
    warp = models.Mapping((0, 1, 0, 1)) | (
        models.Polynomial2D(2, c1_0=1, c2_0=distortion) & models.Polynomial2D(2, c0_1=1,
                                                                                c1_1=distortion))
    inverse_tan = tan.forward_transform.inverse
    forward = warp | tan.forward_transform
    forward.inverse = inverse_tan | models.Mapping((0, 1, 0, 1)) | (
        models.Polynomial2D(2, c1_0=1, c2_0=-distortion) & models.Polynomial2D(
            2, c0_1=1, c1_1=-distortion))
    from gwcs import WCS

    wcs = WCS([(tan.input_frame, forward), (tan.output_frame, None)])
    wcs.bounding_box = ((-0.5, shape[1] - 0.5), (-0.5, shape[0] - 0.5))
    return wcs


def _image(data, wcs, var_rnoise=0.01, name="a_cal.fits"):
    shape = data.shape
    model = datamodels.ImageModel(
        data=data.astype(np.float32), dq=np.zeros(shape, np.uint32),
        var_poisson=np.full(shape, 0.02, np.float32),
        var_rnoise=np.full(shape, var_rnoise, np.float32),
        var_flat=np.zeros(shape, np.float32))
    model.err = np.sqrt(model.var_poisson + model.var_rnoise)
    model.meta.wcs = wcs
    model.meta.filename = name
    model.meta.exposure.exposure_time = 100.0
    return model


def test_constant_surface_brightness_stays_constant():
    shape = (60, 70)
    model = _image(np.full(shape, 3.5), _wcs(shape, angle=20))
    result = ResampleStep.call(model, rotation=0.0)
    covered = result.wht > 0.98 * np.nanmax(result.wht)  # interior (WHT ∝ pixel area)
    assert covered.sum() > 1000
    np.testing.assert_allclose(result.data[covered], 3.5, rtol=1e-5)
    assert np.isnan(result.data[result.wht == 0]).all()  # fillval NaN
    assert result.meta.cal_step.resample == "COMPLETE"


def test_point_source_flux_and_position_are_kept():
    shape = (64, 64)
    wcs = _wcs(shape, angle=35)
    yy, xx = np.indices(shape)
    x0, y0, sigma = 30.3, 33.7, 1.5
    data = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    model = _image(data, wcs)
    ra_true, dec_true = wcs(x0, y0)
    # input pixel solid angles from the WCS
    area_in = np.array([[grid.pixel_scale_deg(wcs, x, y) ** 2 for x in range(64)]
                        for y in range(64)])
    flux_in = np.sum(data * area_in)
    result = ResampleStep.call(model, rotation=0.0)
    out = np.nan_to_num(result.data)
    area_out = grid.pixel_scale_deg(result.meta.wcs, 30, 30) ** 2
    assert np.sum(out) * area_out == pytest.approx(flux_in, rel=0.005)
    oy, ox = np.indices(out.shape)
    cx, cy = np.sum(out * ox) / out.sum(), np.sum(out * oy) / out.sum()
    ra, dec = result.meta.wcs(cx, cy)
    separation = np.hypot((ra - ra_true) * np.cos(np.radians(dec_true)), dec - dec_true)
    assert separation * 3.6e6 < 1.0  # mas


def test_ivm_weights_average_two_inputs_by_inverse_variance():
    shape = (40, 40)
    wcs = _wcs(shape, distortion=0.0)
    first = _image(np.full(shape, 1.0), wcs, var_rnoise=0.01, name="a_cal.fits")
    second = _image(np.full(shape, 2.0), wcs, var_rnoise=0.04, name="b_cal.fits")
    result = ResampleStep.call([first, second], rotation=None)
    expected = (1.0 / 0.01 + 2.0 / 0.04) / (1 / 0.01 + 1 / 0.04)
    covered = result.wht > 0.999 * result.wht.max()
    np.testing.assert_allclose(result.data[covered], expected, rtol=1e-5)
    assert result.meta.resample.pointings == 2
    assert result.meta.exposure.exposure_time == 200.0
    assert result.con.shape[0] == 1 and set(np.unique(result.con[0][covered])) == {3}


def test_do_not_use_pixels_are_left_out():
    shape = (40, 40)
    wcs = _wcs(shape, distortion=0.0)
    model = _image(np.full(shape, 1.0), wcs)
    model.data[20, 20] = 1e6
    model.dq[20, 20] = dqflags.DO_NOT_USE
    result = ResampleStep.call(model)
    assert np.nanmax(result.data) < 1.0 + 1e-5


def test_identity_grid_keeps_data_and_variances():
    shape = (30, 40)
    wcs = _wcs(shape, distortion=0.0)
    rng = np.random.default_rng(2)
    model = _image(rng.uniform(1, 2, shape), wcs)
    model.var_poisson = rng.uniform(0.01, 0.02, shape).astype(np.float32)
    result = ResampleStep.call(model, rotation=None, output_shape=[40, 30],
                               crpix=[19.5, 14.5], crval=list(wcs(19.5, 14.5)))
    inner = (slice(2, -2), slice(2, -2))
    np.testing.assert_allclose(result.data[inner], model.data[inner], rtol=1e-4)
    np.testing.assert_allclose(result.var_poisson[inner], model.var_poisson[inner], rtol=1e-3)
    np.testing.assert_allclose(result.err[inner], np.sqrt(
        model.var_poisson + model.var_rnoise)[inner], rtol=1e-3)


def test_output_needs_2d_images_with_a_wcs():
    from calwebb.errors import DataModelError

    model = _image(np.ones((10, 10)), None)
    with pytest.raises(DataModelError, match="no WCS"):
        ResampleStep.call(model)
