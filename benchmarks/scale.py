"""Many exposures on many workers: throughput and peak memory per worker.

    python benchmarks/scale.py [--stage 1|3] [--size sub640|full] [--exposures 16]
                               [--ngroups 10] [--workers 1 2] [--modes pool dask]

Stage 1 (default): simulates the exposures once (NIRCam, SUB640 = 640 x 640 by default, or
full frame) and runs ``calwebb_detector1`` on all of them with ``calwebb.parallel.run_many``.
Stage 3: makes cal images of the exposures (the noiseless truth rates with noise, variances
and unflagged cosmic rays, through calwebb_image2 without resample), one Level 3 association
per count in ``--exposures`` (e.g. ``--exposures 8 16``), and runs ``calwebb_image3`` on
each association: in this process (pool, 1 worker), or with its per-exposure work as tasks
on local processes (pool) or on a Dask LocalCluster (dask).

Every case runs in a fresh process. Reports exposures per minute (wall clock, worker start-up
included), CPU seconds per exposure (all processes; the honest number on a shared machine),
the peak resident memory of the process that runs the pipeline (the client) and of the
largest worker (sampled with psutil every 50 ms; '-' when the work stays in the client).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cal_images import noisy_cal  # noqa: E402

SIZES = {"sub640": "SUB640", "full": "FULL"}
PIPELINES = {1: "calwebb_detector1", 3: "calwebb_image3"}
COSMIC_RAYS_PER_MPIX = 100


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


def simulate_cals(directory: str, subarray: str, counts: list[int]) -> list[str]:
    """Cal images of max(``counts``) dithered exposures in ``directory``; returns one Level 3
    association per count (its first ``count`` exposures)."""
    from calwebb import datamodels
    from calwebb.associations import asn_from_list
    from calwebb.simulate import ObservationConfig, simulate_observation

    root = Path(directory)
    observation = simulate_observation(ObservationConfig(
        subarray=subarray, readpatt="RAPID", ngroups=2, n_dithers=max(counts), n_stars=150,
        n_galaxies=30, cosmic_ray_rate=0.0, seed=7), root)
    _use_references(directory)
    cals = []
    for index, (uncal, truth) in enumerate(zip(observation.uncal_files,
                                               observation.truth_rates, strict=True)):
        shape = datamodels.open(truth).data.shape
        hits = COSMIC_RAYS_PER_MPIX * shape[0] * shape[1] // 2**20
        cal = noisy_cal(truth, uncal.name, index, hits)
        cal.save(root / uncal.name.replace("_uncal", "_cal"))
        cals.append(uncal.name.replace("_uncal", "_cal"))
        uncal.unlink()  # the ramps are not needed any more
    return [str(asn_from_list(cals[:count], product_name=f"scale_n{count}").save(
        root / f"scale_n{count}_image3_asn.json")) for count in counts]


def _use_references(directory: str) -> None:
    """Reference files from the simulation's CRDS cache, offline."""
    os.environ.update(CRDS_PATH=str(Path(directory) / "crds"),
                      STPIPE_DISABLE_CRDS_STEPPARS="true")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        os.environ.pop(variable, None)


def run_case(directory: str, pipeline: str, inputs: list[str], mode: str, workers: int,
             output: str) -> tuple[float, float, float, float | None, int]:
    """(wall seconds, CPU seconds of every process, peak MiB of this process, peak MiB of the
    largest worker or None, failures) for one case."""
    _use_references(directory)
    from calwebb.parallel import run_many

    with Descendants() as descendants:
        started = time.perf_counter()
        results = run_many(pipeline, inputs, jobs=workers,
                           scheduler="local" if mode == "dask" else None,
                           output_dir=output, overwrite=True)
        seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF)
    client = own.ru_maxrss / 1024.0
    worker = max(descendants.peaks.values(), default=None)
    cpu = own.ru_utime + own.ru_stime + sum(descendants.cpu_seconds.values())
    return seconds, cpu, client, worker, sum(result.status == "failed" for result in results)


def in_fresh_process(function, *args):
    """Run ``function(*args)`` in a new interpreter (its memory and imports start clean)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", type=int, choices=sorted(PIPELINES), default=1)
    parser.add_argument("--size", choices=sorted(SIZES), default="sub640")
    parser.add_argument("--exposures", type=int, nargs="+", default=[16])
    parser.add_argument("--ngroups", type=int, default=10, help="Stage 1: groups per ramp")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=("pool", "dask"), default=["pool", "dask"])
    args = parser.parse_args()
    pipeline = PIPELINES[args.stage]
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        if args.stage == 1:
            in_fresh_process(simulate, directory, SIZES[args.size], max(args.exposures),
                             args.ngroups)
            runs = [(max(args.exposures), [str(Path(directory) / "*_uncal.fits")])]
            what = f"{max(args.exposures)} {SIZES[args.size]} exposures, {args.ngroups} groups"
        else:
            associations = in_fresh_process(simulate_cals, directory, SIZES[args.size],
                                             args.exposures)
            runs = [(count, [asn]) for count, asn in zip(args.exposures, associations,
                                                         strict=True)]
            what = f"cal images of {max(args.exposures)} {SIZES[args.size]} exposures"
        print(f"{pipeline}: simulated {what} in {time.perf_counter() - started:.0f} s",
              flush=True)
        print(f"{'exposures':>9s} {'mode':6s} {'workers':>7s} {'seconds':>8s} "
              f"{'exposures/min':>14s} {'CPU s/exposure':>15s} {'peak MiB client':>16s} "
              f"{'peak MiB/worker':>16s}", flush=True)
        for count, inputs in runs:
            for mode in args.modes:
                for workers in args.workers:
                    output = str(Path(directory) / f"out_{count}_{mode}_{workers}")
                    seconds, cpu, client, worker, failed = in_fresh_process(
                        run_case, directory, pipeline, inputs, mode, workers, output)
                    note = f"  ({failed} failed)" if failed else ""
                    worker_text = "-" if worker is None else f"{worker:.0f}"
                    print(f"{count:9d} {mode:6s} {workers:7d} {seconds:8.1f} "
                          f"{count / seconds * 60:14.1f} {cpu / count:15.2f} {client:16.0f} "
                          f"{worker_text:>16s}{note}", flush=True)


if __name__ == "__main__":
    main()
