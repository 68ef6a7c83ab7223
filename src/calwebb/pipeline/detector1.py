"""calwebb_detector1: raw ramps (uncal) to count rates (rate, rateints), stage1.md §1."""

from calwebb import datamodels
from calwebb.charge_migration.step import ChargeMigrationStep
from calwebb.dark_current.step import DarkCurrentStep
from calwebb.dq_init.step import DQInitStep
from calwebb.firstframe.step import FirstFrameStep
from calwebb.gain_scale.step import GainScaleStep
from calwebb.group_scale.step import GroupScaleStep
from calwebb.ipc.step import IPCStep
from calwebb.jump.step import JumpStep
from calwebb.lastframe.step import LastFrameStep
from calwebb.linearity.step import LinearityStep
from calwebb.persistence.step import PersistenceStep
from calwebb.ramp_fitting.step import RampFitStep
from calwebb.refpix.step import RefPixStep
from calwebb.reset.step import ResetStep
from calwebb.rscd.step import RscdStep
from calwebb.saturation.step import SaturationStep
from calwebb.stpipe import Pipeline
from calwebb.superbias.step import SuperBiasStep

NIR_ORDER = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
             "dark_current")
MIRI_ORDER = ("group_scale", "dq_init", "saturation", "ipc", "firstframe", "lastframe", "reset",
              "linearity", "rscd", "dark_current", "refpix")
SHARED_TAIL = ("charge_migration", "jump", "persistence")


class Detector1Pipeline(Pipeline):
    """Detector-level corrections and ramp fitting for one exposure."""

    class_alias = "calwebb_detector1"
    spec = """
        save_calibrated_ramp = boolean(default=False)  # save the corrected ramp before fitting
    """
    step_defs = {
        "group_scale": GroupScaleStep, "dq_init": DQInitStep, "saturation": SaturationStep,
        "ipc": IPCStep, "superbias": SuperBiasStep, "refpix": RefPixStep,
        "firstframe": FirstFrameStep, "lastframe": LastFrameStep, "reset": ResetStep,
        "rscd": RscdStep, "linearity": LinearityStep, "dark_current": DarkCurrentStep,
        "charge_migration": ChargeMigrationStep, "jump": JumpStep,
        "persistence": PersistenceStep, "ramp_fit": RampFitStep,
        "gain_scale": GainScaleStep,
    }
    input_model_class = datamodels.RampModel

    def process(self, model):
        is_miri = (model.meta.instrument.name or "").upper() == "MIRI"
        for name in (MIRI_ORDER if is_miri else NIR_ORDER) + SHARED_TAIL:
            model = getattr(self, name).run(model)
        if self.save_calibrated_ramp:
            self.save_model(model, suffix="ramp")
        rate, rateints = self.ramp_fit.run(model)
        if rate is None:
            self.log.warning("Ramp fitting produced no rates; returning the corrected ramp")
            self.suffix = "ramp"
            return model
        self.gain_scale.suffix = "gain_scale"
        rate = self.gain_scale.run(rate)
        self.gain_scale.suffix = "gain_scaleints"
        rateints = self.gain_scale.run(rateints)
        self.save_model(rateints, suffix="rateints")
        self.suffix = "rate" if rate.meta.cal_step.ramp_fit == "COMPLETE" else "ramp"
        return rate
