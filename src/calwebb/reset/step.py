"""ResetStep: remove the MIRI reset anomaly from the first groups."""

from calwebb import datamodels
from calwebb.reset.subtract import subtract_reset
from calwebb.stpipe import Step


class ResetStep(Step):
    """Subtract the RESET reference from the leading groups of each integration."""

    class_alias = "reset"
    reference_file_types = ["reset"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        if (model.meta.instrument.name or "").upper() != "MIRI":
            return self.skip_model(model, "not a MIRI exposure")
        reference = self.open_reference(model, "reset")
        if reference is None:
            return self.skip_model(model, "no RESET reference")
        first = (model.meta.exposure.integration_start or 1) - 1
        subtract_reset(model.data, reference.data, first)
        if reference.has_array("dq"):
            model.pixeldq |= reference.dq
        self.set_status(model, "COMPLETE")
        return model
