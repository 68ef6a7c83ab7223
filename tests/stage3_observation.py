"""A dithered NIRCam observation for Stage 3 tests: cal images whose headers carry guiding
errors and whose pixels carry unflagged cosmic rays, with the true WCS of every exposure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.simulate import ObservationConfig, SimulatedObservation, simulate_observation
from offline_crds import offline_crds

JITTER_MAS = 150.0
ROLL_JITTER_ARCSEC = 20.0
COSMIC_RAYS_PER_EXPOSURE = 40


@dataclass
class Stage3Observation:
    cals: list  # cal ImageModels (also saved as *_cal.fits beside the association)
    true_wcs: list  # the true gwcs of each exposure
    cosmic_rays: list  # per exposure: (rows, columns, amplitudes in σ)
    observation: SimulatedObservation
    directory: Path


def noisy_rate(truth_path, header_source, seed):
    """The truth rate plus read + Poisson-like noise and unflagged cosmic rays (5–100 σ),
    with the (erroneous) uncal headers; returns (model, (rows, columns, amplitudes))."""
    truth = datamodels.open(truth_path)
    rng = np.random.default_rng(seed)
    shape = truth.data.shape
    variance = 0.02 + np.abs(truth.data) * 0.01
    data = truth.data + rng.normal(size=shape) * np.sqrt(variance)
    rows = rng.integers(8, shape[0] - 8, COSMIC_RAYS_PER_EXPOSURE)
    columns = rng.integers(8, shape[1] - 8, COSMIC_RAYS_PER_EXPOSURE)
    amplitudes = rng.uniform(5.0, 100.0, COSMIC_RAYS_PER_EXPOSURE)
    data[rows, columns] += amplitudes * np.sqrt(variance[rows, columns])
    model = datamodels.ImageModel(
        data=data.astype(np.float32), dq=np.zeros(shape, np.uint32),
        var_rnoise=np.full(shape, 0.02, np.float32),
        var_poisson=(np.abs(truth.data) * 0.01).astype(np.float32))
    model.err = np.sqrt(model.var_rnoise + model.var_poisson)
    model.tree["meta"] = dict(datamodels.open(header_source).tree["meta"])
    model.meta.bunit_data = "DN/s"
    model.meta.filename = header_source.name.replace("_uncal", "_rate")
    return model, (rows, columns, amplitudes)


def build(directory: Path) -> Stage3Observation:
    from calwebb.assign_wcs.step import AssignWcsStep
    from calwebb.pipeline.image2 import Image2Pipeline

    config = ObservationConfig(subarray="SUB640", readpatt="RAPID", ngroups=2, n_dithers=3,
                               n_stars=100, n_galaxies=10, cosmic_ray_rate=0.0, seed=11,
                               pointing_jitter_mas=JITTER_MAS,
                               roll_jitter_arcsec=ROLL_JITTER_ARCSEC)
    observation = simulate_observation(config, directory)
    cals, truths, hits = [], [], []
    with offline_crds(observation.crds_path):
        for index, (uncal, truth) in enumerate(zip(observation.uncal_files,
                                                   observation.truth_rates, strict=True)):
            rate, injected = noisy_rate(truth, uncal, seed=index)
            cal = Image2Pipeline.call(rate, steps={"resample": {"skip": True}})
            cal.meta.filename = uncal.name.replace("_uncal", "_cal")
            cal.save(directory / cal.meta.filename)
            cals.append(cal)
            hits.append(injected)
            truths.append(AssignWcsStep.call(datamodels.open(truth)).meta.wcs)
    return Stage3Observation(cals, truths, hits, observation, directory)
