"""Persistence windows: flags start at first saturation and last persistence_time seconds."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.persistence.step import PersistenceStep

PERS, SAT, DNU = dqflags.PERSISTENCE, dqflags.SATURATED, dqflags.DO_NOT_USE


def ramp(nints=2, ngroups=6):
    model = datamodels.RampModel((nints, ngroups, 4, 4))
    model.meta.instrument.name, model.meta.instrument.detector = "NIRCAM", "NRCA1"
    model.meta.exposure.group_time = 10.0
    model.meta.exposure.integration_time = 60.0
    model.meta.exposure.start_time = 60000.0
    return model


def test_window_starts_at_first_saturation_and_spans_integrations(tmp_path):
    model = ramp()
    model.groupdq[0, 2:, 1, 1] = SAT
    result = PersistenceStep.call(model, persistence_time=75, persistence_dnu=True,
                                  save_persistence=str(tmp_path / "windows"))
    flagged = (result.groupdq[:, :, 1, 1] & PERS) != 0
    # opened at group 2 (t = 30 s), open until t = 105 s: groups 2-5 of integration 0
    # (30..60 s) and groups 0-3 of integration 1 (70..100 s)
    assert flagged[0].tolist() == [False, False, True, True, True, True]
    assert flagged[1].tolist() == [True, True, True, True, False, False]
    assert (result.groupdq[0, 2, 1, 1] & DNU) and not result.groupdq[0, :, 0, 0].any()
    # one integration (groups at 10..60 s) leaves the window open until 105 s; a later
    # exposure continues it from the saved file
    single = ramp(nints=1)
    single.groupdq[0, 2:, 1, 1] = SAT
    PersistenceStep.call(single, persistence_time=75, save_persistence=str(tmp_path / "w"))
    assert (tmp_path / "w.asdf").exists()
    later = ramp(nints=1)
    later.meta.exposure.start_time = 60000.0 + 80 / 86400  # groups at t = 90, 100, 110 … s
    continued = PersistenceStep.call(later, persistence_time=75,
                                     persistence_array_file=str(tmp_path / "w.asdf"))
    flagged = (continued.groupdq[0, :, 1, 1] & PERS) != 0
    assert flagged.tolist() == [True, True, False, False, False, False]  # window ends at 105 s


def test_off_by_default_and_no_time_means_no_flags():
    model = ramp()
    model.groupdq[0, 2:, 1, 1] = SAT
    assert not (PersistenceStep.call(model).groupdq & PERS).any()
    assert PersistenceStep.parameters()["skip"].default is True


@pytest.mark.compare
def test_matches_the_official_flagging():
    official = pytest.importorskip("jwst.persistence.persistence")
    from stdatamodels.jwst import datamodels as official_models

    rng = np.random.default_rng(3)
    model = ramp(nints=3, ngroups=7)
    first = rng.integers(0, 10, (3, 4, 4))
    model.groupdq[...] = np.where(np.arange(7)[None, :, None, None] >= first[:, None], SAT, 0)
    model.data[...] = rng.uniform(0, 200, model.data.shape)
    ours = PersistenceStep.call(model, persistence_time=45, dn_threshold=150.0)
    theirs = official_models.RampModel(data=model.data.copy(), groupdq=model.groupdq.copy())
    theirs.meta.exposure.group_time, theirs.meta.exposure.integration_time = 10.0, 60.0
    theirs.meta.exposure.start_time = 60000.0
    dataset = official.DataSet(theirs, None, 45, 150.0, np.zeros((4, 4)), False)
    result, _ = dataset.do_all()
    np.testing.assert_array_equal(ours.groupdq, result.groupdq)
