"""A small simulated observation shared by the parallel tests (and by the xdist workers)."""

import fcntl

import pytest

#: three SUB160 exposures of four RAPID groups: quick to simulate and to calibrate
CONFIG = dict(subarray="SUB160", readpatt="RAPID", ngroups=4, n_dithers=3, n_stars=20,
              n_galaxies=3, cosmic_ray_rate=0.0, seed=11)


@pytest.fixture(scope="session")
def observation_dir(tmp_path_factory, worker_id):
    """The observation's directory (uncal files, ``crds/`` cache); simulated once per run."""
    from calwebb.simulate import ObservationConfig, simulate_observation

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # xdist: the workers' temporary directories share a parent
        root = root.parent
    directory = root / "parallel_observation"
    with open(root / "parallel_observation.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / "complete").exists():
            simulate_observation(ObservationConfig(**CONFIG), directory)
            (directory / "complete").touch()
    return directory


@pytest.fixture(scope="module")
def crds_env(observation_dir):
    """Reference selection from the observation's CRDS cache, for a whole test module."""
    from offline_crds import offline_crds

    with offline_crds(observation_dir / "crds"):
        yield observation_dir

