"""Shared numba building blocks: the column sort and its median; work run in threads."""

import threading

import numpy as np
import pytest

from calwebb.kernels import (
    column_median,
    in_threads,
    median_small,
    sort_columns,
    sorting_network,
)


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


def test_in_threads_runs_the_calls_beside_the_block_and_raises_their_error():
    released, results = threading.Event(), []

    def waits_for_the_block(label):
        assert released.wait(timeout=30)  # deadlocks unless the block runs meanwhile
        results.append(label)

    with in_threads([(waits_for_the_block, ("a",)), (waits_for_the_block, ("b",))]):
        released.set()
    assert sorted(results) == ["a", "b"]  # both finished when the block ended

    def fails():
        raise ValueError("kernel failed")

    with pytest.raises(ValueError, match="kernel failed"):
        with in_threads([(fails, ())]):
            pass


@pytest.mark.parametrize("users_value", [None, "ACTIVE"])
def test_idle_kernel_threads_sleep_unless_the_user_says_otherwise(users_value):
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if users_value:
        env["OMP_WAIT_POLICY"] = users_value
    done = subprocess.run([sys.executable, "-c", "import os, calwebb; "
                           "print(os.environ['OMP_WAIT_POLICY'])"],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (users_value or "PASSIVE")
