"""Run a step or pipeline on input files, with strun's options and spellings."""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from pathlib import Path

from calwebb import parallel
from calwebb.errors import DataModelError, ParameterError
from calwebb.parallel.tasks import FAILED, is_pattern
from calwebb.stpipe import log as logs
from calwebb.stpipe import progress
from calwebb.stpipe.pipeline import Pipeline
from calwebb.stpipe.registry import resolve

ADD_HELP = False
#: framework options that take no value
FLAGS = {"help", "debug", "disable_crds_steppars", "verbose", "quiet", "overwrite"}
#: one-letter spellings of flags
SHORT_FLAGS = {"h": "help", "v": "verbose", "q": "quiet"}
#: framework options that take a value
VALUED = {"save_parameters", "log_level", "log_file", "log_stream", "logcfg", "jobs", "scheduler",
          "dask"}
#: options that make every input (and Level 2 association product) a run of its own
MANY_OPTIONS = ("jobs", "scheduler", "dask", "overwrite")

USAGE = """usage: calwebb run <class|alias|pipeline|parameter-file> <input> [more inputs]
                   [--<param>=<value> ...] [--steps.<step>.<param>=<value> ...]
                   [--save-parameters FILE] [--disable-crds-steppars] [--verbose]
                   [--log-level LEVEL] [--log-file PATH] [--log-stream stdout|stderr|null]
                   [--quiet] [--debug] [--help]
                   [--jobs N] [--scheduler ADDRESS | --dask local] [--overwrite]

Several inputs, glob patterns ('data/*_uncal.fits') or any of --jobs, --scheduler, --dask,
--overwrite run each input on its own (calwebb.parallel): on N local processes, on a Dask
scheduler, or on a Dask LocalCluster of N workers; inputs whose final product exists are
skipped unless --overwrite; failures are listed at the end (exit status 1). calwebb_image3
(and tweakreg, skymatch, outlier_detection, resample) runs here and hands its per-exposure
work to those workers."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.add_argument("arguments", nargs=argparse.REMAINDER)


def parse(tokens: list[str]) -> tuple[list[str], dict[str, str], dict[str, object]]:
    """Split command-line tokens into (positionals, parameter values, framework options)."""
    positionals: list[str] = []
    values: dict[str, str] = {}
    options: dict[str, object] = {}
    tokens = list(tokens)
    while tokens:
        token = tokens.pop(0)
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        key, has_value, value = token.lstrip("-").partition("=")
        option = SHORT_FLAGS.get(key, key.replace("-", "_"))
        if option in FLAGS:
            options[option] = True
            continue
        if not has_value:
            if not tokens:
                raise ParameterError(f"option {token} needs a value")
            value = tokens.pop(0)
        if option in VALUED:
            options[option] = value
        else:
            values[key] = value
    return positionals, values, options


def split_values(values: dict[str, str]) -> tuple[dict, dict]:
    """``{"steps.jump.x": "5", "output_dir": "o"}`` → (``{"output_dir": "o"}``, steps tree)."""
    params: dict = {}
    steps: dict = {}
    for key, value in values.items():
        parts = key.split(".")
        if parts[0] == "steps":
            if len(parts) < 3:
                raise ParameterError(f"--{key}: expected --steps.<step>.<parameter>=value")
            node = steps
            for part in parts[1:-2]:
                node = node.setdefault(part, {}).setdefault("steps", {})
            node.setdefault(parts[-2], {})[parts[-1]] = value
        elif len(parts) == 1:
            params[key] = value
        else:
            raise ParameterError(f"--{key}: unknown option")
    return params, steps


def run(args: argparse.Namespace) -> int:
    positionals, values, options = parse(args.arguments)
    if not positionals:
        print(USAGE)
        return 0 if options.get("help") else 2
    step_class, config_file = resolve(positionals[0])
    if options.get("help"):
        print(describe_parameters(step_class))
        return 0
    inputs = positionals[1:]
    if not inputs:
        raise ParameterError(f"calwebb run {positionals[0]}: no input file given")
    many = runs_many(step_class, inputs, options)
    missing = [name for name in inputs if not Path(values.get("input_dir", ""), name).exists()]
    if missing and not many:
        raise DataModelError(f"{', '.join(missing)}: no such file")
    level = "DEBUG" if options.get("verbose") else options.get("log_level", "INFO")
    logging_settings = dict(level=level, log_file=options.get("log_file"),
                            stream=options.get("log_stream", "stderr"))
    logs.configure(**logging_settings)
    progress.set_enabled(not options.get("quiet"))
    params, steps = split_values(values)
    params["save_results"] = True  # the command line always writes the final product
    if many:
        return run_each(positionals[0], step_class, config_file, inputs, params, steps, options,
                        logging_settings)
    step = step_class.configured(
        inputs[0], config_file=config_file, steps=steps,
        disable_crds_steppars=bool(options.get("disable_crds_steppars")) or None, **params,
    )
    if options.get("save_parameters"):
        step.export_config(options["save_parameters"], include_metadata=True)
    try:
        step.run(*inputs)
    except Exception:
        if options.get("debug"):
            import pdb

            pdb.post_mortem()
        raise
    logging.getLogger("calwebb").info("%s finished", step.name)
    return 0


def runs_many(step_class: type, inputs: list[str], options: dict) -> bool:
    """Whether the inputs are runs of their own rather than the arguments of one run."""
    if any(option in options for option in MANY_OPTIONS) or any(map(is_pattern, inputs)):
        return True
    arguments = list(inspect.signature(step_class.process).parameters.values())[1:]
    takes_several = len(arguments) > 1 or any(
        argument.kind is argument.VAR_POSITIONAL for argument in arguments)
    return len(inputs) > 1 and not takes_several


def run_each(name: str, step_class: type, config_file: str | None, inputs: list[str],
             params: dict, steps: dict, options: dict, logging_settings: dict) -> int:
    """Run every input on its own (calwebb.parallel); report failures; 1 if any failed."""
    jobs = options.get("jobs", "1")
    if not str(jobs).isdigit() or int(jobs) < 1:
        raise ParameterError(f"--jobs {jobs}: expected a whole number of worker processes >= 1")
    scheduler = options.get("scheduler")
    if "dask" in options:
        if options["dask"] != "local":
            raise ParameterError(f"--dask {options['dask']}: the only value is 'local' "
                                 "(use --scheduler ADDRESS for a running cluster)")
        if scheduler:
            raise ParameterError("give either --scheduler or --dask local, not both")
        scheduler = "local"
    disable_crds_steppars = bool(options.get("disable_crds_steppars")) or None
    if options.get("save_parameters"):  # CRDS parameters differ per input: not included
        step_class.configured(None, config_file=config_file, steps=steps, **params).export_config(
            options["save_parameters"], include_metadata=True)
    results = parallel.run_many(
        name, inputs, jobs=int(jobs), scheduler=scheduler,
        overwrite=bool(options.get("overwrite")), steps=steps,
        disable_crds_steppars=disable_crds_steppars, worker_logging=logging_settings, **params)
    print(parallel.report(results), file=sys.stderr)
    return 1 if any(result.status == FAILED for result in results) else 0


def describe_parameters(step_class: type) -> str:
    """Every parameter (and, for pipelines, every --steps.X.Y) with type, default, meaning."""
    lines = [f"{step_class.__name__} ({step_class.class_alias or 'no alias'})",
             (step_class.__doc__ or "").strip().splitlines()[0] if step_class.__doc__ else "",
             "", "parameters:"]
    lines += _parameter_lines(step_class, "")
    if issubclass(step_class, Pipeline):
        for name, child in step_class.step_defs.items():
            lines += ["", f"step {name} ({child.__name__}):"]
            lines += _parameter_lines(child, f"steps.{name}.")
    return "\n".join(lines)


def _parameter_lines(step_class: type, prefix: str) -> list[str]:
    lines = []
    for param in step_class.parameters().values():
        lines.append(f"  --{prefix}{param.name}  {param.describe_type()}, "
                     f"default {param.default!r}")
        if param.description:
            lines.append(f"      {param.description}")
    return lines
