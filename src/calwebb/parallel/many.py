"""Running one step or pipeline over many inputs: in this process, on a local process pool,
or on Dask distributed."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from calwebb.errors import ParameterError
from calwebb.parallel.tasks import DONE, FAILED, SKIPPED, Task, TaskResult, plan, run_task
from calwebb.stpipe import progress
from calwebb.stpipe.step import Step

log = logging.getLogger(__name__)


def run_many(step: str | type[Step], inputs: list, *, jobs: int = 1, scheduler: Any = None,
             overwrite: bool = False, steps: dict | None = None,
             disable_crds_steppars: bool | None = None, worker_logging: dict | None = None,
             **parameters: Any) -> list[TaskResult]:
    """Run ``step`` on every input and save each final product; one result per task.

    ``step``: alias, class name, dotted path, parameter file or ``Step`` subclass.
    ``inputs``: files, glob patterns and associations (each product of a Level 2
    association is a task of its own). ``jobs``: worker processes (1: one after the
    other in this process). ``scheduler``: None (local processes), ``"local"`` (a Dask
    ``LocalCluster`` of ``jobs`` workers), a scheduler address, a Dask cluster or a
    ``distributed.Client``. Inputs whose final product exists are skipped unless
    ``overwrite``. ``worker_logging``: keyword arguments of ``calwebb.stpipe.log.configure``
    for worker processes. ``steps`` and ``parameters`` are as for ``Step.call``.
    """
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, got {jobs}")
    parameters.setdefault("save_results", True)  # workers hand back files, never models
    tasks = plan(step, inputs, parameters, steps, disable_crds_steppars)
    results: list[TaskResult | None] = [None] * len(tasks)
    pending = []
    for index, task in enumerate(tasks):
        existing = [path for path in task.expected if Path(path).exists()]
        if existing and not overwrite:
            log.info("%s: %s exists; skipped (use overwrite to run again)", task.label,
                     existing[0])
            results[index] = TaskResult(task.label, existing, SKIPPED)
        else:
            pending.append(index)
    display = progress.progress_bar(len(pending), "exposures", unit="exposure") \
        if len(tasks) > 1 else nullcontext()
    failures = 0
    with display as bar:
        outcomes = _execute([tasks[index] for index in pending], jobs, scheduler, worker_logging)
        for position, result in outcomes:
            results[pending[position]] = result
            if result.status == FAILED:
                failures += 1
                log.error("%s failed: %s", result.input, result.error)
            else:
                log.info("%s done in %.1f s", result.input, result.seconds)
            if bar is not None:
                bar.set_postfix_str(f"{failures} failed" if failures else "", refresh=False)
                bar.update(1)
    return results


def report(results: list[TaskResult]) -> str:
    """A summary line, then a table of the failed inputs and their errors (if any)."""
    counts = {status: sum(result.status == status for result in results)
              for status in (DONE, SKIPPED, FAILED)}
    lines = [f"{len(results)} input(s): " + ", ".join(f"{count} {status}"
                                                      for status, count in counts.items())]
    failed = [result for result in results if result.status == FAILED]
    if failed:
        width = max(len("input"), *(len(result.input) for result in failed))
        lines += ["", f"{'input':{width}s}  error", f"{'-' * width}  {'-' * 5}"]
        lines += [f"{result.input:{width}s}  {' '.join((result.error or '').split())}"
                  for result in failed]
    return "\n".join(lines)


def _execute(tasks: list[Task], jobs: int, scheduler: Any,
             worker_logging: dict | None) -> Iterator[tuple[int, TaskResult]]:
    """(position in ``tasks``, result) as each task finishes."""
    if not tasks:
        return
    if scheduler is not None:
        yield from _on_dask(_for_workers(tasks, worker_logging), jobs, scheduler)
    elif jobs > 1 and len(tasks) > 1:
        yield from _on_process_pool(_for_workers(tasks, worker_logging), jobs)
    else:
        for position, task in enumerate(tasks):
            yield position, run_task(task)


def _for_workers(tasks: list[Task], worker_logging: dict | None) -> list[Task]:
    return [replace(task, worker_logging=worker_logging) for task in tasks]


def _on_process_pool(tasks: list[Task], jobs: int) -> Iterator[tuple[int, TaskResult]]:
    """Workers forked from a clean server process that imported every step once (so they
    share its memory), not from this process with the threads numba and tqdm may run."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["calwebb.parallel.preload"])
    pool = ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=context)
    try:
        futures = {pool.submit(run_task, task): position for position, task in enumerate(tasks)}
        for future in as_completed(futures):
            position = futures[future]
            try:
                yield position, future.result()
            except Exception as error:  # noqa: BLE001 - a worker died (killed, out of memory)
                yield position, _no_result(tasks[position], error)
    finally:
        pool.shutdown(cancel_futures=True)


def _on_dask(tasks: list[Task], jobs: int, scheduler: Any) -> Iterator[tuple[int, TaskResult]]:
    from distributed import as_completed as dask_completed

    with _dask_client(scheduler, jobs) as client:
        futures = [client.submit(run_task, task, pure=False) for task in tasks]
        positions = {future.key: position for position, future in enumerate(futures)}
        try:
            for future in dask_completed(futures):
                position = positions[future.key]
                try:
                    yield position, future.result()
                except Exception as error:  # noqa: BLE001 - a worker died (KilledWorker)
                    yield position, _no_result(tasks[position], error)
        finally:
            client.cancel(futures)


@contextmanager
def _dask_client(scheduler: Any, workers: int):
    """A client of the given scheduler; ``"local"`` starts (and stops) a LocalCluster."""
    from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
    elif scheduler == "local":
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def _no_result(task: Task, error: Exception) -> TaskResult:
    return TaskResult(task.label, [], FAILED,
                      f"no result from the worker: {type(error).__name__}: {error}")

