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


def _faults_of_a_second_block(nbytes: int) -> int:
    """Page faults when a block of ``nbytes`` is written right after one was freed."""
    import resource

    import numpy as np

    first = np.ones(nbytes, np.uint8)
    del first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    second = np.ones(nbytes, np.uint8)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del second
    return faults


def test_freed_blocks_are_reused_without_new_page_faults(monkeypatch):
    if memory._c_library() is None:
        import pytest

        pytest.skip("the C library is not glibc")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    nbytes = 20 * 2**20  # 5120 pages
    with memory.reused_memory():
        assert _faults_of_a_second_block(nbytes) < 100


class _RecordingLibrary:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_reused_memory_sets_then_restores_the_allocator(monkeypatch):
    library = _RecordingLibrary()
    monkeypatch.setattr(memory, "_c_library", lambda: library)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with memory.reused_memory():
        assert library.calls == [
            ("mallopt", memory.M_MMAP_THRESHOLD, memory.HEAP_BLOCK_BYTES),
            ("mallopt", memory.M_TRIM_THRESHOLD, memory.KEPT_FREE_BYTES)]
    assert library.calls[2:] == [
        ("mallopt", memory.M_TRIM_THRESHOLD, memory.TRIM_AFTER_RUN_BYTES), ("malloc_trim", 0)]


def test_the_users_allocator_settings_win(monkeypatch):
    library = _RecordingLibrary()
    monkeypatch.setattr(memory, "_c_library", lambda: library)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    with memory.reused_memory():
        pass
    assert library.calls == []
