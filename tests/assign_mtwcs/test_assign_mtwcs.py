"""assign_mtwcs: a moving_target frame that follows the target (stage3.md §2.2)."""

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.assign_mtwcs.moving_target import FRAME_NAME, mean_position
from calwebb.assign_mtwcs.step import AssignMTWcsStep
from calwebb.associations.library import ModelLibrary

#: the target's apparent motion between the three exposures, degrees
TRACK = [(0.0, 0.0), (2e-4, -1e-4), (4e-4, -2e-4)]


@pytest.fixture(autouse=True)
def _no_parameter_references(monkeypatch):
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")


@pytest.fixture
def moving_cals(stage3_observation):
    """Copies of the Stage 3 cal images, marked as observing a moving target."""
    cals = []
    for cal, (d_ra, d_dec) in zip(stage3_observation.cals, TRACK, strict=True):
        model = cal.copy()
        model.meta.target.type = "MOVING"
        model.meta.wcsinfo.mt_ra = 150.0 + d_ra
        model.meta.wcsinfo.mt_dec = 2.0 + d_dec
        cals.append(model)
    return cals


def test_mean_position_is_the_plain_average():
    assert mean_position([(10.0, -5.0), (10.3, -5.1), (10.6, -5.5)]) == pytest.approx(
        (10.3, -5.2), abs=1e-12)


def test_world_coordinates_move_with_the_target(moving_cals):
    originals = [model.meta.wcs for model in moving_cals]
    with AssignMTWcsStep.call(moving_cals) as result:
        mean_ra, mean_dec = 150.0 + 2e-4, 2.0 - 1e-4
        y, x = np.mgrid[0:600:50, 0:600:50]
        for index in range(len(result)):
            model = result.borrow(index)
            assert model.meta.wcs.output_frame.name == FRAME_NAME
            ra, dec = model.meta.wcs(x, y)
            ra0, dec0 = originals[index](x, y)
            own_ra, own_dec = 150.0 + TRACK[index][0], 2.0 + TRACK[index][1]
            np.testing.assert_allclose(ra - ra0, mean_ra - own_ra, atol=1e-10)
            np.testing.assert_allclose(dec - dec0, mean_dec - own_dec, atol=1e-10)
            # the inverse leads back to the same pixels (to the distortion inverse's 1e-4 px)
            back_x, back_y = model.meta.wcs.invert(ra, dec, with_bounding_box=False)
            np.testing.assert_allclose(back_x, x, atol=1e-4)
            np.testing.assert_allclose(back_y, y, atol=1e-4)
            assert model.meta.wcsinfo.mt_avra == pytest.approx(mean_ra, abs=1e-12)
            assert model.meta.wcsinfo.mt_avdec == pytest.approx(mean_dec, abs=1e-12)
            assert model.meta.cal_step.assign_mtwcs == "COMPLETE"
            assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            result.shelve(model, index, modify=False)
    for model, original in zip(moving_cals, originals, strict=True):
        assert model.meta.wcs is original  # the caller's models are untouched


def test_a_second_run_replaces_the_frame(moving_cals):
    once = AssignMTWcsStep.call(moving_cals)
    twice = AssignMTWcsStep.call(once)
    with twice:
        model = twice.borrow(2)
        frames = [step.frame.name for step in model.meta.wcs.pipeline]
        assert frames.count(FRAME_NAME) == 1
        ra, _ = model.meta.wcs(100.0, 100.0)
        ra0, _ = moving_cals[2].meta.wcs(100.0, 100.0)
        assert ra - ra0 == pytest.approx(-2e-4, abs=1e-10)
        twice.shelve(model, 2, modify=False)


def test_moving_target_wcs_survives_a_save(moving_cals, tmp_path):
    with AssignMTWcsStep.call(moving_cals) as result:
        model = result.borrow(0)
        path = tmp_path / "moved_cal.fits"
        model.save(path)
        expected = model.meta.wcs(200.0, 300.0)
        result.shelve(model, 0, modify=False)
    reopened = datamodels.open(path)
    assert reopened.meta.wcs.output_frame.name == FRAME_NAME
    np.testing.assert_allclose(reopened.meta.wcs(200.0, 300.0), expected, atol=1e-12)


def test_missing_target_positions_skip_the_step(moving_cals, caplog):
    moving_cals[1].meta.wcsinfo.mt_dec = None
    library = AssignMTWcsStep.call(ModelLibrary(moving_cals))
    assert "MT_RA/MT_DEC missing" in caplog.text
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            assert model.meta.cal_step.assign_mtwcs == "SKIPPED"
            assert model.meta.wcs.output_frame.name != FRAME_NAME
            library.shelve(model, index, modify=False)
