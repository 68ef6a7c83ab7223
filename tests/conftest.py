"""Shared test set-up: helper modules in tests/ importable; loggers restored after each test."""

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="session")
def _session_cache_dir(tmp_path_factory):
    """calwebb's cache (remembered parses, the default local reference set) in a directory of
    the test session, not the user's."""
    previous = os.environ.get("CALWEBB_CACHE_DIR")
    os.environ["CALWEBB_CACHE_DIR"] = str(tmp_path_factory.mktemp("calwebb-cache"))
    yield
    if previous is None:
        os.environ.pop("CALWEBB_CACHE_DIR", None)
    else:
        os.environ["CALWEBB_CACHE_DIR"] = previous


@pytest.fixture(autouse=True)
def _restore_logging():
    """Commands configure calwebb's loggers for a terminal; undo that after each test."""
    yield
    from calwebb.stpipe import log

    log.reset()


@pytest.fixture
def no_reference_source(monkeypatch, tmp_path):
    """No CRDS configuration and no local reference set, whatever this machine has (the toy
    pipelines' GAIN is never needed, so their prefetch must not find CRDS to ask)."""
    from calwebb import references

    for variable in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CALWEBB_REFS", str(tmp_path / "no-reference-set"))
    references.forget_crds_state()
    yield
    references.forget_crds_state()


@pytest.fixture
def huge_page_advice_on(monkeypatch):
    """numpy's huge-page advice on for the test and NUMPY_MADVISE_HUGEPAGE unset (skipped
    where numpy has no such switch)."""
    from calwebb import memory

    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    previous = memory.advise_huge_pages(True)
    if previous is None:
        pytest.skip("this numpy has no huge-page advice switch")
    yield
    memory.advise_huge_pages(previous)


@pytest.fixture(scope="session")
def imaging_observation(tmp_path_factory):
    """A small simulated NIRCam imaging observation (2 dithers of SUB160, no cosmic rays)."""
    from calwebb.simulate import ObservationConfig, simulate_observation

    config = ObservationConfig(subarray="SUB160", readpatt="RAPID", ngroups=5, n_dithers=2,
                               n_stars=30, n_galaxies=5, cosmic_ray_rate=0.0, seed=3)
    return simulate_observation(config, tmp_path_factory.mktemp("imaging"))


@pytest.fixture
def imaging_crds(imaging_observation):
    """Reference selection from the imaging observation's CRDS cache."""
    from offline_crds import offline_crds

    with offline_crds(imaging_observation.crds_path):
        yield imaging_observation


@pytest.fixture(scope="session")
def stage3_observation(tmp_path_factory):
    """Three dithered SUB640 NIRCam cal images with guiding errors and cosmic rays
    (tests/stage3_observation.py)."""
    from stage3_observation import build

    return build(tmp_path_factory.mktemp("stage3"))


@pytest.fixture
def striped_exposure(tmp_path):
    """A function of the mode giving (uncal path, true rate) of a striped exposure in
    ``tmp_path``, its references selected from an offline CRDS cache for the test."""
    from offline_crds import offline_crds
    from stripe_exposure import write_striped_exposure

    with ExitStack() as stack:
        def build(mode):
            uncal, cache, rate = write_striped_exposure(tmp_path, mode)
            stack.enter_context(offline_crds(cache))
            return uncal, rate
        yield build
