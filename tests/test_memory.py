"""calwebb.memory: numpy's huge-page advice is off within a run and in executor tasks."""

import pytest

from calwebb import memory
from calwebb.parallel import executor

try:
    from numpy._core import multiarray
except ImportError:  # numpy 1.x
    from numpy.core import multiarray

pytestmark = pytest.mark.skipif(not hasattr(multiarray, "_set_madvise_hugepage"),
                                reason="this numpy has no huge-page advice switch")


@pytest.fixture
def advice_on(monkeypatch):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    previous = multiarray._set_madvise_hugepage(True)
    yield
    multiarray._set_madvise_hugepage(previous)


def test_normal_pages_turns_the_advice_off_and_back(advice_on):
    with memory.normal_pages():
        assert multiarray._get_madvise_hugepage() is False
    assert multiarray._get_madvise_hugepage() is True


def test_the_users_setting_wins(advice_on, monkeypatch):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with memory.normal_pages():
        assert multiarray._get_madvise_hugepage() is True


def test_executor_tasks_run_without_the_advice(advice_on):
    task = executor._Task(multiarray._get_madvise_hugepage)
    assert task.__name__ == "_get_madvise_hugepage"  # Dask's task names stay the functions'
    assert task() is False
    assert multiarray._get_madvise_hugepage() is True
