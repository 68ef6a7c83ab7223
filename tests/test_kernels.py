"""Shared numba building blocks: the column sort and its median."""

import numpy as np
import pytest

from calwebb.kernels import column_median, median_small, sort_columns, sorting_network


@pytest.mark.parametrize("n", [1, 2, 3, 9, 16, 39, 70])
def test_sorting_network_sorts_every_column(n):
    rng = np.random.default_rng(n)
    values = rng.integers(-4, 4, (n, 200)).astype(np.float32)  # many ties
    values[rng.random(values.shape) < 0.2] = np.inf  # excluded values sort last
    ordered = values.copy()
    sort_columns(ordered, sorting_network(n))
    np.testing.assert_array_equal(ordered, np.sort(values, axis=0))


def test_column_median_matches_median_small():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(12, 5)).astype(np.float32)
    ordered = values.copy()
    sort_columns(ordered, sorting_network(12))
    for count in range(1, 13):
        expected = median_small(np.sort(values[:, 3])[:count].astype(np.float64), count)
        assert column_median(ordered, count, 3) == expected
