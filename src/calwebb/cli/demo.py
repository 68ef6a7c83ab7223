"""Simulate a small NIRCam observation, calibrate it, and compare with the truth."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from calwebb import datamodels, dqflags, references
from calwebb.stpipe import log as logs
from calwebb.stpipe import progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--outdir", "--output-dir", dest="output_dir", default="calwebb-demo",
                        help="where exposures and products go (default: %(default)s)")
    parser.add_argument("--size", choices=("small", "full"), default="small",
                        help="small: two 320x320 subarray exposures (seconds); full: two "
                             "2048x2048 full-frame exposures (a few minutes)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--verbose", action="store_true", help="log every step")


def run(args: argparse.Namespace) -> int:
    from astropy.table import Table

    from calwebb.pipeline.detector1 import Detector1Pipeline
    from calwebb.pipeline.image2 import Image2Pipeline
    from calwebb.simulate import ObservationConfig, simulate_observation

    logs.configure("INFO" if args.verbose else "ERROR")
    progress.set_enabled(not args.quiet)
    output = Path(args.output_dir)
    cache = Path(os.environ.get("CALWEBB_REFS") or references.default_cache_dir())
    started = time.perf_counter()
    config = ObservationConfig(readpatt="RAPID", ngroups=8, seed=args.seed,
                               subarray="SUB320" if args.size == "small" else "FULL",
                               n_stars=40 if args.size == "small" else 600,
                               n_galaxies=15 if args.size == "small" else 200)
    observation = simulate_observation(config, output, crds_path=cache)
    print(f"Simulated {len(observation.uncal_files)} NIRCam {config.subarray} exposures of "
          f"{config.n_stars} stars and {config.n_galaxies} galaxies in {output}/ "
          f"({time.perf_counter() - started:.1f} s); reference files and CRDS cache in {cache}")
    os.environ["CRDS_PATH"] = str(cache)
    os.environ.pop("CRDS_CONTEXT", None)
    references.forget_crds_state()
    rows = []
    catalog = Table.read(observation.truth_catalog)
    for uncal, truth_path in zip(observation.uncal_files, observation.truth_rates,
                                 strict=True):
        started = time.perf_counter()
        rate = Detector1Pipeline.call(str(uncal), output_dir=str(output / "stage1"),
                                      save_results=True)
        stage1_seconds = time.perf_counter() - started
        started = time.perf_counter()
        cal = Image2Pipeline.call(rate, output_dir=str(output / "stage2"), save_results=True)
        stage2_seconds = time.perf_counter() - started
        truth = datamodels.open(truth_path).data
        rows.append((uncal.name, stage1_seconds, *_compare(rate, truth),
                     len(observation.cosmic_rays[uncal.name]), stage2_seconds,
                     *_star_fluxes(cal, catalog)))
    print(f"\n{'exposure':<44} {'stage1':>6} {'pull mean':>9} {'pull std':>8} "
          f"{'jump px':>7} {'CR hits':>7} {'stage2':>6} {'flux/true':>9} {'stars':>5}")
    for name, seconds1, mean, std, jumps, hits, seconds2, ratio, spread, stars in rows:
        print(f"{name:<44} {seconds1:5.1f}s {mean:9.3f} {std:8.3f} {jumps:7d} {hits:7d} "
              f"{seconds2:5.1f}s {ratio:5.3f}±{spread:.3f} {stars:5d}")
    print("\npull = (rate − true rate) / ERR on clean pixels: a correct calibration gives "
          "mean ≈ 0 and std ≈ 1.\nflux/true = median (± scatter) of isolated bright stars' "
          "aperture fluxes in the cal image (MJy/sr × pixel area) over their true fluxes.")
    picture = _plot(output / "stage2", observation, output / "demo.png")
    print(f"Products in {output / 'stage1'}/ and {output / 'stage2'}/; picture {picture}")
    logging.getLogger("calwebb").info("demo finished")
    return 0


def _star_fluxes(cal, catalog, radius=5.0) -> tuple[float, float, int]:
    """Median and scatter of aperture flux / true flux for isolated stars above 100 µJy."""
    from photutils.aperture import ApertureStats, CircularAnnulus, CircularAperture

    x, y = cal.meta.wcs.invert(catalog["ra"], catalog["dec"])
    x, y = np.nan_to_num(x, nan=-1e3), np.nan_to_num(y, nan=-1e3)
    ny, nx = cal.data.shape
    distance = np.hypot(x[:, None] - x[None], y[:, None] - y[None]) + np.eye(len(x)) * 1e9
    chosen = ((catalog["kind"] == "star") & (catalog["flux_ujy"] > 100)
              & (x > 15) & (x < nx - 15) & (y > 15) & (y < ny - 15)
              & (distance.min(axis=1) > 15))
    if not chosen.any():
        return float("nan"), float("nan"), 0
    positions = np.column_stack([x[chosen], y[chosen]])
    surface = np.nan_to_num(cal.data * cal.area)  # MJy/sr × relative pixel area
    aperture = ApertureStats(surface, CircularAperture(positions, radius))
    background = ApertureStats(surface, CircularAnnulus(positions, radius + 4, radius + 8))
    flux = (aperture.sum - background.median * aperture.sum_aper_area.value) \
        * cal.meta.photometry.pixelarea_steradians * 1e12  # µJy
    ratio = flux / np.asarray(catalog["flux_ujy"][chosen])
    return float(np.median(ratio)), float(1.4826 * np.median(np.abs(ratio - np.median(ratio)))), \
        int(chosen.sum())


def _compare(rate, truth) -> tuple[float, float, int]:
    bad = dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.HOT
    clean = ((rate.dq & bad) == 0) & ((rate.dq & dqflags.REFERENCE_PIXEL) == 0)
    pull = ((rate.data - truth) / rate.err)[clean]
    return float(np.mean(pull)), float(np.std(pull)), int(((rate.dq & dqflags.JUMP_DET) != 0)
                                                         .sum())


def _plot(products: Path, observation, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.table import Table
    from astropy.visualization import AsinhStretch, ImageNormalize

    first = observation.uncal_files[0].name.replace("_uncal", "_i2d")
    i2d = datamodels.open(products / first)
    catalog = Table.read(observation.truth_catalog)
    x, y = i2d.meta.wcs.invert(catalog["ra"], catalog["dec"])
    figure, axis = plt.subplots(figsize=(8, 8))
    norm = ImageNormalize(vmin=np.nanmedian(i2d.data) - 0.05,
                          vmax=np.nanpercentile(i2d.data, 99.7), stretch=AsinhStretch(0.05))
    axis.imshow(i2d.data, origin="lower", cmap="gray", norm=norm)
    axis.scatter(x, y, s=60, facecolors="none", edgecolors="tab:orange", linewidths=0.8,
                 label="truth catalog")
    axis.set_xlim(-0.5, i2d.data.shape[1] - 0.5)
    axis.set_ylim(-0.5, i2d.data.shape[0] - 0.5)
    axis.set_title(f"calwebb i2d (MJy/sr) of {first}")
    axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
