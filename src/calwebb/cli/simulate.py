"""Simulate JWST exposures with known truth, their reference files and a CRDS cache."""

from __future__ import annotations

import argparse

from calwebb.errors import SimulationError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instrument", default="nircam",
                        help="nircam, miri or niriss (imaging), or nirspec (spectra, for Stage 1)")
    parser.add_argument("--detectors", nargs="+", default=None,
                        help="detector names (default: NRCA1, MIRIMAGE, NIS or NRS1)")
    parser.add_argument("--exposures", type=int, default=2, help="dither positions")
    parser.add_argument("--subarray", default=None,
                        help="subarray name (default SUB320 for NIRCam, SUB256 for MIRI and "
                             "NIRISS, FULL for NIRSpec)")
    parser.add_argument("--size", type=int, default=None,
                        help="square subarray size instead of --subarray (NIRCam 64/160/320/"
                             "640/2048)")
    parser.add_argument("--filter", default=None,
                        help="filter (default F200W, F770W, F150W or, for NIRSpec, CLEAR)")
    parser.add_argument("--grating", default="PRISM", help="NIRSpec grating")
    parser.add_argument("--readpatt", default=None,
                        help="readout pattern (default RAPID, FASTR1, NISRAPID or NRSIRS2RAPID)")
    parser.add_argument("--ngroups", type=int, default=6)
    parser.add_argument("--nints", type=int, default=1)
    parser.add_argument("--jitter-mas", type=float, default=0.0,
                        help="σ of each exposure's header pointing error, as a guiding error "
                        "(milliarcseconds)")
    parser.add_argument("--roll-jitter-arcsec", type=float, default=0.0,
                        help="σ of each exposure's header roll error (arcseconds)")
    parser.add_argument("--ipc-alpha", type=float, default=0.0,
                        help="inter-pixel capacitance: coupling to each nearest neighbour "
                        "(e.g. 0.01; 0 = none, and no IPC reference)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--outdir", default="simulated", help="output directory")


SIZES = {64: "SUB64P", 160: "SUB160", 320: "SUB320", 640: "SUB640", 2048: "FULL"}
#: per instrument: default detector, filter, readout pattern and subarray
DEFAULTS = {"NIRCAM": ("NRCA1", "F200W", "RAPID", "SUB320"),
            "MIRI": ("MIRIMAGE", "F770W", "FASTR1", "SUB256"),
            "NIRISS": ("NIS", "F150W", "NISRAPID", "SUB256"),
            "NIRSPEC": ("NRS1", "CLEAR", "NRSIRS2RAPID", "FULL")}


def config_from_arguments(args: argparse.Namespace):
    from calwebb.simulate import ObservationConfig

    instrument = args.instrument.upper()
    if instrument not in DEFAULTS:
        raise SimulationError(f"--instrument {args.instrument}: expected nircam, miri, "
                              "niriss or nirspec")
    detector, filter_name, readpatt, default_subarray = DEFAULTS[instrument]
    subarray = args.subarray
    if args.size is not None:
        if instrument != "NIRCAM" or args.size not in SIZES:
            raise SimulationError(f"--size {args.size}: NIRCam sizes are {sorted(SIZES)}; "
                                  "for the other instruments give --subarray")
        subarray = SIZES[args.size]
    if args.ngroups < 1 or args.nints < 1 or args.exposures < 1:
        raise SimulationError("--ngroups, --nints and --exposures must be at least 1")
    if not 0.0 <= args.ipc_alpha < 0.25:
        raise SimulationError(f"--ipc-alpha {args.ipc_alpha}: expected 0 ≤ alpha < 0.25")
    return ObservationConfig(
        instrument=instrument,
        detectors=tuple(args.detectors or (detector,)),
        filter=args.filter or filter_name, grating=args.grating,
        readpatt=args.readpatt or readpatt,
        subarray=subarray or default_subarray,
        ngroups=args.ngroups, nints=args.nints, n_dithers=args.exposures,
        pointing_jitter_mas=args.jitter_mas,
        roll_jitter_arcsec=args.roll_jitter_arcsec, ipc_alpha=args.ipc_alpha, seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    from calwebb.simulate import simulate_observation

    result = simulate_observation(config_from_arguments(args), args.outdir)
    for path in result.uncal_files:
        print(path)
    print(f"truth catalog {result.truth_catalog}; truth rates in {result.truth_rates[0].parent}")
    print(f"reference files in {result.reference_files[0].parent}; CRDS cache {result.crds_path}"
          f" (use: export CRDS_PATH={result.crds_path})")
    if result.level2_asn is not None:
        print(f"associations {result.level2_asn.name}, {result.level3_asn.name}")
    return 0
