"""Small Stage 2 inputs and references built in memory for step tests."""

import numpy as np

from calwebb import datamodels


def rate_model(shape=(40, 50), seed=0, filter_name="F200W", xstart=1, ystart=1):
    """A NIRCam rate-like image with positive data and variances."""
    rng = np.random.default_rng(seed)
    model = datamodels.ImageModel(
        data=rng.uniform(1, 10, shape).astype(np.float32),
        dq=np.zeros(shape, np.uint32),
        var_poisson=rng.uniform(0.01, 0.1, shape).astype(np.float32),
        var_rnoise=rng.uniform(0.01, 0.1, shape).astype(np.float32))
    model.err = np.sqrt(model.var_poisson + model.var_rnoise)
    meta = model.meta
    meta.instrument.name, meta.instrument.detector = "NIRCAM", "NRCA1"
    meta.instrument.filter, meta.instrument.pupil = filter_name, "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.observation.date, meta.observation.time = "2024-03-01", "12:00:00"
    meta.exposure.mid_time = 60370.5
    ny, nx = shape[-2:]
    meta.subarray.name = "FULL" if (xstart, ystart) == (1, 1) else "SUBTEST"
    meta.subarray.xstart, meta.subarray.ystart = xstart, ystart
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.bunit_data = "DN/s"
    return model


def describe_reference(model, reftype, filter_name="F200W", shape=None):
    meta = model.meta
    meta.reftype = reftype.upper()
    meta.instrument.name, meta.instrument.detector = "NIRCAM", "NRCA1"
    meta.instrument.filter, meta.instrument.pupil = filter_name, "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.useafter, meta.author, meta.pedigree = "2000-01-01T00:00:00", "test", "DUMMY"
    meta.description = f"test {reftype}"
    if shape is not None:
        meta.subarray.name = "FULL"
        meta.subarray.xstart = meta.subarray.ystart = 1
        meta.subarray.ysize, meta.subarray.xsize = shape
    return model
