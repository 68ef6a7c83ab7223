"""calwebb_image2 on a full-frame NIRCam rate: wall time and peak memory, calwebb vs official.

    python benchmarks/image2.py [--skip-official] [--repeat N]

A simulated NRCA1 full-frame exposure (2048 x 2048) with its DISTORTION, FILTEROFFSET, FLAT,
PHOTOM and AREA references in an offline CRDS cache; both pipelines write cal and i2d. Each
run is a fresh process (imports included in time and peak RSS). With ``--repeat`` the
pipelines alternate and the fastest run of each is reported; CPU seconds (user + system of
the run's process) are printed too, as wall time suffers most on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from measure import measure, official_wanted, report  # noqa: E402


def write_rate(directory: str) -> None:
    """The simulator's noiseless full-frame rate, with the variance arrays a real rate has."""
    import numpy as np

    from calwebb import datamodels
    from calwebb.simulate import ObservationConfig, simulate_observation

    observation = simulate_observation(ObservationConfig(
        subarray="FULL", readpatt="RAPID", ngroups=2, n_dithers=1, n_stars=600,
        n_galaxies=100), directory)
    rate = datamodels.open(observation.truth_rates[0])
    rate.var_poisson = np.abs(rate.data) * 0.05
    rate.var_rnoise = np.full(rate.data.shape, 0.01, np.float32)
    rate.err = np.sqrt(rate.var_poisson + rate.var_rnoise)
    rate.dq = np.zeros(rate.data.shape, np.uint32)
    rate.save(Path(directory) / "jw01234001001_03101_00001_nrca1_rate.fits")


def run_calwebb(rate: str, cache: str, output: str) -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true")
    from calwebb.pipeline.image2 import Image2Pipeline

    Image2Pipeline.call(rate, save_results=True, output_dir=output)


def run_official(rate: str, cache: str, output: str) -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true",
                      CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu")
    from jwst.pipeline import Image2Pipeline

    Image2Pipeline.call(rate, save_results=True, output_dir=output)


def measure_with_cpu(func, *args) -> tuple[float, float, float]:
    """(wall s, peak MiB, CPU s) of ``func(*args)`` in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds, peak = measure(func, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, peak, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pipeline")
    args = parser.parse_args()
    official = official_wanted(args.skip_official)
    runs: dict[str, list[tuple[float, float, float]]] = {"calwebb": [], "official": []}
    with tempfile.TemporaryDirectory() as directory:
        measure(write_rate, directory)
        rate = str(Path(directory) / "jw01234001001_03101_00001_nrca1_rate.fits")
        cache = str(Path(directory) / "crds")
        for index in range(args.repeat):
            runs["calwebb"].append(measure_with_cpu(
                run_calwebb, rate, cache, str(Path(directory) / f"calwebb{index}")))
            if official:
                runs["official"].append(measure_with_cpu(
                    run_official, rate, cache, str(Path(directory) / f"official{index}")))
    ours = min(runs["calwebb"])
    theirs = min(runs["official"]) if official else (None, None, None)
    print(report([("NIRCam full frame rate → cal + i2d", *ours[:2], *theirs[:2])]))
    for name, results in runs.items():
        if results:
            print(f"{name}: wall {', '.join(f'{r[0]:.2f}' for r in results)} s; "
                  f"CPU {', '.join(f'{r[2]:.2f}' for r in results)} s")
    if official:
        ratio = min(r[2] for r in runs["official"]) / min(r[2] for r in runs["calwebb"])
        print(f"CPU speed-up (least CPU of each): {ratio:.1f}x")


if __name__ == "__main__":
    main()
