"""Where the per-exposure work of Stage 3 runs: in this process (the default), or, inside
``with using(...)``, as tasks on Dask distributed or on a pool of local processes.

Steps ask ``current()`` for the executor of the block they run in. Tasks are module-level
functions of file paths and small values; they read members from files and write big results
to temporary files under the executor's ``directory``, which every worker must see under the
same path (a shared file system on a cluster).
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor as FuturesExecutor
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

from calwebb import memory
from calwebb.errors import ParameterError

_ACTIVE: ContextVar[Executor | None] = ContextVar("calwebb_executor", default=None)


class Executor:
    """Runs tasks through ``submit`` (``distributed.Client.submit`` or a process pool's);
    temporary files go under ``directory``."""

    def __init__(self, submit: Callable, directory: str | Path, description: str):
        self._submit = submit
        self.directory = Path(directory).absolute()
        self.description = description

    def map(self, function: Callable, *iterables: Iterable) -> Iterator:
        """``function(*arguments)`` for each tuple of ``zip(*iterables)`` (``itertools.repeat``
        for a value shared by all), all submitted at once; yields the results in input order,
        each as soon as it is ready. Tasks not yet done are cancelled when the caller stops
        early or a task fails."""
        task = _Task(function)
        futures = [self._submit(task, *arguments)
                   for arguments in zip(*iterables, strict=False)]
        try:
            for position, future in enumerate(futures):
                yield future.result()
                futures[position] = None  # the worker may forget the result
        finally:
            for future in futures:
                if future is not None:
                    future.cancel()

    def scratch(self, prefix: str) -> tempfile.TemporaryDirectory:
        """A new temporary directory under ``directory`` (removed when it is cleaned up)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=prefix, dir=self.directory)


class _Task:
    """``function`` run in a worker with the memory policy of a pipeline run; named as
    ``function`` (Dask names its tasks so)."""

    def __init__(self, function: Callable):
        self.function, self.__name__ = function, function.__name__

    def __call__(self, *arguments):
        with memory.normal_pages():
            return self.function(*arguments)


def as_files(sources: Iterable, directory: str | Path) -> list[str]:
    """A file path for each source: paths as they are, models saved to ``directory`` (as
    ``source00000.fits`` ..., their ``meta.filename`` kept) so that tasks can read them."""
    from calwebb.datamodels import DataModel

    paths = []
    for index, source in enumerate(sources):
        if isinstance(source, DataModel):
            name = source.meta.filename
            path = source.save(Path(directory) / f"source{index:05d}.fits")
            source.meta.filename = name
            source = path
        paths.append(str(source))
    return paths


def current() -> Executor | None:
    """The executor of the enclosing ``using`` block; None: work in this process."""
    return _ACTIVE.get()


@contextmanager
def using(scheduler: Any = None, *, jobs: int = 1,
          directory: str | Path | None = None) -> Iterator[Executor | None]:
    """Run Stage 3 per-exposure work inside the block as tasks.

    ``scheduler``: a ``distributed.Client``, a Dask cluster, a scheduler address, or
    ``"local"`` (a ``LocalCluster`` of ``jobs`` single-threaded workers, stopped at the end),
    or a pool of local processes (a ``concurrent.futures.Executor``, used as given); None:
    ``jobs`` local processes, or (``jobs`` 1) this process, as outside the block.
    ``directory``: where tasks keep temporary files (default: the current directory).
    """
    if jobs < 1:
        raise ParameterError(f"jobs must be at least 1, got {jobs}")
    directory = Path(directory or Path.cwd())
    with _submitter(scheduler, jobs) as found:
        executor = Executor(found[0], directory, found[1]) if found else None
        token = _ACTIVE.set(executor)
        try:
            yield executor
        finally:
            _ACTIVE.reset(token)


@contextmanager
def _submitter(scheduler: Any, jobs: int) -> Iterator[tuple[Callable, str] | None]:
    """(submit, description) of where ``using(scheduler, jobs=jobs)`` runs tasks; None: in
    this process."""
    if isinstance(scheduler, FuturesExecutor):
        yield scheduler.submit, "local processes"
    elif scheduler is not None:
        with dask_client(scheduler, jobs) as client:
            yield (partial(client.submit, pure=False),
                   f"Dask scheduler {client.scheduler.address}")
    elif jobs > 1:
        with process_pool(jobs) as pool:
            yield pool.submit, f"{jobs} local processes"
    else:
        yield None


@contextmanager
def dask_client(scheduler: Any, workers: int):
    """A client of ``scheduler`` (a Client is used as given; ``"local"`` starts and stops a
    LocalCluster of ``workers`` single-threaded worker processes)."""
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


@contextmanager
def process_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """``jobs`` worker processes forked from a clean server process that imported every step
    once (they share its memory and not this process's threads)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["calwebb.parallel.preload"])
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)
