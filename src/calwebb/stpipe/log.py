"""Logging set-up for the command line and ``Step.call`` users who want it."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
#: loggers that carry pipeline messages (calwebb's own and the libraries it drives)
LOGGERS = ("calwebb", "CRDS", "tweakwcs", "py.warnings")


def configure(level: str | int = "INFO", log_file: str | None = None,
              stream: str = "stderr") -> None:
    """Send pipeline messages to ``stream`` (stdout, stderr or null) and optionally a file."""
    handlers: list[logging.Handler] = []
    if stream != "null":
        handlers.append(logging.StreamHandler(sys.stdout if stream == "stdout" else sys.stderr))
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    logging.captureWarnings(True)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level if isinstance(level, int) else level.upper())
