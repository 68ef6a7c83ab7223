"""The step/pipeline framework: parameters, precedence, naming, saving, logging."""

from calwebb.stpipe.pipeline import Pipeline
from calwebb.stpipe.step import Step

__all__ = ["Pipeline", "Step"]
