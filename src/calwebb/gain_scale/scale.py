"""Scaling slopes by a gain factor."""

import numpy as np


def scale_by_gain_factor(model_arrays: dict[str, np.ndarray], factor: float) -> None:
    """SCI and ERR × factor, VAR_POISSON and VAR_RNOISE × factor², in place."""
    for name in ("data", "err"):
        if model_arrays.get(name) is not None:
            model_arrays[name] *= np.float32(factor)
    for name in ("var_poisson", "var_rnoise"):
        if model_arrays.get(name) is not None:
            model_arrays[name] *= np.float32(factor * factor)
