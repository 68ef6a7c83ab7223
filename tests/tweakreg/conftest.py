"""A dithered NIRCam observation whose headers carry guiding errors, calibrated to cal images,
with the true WCS of every exposure."""

import numpy as np
import pytest

from calwebb import datamodels, references
from calwebb.simulate import ObservationConfig, simulate_observation

JITTER_MAS = 150.0
ROLL_JITTER_ARCSEC = 20.0


def noisy_rate(truth_path, header_source, seed):
    """The truth rate with read + Poisson-like noise and the (erroneous) uncal headers."""
    truth = datamodels.open(truth_path)
    rng = np.random.default_rng(seed)
    variance = 0.02 + np.abs(truth.data) * 0.01
    model = datamodels.ImageModel(
        data=(truth.data + rng.normal(size=truth.data.shape) * np.sqrt(variance)).astype(
            np.float32),
        dq=np.zeros(truth.data.shape, np.uint32),
        var_rnoise=np.full(truth.data.shape, 0.02, np.float32),
        var_poisson=(np.abs(truth.data) * 0.01).astype(np.float32))
    model.err = np.sqrt(model.var_rnoise + model.var_poisson)
    model.tree["meta"] = dict(datamodels.open(header_source).tree["meta"])
    model.meta.bunit_data = "DN/s"
    model.meta.filename = header_source.name.replace("_uncal", "_rate")
    return model


@pytest.fixture(scope="session")
def jittered(tmp_path_factory):
    """(cal models with header WCSs, true WCSs, observation) for 3 exposures."""
    from calwebb.assign_wcs.step import AssignWcsStep
    from calwebb.pipeline.image2 import Image2Pipeline

    directory = tmp_path_factory.mktemp("jittered")
    config = ObservationConfig(subarray="SUB640", readpatt="RAPID", ngroups=2, n_dithers=3,
                               n_stars=100, n_galaxies=10, cosmic_ray_rate=0.0, seed=11,
                               pointing_jitter_mas=JITTER_MAS,
                               roll_jitter_arcsec=ROLL_JITTER_ARCSEC)
    observation = simulate_observation(config, directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRDS_PATH", str(observation.crds_path))
        patch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
        patch.delenv("CRDS_SERVER_URL", raising=False)
        patch.delenv("CRDS_CONTEXT", raising=False)
        references.forget_crds_state()
        cals, truths = [], []
        for index, (uncal, truth) in enumerate(zip(observation.uncal_files,
                                                   observation.truth_rates, strict=True)):
            rate = noisy_rate(truth, uncal, seed=index)
            cal = Image2Pipeline.call(rate, steps={"resample": {"skip": True}})
            cal.meta.filename = uncal.name.replace("_uncal", "_cal")
            cal.save(directory / cal.meta.filename)
            cals.append(cal)
            truths.append(AssignWcsStep.call(datamodels.open(truth)).meta.wcs)
        references.forget_crds_state()
    return cals, truths, observation
