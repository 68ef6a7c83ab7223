"""SaturationStep: flag groups at or above the saturation level."""

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.irs2 import IRS2Layout, is_irs2
from calwebb.saturation.flag import flag_saturation, prepare_thresholds, read_pattern
from calwebb.saturation.irs2 import flag_saturation_irs2, flag_second_group_irs2, normal_part
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
        pattern = bias_model = None
        if self.use_readpatt and model.meta.exposure.nframes:
            pattern = read_pattern(model.data.shape[1], model.meta.exposure.nframes)
            bias_model = self.open_reference(model, "superbias")
        zeroframe = model.zeroframe if model.has_array("zeroframe") else None
        if is_irs2(model.data.shape):
            self._flag_irs2(model, reference, pattern, bias_model, zeroframe)
        else:
            bias = None if bias_model is None else bias_model.data
            thresholds, ref_dq = prepare_thresholds(
                reference.data, datamodels.reference_dq(reference, reference.data.shape))
            unchecked = (ref_dq & dqflags.NO_SAT_CHECK) != 0
            for plane, integrations in stripe_views(superstripe_count(model)):
                flag_saturation(model.data[integrations], model.groupdq[integrations],
                                thresholds[plane], unchecked[plane], self.n_pix_grow_sat,
                                pattern, None if bias is None else bias[plane],
                                None if zeroframe is None else zeroframe[integrations])
            model.pixeldq |= ref_dq
        self.set_status(model, "COMPLETE")
        return model

    def _flag_irs2(self, model, reference, pattern, bias_model, zeroframe):
        """Flag an IRS2 ramp on its normal rows; the references may cover the whole frame or
        its normal rows only, and only those are kept in memory (read when needed)."""
        rows, frame_rows = IRS2Layout.of(model).normal_rows(), model.data.shape[-2]
        thresholds = _normal_image(reference, "data", rows, frame_rows, "SATURATION")
        ref_dq = (_normal_image(reference, "dq", rows, frame_rows, "SATURATION")
                  if reference.has_array("dq") else np.zeros(thresholds.shape, np.uint32))
        thresholds, ref_dq = prepare_thresholds(thresholds, ref_dq, copy=False)
        model.pixeldq[rows] |= ref_dq
        del ref_dq
        if pattern is not None:  # (first: the bias goes before the other flagging)
            bias = (None if bias_model is None
                    else _normal_image(bias_model, "data", rows, frame_rows, "SUPERBIAS"))
            flag_second_group_irs2(model.data, model.groupdq, thresholds, rows, pattern, bias,
                                   self.n_pix_grow_sat)
            del bias
        flag_saturation_irs2(model.data, model.groupdq, thresholds, rows, self.n_pix_grow_sat,
                             zeroframe)


def _normal_image(reference, name: str, rows, frame_rows: int, reftype: str) -> np.ndarray:
    """Image ``name`` of an IRS2 reference at the frame's normal ``rows`` (``normal_part``),
    an array of the caller's own: read for the purpose when not loaded yet (the model does
    not keep the whole image)."""
    stored = reference.pending_loader(name) is not None
    image = reference.array_part(name)
    part = normal_part(image, rows, frame_rows, f"{reftype} reference")
    return part if stored or part is not image else part.copy()
