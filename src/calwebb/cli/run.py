"""Run a step or pipeline on input files, with strun's options and spellings."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from calwebb.errors import DataModelError, ParameterError
from calwebb.stpipe import log as logs
from calwebb.stpipe import progress
from calwebb.stpipe.pipeline import Pipeline
from calwebb.stpipe.registry import resolve

ADD_HELP = False
#: framework options that take no value
FLAGS = {"help", "debug", "disable_crds_steppars", "verbose", "quiet"}
#: one-letter spellings of flags
SHORT_FLAGS = {"h": "help", "v": "verbose", "q": "quiet"}
#: framework options that take a value
VALUED = {"save_parameters", "log_level", "log_file", "log_stream", "logcfg"}

USAGE = """usage: calwebb run <class|alias|pipeline|parameter-file> <input> [more inputs]
                   [--<param>=<value> ...] [--steps.<step>.<param>=<value> ...]
                   [--save-parameters FILE] [--disable-crds-steppars] [--verbose]
                   [--log-level LEVEL] [--log-file PATH] [--log-stream stdout|stderr|null]
                   [--quiet] [--debug] [--help]"""


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
    missing = [name for name in inputs if not Path(values.get("input_dir", ""), name).exists()]
    if missing:
        raise DataModelError(f"{', '.join(missing)}: no such file")
    level = "DEBUG" if options.get("verbose") else options.get("log_level", "INFO")
    logs.configure(level, options.get("log_file"), options.get("log_stream", "stderr"))
    progress.set_enabled(not options.get("quiet"))
    params, steps = split_values(values)
    params["save_results"] = True  # the command line always writes the final product
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
