"""Cal images for the Stage 3 benchmarks: a simulated truth rate with noise and unflagged
cosmic rays, through calwebb's Image2Pipeline (resample skipped)."""

from __future__ import annotations

from pathlib import Path


def noisy_cal(truth: Path, uncal_name: str, seed: int, cosmic_rays: int):
    """The cal model of ``truth`` (a truth rate file) with read + Poisson-like noise, the
    variance arrays a real rate has and ``cosmic_rays`` hits of 10–100 σ; named after
    ``uncal_name``."""
    import numpy as np

    from calwebb import datamodels
    from calwebb.pipeline.image2 import Image2Pipeline

    rate = datamodels.open(truth)
    rng = np.random.default_rng(seed)
    shape = rate.data.shape
    var_poisson = (np.abs(rate.data) * 0.05).astype(np.float32)
    var_rnoise = np.full(shape, 0.01, np.float32)
    noise = np.sqrt(var_poisson + var_rnoise)
    data = rate.data + rng.normal(size=shape).astype(np.float32) * noise
    rows = rng.integers(8, shape[0] - 8, cosmic_rays)
    columns = rng.integers(8, shape[1] - 8, cosmic_rays)
    data[rows, columns] += rng.uniform(10.0, 100.0, cosmic_rays) * noise[rows, columns]
    rate.data = data.astype(np.float32)
    rate.var_poisson, rate.var_rnoise = var_poisson, var_rnoise
    rate.err = noise.astype(np.float32)
    rate.dq = np.zeros(shape, np.uint32)
    rate.meta.filename = uncal_name.replace("_uncal", "_rate")
    cal = Image2Pipeline.call(rate, steps={"resample": {"skip": True}})
    cal.meta.filename = uncal_name.replace("_uncal", "_cal")
    return cal
