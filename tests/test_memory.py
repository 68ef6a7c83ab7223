"""calwebb.memory: numpy's huge-page advice is off within a run and in executor tasks; the
allocator reuses freed blocks, or hands back what threads freed; pages of values no longer
needed are handed back; the garbage collector leaves old objects alone during a run."""

import gc
import threading
import weakref

import numpy as np
import pytest

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


@pytest.mark.parametrize("policy, kept_free", [
    ("reused_memory", "KEPT_FREE_BYTES"), ("thread_heaps_trimmed", "THREAD_TRIM_BYTES")])
def test_heap_policies_set_then_restore_the_allocator(monkeypatch, policy, kept_free):
    library = _RecordingLibrary()
    monkeypatch.setattr(memory, "_c_library", lambda: library)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with getattr(memory, policy)():
        assert library.calls == [
            ("mallopt", memory.M_MMAP_THRESHOLD, memory.HEAP_BLOCK_BYTES),
            ("mallopt", memory.M_TRIM_THRESHOLD, getattr(memory, kept_free))]
    assert library.calls[2:] == [
        ("mallopt", memory.M_TRIM_THRESHOLD, memory.TRIM_AFTER_RUN_BYTES), ("malloc_trim", 0)]
    assert memory.THREAD_TRIM_BYTES < 64 * 2**20  # below a thread's whole heap


def _resident_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def test_released_pages_leave_memory_and_read_as_zeros():
    if memory._c_library() is None:
        pytest.skip("the C library is not glibc")
    array = np.ones((64, 2**20), np.uint8)  # 64 MiB, its own memory map
    before = _resident_mib()
    memory.release_pages(array[8:40])
    assert before - _resident_mib() > 28
    assert not array[9:39].any() and array[:8].all() and array[40:].all()
    memory.release_pages(array[:, ::2])  # not contiguous: nothing is done
    assert array[:8].all()


def test_the_users_allocator_settings_win(monkeypatch):
    library = _RecordingLibrary()
    monkeypatch.setattr(memory, "_c_library", lambda: library)
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    with memory.reused_memory():
        pass
    assert library.calls == []


class _Cycle:
    """An object in a reference cycle (freed only by the cyclic garbage collector)."""

    def __init__(self):
        self.me = self


def test_old_objects_are_frozen_within_the_block_and_collected_after_it():
    assert gc.get_freeze_count() == 0
    cycle = _Cycle()
    alive = weakref.ref(cycle)
    del cycle  # garbage that existed before the block
    with memory.old_objects_frozen():
        assert gc.get_freeze_count() > 0
        young = _Cycle()
        young_alive = weakref.ref(young)
        del young
        gc.collect()
        assert young_alive() is None  # objects made within the block are collected
        assert alive() is not None  # the old ones wait
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert alive() is None


def test_nested_and_concurrent_blocks_freeze_once():
    inner_done = threading.Event()
    with memory.old_objects_frozen():
        frozen = gc.get_freeze_count()

        def other_thread():
            with memory.old_objects_frozen():
                pass
            inner_done.set()

        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
        assert inner_done.is_set()
        assert gc.get_freeze_count() == frozen  # the other thread's end unfreezes nothing
        with memory.old_objects_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # an inner block's end unfreezes nothing
    assert gc.get_freeze_count() == 0


def test_the_applications_own_freeze_is_left_alone():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with memory.old_objects_frozen():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_pipeline_runs_with_old_objects_frozen():
    import numpy as np

    from calwebb import datamodels
    from toy_steps import AddStep

    seen = []

    class RecordingAdd(AddStep):
        def process(self, model):
            seen.append(gc.get_freeze_count())
            return super().process(model)

    RecordingAdd.call(datamodels.ImageModel(np.zeros((4, 4), np.float32)))
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0
