"""calwebb_image3 on N full-frame NIRCam cal images: wall time and peak memory, calwebb vs official.

    python benchmarks/image3.py [--exposures 8 16] [--skip-official] [--profile]
                                [--workdir DIR]

N simulated NRCA1 full-frame exposures (2048 x 2048) on the simulator's dither pattern: the
noiseless truth rates get read + Poisson-like noise, the variance arrays a real rate has and a
few hundred unflagged cosmic rays each, and go through calwebb's Image2Pipeline (resample
skipped) to cal files; a Level 3 association per N. Both pipelines then run with their
defaults (tweakreg, skymatch, outlier_detection, resample, source_catalog) and write crf, i2d,
cat and segm. calwebb also runs with ``in_memory=False``. Each run is a fresh process (imports
included in time and peak RSS); CPU seconds (user + system) are listed too, since wall time
is only comparable on an otherwise idle machine. ``--profile`` adds a cProfile of the calwebb
run at the first N (top cumulative entries). ``--workdir`` keeps the simulated data (and
reuses it when it is already there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cal_images import noisy_cal  # noqa: E402
from measure import measure, official_wanted, report  # noqa: E402

PROGRAM_PRODUCT = "jw01234-o001_t001_nircam_f200w"
COSMIC_RAYS_PER_EXPOSURE = 400


def prepare(directory: str, n_exposures: int) -> None:
    """Simulate ``n_exposures`` dithered full-frame exposures and make their cal files in
    ``directory``/cal (calwebb Image2, resample skipped)."""
    from calwebb.simulate import ObservationConfig, simulate_observation

    root = Path(directory)
    observation = simulate_observation(ObservationConfig(
        subarray="FULL", readpatt="RAPID", ngroups=2, n_dithers=n_exposures, n_stars=600,
        n_galaxies=100, cosmic_ray_rate=0.0, seed=7), root / "simulation")
    os.environ.update(CRDS_PATH=str(observation.crds_path), STPIPE_DISABLE_CRDS_STEPPARS="true")
    cal_dir = root / "cal"
    cal_dir.mkdir(exist_ok=True)
    for index, (uncal, truth) in enumerate(zip(observation.uncal_files,
                                               observation.truth_rates, strict=True)):
        cal = noisy_cal(truth, uncal.name, index, COSMIC_RAYS_PER_EXPOSURE)
        cal.save(cal_dir / cal.meta.filename)
        (root / "simulation" / uncal.name).unlink()  # the ramps are not needed any more
    (root / "prepared.json").write_text(json.dumps({
        "crds_path": str(observation.crds_path), "n_exposures": n_exposures,
        "cals": sorted(path.name for path in cal_dir.glob("*_cal.fits"))}))


def write_association(directory: Path, cals: list[str], n: int) -> Path:
    from calwebb.associations import asn_from_list

    association = asn_from_list(cals[:n], product_name=f"{PROGRAM_PRODUCT}_n{n}")
    return association.save(directory / "cal" / f"jw01234-o001_n{n}_image3_asn.json")


def _record_cpu(path: str) -> None:
    times = os.times()
    Path(path).write_text(json.dumps({"cpu": times.user + times.system}))


def run_calwebb(asn: str, cache: str, output: str, cpu_file: str,
                in_memory: bool = True) -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true")
    os.environ.pop("CRDS_SERVER_URL", None)
    from calwebb.pipeline.image3 import Image3Pipeline

    Image3Pipeline.call(asn, save_results=True, output_dir=output, in_memory=in_memory)
    _record_cpu(cpu_file)


def run_official(asn: str, cache: str, output: str, cpu_file: str) -> None:
    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true",
                      CRDS_SERVER_URL="https://crds-serverless-mode.stsci.edu")
    import warnings

    from jwst.pipeline import Image3Pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Image3Pipeline.call(asn, save_results=True, output_dir=output)
    _record_cpu(cpu_file)


def profile_calwebb(asn: str, cache: str, output: str, limit: int = 40) -> None:
    """The calwebb run under cProfile: top ``limit`` entries by cumulative time, and by own
    time (imports excluded: they are done before profiling starts)."""
    import cProfile
    import pstats

    os.environ.update(CRDS_PATH=cache, STPIPE_DISABLE_CRDS_STEPPARS="true")
    os.environ.pop("CRDS_SERVER_URL", None)
    from calwebb.pipeline.image3 import Image3Pipeline

    profiler = cProfile.Profile()
    profiler.enable()
    Image3Pipeline.call(asn, save_results=True, output_dir=output)
    profiler.disable()
    profiler.dump_stats(str(Path(output) / "image3.prof"))
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit // 2)
    sys.stdout.flush()


def _case(func, output: Path, asn: str, cache: str, *extra) -> tuple[float, float, float]:
    """(wall s, peak MiB, CPU s) of ``func(asn, cache, output, cpu_file, *extra)`` in a fresh
    process; its products are deleted afterwards."""
    output.mkdir(parents=True, exist_ok=True)
    cpu_file = output.parent / f"{output.name}_cpu.json"
    seconds, peak = measure(func, asn, cache, str(output), str(cpu_file), *extra)
    cpu = json.loads(cpu_file.read_text())["cpu"]
    shutil.rmtree(output, ignore_errors=True)
    return seconds, peak, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exposures", type=int, nargs="+", default=[8, 16],
                        help="numbers of exposures to combine (default: 8 16)")
    parser.add_argument("--skip-official", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="also profile the calwebb run at the first N")
    parser.add_argument("--workdir", help="keep (and reuse) the simulated data here")
    args = parser.parse_args()
    official = official_wanted(args.skip_official)
    temporary = None if args.workdir else tempfile.TemporaryDirectory()
    directory = Path(args.workdir or temporary.name)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        needed = max(args.exposures)
        state = directory / "prepared.json"
        if not state.exists() or json.loads(state.read_text())["n_exposures"] < needed:
            shutil.rmtree(directory / "simulation", ignore_errors=True)
            shutil.rmtree(directory / "cal", ignore_errors=True)
            seconds, _ = measure(prepare, str(directory), needed)
            print(f"prepared {needed} cal images in {seconds:.0f} s", flush=True)
        prepared = json.loads(state.read_text())
        cache = prepared["crds_path"]
        rows, cpu_rows = [], []
        for n in args.exposures:
            asn = str(write_association(directory, prepared["cals"], n))
            ours = _case(run_calwebb, directory / "out_calwebb", asn, cache)
            on_disk = _case(run_calwebb, directory / "out_calwebb_disk", asn, cache, False)
            theirs = _case(run_official, directory / "out_official", asn, cache) \
                if official else (None, None, None)
            rows.append((f"{n} full-frame cal → i2d + cat", *ours[:2], *theirs[:2]))
            rows.append((f"{n} full-frame, in_memory=False", *on_disk[:2], *theirs[:2]))
            cpu_rows.append((n, ours[2], on_disk[2], theirs[2]))
            print(report(rows[-2:]), flush=True)
        print()
        print(report(rows))
        print()
        print(f"{'N':>3s} {'CPU s calwebb':>14s} {'in_memory=False':>16s} {'official':>10s}")
        for n, mine, disk, their in cpu_rows:
            their_text = f"{their:10.1f}" if their is not None else " " * 7 + "---"
            print(f"{n:3d} {mine:14.1f} {disk:16.1f} {their_text}")
        if args.profile:
            n = args.exposures[0]
            output = directory / "out_profile"
            output.mkdir(exist_ok=True)
            asn = str(write_association(directory, prepared["cals"], n))
            print(f"\ncProfile of calwebb Image3 at N={n}:")
            measure(profile_calwebb, asn, cache, str(output))
    finally:
        if temporary is not None:
            temporary.cleanup()


if __name__ == "__main__":
    main()
