"""calwebb.memory: numpy's huge-page advice is off within a run and in executor tasks."""

from calwebb import memory
from calwebb.parallel import executor


def test_normal_pages_turns_the_advice_off_and_back(huge_page_advice_on):
    with memory.normal_pages():
        assert memory.huge_page_advice() is False
    assert memory.huge_page_advice() is True


def test_the_users_setting_wins(huge_page_advice_on, monkeypatch):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    with memory.normal_pages():
        assert memory.huge_page_advice() is True


def test_executor_tasks_run_without_the_advice(huge_page_advice_on):
    task = executor._Task(memory.huge_page_advice)
    assert task.__name__ == "huge_page_advice"  # Dask's task names stay the functions'
    assert task() is False
    assert memory.huge_page_advice() is True
