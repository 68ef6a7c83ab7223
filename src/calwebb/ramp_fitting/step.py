"""RampFitStep: slopes (DN/s) from corrected ramps, per exposure and per integration."""

from __future__ import annotations

import copy

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.errors import ReferenceFileError
from calwebb.kernels import limited_threads
from calwebb.ramp_fitting.ols import fit_ramps, weight_table
from calwebb.ramp_fitting.prepare import apply_group_range, drop_unusable_miri_groups
from calwebb.stpipe import Step


class RampFitStep(Step):
    """Fit every pixel's ramp; returns (rate ImageModel, rateints CubeModel)."""

    class_alias = "ramp_fit"
    spec = """
        algorithm = option('OLS_C', 'LIKELY', default='OLS_C')  # fitting algorithm
        int_name = string(default='')  # name of the per-integration product
        save_opt = boolean(default=False)  # save the optional per-segment product
        opt_name = string(default='')  # name of the optional product
        suppress_one_group = boolean(default=True)  # ramps with one good group are unusable
        firstgroup = integer(default=None)  # first group to use (0-based)
        lastgroup = integer(default=None)  # last group to use (0-based, inclusive)
        maximum_cores = string(default='1')  # 'none', 'quarter', 'half', 'all' or a number
    """
    reference_file_types = ["readnoise", "gain"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        if self.algorithm == "LIKELY":
            self.log.warning("algorithm='LIKELY' is not available yet; fitting with OLS_C")
        if self.save_opt:
            self.log.warning("save_opt: the optional per-segment product is not written yet")
        readnoise = self.open_reference(model, "readnoise")
        gain_model = self.open_reference(model, "gain")
        if readnoise is None or gain_model is None:
            raise ReferenceFileError("ramp_fit needs GAIN and READNOISE references; got N/A")
        data, groupdq = model.data, model.groupdq
        if self.firstgroup is not None or self.lastgroup is not None:
            groupdq = groupdq.copy()
            apply_group_range(groupdq, self.firstgroup, self.lastgroup)
        if (model.meta.instrument.name or "").upper() == "MIRI":
            data, groupdq = drop_unusable_miri_groups(data, groupdq)
            if data is None:
                self.log.warning("Fewer than two usable MIRI groups: no rate products")
                return None, None
        if ((groupdq[:, 0] & dqflags.SATURATED) != 0).all():
            self.log.warning("Every pixel saturated in the first group: no rate products")
            return None, None
        rate, rateints = self._fit(model, data, groupdq, gain_model.data, readnoise.data)
        for product in (rate, rateints):
            product.meta.bunit_data = product.meta.bunit_err = "DN/s"
            if gain_model.meta.exposure.gain_factor is not None:
                product.meta.exposure.gain_factor = gain_model.meta.exposure.gain_factor
            self.set_status(product, "COMPLETE")
        return rate, rateints

    def _fit(self, model, data, groupdq, gain, readnoise):
        nints, _, ny, nx = data.shape
        exposure = model.meta.exposure
        tframe = exposure.frame_time or exposure.group_time
        has_zeroframe = model.has_array("zeroframe")
        zeroframe = model.zeroframe if has_zeroframe else np.zeros((nints, ny, nx), np.float32)
        dark = (model.average_dark_current if model.has_array("average_dark_current")
                else np.zeros((ny, nx), np.float32))
        image = [np.empty((ny, nx), t) for t in (np.float32, np.float32, np.uint32, np.float32,
                                                  np.float32)]
        cube = [np.empty((nints, ny, nx), t) for t in (np.float32, np.float32, np.uint32,
                                                        np.float32, np.float32)]
        with limited_threads(self.maximum_cores):
            fit_ramps(np.ascontiguousarray(data), np.ascontiguousarray(groupdq), model.pixeldq,
                      gain.astype(np.float32), readnoise.astype(np.float32), dark.astype(
                          np.float32), zeroframe, has_zeroframe, weight_table(data.shape[1]),
                      float(exposure.group_time),
                      float(tframe), int(exposure.nframes or 1), self.suppress_one_group,
                      *image, *cube)
        rate = datamodels.ImageModel(data=image[0], err=image[1], dq=image[2],
                                     var_poisson=image[3], var_rnoise=image[4])
        rateints = datamodels.CubeModel(data=cube[0], err=cube[1], dq=cube[2],
                                        var_poisson=cube[3], var_rnoise=cube[4])
        for product in (rate, rateints):
            product.tree["meta"] = copy.deepcopy(model.tree["meta"])
            product.meta.model_type = type(product).__name__
        if model.has_array("int_times"):
            rateints.int_times = model.int_times
        return rate, rateints
