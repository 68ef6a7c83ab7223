"""LastFrameStep: drop the last group of MIRI integrations."""

from calwebb import datamodels
from calwebb.lastframe.flag import flag_group
from calwebb.stpipe import Step


class LastFrameStep(Step):
    """MIRI: DO_NOT_USE on the final group when there are more than two groups."""

    class_alias = "lastframe"
    input_model_class = datamodels.RampModel

    def process(self, model):
        if (model.meta.instrument.name or "").upper() != "MIRI":
            return self.skip_model(model, "not a MIRI exposure")
        if model.data.shape[1] <= 2:
            return self.skip_model(model, "two groups or fewer")
        flag_group(model.groupdq, -1)
        self.set_status(model, "COMPLETE")
        return model
