"""Logging set-up for the command line and ``Step.call`` users who want it."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager

FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
#: loggers that carry pipeline messages (calwebb's own and the libraries it drives)
LOGGERS = ("calwebb", "CRDS", "tweakwcs", "py.warnings")


#: (level, handlers) of the last configure(), for loggers that libraries create later
_settings: tuple[int | str, list[logging.Handler]] | None = None


def configure(level: str | int = "INFO", log_file: str | None = None,
              stream: str = "stderr") -> None:
    """Send pipeline messages to ``stream`` (stdout, stderr or null) and optionally a file."""
    global _settings
    handlers: list[logging.Handler] = []
    if stream != "null":
        handlers.append(logging.StreamHandler(sys.stdout if stream == "stdout" else sys.stderr))
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    level = level if isinstance(level, int) else level.upper()
    for handler in handlers:  # the level also on handlers: libraries set their modules' own
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
        handler.setLevel(level)
    logging.captureWarnings(True)
    _settings = (level, handlers)
    for name in LOGGERS:
        adopt(name)


def adopt(name: str) -> None:
    """Give logger ``name`` the configured handlers and level, replacing its own (the crds
    client installs a console handler of its own when it is first imported)."""
    if _settings is None:
        return
    level, handlers = _settings
    logger = logging.getLogger(name)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    for handler in handlers:
        logger.addHandler(handler)
    logger.setLevel(level)


def reset() -> None:
    """Undo configure(): calwebb's loggers back to Python's defaults."""
    global _settings
    _settings = None
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


@contextmanager
def quiet(*names: str):
    """Only warnings and errors from the named loggers for the duration (helper steps that a
    step runs inside itself stay silent)."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
