"""Describe a file: model type, key metadata, arrays and calibration step statuses."""

from __future__ import annotations

import argparse

from calwebb import datamodels
from calwebb.datamodels.io import describe_arrays

KEY_METADATA = (
    "meta.instrument.name", "meta.instrument.detector", "meta.exposure.type",
    "meta.instrument.filter", "meta.instrument.pupil", "meta.instrument.grating",
    "meta.exposure.readpatt", "meta.exposure.nints", "meta.exposure.ngroups",
    "meta.exposure.nframes",
    "meta.subarray.name", "meta.observation.date", "meta.observation.time", "meta.reftype",
    "meta.useafter", "meta.ref_file.crds.context_used",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", help="FITS or ASDF files")


def run(args: argparse.Namespace) -> int:
    for index, path in enumerate(args.files):
        if index:
            print()
        print(describe(path))
    return 0


def describe(path: str) -> str:
    model = datamodels.open(path)
    flat = model.to_flat_dict()
    lines = [f"{path}: {type(model).__name__}"]
    for key in KEY_METADATA:
        if flat.get(key) is not None:
            lines.append(f"  {key.removeprefix('meta.'):<32} {flat[key]}")
    lines.append("  arrays:")
    for extname, shape, dtype in describe_arrays(path):
        lines.append(f"    {extname:<12} {str(shape):<24} {dtype}")
    statuses = {key.removeprefix("meta.cal_step."): value for key, value in flat.items()
                if key.startswith("meta.cal_step.")}
    if statuses:
        lines.append("  steps:")
        lines += [f"    {name:<24} {value}" for name, value in statuses.items()]
    return "\n".join(lines)
