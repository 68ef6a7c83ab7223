"""calwebb_detector1: raw ramps (uncal) to count rates (rate, rateints), stage1.md §1."""

from calwebb import datamodels
from calwebb.charge_migration.step import ChargeMigrationStep
from calwebb.clean_flicker_noise.step import CleanFlickerNoiseStep
from calwebb.dark_current.step import DarkCurrentStep
from calwebb.dq_init.step import DQInitStep
from calwebb.emicorr.step import EmiCorrStep
from calwebb.firstframe.step import FirstFrameStep
from calwebb.gain_scale.step import GainScaleStep
from calwebb.group_scale.step import GroupScaleStep
from calwebb.ipc.step import IPCStep
from calwebb.irs2 import is_irs2
from calwebb.jump.step import JumpStep
from calwebb.lastframe.step import LastFrameStep
from calwebb.linearity.step import LinearityStep
from calwebb.persistence.step import PersistenceStep
from calwebb.picture_frame.step import PictureFrameStep
from calwebb.ramp_fitting.step import RampFitStep
from calwebb.refpix.step import RefPixStep
from calwebb.reset.step import ResetStep
from calwebb.rscd.step import RscdStep
from calwebb.saturation.step import SaturationStep
from calwebb.stpipe import Pipeline
from calwebb.stripes import is_striped
from calwebb.superbias.step import SuperBiasStep

NIR_ORDER = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
             "dark_current")
MIRI_ORDER = ("group_scale", "dq_init", "emicorr", "saturation", "ipc", "firstframe",
              "lastframe", "reset", "linearity", "rscd", "dark_current", "refpix")
#: ``max_memory`` value that tiles large ramps only (see ``parallel.bands.automatic_budget``)
AUTO = "auto"
SHARED_TAIL = ("charge_migration", "jump", "picture_frame", "clean_flicker_noise",
               "persistence")


class Detector1Pipeline(Pipeline):
    """Detector-level corrections and ramp fitting for one exposure.

    With ``max_memory`` the ramp is processed in bands of rows sized to that memory
    (``calwebb.parallel.tiles``); the products are the same as without it. The default
    'auto' does so for a ramp of more than 64 MB (float32), within half of it (at least
    100 MB), unless a step or option needs the whole frame; None processes the whole ramp.
    """

    class_alias = "calwebb_detector1"
    spec = """
        save_calibrated_ramp = boolean(default=False)  # save the corrected ramp before fitting
        max_memory = string(default='auto')  # work in row bands within this size, 'auto', None
    """
    step_defs = {
        "group_scale": GroupScaleStep, "dq_init": DQInitStep, "emicorr": EmiCorrStep,
        "saturation": SaturationStep, "ipc": IPCStep, "superbias": SuperBiasStep,
        "refpix": RefPixStep,
        "firstframe": FirstFrameStep, "lastframe": LastFrameStep, "reset": ResetStep,
        "rscd": RscdStep, "linearity": LinearityStep, "dark_current": DarkCurrentStep,
        "charge_migration": ChargeMigrationStep, "jump": JumpStep,
        "picture_frame": PictureFrameStep, "clean_flicker_noise": CleanFlickerNoiseStep,
        "persistence": PersistenceStep, "ramp_fit": RampFitStep,
        "gain_scale": GainScaleStep,
    }
    input_model_class = datamodels.RampModel

    def apply_config(self, config: dict) -> None:
        super().apply_config(config)
        if self._memory_limit not in (None, AUTO):
            from calwebb.parallel.bands import parse_memory

            parse_memory(self._memory_limit, f"{self.qualified_name}.max_memory")

    @property
    def _memory_limit(self) -> str | None:
        """``max_memory`` with 'None' (as a command line gives it) read as None."""
        value = self.max_memory
        return None if value is None or str(value).strip().lower() == "none" else value

    def process(self, model):
        is_miri = (model.meta.instrument.name or "").upper() == "MIRI"
        names = (MIRI_ORDER if is_miri else NIR_ORDER) + SHARED_TAIL
        tiled = self._tiled_run(model, names) if self._memory_limit is not None else None
        if tiled is None:
            for name in names:
                model = getattr(self, name).run(model)
            if self.save_calibrated_ramp:
                self.save_model(model, suffix="ramp")
            rate, rateints = self.ramp_fit.run(model)
        else:
            for name in (*names, "ramp_fit"):
                if getattr(self, name).skip:  # marked SKIPPED as in the whole-frame run
                    getattr(self, name).run(model)
            result = tiled.run(on_ramp=self._save_ramp if self.save_calibrated_ramp else None)
            rate, rateints, model = result.rate, result.rateints, result.ramp
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

    def _tiled_run(self, model, names):
        """The ramp steps planned tile by tile within max_memory (None: one tile will do)."""
        from calwebb.parallel.bands import automatic_budget
        from calwebb.parallel.tiles import plan_run

        shape = model.array_shape("data")  # (without reading the ramp)
        if shape and is_irs2(shape):
            self.log.info("IRS2 readout: the ramp is processed whole (refpix removes the "
                          "interleaved reference rows)")
            return None
        if is_striped(model):
            self.log.info("Striped readout: the ramp is processed whole (its rows are not "
                          "contiguous on the detector; refpix collates superstripes)")
            return None
        budget = self._memory_limit
        if budget == AUTO:
            budget = automatic_budget(shape) if shape else None
            if budget is None:
                return None
        steps = [getattr(self, name) for name in (*names, "ramp_fit")]
        active = [step for step in steps if not step.skip]
        path = self._input_filename
        if path is not None:
            path = self._resolve_input_path(path)
        return plan_run(self, model, active, budget, path,
                        automatic=self._memory_limit == AUTO)

    def _save_ramp(self, model) -> None:
        self.save_model(model, suffix="ramp")
