"""Wall time, CPU time and peak memory of one benchmark case, each in a fresh process.

Peak RSS is only meaningful per process, so every case runs in its own spawned
interpreter; the parent collects ``(seconds, peak_mib)``. Used by every script in
``benchmarks/``; never imported by the package or the tests.
"""

from __future__ import annotations

import importlib.util
import multiprocessing as mp
import resource
import time
import traceback
from collections.abc import Callable


def _run_case(func: Callable, args: tuple, queue) -> None:
    try:
        start = time.perf_counter()
        func(*args)
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        queue.put(("ok", seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0))
    except Exception:  # report, don't hang the parent
        queue.put(("error", traceback.format_exc(), 0.0, 0.0))


def measure_cpu(func: Callable, *args) -> tuple[float, float, float]:
    """Run ``func(*args)`` in a fresh process; return (wall seconds, CPU seconds of the whole
    process, all threads and start-up included, peak RSS in MiB).

    ``func`` must be importable at module level (spawned processes import it).
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_case, args=(func, args, queue))
    process.start()
    status, value, cpu, peak = queue.get()
    process.join()
    if status != "ok":
        raise RuntimeError(f"benchmark case {func.__name__} failed:\n{value}")
    return value, cpu, peak


def measure(func: Callable, *args) -> tuple[float, float]:
    """Run ``func(*args)`` in a fresh process; return (wall seconds, peak RSS in MiB)."""
    seconds, _, peak = measure_cpu(func, *args)
    return seconds, peak


def report(rows: list[tuple[str, float, float, float | None, float | None]]) -> str:
    """Format rows of (case, calwebb s, calwebb MiB, official s, official MiB) as a table."""
    header = ("case", "calwebb s", "MiB", "official s", "MiB", "speed-up")
    lines = ["{:40s} {:>10s} {:>8s} {:>11s} {:>8s} {:>9s}".format(*header)]
    for case, ours_s, ours_mib, theirs_s, theirs_mib in rows:
        if theirs_s is None:
            lines.append(f"{case:40s} {ours_s:10.2f} {ours_mib:8.0f}" + " " * 12 + "-" * 3)
        else:
            lines.append(
                f"{case:40s} {ours_s:10.2f} {ours_mib:8.0f} {theirs_s:11.2f} {theirs_mib:8.0f}"
                f" {theirs_s / ours_s:8.1f}x"
            )
    return "\n".join(lines)


def official_wanted(skip: bool) -> bool:
    """Whether to run the official pipeline: not skipped and ``jwst`` installed."""
    return not skip and importlib.util.find_spec("jwst") is not None
