"""PictureFrameStep: remove the thermal "picture frame" from NIRSpec full-frame data."""

from __future__ import annotations

import copy

import numpy as np

from calwebb import datamodels
from calwebb.picture_frame.correct import background_mask, region_masks, subtract_picture_frame
from calwebb.ramp_fitting.step import RampFitStep
from calwebb.stpipe import Step
from calwebb.stpipe.log import quiet


class PictureFrameStep(Step):
    """Scale the PICTUREFRAME pattern to each group's centre/edge background contrast and
    subtract it (NIRSpec full frame, ramps or rates; off by default)."""

    class_alias = "picture_frame"
    spec = """
        mask_science_regions = boolean(default=True)  # mask known science regions
        n_sigma = float(default=2.0)  # clipping level for non-background signal
        save_mask = boolean(default=False)  # save the background mask (suffix pctfrm_mask)
        save_correction = boolean(default=False)  # save the correction (suffix pctfrm_correction)
        skip = boolean(default=True)  # skip the step
    """
    reference_file_types = ["pictureframe"]

    def process(self, model):
        instrument = str(model.meta.instrument.name).upper()
        subarray = str(model.meta.subarray.name).upper()
        if instrument != "NIRSPEC" or subarray != "FULL":
            return self.skip_model(model, "picture frame correction is only applicable to "
                                          "NIRSpec full frame exposures")
        is_ramp = isinstance(model, datamodels.RampModel)
        if not (is_ramp or isinstance(model, datamodels.ImageModel | datamodels.CubeModel)):
            return self.skip_model(model, f"{type(model).__name__} input (ramp, rate or "
                                          "rateints expected)")
        if is_ramp and model.data.shape[1] == 1:
            return self.skip_model(model, "picture frame correction cannot be performed for "
                                          "single-group data")
        reference = self.open_reference(model, "pictureframe")
        if reference is None:
            return self.skip_model(model, "picture frame correction is not available for "
                                          f"exposure type {model.meta.exposure.type}")
        if reference.data.shape != model.data.shape[-2:]:
            return self.skip_model(model, f"the PICTUREFRAME reference is "
                                          f"{reference.data.shape}, the data "
                                          f"{model.data.shape[-2:]}")
        rate, dq = self._draft_rate(model, is_ramp)
        if rate is None:
            return self.skip_model(model, "no draft rate could be made for scene masking")
        exp_type = model.meta.exposure.type or ""
        if self.mask_science_regions and exp_type.upper() in (
                "NRS_IFU", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ", "NRS_MSASPEC"):
            self.log.warning("Slit and IFU-slice footprints are not masked (no NIRSpec "
                             "spectroscopic WCS); signal is masked by clipping only")
        background = background_mask(rate, dq, exp_type, self.mask_science_regions,
                                     self.n_sigma)
        if self.save_mask:
            self._save_side_product(model, datamodels.ImageModel(
                data=background.astype(np.float32)), "pctfrm_mask")
        center, edge = region_masks(background)
        if not center.any() or not edge.any():
            self.log.error("No data to scale; skipping picture frame correction.")
            self.set_status(model, "SKIPPED")
            return model
        before = model.data.copy() if self.save_correction else None
        scales, offsets = subtract_picture_frame(model.data, reference.data, center, edge,
                                                 is_ramp)
        self.log.info("Picture frame scale per image %s, offset %s", np.round(scales, 4),
                      np.round(offsets, 4))
        if before is not None:
            correction = model.data - before
            kind = {4: datamodels.RampModel, 3: datamodels.CubeModel, 2: datamodels.ImageModel}
            self._save_side_product(model, kind[correction.ndim](data=correction),
                                    "pctfrm_correction")
        self.set_status(model, "COMPLETE")
        return model

    def _draft_rate(self, model, is_ramp):
        """(rate [ny, nx] or [nints, ny, nx], DQ) for scene masking: fitted from a ramp with
        default ramp_fit settings, or the input rate itself."""
        if not is_ramp:
            return model.data, model.dq
        self.log.info("Creating draft rate file for scene masking")
        with quiet("calwebb.step.RampFitStep", "calwebb.references"):
            rate, _ = RampFitStep(parent=self).run(model)
        if rate is None:
            return None, None
        return rate.data, rate.dq

    def _save_side_product(self, model, product, suffix: str) -> None:
        product.tree["meta"].update(copy.deepcopy(
            {key: value for key, value in model.tree["meta"].items() if key != "model_type"}))
        path = self.save_model(product, suffix=suffix, force=True,
                               output_file=model.meta.filename)
        self.log.info("Saved %s file %s", suffix, path)
