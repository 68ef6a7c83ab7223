"""Show which reference file every step of a pipeline gets for a file, and why."""

from __future__ import annotations

import argparse

from calwebb import datamodels, references
from calwebb.stpipe.pipeline import Pipeline
from calwebb.stpipe.registry import resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the exposure (FITS or ASDF)")
    parser.add_argument("--pipeline", default="calwebb_detector1",
                        help="pipeline or step whose references to list (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    step_class, _ = resolve(args.pipeline)
    model = datamodels.open(args.file)
    steps = (list(step_class.step_defs.items()) if issubclass(step_class, Pipeline)
             else [(step_class.class_alias or step_class.__name__, step_class)])
    print(f"{args.file}: CRDS context {references.crds_context(model)}")
    print(f"{'step':<20} {'reftype':<12} {'file':<36} {'useafter':<20} matched on")
    for name, child in steps:
        for row in references.explain(model, list(child.reference_file_types)):
            matched = ", ".join(f"{key}={value}" for key, value in row["matched"].items())
            print(f"{name:<20} {row['reftype']:<12} {row['file']:<36} {row['useafter']:<20} "
                  f"{matched}")
    print("parameter references:")
    for class_name in [step_class.__name__] + [child.__name__ for _, child in steps
                                               if child is not step_class]:
        path = references.get_parameter_reference(model, class_name)
        if path:
            print(f"  pars-{class_name.lower():<28} {path}")
    return 0
