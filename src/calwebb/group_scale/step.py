"""GroupScaleStep: undo on-board averaging by a power-of-two divisor."""

from calwebb import datamodels
from calwebb.group_scale.scale import group_scale_factor, scale_groups
from calwebb.stpipe import Step


class GroupScaleStep(Step):
    """Multiply the ramp by FRMDIVSR / NFRAMES when the two differ."""

    class_alias = "group_scale"
    input_model_class = datamodels.RampModel

    def process(self, model):
        exposure = model.meta.exposure
        factor = group_scale_factor(exposure.nframes, exposure.frame_divisor)
        if factor is None:
            return self.skip_model(model, f"NFRAMES={exposure.nframes}, FRMDIVSR="
                                          f"{exposure.frame_divisor}: no rescaling needed")
        scale_groups(model.data, factor)
        self.log.info("Groups rescaled by FRMDIVSR/NFRAMES = %g", factor)
        self.set_status(model, "COMPLETE")
        return model
