"""SaturationStep: flag groups at or above the saturation level."""

from calwebb import datamodels, dqflags
from calwebb.saturation.flag import flag_saturation, prepare_thresholds, read_pattern
from calwebb.stpipe import Step


class SaturationStep(Step):
    """Flag SATURATED groups (grown spatially), A/D-floor groups and averaging effects."""

    class_alias = "saturation"
    spec = """
        n_pix_grow_sat = integer(default=1)  # grow saturated regions by this many pixels
        use_readpatt = boolean(default=True)  # use the read pattern to find partly saturated groups
    """
    reference_file_types = ["saturation", "superbias"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        reference = self.open_reference(model, "saturation")
        if reference is None:
            return self.skip_model(model, "no SATURATION reference")
        thresholds, ref_dq = prepare_thresholds(
            reference.data, datamodels.reference_dq(reference, reference.data.shape))
        pattern = bias = None
        if self.use_readpatt and model.meta.exposure.nframes:
            pattern = read_pattern(model.data.shape[1], model.meta.exposure.nframes)
            bias_model = self.open_reference(model, "superbias")
            bias = None if bias_model is None else bias_model.data
        flag_saturation(
            model.data, model.groupdq, thresholds, (ref_dq & dqflags.NO_SAT_CHECK) != 0,
            self.n_pix_grow_sat, pattern, bias,
            model.zeroframe if model.has_array("zeroframe") else None,
        )
        model.pixeldq |= ref_dq
        self.set_status(model, "COMPLETE")
        return model
