"""calwebb_detector1 over many exposures: throughput and peak memory per worker.

    python benchmarks/scale.py [--size sub640|full] [--exposures 16] [--ngroups 10]
                               [--workers 1 2] [--modes pool dask]

Simulates the exposures once (NIRCam, SUB640 = 640 x 640 by default, or full frame), then
runs ``calwebb.parallel.run_many`` for every mode (``pool``: local processes, one worker
meaning this process; ``dask``: a Dask LocalCluster) and worker count, each case in a
fresh process. Reports exposures per minute (wall clock, worker start-up included), CPU
seconds per exposure (all processes; the honest number on a shared machine) and the peak
resident memory of the largest worker (sampled with psutil every 50 ms; with one pool
worker, the peak of the process itself).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SIZES = {"sub640": "SUB640", "full": "FULL"}


class Descendants:
    """Peak RSS and CPU time of each descendant process, sampled in a background thread."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peaks: dict[int, float] = {}
        self.cpu_seconds: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Descendants:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            for process in me.children(recursive=True):
                try:
                    mib = process.memory_info().rss / 2**20
                    times = process.cpu_times()
                except psutil.Error:  # finished between listing and reading
                    continue
                self.peaks[process.pid] = max(mib, self.peaks.get(process.pid, 0.0))
                self.cpu_seconds[process.pid] = times.user + times.system
            time.sleep(self.interval)


def simulate(directory: str, subarray: str, exposures: int, ngroups: int) -> None:
    from calwebb.simulate import ObservationConfig, simulate_observation

    config = ObservationConfig(subarray=subarray, readpatt="RAPID", ngroups=ngroups,
                               n_dithers=exposures, n_stars=60, n_galaxies=20, seed=7)
    simulate_observation(config, directory)


def run_case(directory: str, mode: str, workers: int,
             output: str) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds of every process, peak MiB of the largest worker,
    failures) for one case."""
    os.environ.update(CRDS_PATH=str(Path(directory) / "crds"),
                      STPIPE_DISABLE_CRDS_STEPPARS="true")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        os.environ.pop(variable, None)
    from calwebb.parallel import run_many

    in_process = mode == "pool" and workers == 1
    with Descendants() as descendants:
        started = time.perf_counter()
        results = run_many("calwebb_detector1", [str(Path(directory) / "*_uncal.fits")],
                           jobs=workers, scheduler="local" if mode == "dask" else None,
                           output_dir=output, overwrite=True)
        seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    peak = own.ru_maxrss / 1024.0 if in_process else max(descendants.peaks.values(), default=0.0)
    cpu = own.ru_utime + own.ru_stime + sum(descendants.cpu_seconds.values())
    return seconds, cpu, peak, sum(result.status == "failed" for result in results)


def in_fresh_process(function, *args):
    """Run ``function(*args)`` in a new interpreter (its memory and imports start clean)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="sub640")
    parser.add_argument("--exposures", type=int, default=16)
    parser.add_argument("--ngroups", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=("pool", "dask"), default=["pool", "dask"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        in_fresh_process(simulate, directory, SIZES[args.size], args.exposures, args.ngroups)
        print(f"simulated {args.exposures} {SIZES[args.size]} exposures, {args.ngroups} groups, "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        print(f"{'mode':6s} {'workers':>7s} {'seconds':>8s} {'exposures/min':>14s} "
              f"{'CPU s/exposure':>15s} {'peak MiB/worker':>16s}", flush=True)
        for mode in args.modes:
            for workers in args.workers:
                output = str(Path(directory) / f"out_{mode}_{workers}")
                seconds, cpu, peak, failed = in_fresh_process(run_case, directory, mode,
                                                              workers, output)
                note = f"  ({failed} failed)" if failed else ""
                print(f"{mode:6s} {workers:7d} {seconds:8.1f} "
                      f"{args.exposures / seconds * 60:14.1f} {cpu / args.exposures:15.2f} "
                      f"{peak:16.0f}{note}", flush=True)


if __name__ == "__main__":
    main()
