"""The scanline polygon fill and the numba sky statistic against their reference answers:
matplotlib's point-in-path test, ``stsci.imagestats.ImageStats`` and plain numpy."""

import contextlib
import io

import numpy as np
import pytest
from matplotlib.path import Path

from calwebb.skymatch.matching import pixels_in_polygon
from calwebb.skymatch.statistics import SkyStatistic, _clipped_moments


def _random_polygon(rng, shape):
    n = int(rng.integers(3, 12))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(3, max(shape), n)
    centre = rng.uniform(-10, max(shape) + 10, 2)
    return centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)


@pytest.mark.parametrize("seed", range(5))
def test_polygon_fill_equals_point_in_polygon(seed):
    """Random simple and self-intersecting polygons, partly off the image: the same pixels
    as matplotlib's test of every centre, except centres within 1e-9 px of an edge."""
    rng = np.random.default_rng(seed)
    shape = (70, 90)
    yy, xx = np.indices(shape)
    for trial in range(40):
        x, y = _random_polygon(rng, shape)
        if trial % 2:  # vertices in random order: self-intersecting
            order = rng.permutation(x.size)
            x, y = x[order], y[order]
        path = Path(np.column_stack([x, y]))
        expected = path.contains_points(np.column_stack([xx.ravel(), yy.ravel()]))
        near_edge = path.contains_points(np.column_stack([xx.ravel(), yy.ravel()]),
                                         radius=1e-9) != path.contains_points(
            np.column_stack([xx.ravel(), yy.ravel()]), radius=-1e-9)
        got = pixels_in_polygon(x, y, shape).ravel()
        assert np.array_equal(got[~near_edge], expected[~near_edge])


def test_polygon_fill_edge_cases():
    shape = (5, 6)
    assert not pixels_in_polygon(np.array([0.0, 1.0]), np.array([0.0, 1.0]), shape).any()
    assert not pixels_in_polygon(np.array([10.0, 12, 11]), np.array([10.0, 10, 12]),
                                 shape).any()
    # non-finite vertices are dropped: the remaining triangle is filled
    x = np.array([-0.5, 5.5, np.nan, 5.5])
    y = np.array([-0.5, -0.5, 2.0, 4.5])
    mask = pixels_in_polygon(x, y, shape)
    assert mask[0, 5] and mask[4, 5] and not mask[4, 0]
    # a rectangle through pixel edges covers exactly its pixels
    box = pixels_in_polygon(np.array([0.5, 3.5, 3.5, 0.5]), np.array([0.5, 0.5, 2.5, 2.5]),
                            shape)
    assert box.sum() == 6 and box[1:3, 1:4].all()


def _imagestats(statistic, values):
    from stsci.imagestats import ImageStats

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # imagestats prints warnings
            stats = ImageStats(np.asarray(values, np.float32), fields=f"npix,{statistic.skystat}",
                               lower=statistic.lower, upper=statistic.upper,
                               nclip=statistic.nclip, lsig=statistic.lsigma,
                               usig=statistic.usigma, binwidth=statistic.binwidth)
    except ValueError:
        return None, 0
    value = getattr(stats, statistic.skystat)
    return (None, 0) if value is None or not np.isfinite(value) else (float(value), stats.npix)


@pytest.mark.parametrize("skystat", ["mode", "midpt", "median", "mean"])
def test_statistic_equals_imagestats(skystat):
    """Random skies with sources, quantised values and limits: the same pixel counts, and
    values within 1e-6 σ (imagestats rounds its deviation differently in the last float32
    bit)."""
    rng = np.random.default_rng(11)
    for trial in range(100):
        size = int(rng.integers(1, 30000))
        sigma = rng.uniform(1e-3, 5)
        values = rng.normal(rng.uniform(-3, 3), sigma, size)
        values[rng.integers(0, size, size // 40 + 1)] += rng.uniform(10, 100) * sigma
        if trial % 4 == 0:
            values = np.round(values, 1)  # many values on histogram bin edges
        values = values.astype(np.float32)
        limits = {}
        if trial % 5 == 0:
            limits = dict(lower=float(np.quantile(values, 0.1)) - 1e-3,
                          upper=float(np.quantile(values, 0.9)) + 1e-3)
        statistic = SkyStatistic(skystat, nclip=int(rng.integers(0, 6)), **limits)
        mine, expected = statistic(values), _imagestats(statistic, values)
        assert mine[1] == expected[1]
        assert (mine[0] is None) == (expected[0] is None)
        if mine[0] is not None:
            assert mine[0] == pytest.approx(expected[0], abs=1e-6 * max(sigma, 1e-3))


def test_statistic_with_nan_values():
    """NaN values make imagestats' default limits NaN (nothing usable); with both limits
    given they are ignored."""
    values = np.random.default_rng(4).normal(5.0, 0.2, 5000).astype(np.float32)
    values[::50] = np.nan
    assert SkyStatistic()(values) == (None, 0)
    statistic = SkyStatistic("mean", lower=0.0, upper=10.0)
    assert statistic(values) == statistic(values[np.isfinite(values)])


def test_statistic_of_constant_values_equals_imagestats():
    """A one-bin histogram of zero width (all values equal) as imagestats: mode is the value,
    midpt 0."""
    values = np.full(1000, 0.25, np.float32)
    for skystat in ("mode", "midpt", "median", "mean"):
        statistic = SkyStatistic(skystat)
        assert statistic(values) == _imagestats(statistic, values)


def _outlier_sky(rng, size):
    values = rng.normal(rng.uniform(-3, 3), rng.uniform(1e-3, 5), size)
    values[rng.integers(0, size, size // 40 + 1)] += rng.uniform(10, 100) * values.std()
    values = values.astype(np.float32)
    values[rng.integers(0, size, 5)] = np.nan
    return values


def test_clipped_moments_equal_numpy():
    """One vectorised pass (selection mask, limits, NaN values) against numpy on the selected
    values: the same count, min and max, and mean and standard deviation equal to float32
    rounding."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        size = int(rng.integers(2, 50000))
        values = _outlier_sky(rng, size)
        where = rng.random(size) < 0.8
        low, high = np.nanquantile(values, [rng.uniform(0, 0.3), rng.uniform(0.7, 1)])
        count, mean, deviation, least, most = _clipped_moments(values, where.view(np.uint8),
                                                               low, high)
        chosen = values[where & (values >= np.float32(low)) & (values <= np.float32(high))]
        assert count == chosen.size
        assert (least, most) == (chosen.min(), chosen.max())
        assert mean == pytest.approx(chosen.mean(dtype=np.float64), rel=1e-7, abs=1e-9)
        assert deviation == pytest.approx(chosen.std(dtype=np.float64, ddof=1), rel=1e-6)


def _numpy_clipped_mean(values, statistic):
    """The iterated clipping of imagestats written plainly on the selected values."""
    values = values[np.isfinite(values)]
    lower, upper = values.min(), values.max()
    low, high = lower, upper
    for iteration in range(statistic.nclip + 1):
        chosen = values[(values >= np.float32(low)) & (values <= np.float32(high))]
        mean = float(np.float32(chosen.mean(dtype=np.float64)))
        deviation = float(np.float32(chosen.std(dtype=np.float64, ddof=1)))
        if iteration < statistic.nclip:
            low = max(lower, mean - statistic.lsigma * deviation)
            high = min(upper, mean + statistic.usigma * deviation)
    return mean, chosen.size


@pytest.mark.parametrize("skystat", ["mode", "midpt", "median", "mean"])
def test_statistic_of_selected_pixels(skystat):
    """``statistic(values, where)`` reads the values in place: it equals the statistic of the
    copied selection, and its clipped mean and pixel count equal plain numpy's."""
    rng = np.random.default_rng(8)
    for _ in range(40):
        shape = tuple(int(n) for n in rng.integers(2, 200, 2))
        values = _outlier_sky(rng, shape[0] * shape[1]).reshape(shape)
        where = (rng.random(shape) < 0.9) & np.isfinite(values)
        statistic = SkyStatistic(skystat, nclip=int(rng.integers(0, 6)))
        value, npix = statistic(values, where)
        copied_value, copied_npix = statistic(values[where])
        assert npix == copied_npix
        assert value == pytest.approx(copied_value, rel=1e-6, abs=1e-6)
        if skystat == "mean":
            expected, expected_npix = _numpy_clipped_mean(values[where], statistic)
            assert npix == expected_npix
            assert value == pytest.approx(expected, rel=1e-6)
