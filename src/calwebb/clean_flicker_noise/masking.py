"""The scene mask: which pixels of a draft rate image are background (True) and may be
used to fit flicker noise. Pure array functions."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags
from calwebb.clean_flicker_noise.background import clip_to_background


def scene_mask(data: np.ndarray, dq: np.ndarray, exp_type: str,
               mask_science_regions: bool = False, n_sigma: float = 2.0,
               fit_histogram: bool = False, single_mask: bool = False) -> np.ndarray:
    """Background mask for a rate image (2-D) or per-integration rates (3-D).

    Masked (False): with ``mask_science_regions``, NIRSpec pixels flagged
    MSA_FAILED_OPEN and MIRI imaging pixels flagged DO_NOT_USE or NON_SCIENCE; always,
    NaN or exactly zero rates; and, when ``n_sigma`` > 0, each image's signal above
    ``n_sigma`` and values below 3 sigma of its clipped background. ``single_mask``
    reduces a 3-D mask to the pixels that are background in every integration.
    """
    exp_type = (exp_type or "").upper()
    mask = np.ones(data.shape, dtype=bool)
    if mask_science_regions and exp_type.startswith("NRS"):
        mask[(dq & dqflags.PIXEL["MSA_FAILED_OPEN"]) != 0] = False
    if mask_science_regions and exp_type == "MIR_IMAGE":
        mask[(dq & (dqflags.DO_NOT_USE | dqflags.NON_SCIENCE)) != 0] = False
    mask[np.isnan(data) | (data == 0)] = False
    if n_sigma > 0:
        for image, plane in zip(data.reshape(-1, *data.shape[-2:]),
                                mask.reshape(-1, *mask.shape[-2:]), strict=True):
            clip_to_background(image, plane, sigma_upper=n_sigma, fit_histogram=fit_histogram)
    if single_mask and mask.ndim == 3:
        mask = mask.all(axis=0)
    return mask


def mask_unusable(mask: np.ndarray, groupdq: np.ndarray) -> None:
    """Unset ``mask`` (in place) where a group is DO_NOT_USE or has a jump."""
    mask[(groupdq & (dqflags.DO_NOT_USE | dqflags.JUMP_DET)) != 0] = False
