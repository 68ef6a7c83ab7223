"""Shared test set-up: helper modules in tests/ importable; loggers restored after each test."""

import logging
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _restore_logging():
    """Commands configure calwebb's loggers for a terminal; undo that after each test."""
    yield
    from calwebb.stpipe.log import LOGGERS

    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
