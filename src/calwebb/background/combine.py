"""Imaging background: sigma-clipped average of background exposures (stage2.md §4.6)."""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clip


def clipped_mean(stack: np.ndarray, errors: np.ndarray, dq: np.ndarray, sigma: float,
                 maxiters: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, error of the mean, OR of DQ) over the first axis of ``stack``, after iterative
    sigma clipping along it; a pixel clipped in every plane is NaN."""
    clipped = sigma_clip(stack, sigma=sigma, maxiters=maxiters, axis=0, masked=True,
                         copy=True)
    used = ~np.ma.getmaskarray(clipped) & np.isfinite(stack)
    count = used.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used, stack, 0).sum(axis=0) / count
        error = np.sqrt(np.where(used, errors * errors, 0).sum(axis=0)) / count
    combined_dq = np.bitwise_or.reduce(dq, axis=0)
    return mean.astype(np.float32), error.astype(np.float32), combined_dq.astype(np.uint32)


def average_background(exposures: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                       sigma: float, maxiters: int | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Combine background exposures, each (data, err, dq) 2-D or [nints, ny, nx]: integrations
    are clipped and averaged per exposure first, then the exposures."""
    per_exposure = [clipped_mean(data, err, dq, sigma, maxiters) if data.ndim == 3
                    else (data, err, dq) for data, err, dq in exposures]
    stack = np.stack([item[0] for item in per_exposure])
    errors = np.stack([item[1] for item in per_exposure])
    dqs = np.stack([item[2] for item in per_exposure])
    return clipped_mean(stack, errors, dqs, sigma, maxiters)
