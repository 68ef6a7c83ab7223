"""calwebb: an independent, fast implementation of the JWST Science Calibration Pipeline."""

import os

__version__ = "0.1.0"

# The numba kernels run in short parallel bursts between stretches of Python. OpenMP worker
# threads that spin while they wait for the next burst only burn the other cores (about 15 %
# of the CPU time of a Detector1 run, with no gain in wall time); waiting asleep costs
# nothing. Read once, when numba starts its OpenMP threads; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
