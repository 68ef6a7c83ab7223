"""SuperBiasStep: remove the bias level of every pixel."""

from calwebb import datamodels
from calwebb.stpipe import Step
from calwebb.stripes import stripe_views, superstripe_count
from calwebb.superbias.subtract import subtract_bias, subtract_bias_zeroframe


class SuperBiasStep(Step):
    """Subtract the SUPERBIAS reference from every group; OR its DQ into PIXELDQ (for
    superstripes, each stripe's bias from the integrations that read it)."""

    class_alias = "superbias"
    reference_file_types = ["superbias"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        bias = self.open_reference(model, "superbias")
        if bias is None:
            return self.skip_model(model, "no SUPERBIAS reference")
        image = bias.array_part("data")  # (read for the purpose: not kept beside the DQ)
        for plane, integrations in stripe_views(superstripe_count(model)):
            subtract_bias(model.data[integrations], image[plane])
            if model.has_array("zeroframe"):
                subtract_bias_zeroframe(model.zeroframe[integrations], image[plane])
        del image
        if bias.has_array("dq"):
            model.pixeldq |= bias.array_part("dq")
        self.set_status(model, "COMPLETE")
        return model
