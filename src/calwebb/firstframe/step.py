"""FirstFrameStep: drop the first group of MIRI integrations (deprecated, off by default)."""

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.lastframe.flag import flag_group
from calwebb.stpipe import Step


class FirstFrameStep(Step):
    """MIRI, more than three groups: DO_NOT_USE on group 0, except bright pixels if asked."""

    class_alias = "firstframe"
    spec = """
        bright_use_group1 = boolean(default=True)  # keep group 0 where group 2 is saturated
        skip = boolean(default=True)
    """
    input_model_class = datamodels.RampModel

    def process(self, model):
        if (model.meta.instrument.name or "").upper() != "MIRI":
            return self.skip_model(model, "not a MIRI exposure")
        if model.data.shape[1] <= 3:
            return self.skip_model(model, "three groups or fewer")
        if not self.bright_use_group1:
            flag_group(model.groupdq, 0)
        else:
            bright = (model.groupdq[:, 2] & dqflags.SATURATED) != 0
            model.groupdq[:, 0][~bright] |= np.uint8(dqflags.DO_NOT_USE)
            model.pixeldq[bright.any(axis=0)] |= dqflags.FLUX_ESTIMATED
        self.set_status(model, "COMPLETE")
        return model
