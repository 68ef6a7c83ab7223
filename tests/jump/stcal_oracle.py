"""Running stcal's jump detection on a calwebb ramp model, as the oracle of compare tests."""

import numpy as np
import pytest

from calwebb import dqflags

TGROUP = 10.737


def run_stcal(model, refs, snowballs=False, showers=False):
    """(group DQ, pixel DQ, large events) from stcal with the official step's defaults."""
    jump_module = pytest.importorskip("stcal.jump.jump")
    from stcal.jump.jump_class import JumpData

    data = JumpData(gain2d=refs["override_gain"].data.copy(),
                    rnoise2d=refs["override_readnoise"].data.copy(), dqflags=dqflags.PIXEL)
    data.init_arrays_from_arrays(model.data.copy(), model.groupdq.copy(), model.pixeldq.copy())
    data.nframes = 1
    data.dt_group = np.ones(1)
    data.n_reads_groupdiff = np.ones(1) * 2
    data.set_detection_settings(4.0, 6.0, 5.0, 1000, 10, True)
    data.set_after_jump(0.0, 0, 0.0, 0)
    data.set_snowball_info(snowballs, 5.0, 1.0, 2.0, True, 2.5, 4, 25)
    data.set_shower_info(showers, 1.2, 90, 1, 2.6, 1.1, 10, 400)
    data.set_sigma_clipping_info(3, 100, True)
    data.max_cores = "1"
    data.grp_time = TGROUP
    data.grps_masked_after_shower = int(15 // TGROUP)
    data.mask_persist_grps_next_int = True
    data.persist_grps_flagged = int(4000 // TGROUP)
    data.max_shower_amplitude = 6 * TGROUP
    gdq, pdq, _, events = jump_module.detect_jumps_data(data)
    return gdq, pdq, events
