"""resample output grid: extent, scale, orientation, reference point and FITS description."""

import math

import asdf
import numpy as np
import pytest
from astropy.wcs import WCS as FitsWCS
from resample_scenes import DEC0, RA0, SCALE, distorted_wcs, offsets_arcsec

from calwebb.errors import ParameterError
from calwebb.resample import footprints, grid

SHAPE = (80, 100)


def _inputs():
    first = distorted_wcs(SHAPE, angle=25.0)
    second = distorted_wcs(SHAPE, crval=(RA0 + 4 / 3600, DEC0 + 3 / 3600), angle=60.0,
                           distortion=-2e-5)
    return [first, second], [SHAPE, SHAPE]


def _pixels_of_outlines(output, wcs_list):
    points = [grid.footprint(w, SHAPE) for w in wcs_list]
    return [output.invert(ra, dec, with_bounding_box=False) for ra, dec in points]


def test_grid_encloses_every_input_tightly():
    wcs_list, shapes = _inputs()
    output, ratio = grid.output_grid(wcs_list, shapes)
    ny, nx = output.array_shape
    assert output.pixel_shape == (nx, ny) and ratio == 1.0
    assert output.bounding_box.bounding_box(order="F") == ((-0.5, nx - 0.5), (-0.5, ny - 0.5))
    xs, ys = zip(*_pixels_of_outlines(output, wcs_list), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert x.min() >= -0.5 and x.max() <= nx - 0.5
    assert y.min() >= -0.5 and y.max() <= ny - 0.5
    assert nx - (x.max() - x.min()) < 1.0 and ny - (y.max() - y.min()) < 1.0


def test_default_scale_is_the_first_inputs_at_its_reference_point():
    wcs_list, shapes = _inputs()
    reference = wcs_list[0](30.0, 20.0)
    output, _ = grid.output_grid(wcs_list, shapes, reference=reference)
    expected = grid.pixel_scale_deg(wcs_list[0], 30.0, 20.0)
    assert grid.describe(output).pixel_scale == pytest.approx(expected, rel=1e-9)
    doubled, ratio = grid.output_grid(wcs_list, shapes, pixel_scale_ratio=2.0,
                                      reference=reference)
    assert ratio == 2.0
    assert grid.describe(doubled).pixel_scale == pytest.approx(2 * expected, rel=1e-9)


def test_pixel_scale_in_arcsec_sets_the_scale_and_the_ratio_from_the_mean_area():
    wcs_list, shapes = _inputs()
    output, ratio = grid.output_grid(wcs_list, shapes, pixel_scale_arcsec=0.05)
    assert grid.describe(output).pixel_scale * 3600 == pytest.approx(0.05, rel=1e-12)
    mean_scale = math.degrees(math.sqrt(grid.mean_pixel_area(wcs_list[0], SHAPE))) * 3600
    assert mean_scale == pytest.approx(0.1, rel=2e-3)  # distortion changes the area a little
    assert ratio == pytest.approx(0.05 / mean_scale, rel=1e-12)


def test_mean_pixel_area_of_a_tangent_grid():
    wcs = grid.tangent_plane_wcs((RA0, DEC0), (49.5, 39.5), grid.cd_matrix(SCALE, 10.0), SHAPE)
    assert grid.mean_pixel_area(wcs) == pytest.approx(math.radians(SCALE) ** 2, rel=1e-6)


def _position_angle_of_y(wcs, x, y):
    ra, dec = wcs([x, x], [y, y + 1.0])
    east, north = offsets_arcsec(ra[1], dec[1], ra[0], dec[0])
    return math.degrees(math.atan2(east, north))


@pytest.mark.parametrize("rotation", [0.0, 30.0, -100.0])
def test_rotation_sets_the_position_angle_of_y_east_left(rotation):
    wcs_list, shapes = _inputs()
    output, _ = grid.output_grid(wcs_list, shapes, rotation=rotation)
    x, y = grid.describe(output).crpix  # at CRVAL: North has no convergence there
    angle = _position_angle_of_y(output, x, y - 0.5)
    assert (angle - rotation + 180) % 360 - 180 == pytest.approx(0.0, abs=2e-5)
    # parity -1: East is 90° counter-clockwise from North, i.e. −x when North is +y
    assert grid.orientation(output, x, y)[1] == -1


def test_rotation_none_keeps_the_first_inputs_orientation_and_parity():
    wcs_list, shapes = _inputs()
    output, _ = grid.output_grid(wcs_list, shapes)
    x, y = grid.describe(output).crpix
    assert _position_angle_of_y(output, x, y - 0.5) == pytest.approx(
        grid.orientation(wcs_list[0], 49.5, 39.5)[0], abs=1e-3)
    mirrored = distorted_wcs(SHAPE, angle=25.0, parity=1)
    output, _ = grid.output_grid([mirrored], [SHAPE])
    assert grid.orientation(output, 10, 10)[1] == 1
    assert grid.orientation(mirrored, 10, 10)[1] == 1


def test_crpix_crval_and_output_shape_are_honoured():
    wcs_list, shapes = _inputs()
    output, _ = grid.output_grid(wcs_list, shapes, crpix=(10.0, 20.0), crval=(RA0, DEC0),
                                 output_shape=(64, 48), rotation=0.0)
    assert output.array_shape == (48, 64)
    ra, dec = output(10.0, 20.0)
    assert (ra, dec) == pytest.approx((RA0, DEC0), abs=1e-12)
    description = grid.describe(output)
    assert description.crpix == (10.0, 20.0) and description.crval == (RA0, DEC0)
    # output_shape alone: the footprint is centred in the requested image
    centred, _ = grid.output_grid(wcs_list, shapes, output_shape=(300, 250))
    assert centred.array_shape == (250, 300)
    xs, ys = zip(*_pixels_of_outlines(centred, wcs_list), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert 0.5 * (x.min() + x.max()) == pytest.approx(149.5, abs=1e-6)
    assert 0.5 * (y.min() + y.max()) == pytest.approx(124.5, abs=1e-6)


def test_crpix_alone_sizes_the_image_to_reach_the_far_edge():
    wcs_list, shapes = _inputs()
    output, _ = grid.output_grid(wcs_list, shapes, crpix=(0.0, 0.0), crval=wcs_list[0](0, 0))
    ny, nx = output.array_shape
    xs, ys = zip(*_pixels_of_outlines(output, wcs_list), strict=True)
    assert np.concatenate(xs).max() <= nx - 0.5 and np.concatenate(ys).max() <= ny - 0.5


def test_fits_keywords_describe_the_same_sky():
    wcs_list, shapes = _inputs()
    output, _ = grid.output_grid(wcs_list, shapes, pixel_scale_ratio=0.7, rotation=12.0)
    keywords = grid.fits_keywords(grid.describe(output))
    assert keywords["ctype1"] == "RA---TAN" and keywords["ctype2"] == "DEC--TAN"
    fits_wcs = FitsWCS({key.upper(): value for key, value in keywords.items()})
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, output.array_shape[1], 50), rng.uniform(0, output.array_shape[0], 50)
    ra, dec = output(x, y)
    ra_fits, dec_fits = fits_wcs.all_pix2world(x, y, 0)
    np.testing.assert_allclose(ra_fits, ra, atol=1e-10)
    np.testing.assert_allclose(dec_fits, dec, atol=1e-10)


def test_describe_approximates_any_celestial_wcs_at_its_centre():
    distorted = distorted_wcs(SHAPE, angle=40.0, distortion=0.0)
    distorted.array_shape = SHAPE
    description = grid.describe(distorted)
    np.testing.assert_allclose(description.cd, grid.cd_matrix(SCALE, 40.0), rtol=1e-6,
                               atol=1e-12)


def test_custom_output_wcs_file(tmp_path):
    wcs = grid.tangent_plane_wcs((RA0, DEC0), (20.0, 20.0), grid.cd_matrix(SCALE, 0.0), (40, 50))
    path = tmp_path / "custom.asdf"
    asdf.AsdfFile({"wcs": wcs, "pixel_area": 0.0101}).write_to(path)
    loaded, extras = grid.load_output_wcs(str(path))
    assert loaded.array_shape == (40, 50) and extras["pixel_area"] == 0.0101
    reshaped, _ = grid.load_output_wcs(str(path), output_shape=(70, 60))
    assert reshaped.array_shape == (60, 70)
    asdf.AsdfFile({"not_wcs": 1}).write_to(tmp_path / "bad.asdf")
    with pytest.raises(ParameterError, match="no gwcs under 'wcs'"):
        grid.load_output_wcs(str(tmp_path / "bad.asdf"))


def test_s_region_merges_overlapping_outlines_and_keeps_separate_fields():
    output = grid.tangent_plane_wcs((RA0, DEC0), (99.5, 49.5), grid.cd_matrix(SCALE, 0.0),
                                    (100, 200))
    square = np.array([[10.0, 10.0], [60.0, 10.0], [60.0, 60.0], [10.0, 60.0]])
    shifted, far = square + 20.0, square + [130.0, 0.0]
    outlines = [output(p[:, 0], p[:, 1]) for p in (square, shifted, far)]
    region = footprints.s_region(output, outlines)
    assert region.count("POLYGON ICRS") == 2
    merged = footprints.merged_outlines([square, shifted, far], (-0.5, 199.5, -0.5, 99.5))
    assert sorted(len(p) for p in merged) == [4, 6]
    clipped = footprints.clip_to_box(square - 30.0, -0.5, 199.5, -0.5, 99.5)
    assert clipped[:, 0].min() == -0.5 and clipped[:, 1].min() == -0.5


def test_bad_grid_parameters_raise():
    wcs_list, shapes = _inputs()
    with pytest.raises(ParameterError, match="pixel_scale_ratio"):
        grid.output_grid(wcs_list, shapes, pixel_scale_ratio=0.0)
    with pytest.raises(ParameterError, match="output_shape"):
        grid.output_grid(wcs_list, shapes, output_shape=(0, 10))
