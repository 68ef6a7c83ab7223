"""SuperBiasStep: remove the bias level of every pixel."""

from calwebb import datamodels
from calwebb.stpipe import Step
from calwebb.superbias.subtract import subtract_bias, subtract_bias_zeroframe


class SuperBiasStep(Step):
    """Subtract the SUPERBIAS reference from every group; OR its DQ into PIXELDQ."""

    class_alias = "superbias"
    reference_file_types = ["superbias"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        bias = self.open_reference(model, "superbias")
        if bias is None:
            return self.skip_model(model, "no SUPERBIAS reference")
        subtract_bias(model.data, bias.data)
        if model.has_array("zeroframe"):
            subtract_bias_zeroframe(model.zeroframe, bias.data)
        if bias.has_array("dq"):
            model.pixeldq |= bias.dq
        self.set_status(model, "COMPLETE")
        return model
