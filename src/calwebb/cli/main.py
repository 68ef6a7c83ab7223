"""``calwebb``: the command-line entry point; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import sys

import calwebb
from calwebb.errors import CalwebbError

#: subcommand modules under calwebb.cli, each with add_arguments(parser) and run(args) -> int
SUBCOMMANDS = ("run", "info", "refs", "asn", "simulate", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="calwebb",
        description="JWST science calibration: the official pipeline's steps, faster.",
    )
    parser.add_argument("--version", action="version", version=f"calwebb {calwebb.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"calwebb.cli.{name}")
        doc = (module.__doc__ or "").strip().splitlines()[0]
        sub = subparsers.add_parser(name, help=doc, description=doc,
                                    add_help=getattr(module, "ADD_HELP", True))
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return args.handler(args)
    except CalwebbError as exc:
        print(f"calwebb: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("calwebb: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, traceback in the debug log
        logging.getLogger("calwebb").debug("traceback", exc_info=True)
        print(f"calwebb: internal error: {type(exc).__name__}: {exc} "
              "(run with --verbose for a traceback)", file=sys.stderr)
        return 1


def entry_point() -> None:
    """The ``calwebb`` console script: ``main``, then the end of the process.

    By then every product is written and closed. The objects left are frozen out of the
    garbage collector (``gc.freeze``), which the interpreter's shutdown would otherwise walk
    at each of its collections while it tears the modules down: 0.5 s after a MIRI
    Detector1 run, a fifth of the command's time. They are freed with the process."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
