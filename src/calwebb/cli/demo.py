"""Simulate a small imaging observation, calibrate it, and compare with the truth."""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np

from calwebb import datamodels, dqflags, references
from calwebb.cli.simulate import DEFAULTS
from calwebb.stpipe import log as logs
from calwebb.stpipe import progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--outdir", "--output-dir", dest="output_dir", default="calwebb-demo",
                        help="where exposures and products go (default: %(default)s)")
    parser.add_argument("--instrument", choices=DEMO_INSTRUMENTS, default="nircam",
                        help="the imager: NIRCam F200W, NIRISS F444W or MIRI F770W "
                             "(default: %(default)s)")
    parser.add_argument("--size", choices=("small", "full"), default="small",
                        help="small: three subarray exposures (seconds); full: three "
                             "full-frame exposures (a few minutes)")
    parser.add_argument("--seed", type=int, default=1, help="simulation seed")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--verbose", action="store_true", help="log every step")


#: the imagers the demo runs, with the simulator's defaults (``calwebb simulate``) ...
DEMO_INSTRUMENTS = ("nircam", "niriss", "miri")
#: ... but NIRISS through F444W: at F200W its PSF is a pixel wide, and too few stars pair up
#: for tweakreg's relative alignment
DEMO_FILTERS = {"niriss": "F444W"}
#: σ of the simulated guiding error of each exposure's header pointing, which tweakreg removes
DEMO_JITTER_MAS = 40.0
#: matching tolerance of the absolute alignment: the official 0.7" lets the few stars of a
#: small short-wave field pair with the wrong neighbours; guiding errors are tens of mas
ABS_TOLERANCE_ARCSEC = 0.2


def run(args: argparse.Namespace) -> int:
    from calwebb.simulate import ObservationConfig, instruments, simulate_observation

    logs.configure("INFO" if args.verbose else "ERROR")
    progress.set_enabled(not args.quiet)
    output = Path(args.output_dir)
    cache = Path(os.environ.get("CALWEBB_REFS") or references.default_cache_dir())
    started = time.perf_counter()
    detector, filter_name, readpatt, subarray = DEFAULTS[args.instrument.upper()]
    filter_name = DEMO_FILTERS.get(args.instrument, filter_name)
    config = ObservationConfig(instrument=args.instrument.upper(), detectors=(detector,),
                               filter=filter_name, readpatt=readpatt, ngroups=8,
                               seed=args.seed, n_dithers=3,
                               subarray=subarray if args.size == "small" else "FULL",
                               n_stars=40 if args.size == "small" else 600,
                               n_galaxies=15 if args.size == "small" else 200,
                               pointing_jitter_mas=DEMO_JITTER_MAS)
    observation = simulate_observation(config, output, crds_path=cache)
    print(f"Simulated {len(observation.uncal_files)} {args.instrument.upper()} "
          f"{config.subarray} exposures of "
          f"{config.n_stars} stars and {config.n_galaxies} galaxies in {output}/ "
          f"({time.perf_counter() - started:.1f} s); reference files and CRDS cache in {cache}")
    os.environ["CRDS_PATH"] = str(cache)
    os.environ.pop("CRDS_CONTEXT", None)
    references.forget_crds_state()
    cals = _stages_1_and_2(observation, output)
    pixel_mas = 1000.0 * instruments.detector(detector).pixel_scale
    mosaic_summary = _stage_3(observation, cals, output, match_mas=pixel_mas)
    print(f"\nProducts in {output}/stage1/, stage2/ and stage3/", end="")
    if mosaic_summary is None:
        print()
        return 1
    print(f"; picture {_plot(output / 'stage3', observation, output / 'demo.png')}")
    logging.getLogger("calwebb").info("demo finished")
    return 0


def _stages_1_and_2(observation, output: Path) -> list[Path]:
    """Detector1 and Image2 on every exposure; prints a row of accuracy figures for each."""
    from astropy.table import Table

    from calwebb.pipeline.detector1 import Detector1Pipeline
    from calwebb.pipeline.image2 import Image2Pipeline

    catalog = Table.read(observation.truth_catalog)
    print(f"\n{'exposure':<44} {'stage1':>6} {'pull mean':>9} {'pull std':>8} "
          f"{'jump px':>7} {'CR hits':>7} {'stage2':>6} {'flux/true':>11} {'stars':>5}")
    cals = []
    for uncal, truth_path in zip(observation.uncal_files, observation.truth_rates,
                                 strict=True):
        started = time.perf_counter()
        rate = Detector1Pipeline.call(str(uncal), output_dir=str(output / "stage1"),
                                      save_results=True)
        stage1_seconds = time.perf_counter() - started
        started = time.perf_counter()
        cal = Image2Pipeline.call(rate, output_dir=str(output / "stage2"), save_results=True)
        stage2_seconds = time.perf_counter() - started
        cals.append(output / "stage2" / uncal.name.replace("_uncal", "_cal"))
        mean, std, jumps = _compare(rate, datamodels.open(truth_path).data)
        ratio, spread, stars = _star_fluxes(cal, catalog)
        print(f"{uncal.name:<44} {stage1_seconds:5.1f}s {mean:9.3f} {std:8.3f} {jumps:7d} "
              f"{len(observation.cosmic_rays[uncal.name]):7d} {stage2_seconds:5.1f}s "
              f"{ratio:5.3f}±{spread:.3f} {stars:5d}")
    print("\npull = (rate − true rate) / ERR on clean pixels: a correct calibration gives "
          "mean ≈ 0 and std ≈ 1.\nflux/true = median (± scatter) of isolated bright stars' "
          "aperture fluxes in the cal image (MJy/sr × pixel area) over their true fluxes.")
    return cals


def _stage_3(observation, cals: list[Path], output: Path, match_mas: float) -> dict | None:
    """Image3 on the cal images (aligned to the truth stars as a stand-in for Gaia); prints
    the mosaic's catalog compared with the truth (a star is found within ``match_mas``)."""
    from astropy.table import Table

    from calwebb.associations import asn_from_list, load_association
    from calwebb.pipeline.image3 import Image3Pipeline

    product = load_association(observation.level3_asn).products[0].name
    association = output / "stage2" / f"{product}_asn.json"
    asn_from_list([path.name for path in cals], product_name=product).save(association)
    truth = Table.read(observation.truth_catalog)
    stars = truth[truth["kind"] == "star"]
    refcat = output / "stage2" / "reference_stars.ecsv"
    Table({"RA": stars["ra"], "DEC": stars["dec"]}).write(refcat, overwrite=True)
    started = time.perf_counter()
    mosaic = Image3Pipeline.call(str(association), output_dir=str(output / "stage3"),
                                 save_results=True, steps={"tweakreg": {
                                     "abs_refcat": str(refcat), "abs_minobj": 5,
                                     "abs_tolerance": ABS_TOLERANCE_ARCSEC}})
    seconds = time.perf_counter() - started
    catalog_path = output / "stage3" / f"{product}_cat.ecsv"
    if not catalog_path.exists():
        print(f"\nImage3 wrote no source catalog ({seconds:.1f} s); run with --verbose to "
              "see why")
        return None
    catalog = Table.read(catalog_path)
    summary = catalog_accuracy(catalog, mosaic, stars, match_mas)
    print(f"\n{'mosaic':<44} {'stage3':>6} {'sources':>7} {'stars found':>11} "
          f"{'offset':>8} {'flux/true':>11}")
    print(f"{product + '_i2d.fits':<44} {seconds:5.1f}s {len(catalog):7d} "
          f"{summary['found']:5d}/{summary['stars']:<5d} {summary['offset_mas']:5.1f}mas "
          f"{summary['flux_ratio']:5.3f}±{summary['flux_spread']:.3f}")
    print(f"\nstars found = truth stars in the mosaic matched by a catalog source within a "
          f"pixel ({match_mas:.0f} mas);"
          " offset = median distance of bright stars from their true positions after tweakreg;"
          "\nflux/true = catalog aper_total_flux (aperture-corrected) over the true flux, "
          "bright stars.")
    return summary


def catalog_accuracy(catalog, mosaic, stars, match_mas: float = 30.0) -> dict:
    """How a source catalog of ``mosaic`` compares with the truth ``stars``: stars inside the
    well-covered area, how many found within ``match_mas``, and for bright ones (true flux
    above 20 times the catalog's flux error, a selection free of noise bias) the median offset
    (mas) and median ± scatter of aper_total_flux / true flux."""
    from astropy.coordinates import SkyCoord

    x, y = mosaic.meta.wcs.invert(np.asarray(stars["ra"]), np.asarray(stars["dec"]),
                                  with_bounding_box=False)
    ny, nx = mosaic.data.shape
    inside = (x > 10) & (x < nx - 11) & (y > 10) & (y < ny - 11)
    covered = np.zeros(len(stars), bool)
    columns, rows = np.round(x[inside]).astype(int), np.round(y[inside]).astype(int)
    covered[inside] = mosaic.wht[rows, columns] > 0.5 * np.nanmax(mosaic.wht)
    expected = SkyCoord(np.asarray(stars["ra"])[covered], np.asarray(stars["dec"])[covered],
                        unit="deg")
    measured = SkyCoord(catalog["sky_centroid"])
    index, separation, _ = expected.match_to_catalog_sky(measured)
    offset = separation.to_value("mas")
    found = offset < match_mas
    flux = np.asarray(catalog["aper_total_flux"])[index] * 1e6  # µJy
    error = np.asarray(catalog["aper_total_flux_err"])[index] * 1e6
    true_flux = np.asarray(stars["flux_ujy"])[covered]
    bright = found & (true_flux > 20 * error)
    ratio = flux[bright] / true_flux[bright]
    median = float(np.median(ratio)) if bright.any() else float("nan")
    return {"stars": int(covered.sum()), "found": int(found.sum()),
            "offset_mas": float(np.median(offset[bright])) if bright.any() else float("nan"),
            "flux_ratio": median,
            "flux_spread": float(1.4826 * np.median(np.abs(ratio - median)))
            if bright.any() else float("nan"), "bright": int(bright.sum())}


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
    """The mosaic with the Image3 catalog's sources over the truth catalog."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from astropy.coordinates import SkyCoord
    from astropy.table import Table
    from astropy.visualization import AsinhStretch, ImageNormalize

    i2d_path = next(products.glob("*_i2d.fits"))
    i2d = datamodels.open(i2d_path)
    truth = Table.read(observation.truth_catalog)
    found = Table.read(next(products.glob("*_cat.ecsv")))
    x, y = i2d.meta.wcs.invert(truth["ra"], truth["dec"], with_bounding_box=False)
    positions = SkyCoord(found["sky_centroid"])
    found_x, found_y = i2d.meta.wcs.invert(positions.ra.deg, positions.dec.deg,
                                           with_bounding_box=False)
    figure, axis = plt.subplots(figsize=(8, 8))
    norm = ImageNormalize(vmin=np.nanmedian(i2d.data) - 0.05,
                          vmax=np.nanpercentile(i2d.data, 99.7), stretch=AsinhStretch(0.05))
    axis.imshow(i2d.data, origin="lower", cmap="gray", norm=norm)
    stars = truth["kind"] == "star"
    axis.scatter(x[stars], y[stars], s=90, facecolors="none", edgecolors="tab:orange",
                 linewidths=0.8, label="truth: stars")
    axis.scatter(x[~stars], y[~stars], s=90, marker="s", facecolors="none",
                 edgecolors="tab:green", linewidths=0.8, label="truth: galaxies")
    axis.scatter(found_x, found_y, s=25, marker="+", color="tab:cyan", linewidths=0.8,
                 label="calwebb catalog")
    axis.set_xlim(-0.5, i2d.data.shape[1] - 0.5)
    axis.set_ylim(-0.5, i2d.data.shape[0] - 0.5)
    axis.set_title(f"calwebb Image3 mosaic (MJy/sr) {i2d_path.name}", fontsize=10)
    axis.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
