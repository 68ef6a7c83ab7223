"""SaturationStep: flag groups at or above the saturation level."""

from calwebb import datamodels, dqflags
from calwebb.irs2 import IRS2Layout, is_irs2
from calwebb.saturation.flag import flag_saturation, prepare_thresholds, read_pattern
from calwebb.saturation.irs2 import flag_saturation_irs2, normal_part
from calwebb.stpipe import Step
from calwebb.stripes import stripe_views, superstripe_count


class SaturationStep(Step):
    """Flag SATURATED groups (grown spatially), A/D-floor groups and averaging effects;
    NIRSpec IRS2 ramps on their normal pixels only; superstripes with each stripe's
    thresholds."""

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
        pattern = bias = None
        if self.use_readpatt and model.meta.exposure.nframes:
            pattern = read_pattern(model.data.shape[1], model.meta.exposure.nframes)
            bias_model = self.open_reference(model, "superbias")
            bias = None if bias_model is None else bias_model.data
        zeroframe = model.zeroframe if model.has_array("zeroframe") else None
        thresholds = reference.data
        ref_dq = datamodels.reference_dq(reference, thresholds.shape)
        if is_irs2(model.data.shape):
            self._flag_irs2(model, thresholds, ref_dq, pattern, bias, zeroframe)
        else:
            thresholds, ref_dq = prepare_thresholds(thresholds, ref_dq)
            unchecked = (ref_dq & dqflags.NO_SAT_CHECK) != 0
            for plane, integrations in stripe_views(superstripe_count(model)):
                flag_saturation(model.data[integrations], model.groupdq[integrations],
                                thresholds[plane], unchecked[plane], self.n_pix_grow_sat,
                                pattern, None if bias is None else bias[plane],
                                None if zeroframe is None else zeroframe[integrations])
            model.pixeldq |= ref_dq
        self.set_status(model, "COMPLETE")
        return model

    def _flag_irs2(self, model, thresholds, ref_dq, pattern, bias, zeroframe):
        """Flag an IRS2 ramp on its normal rows; the references may cover the whole frame or
        its normal rows only."""
        rows, frame_rows = IRS2Layout.of(model).normal_rows(), model.data.shape[-2]
        thresholds, ref_dq = prepare_thresholds(
            normal_part(thresholds, rows, frame_rows, "SATURATION reference"),
            normal_part(ref_dq, rows, frame_rows, "SATURATION reference"))
        if bias is not None:
            bias = normal_part(bias, rows, frame_rows, "SUPERBIAS reference")
        flag_saturation_irs2(model.data, model.groupdq, thresholds, rows, self.n_pix_grow_sat,
                             pattern, bias, zeroframe)
        model.pixeldq[rows] |= ref_dq
