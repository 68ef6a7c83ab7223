"""calwebb: an independent, fast implementation of the JWST Science Calibration Pipeline."""

__version__ = "0.1.0"
