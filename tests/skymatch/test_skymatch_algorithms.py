"""skymatch algorithms: clipped sky statistic, DQ mask, footprints, overlaps, matching solve."""

import math

import numpy as np
import pytest
from skymatch_scenes import SHAPE, offset_wcs

from calwebb import dqflags
from calwebb.errors import ParameterError
from calwebb.skymatch import matching
from calwebb.skymatch.statistics import SkyStatistic, good_bits, good_pixel_mask
from calwebb.skymatch.step import _inverse

PIXEL_SR = math.radians(0.1 / 3600.0) ** 2


def _sky_with_sources(sky=2.0, noise=0.05, shape=(150, 150), seed=1):
    rng = np.random.default_rng(seed)
    data = sky + rng.normal(0.0, noise, shape)
    yy, xx = np.indices(shape)
    for x0, y0, peak in ((30, 40, 80.0), (100, 60, 40.0), (70, 120, 200.0)):
        data += peak * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 3.0**2))
    return data.astype(np.float32)


# -- statistic -----------------------------------------------------------------------------------
@pytest.mark.parametrize("skystat", ["mode", "midpt", "median", "mean"])
def test_clipped_statistic_recovers_sky_under_sources(skystat):
    """Constant sky 2.0 + noise + bright sources: every statistic within 1 % of the sky."""
    value, npix = SkyStatistic(skystat=skystat)(_sky_with_sources())
    assert value == pytest.approx(2.0, rel=0.01)
    assert 0.9 * 150 * 150 < npix < 150 * 150  # sources clipped, most sky pixels kept


def test_statistic_limits_and_clipping():
    values = np.arange(10, dtype=np.float32)
    assert SkyStatistic("mean", nclip=0)(values) == (4.5, 10)
    assert SkyStatistic("mean", nclip=0, lower=3, upper=6)(values) == (4.5, 4)
    data = np.r_[np.random.default_rng(2).normal(1.0, 0.1, 5000), [1e4] * 5]
    assert SkyStatistic("mean", nclip=0)(data)[0] > 5.0
    assert SkyStatistic("mean", nclip=3)(data)[0] == pytest.approx(1.0, abs=0.01)


def test_statistic_without_usable_values_gives_none():
    assert SkyStatistic()(np.array([], np.float32)) == (None, 0)
    assert SkyStatistic("mean", lower=100.0)(np.ones(50, np.float32)) == (None, 0)


@pytest.mark.parametrize("settings, word", [
    ({"skystat": "average"}, "skystat"), ({"nclip": -1}, "nclip"), ({"lsigma": -2}, "lsigma"),
    ({"binwidth": 0.0}, "binwidth"), ({"lower": 5.0, "upper": 1.0}, "lower"),
])
def test_statistic_rejects_bad_settings(settings, word):
    with pytest.raises(ParameterError, match=word):
        SkyStatistic(**settings)


def test_good_pixel_mask_from_dq_expression():
    data = np.ones((2, 3), np.float32)
    data[0, 2] = np.nan
    dq = np.array([[0, dqflags.DO_NOT_USE, 0],
                   [dqflags.NON_SCIENCE, dqflags.SATURATED | dqflags.JUMP_DET, 0]], np.uint32)
    bits = good_bits("~DO_NOT_USE+NON_SCIENCE")
    assert good_pixel_mask(data, dq, bits).tolist() == [[True, False, False],
                                                        [False, True, True]]
    assert good_pixel_mask(data, dq, good_bits(0)).tolist() == [[True, False, False],
                                                                [False, False, True]]
    assert good_pixel_mask(data, dq, good_bits(None)).tolist() == [[True, True, False],
                                                                   [True, True, True]]
    with pytest.raises(ParameterError, match="dqbits"):
        good_bits("~NOT_A_FLAG")


# -- footprints and overlaps ---------------------------------------------------------------------
def test_footprint_area_and_vertex_spacing():
    wcs = offset_wcs(0.0, 0.0, distortion=0.0)
    forward = lambda x, y: wcs(x, y, with_bounding_box=False)  # noqa: E731
    corners = matching.footprint(forward, SHAPE)
    assert abs(corners.area()) == pytest.approx(SHAPE[0] * SHAPE[1] * PIXEL_SR, rel=1e-4)
    (ra, _), = corners.to_radec()
    assert len(ra) == 5  # four corners, closed
    dense = matching.footprint(forward, SHAPE, stepsize=20)
    (ra, _), = dense.to_radec()
    assert len(ra) == 2 * (math.ceil(SHAPE[1] / 20) + math.ceil(SHAPE[0] / 20)) + 1
    assert abs(dense.area()) == pytest.approx(abs(corners.area()), rel=1e-4)


def test_pixels_in_polygon_selects_pixel_centres():
    mask = matching.pixels_in_polygon(np.array([1.5, 5.5, 5.5, 1.5]),
                                      np.array([-3.0, -3.0, 2.5, 2.5]), (6, 8))
    expected = np.zeros((6, 8), bool)
    expected[0:3, 2:6] = True
    assert np.array_equal(mask, expected)
    assert not matching.pixels_in_polygon(np.array([20.0, 30, 30]), np.array([0.0, 0, 5]),
                                          (6, 8)).any()
    # with ``out`` the pixels are added to the given mask, in place
    out = np.zeros((6, 8), bool)
    out[5, 7] = True
    union = matching.pixels_in_polygon(np.array([1.5, 5.5, 5.5, 1.5]),
                                       np.array([-3.0, -3.0, 2.5, 2.5]), (6, 8), out=out)
    assert union is out and union.sum() == expected.sum() + 1 and union[5, 7]


def _footprints(*wcses):
    return [matching.footprint(lambda x, y, w=w: w(x, y, with_bounding_box=False), SHAPE)
            for w in wcses]


def test_overlap_mask_of_shifted_images():
    """Image B is shifted 3 arcsec (30 px) east of A: A's overlap is the 60 columns on its
    east side (x decreases eastwards with parity -1): columns 0-59."""
    wcs_a, wcs_b = offset_wcs(0.0, 0.0, distortion=0.0), offset_wcs(3.0, 0.0, distortion=0.0)
    overlaps = matching.overlaps_by_group(_footprints(wcs_a, wcs_b), [0, 1])
    (polygon, area), = overlaps[0][1]
    assert overlaps[1][0] == [(polygon, area)]  # one intersection serves both images
    assert area == pytest.approx(SHAPE[0] * 60 * PIXEL_SR, rel=0.01)
    (key, mask), = matching.overlap_masks({1: [polygon]}, _inverse(wcs_a), SHAPE)
    assert key == 1
    assert mask.sum() == pytest.approx(SHAPE[0] * 60, rel=0.01)
    assert mask[:, :59].all() and not mask[:, 61:].any()
    far = offset_wcs(30.0, 0.0, distortion=0.0)
    assert matching.overlaps_by_group(_footprints(wcs_a, far), [0, 1]) == [{1: []}, {0: []}]
    (_, mask), = matching.overlap_masks({1: []}, _inverse(wcs_a), SHAPE)
    assert not mask.any()



def test_failed_pair_intersection_falls_back_to_each_footprint(monkeypatch):
    """When spherical_geometry cannot intersect a pair, each image takes its own footprint
    as the overlap (the official fallback), and the failing call is not repeated for it."""
    from spherical_geometry.polygon import MalformedPolygonError, SphericalPolygon

    first, second = _footprints(offset_wcs(0.0, 0.0, distortion=0.0),
                                offset_wcs(3.0, 0.0, distortion=0.0))
    calls = []

    def failing(self, other):
        calls.append(self)
        raise MalformedPolygonError("nearly identical")

    monkeypatch.setattr(SphericalPolygon, "intersection", failing)
    overlaps = matching.overlaps_by_group([first, second], [0, 1])
    (polygon_a, area_a), = overlaps[0][1]
    (polygon_b, area_b), = overlaps[1][0]
    assert area_a == pytest.approx(abs(first.area())) and area_b == pytest.approx(
        abs(second.area()))
    assert len(calls) == 2  # the pair once, then the second image's own try

def test_overlap_masks_equal_each_image_intersected_on_its_own():
    """Three distorted, rotated images, two of them one group: each image's masks (all
    polygons mapped in one WCS call, each pair intersected once) equal the straightforward
    computation: its own footprint intersected with every other footprint, each intersection
    mapped and filled separately."""
    wcses = [offset_wcs(0.0, 0.0), offset_wcs(2.0, 1.0, angle=10.0),
             offset_wcs(-1.5, 2.0, angle=-20.0)]
    footprints = _footprints(*wcses)
    groups = [0, 1, 1]
    overlaps = matching.overlaps_by_group(footprints, groups)
    for own, wcs in enumerate(wcses):
        masks = dict(matching.overlap_masks(
            {group: [polygon for polygon, _ in found] for group, found in overlaps[own].items()},
            _inverse(wcs), SHAPE))
        assert sorted(masks) == sorted(set(groups) - {groups[own]})
        for group, mask in masks.items():
            expected = np.zeros(SHAPE, bool)
            area = 0.0
            for other in np.flatnonzero(np.array(groups) == group):
                common = matching.intersection(footprints[own], footprints[other])
                area += abs(common.area())
                (ra, dec), = common.to_radec()
                x, y = wcs.invert(ra, dec, with_bounding_box=False)
                expected |= matching.pixels_in_polygon(x, y, SHAPE)
            assert expected.sum() > 1000
            assert np.array_equal(mask, expected)
            found_area = sum(found for _, found in overlaps[own][group])
            assert found_area == pytest.approx(area, rel=1e-6)


# -- groups, equations and methods ---------------------------------------------------------------
def test_group_combinations():
    assert matching.group_local_sky([1.3, None, 1.1]) == 1.1
    assert matching.group_local_sky([None]) is None
    assert matching.group_overlap_sky([1.0, 2.0, None], [100, 300, 0], [1e-9, 1e-9, 0]) == \
        (1.75, 400)
    assert matching.group_overlap_sky([None, None], [0, 0], [0.0, 0.0]) == (None, 0)


def test_solve_sky_deltas_exact_chain():
    """Skies 1.0, 1.5, 2.2 seen consistently in all overlaps: differences exact."""
    truth = np.array([1.0, 1.5, 2.2])
    sky = np.repeat(truth[:, None], 3, axis=1)
    counts = np.full((3, 3), 500.0)
    deltas = matching.solve_sky_deltas(sky, counts)
    assert np.allclose(deltas - deltas.min(), truth - truth.min(), atol=1e-12)
    counts[0, 2] = counts[2, 0] = 0  # chain 0-1-2 only: still determined
    deltas = matching.solve_sky_deltas(sky, counts)
    assert np.allclose(deltas - deltas.min(), truth - truth.min(), atol=1e-12)


def test_solve_sky_deltas_weights_and_isolated_images():
    """Inconsistent overlaps are reconciled by count-weighted least squares; an image in no
    equation gets NaN."""
    sky = np.full((4, 4), np.nan)
    counts = np.zeros((4, 4))
    # pair (0,1) says Δ0−Δ1 = −1, pair (0,2) says −2, pair (1,2) says −0.5 (inconsistent)
    for (i, j, si, sj, n) in ((0, 1, 0.0, 1.0, 100), (0, 2, 0.0, 2.0, 100),
                              (1, 2, 1.0, 1.5, 300)):
        sky[i, j], sky[j, i] = si, sj
        counts[i, j] = counts[j, i] = n
    deltas = matching.solve_sky_deltas(sky, counts)
    assert np.isnan(deltas[3]) and np.all(np.isfinite(deltas[:3]))
    k = np.array([[100, -100, 0], [100, 0, -100], [0, 300, -300]], float)
    f = np.array([100 * -1.0, 100 * -2.0, 300 * -0.5])
    expected, *_ = np.linalg.lstsq(k, f, rcond=None)
    assert np.allclose(deltas[:3] - deltas[0], expected - expected[0], atol=1e-10)
    assert np.all(np.isnan(matching.solve_sky_deltas(np.full((2, 2), np.nan),
                                                     np.zeros((2, 2)))))


def test_sky_levels_methods():
    local = [1.2, None, 1.0, 3.0]
    levels, valid = matching.sky_levels("local", local)
    assert levels.tolist() == [1.2, 0.0, 1.0, 3.0] and valid.tolist() == [1, 0, 1, 1]
    levels, valid = matching.sky_levels("global", local)
    assert levels.tolist() == [1.0] * 4 and valid.all()
    levels, valid = matching.sky_levels("global", [None, None])
    assert not valid.any()

    truth = np.array([1.0, 1.5, 2.2])
    sky = np.repeat(truth[:, None], 3, axis=1)
    counts = np.full((3, 3), 50.0)
    levels, valid = matching.sky_levels("match", None, sky, counts, match_down=True)
    assert np.allclose(levels, [0.0, 0.5, 1.2]) and valid.all()
    levels, _ = matching.sky_levels("match", None, sky, counts, match_down=False)
    assert np.allclose(levels, [-1.2, -0.7, 0.0])
    # global+match: matched levels + min(local − matched); local skies here 1.1, 1.5, 2.2
    levels, valid = matching.sky_levels("global+match", [1.1, 1.5, 2.2], sky, counts)
    assert np.allclose(levels, [1.0, 1.5, 2.2]) and valid.all()
    with pytest.raises(ParameterError, match="skymethod"):
        matching.sky_levels("median", local)
