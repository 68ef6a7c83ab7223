"""calwebb_detector1 at real detector sizes: wall, CPU and peak memory, calwebb vs official.

    python benchmarks/detector1.py [--cores N] [--repeat N] [--skip-official]
                                   [--max-memory SIZE] [--case TEXT]

Cases: NIRCam full frame (2048 x 2048, 10 groups, 1 integration), MIRI full frame
(1024 x 1032, 40 groups) and NIRSpec IRS2 full frame (3200 x 2048 raw, 10 groups), against
the same uncal file and reference files (an offline CRDS cache). Each run is a fresh process
(imports included in time and peak RSS; the first calwebb run of a checkout also compiles
the numba kernels and the modules' bytecode into their caches, as an installed package has
them, so it is not counted); the exposure is generated in yet another process so that the
parent's memory does not leak into the children's peak. With ``--repeat`` each pipeline runs
that many times, the two alternating (the machine's speed drifts by tens of per cent within
minutes), and the median wall and CPU times and the largest peak of each are shown (CPU
seconds stay meaningful on a shared machine), then each run's wall time and the speed-up of
each alternating pair.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))

from measure import measure, measure_cpu, official_wanted  # noqa: E402

CASES = {
    "NIRCam full frame 2048x2048, 10 groups": dict(instrument="NIRCAM", shape=(2048, 2048),
                                                    ngroups=10, nints=1),
    "MIRI full frame 1024x1032, 40 groups": dict(instrument="MIRI", shape=(1024, 1032),
                                                  ngroups=40, nints=1),
    "NIRSpec IRS2 full frame 3200x2048, 10 groups": dict(instrument="NIRSPEC", detector="NRS1",
                                                          ngroups=10),
}


def run_calwebb(uncal: str, cache: str, cores: str, max_memory: str | None = "auto") -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true")
    sys.dont_write_bytecode = False  # as an installed package: compiled once, not every run
    from calwebb.pipeline.detector1 import Detector1Pipeline

    Detector1Pipeline.call(uncal, max_memory=max_memory,
                           steps={"jump": {"maximum_cores": cores},
                                  "ramp_fit": {"maximum_cores": cores}})


def run_official(uncal: str, cache: str, cores: str) -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true",
                      CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu")
    from jwst.pipeline import Detector1Pipeline

    Detector1Pipeline.call(uncal, steps={"jump": {"maximum_cores": cores},
                                         "ramp_fit": {"maximum_cores": cores}})


def write_case(directory: str, case: dict) -> None:
    """Generate the exposure in its own process, so the parent's memory peak stays small."""
    if case["instrument"] == "NIRSPEC":  # the simulator's spectra, IRS2 readout
        from calwebb.simulate import observation

        observation(directory, instrument="NIRSPEC", detectors=(case["detector"],),
                    filter="CLEAR", readpatt="NRSIRS2RAPID", subarray="FULL",
                    ngroups=case["ngroups"], n_dithers=1)
        return
    from detector1_exposure import write_exposure

    write_exposure(Path(directory), **case)


def medians(runs: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(median wall s, median CPU s, largest peak MiB) of fresh-process runs."""
    return (statistics.median(run[0] for run in runs),
            statistics.median(run[1] for run in runs), max(run[2] for run in runs))


def report(rows: list[tuple]) -> str:
    """Rows of (case, calwebb wall, CPU, MiB, official wall, CPU, MiB or None) as a table."""
    header = ("case", "calwebb s", "cpu s", "MiB", "official s", "cpu s", "MiB", "speed-up")
    lines = ["{:46s} {:>9s} {:>6s} {:>6s} {:>10s} {:>6s} {:>6s} {:>8s}".format(*header)]
    for case, wall, cpu, mib, *official in rows:
        line = f"{case:46s} {wall:9.2f} {cpu:6.2f} {mib:6.0f}"
        if official[0] is not None:
            their_wall, their_cpu, their_mib = official
            line += (f" {their_wall:10.2f} {their_cpu:6.2f} {their_mib:6.0f}"
                     f" {their_wall / wall:7.1f}x")
        lines.append(line)
    return "\n".join(lines)


def run_by_run(ours: list[tuple], theirs: list[tuple]) -> str:
    """Each run's wall seconds (and, run for run, the speed-up): the spread behind the
    medians."""
    text = "  calwebb runs: " + ", ".join(f"{run[0]:.2f}" for run in ours)
    if theirs:
        text += "; official runs: " + ", ".join(f"{run[0]:.2f}" for run in theirs)
        text += "; speed-ups: " + ", ".join(
            f"{their[0] / our[0]:.1f}x" for our, their in zip(ours, theirs, strict=True))
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="1", help="maximum_cores for jump and ramp_fit")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each pipeline per case")
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--max-memory", default="auto",
                        help="calwebb's max_memory (row tiles), e.g. 100MB or None; default: "
                             "auto, the pipeline's default")
    parser.add_argument("--case", default="",
                        help="run only the cases whose name contains this text, e.g. IRS2")
    args = parser.parse_args()
    official = official_wanted(args.skip_official)
    rows = []
    for name, case in CASES.items():
        if args.case.lower() not in name.lower():
            continue
        with tempfile.TemporaryDirectory() as directory:
            measure(write_case, directory, case)
            uncal = next(Path(directory).glob("*_uncal.fits"))
            cache = Path(directory) / "crds"
            calwebb = (str(uncal), str(cache), args.cores, args.max_memory)
            measure(run_calwebb, *calwebb)  # numba cache warm
            ours, theirs = [], []
            for _ in range(args.repeat):
                ours.append(measure_cpu(run_calwebb, *calwebb))
                if official:
                    theirs.append(measure_cpu(run_official, str(uncal), str(cache), args.cores))
            rows.append((name, *medians(ours),
                         *(medians(theirs) if official else (None, None, None))))
            print(report(rows[-1:]), flush=True)
            print(run_by_run(ours, theirs), flush=True)
    print()
    print(report(rows))


if __name__ == "__main__":
    main()
