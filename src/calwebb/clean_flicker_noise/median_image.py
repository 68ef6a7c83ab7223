"""The scaled median image across integrations (``background_method='median_image'``).

For exposures with several integrations the astrophysical scene repeats: its median
over integrations, scaled to each integration's brightness, is subtracted before the
noise fit and added back afterwards, so only noise is fitted. Pure array functions.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)


def integration_scale(rates: np.ndarray) -> np.ndarray:
    """Each integration's median rate over the median of those medians (non-finite values
    replaced by the median of the finite ones). Raises ValueError when none is finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.nanmedian(rates, axis=(1, 2))
        scale = level / np.nanmedian(level)
    invalid = ~np.isfinite(scale)
    if invalid.all():
        raise ValueError("no valid flux for scaling")
    if invalid.any():
        log.warning("%d integration(s) out of %d had no finite median flux and are scaled by "
                    "the median scale instead", invalid.sum(), len(scale))
        scale[invalid] = np.median(scale[~invalid])
    return scale


def scaled_median_image(stack: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``scale[i]`` × the NaN-ignoring median over integrations of ``stack`` (rates per
    integration, 3-D, or ramps, 4-D: per group); shaped like ``stack``."""
    if stack.ndim < 3 or stack.shape[0] < 2:
        raise ValueError("a median image needs at least two integrations")
    median = np.empty(stack.shape[1:], dtype=stack.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if stack.ndim == 3:
            median[...] = np.nanmedian(stack, axis=0)
        else:
            for group in range(stack.shape[1]):  # one group at a time bounds the memory
                median[group] = np.nanmedian(stack[:, group], axis=0)
    return scale.reshape(-1, *([1] * (stack.ndim - 1))) * median[None]
