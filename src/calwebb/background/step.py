"""BackgroundStep: subtract the average of the background exposures (imaging)."""

from calwebb import datamodels
from calwebb.background.combine import average_background
from calwebb.errors import DataModelError
from calwebb.stpipe import Step

#: modes whose background is scaled from a reference (not implemented)
SCALED_MODES = {"NIS_WFSS", "NRC_WFSS", "NRC_GRISM", "NIS_SOSS"}


class BackgroundStep(Step):
    """SCI −= sigma-clipped mean of the background exposures; DQ |= theirs; ERR unchanged."""

    class_alias = "bkg_subtract"
    spec = """
        bkg_list = force_list(default=None)  # background exposures (when run on its own)
        save_combined_background = boolean(default=False)  # save the averaged background
        sigma = float(default=3.0)  # clipping threshold (standard deviations)
        maxiters = integer(default=None)  # clipping iterations; None = until converged
        soss_source_percentile = float(default=35.0)  # SOSS: source pixels percentile
        soss_bkg_percentile = float_list(min=2, max=2, default=None)  # SOSS: background range
        wfss_mmag_extract = float(default=None)  # WFSS: faintest sources to mask
        wfss_mask = string(default=None)  # WFSS: a custom mask
        wfss_maxiter = integer(default=5)  # WFSS: rejection iterations
        wfss_rms_stop = float(default=0)  # WFSS: stop when the RMS changes less than this
        wfss_outlier_percent = float(default=1)  # WFSS: outliers rejected per iteration (%)
    """
    reference_file_types = ["bkg", "wavelengthrange"]

    def process(self, model, bkg_list=None):
        backgrounds = bkg_list if bkg_list is not None else self.bkg_list
        if not backgrounds:
            return self.skip_model(model, "no background exposures given")
        if (model.meta.exposure.type or "").upper() in SCALED_MODES:
            return self.skip_model(model, "WFSS/SOSS reference-background scaling is not "
                                          "implemented yet")
        exposures = [self._arrays(item, model) for item in backgrounds]
        mean, error, dq = average_background(exposures, self.sigma, self.maxiters)
        if self.save_combined_background:
            combined = datamodels.ImageModel(data=mean, err=error, dq=dq)
            combined.tree["meta"].update(model.tree["meta"])
            self.save_model(combined, suffix="combinedbackground", force=True)
        result = model.copy() if self.parent is not None else model
        result.data = result.data - mean
        result.dq = result.dq | dq
        self.set_status(result, "COMPLETE")
        return result

    def _arrays(self, item, science):
        background = datamodels.open(item)
        name = background.meta.filename or str(item)
        if background.data.shape[-2:] != science.data.shape[-2:]:
            raise DataModelError(
                f"{name}: background SCI is {background.data.shape[-2:]} but the science data "
                f"are {science.data.shape[-2:]}")
        return background.data, background.err, background.dq
