"""Running one step or pipeline over many inputs: in this process, on a local process pool,
or on Dask distributed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import as_completed
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from calwebb.errors import ParameterError
from calwebb.parallel.executor import dask_client, process_pool, using
from calwebb.parallel.tasks import DONE, FAILED, SKIPPED, Task, TaskResult, plan, run_task
from calwebb.stpipe import progress
from calwebb.stpipe.registry import resolve
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
    ``distributed.Client``. With a scheduler or ``jobs`` > 1, a step that spreads its own
    per-exposure work (calwebb_image3 on a Level 3 association) runs in this process and
    hands that work to the workers. Inputs whose final product exists are skipped unless
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
    """(position in ``tasks``, result) as each task finishes. With workers, a step that
    spreads its own per-exposure work (``exposure_tasks``, e.g. calwebb_image3 on a Level 3
    association) runs here and hands that work to the same workers."""
    if not tasks:
        return
    parallel = scheduler is not None or jobs > 1
    here = [position for position, task in enumerate(tasks)
            if parallel and spreads_exposures(task)]
    there = [position for position in range(len(tasks)) if position not in here]
    workers = _for_workers([tasks[position] for position in there], worker_logging)
    if scheduler is not None:
        with dask_client(scheduler, jobs) as client:
            running = _on_dask(workers, client) if workers else iter(())
            yield from _in_client(tasks, here, client)
            yield from ((there[index], result) for index, result in running)
        return
    if jobs > 1 and (len(workers) > 1 or here):  # one pool for every task and its exposures
        with process_pool(jobs) as pool:
            yield from _here_or_on_pool(tasks, there, workers, pool)
            yield from _in_client(tasks, here, pool)
        return
    yield from _here_or_on_pool(tasks, there, workers, None)  # (here is empty: no workers)


def _here_or_on_pool(tasks: list[Task], there: list[int], workers: list[Task],
                     pool) -> Iterator[tuple[int, TaskResult]]:
    """The tasks at positions ``there`` (as ``workers``) on ``pool`` when there are several
    and a pool, else one after the other in this process."""
    if pool is not None and len(workers) > 1:
        yield from ((there[index], result) for index, result in _on_pool(workers, pool))
        return
    for position in there:
        yield position, run_task(tasks[position])


def spreads_exposures(task: Task) -> bool:
    """Whether ``task`` hands per-exposure work to the workers itself: a step that can
    (``exposure_tasks``) run on a whole association; on single files it is one task like
    any other."""
    return (task.product is None and task.input.lower().endswith(".json")
            and getattr(resolve(task.step)[0], "exposure_tasks", False))


def _in_client(tasks: list[Task], positions: list[int],
               scheduler: Any) -> Iterator[tuple[int, TaskResult]]:
    """Run these tasks in this process, their per-exposure work as tasks of the scheduler
    (a Dask client or a pool of local processes); temporary files go to each task's output
    directory."""
    for position in positions:
        task = tasks[position]
        with using(scheduler, directory=task.parameters["output_dir"]):
            yield position, run_task(task)


def _for_workers(tasks: list[Task], worker_logging: dict | None) -> list[Task]:
    return [replace(task, worker_logging=worker_logging) for task in tasks]


def _on_pool(tasks: list[Task], pool) -> Iterator[tuple[int, TaskResult]]:
    """Tasks on a pool of local processes (``executor.process_pool``)."""
    futures = {pool.submit(run_task, task): position for position, task in enumerate(tasks)}
    for future in as_completed(futures):
        position = futures[future]
        try:
            yield position, future.result()
        except Exception as error:  # noqa: BLE001 - a worker died (killed, out of memory)
            yield position, _no_result(tasks[position], error)


def _on_dask(tasks: list[Task], client) -> Iterator[tuple[int, TaskResult]]:
    """Submits every task now; yields (position, result) as each finishes."""
    from distributed import as_completed as dask_completed

    futures = [client.submit(run_task, task, pure=False) for task in tasks]
    positions = {future.key: position for position, future in enumerate(futures)}

    def finished():
        try:
            for future in dask_completed(futures):
                position = positions[future.key]
                try:
                    yield position, future.result()
                except Exception as error:  # noqa: BLE001 - a worker died (KilledWorker)
                    yield position, _no_result(tasks[position], error)
        finally:
            client.cancel(futures)

    return finished()


def _no_result(task: Task, error: Exception) -> TaskResult:
    return TaskResult(task.label, [], FAILED,
                      f"no result from the worker: {type(error).__name__}: {error}")

