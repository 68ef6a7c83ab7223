"""calwebb_image2: count rates (rate, rateints) to calibrated images (cal, calints, i2d),
stage2.md §2."""

from __future__ import annotations

from pathlib import Path

from calwebb import datamodels
from calwebb.assign_wcs.step import AssignWcsStep
from calwebb.associations import load_association
from calwebb.background.step import BackgroundStep
from calwebb.datamodels.io import writes_in_background
from calwebb.errors import DataModelError
from calwebb.flat_field.step import FlatFieldStep
from calwebb.photom.step import PhotomStep
from calwebb.resample.step import ResampleStep
from calwebb.stpipe import Pipeline

#: exposure types that get a resampled (i2d) product
RESAMPLED_TYPES = {"MIR_IMAGE", "NRC_IMAGE", "NIS_IMAGE", "FGS_IMAGE"}


class Image2Pipeline(Pipeline):
    """Background, WCS, flat field and photometric calibration of each imaging exposure."""

    class_alias = "calwebb_image2"
    spec = """
        save_bsub = boolean(default=False)  # deprecated: steps.bkg_subtract.save_results
    """
    step_defs = {"bkg_subtract": BackgroundStep, "assign_wcs": AssignWcsStep,
                 "flat_field": FlatFieldStep, "photom": PhotomStep, "resample": ResampleStep}

    def process(self, value):
        if self.save_bsub:  # the official pipeline's older switch, kept for parameter files
            self.log.warning("save_bsub is deprecated: use steps.bkg_subtract.save_results")
            self.bkg_subtract.save_results = True
        products = self._products(value)
        if len(products) > 1 and self.output_file:
            self.log.warning("output_file is ignored: the association has %d products",
                             len(products))
            self.output_file = None
        with writes_in_background():  # a cal file is written while its i2d is made
            results = [self._calibrate(*product, idx=index if len(products) > 1 else None)
                       for index, product in enumerate(products)]
        return results[0] if len(results) == 1 else results

    def _products(self, value) -> list[tuple[datamodels.DataModel, list, str | None]]:
        """(science model, background files, product name) for each product to calibrate."""
        if not (isinstance(value, str) and value.lower().endswith(".json")):
            model = self._as_slope_model(value)
            # a lone exposure is its own association, as the official pipeline records it
            model.meta.asn.pool_name = model.meta.asn.table_name = "singleton"
            return [(model, [], None)]
        association = load_association(value)
        self.output_use_model = True  # each product is named after itself
        products = []
        for index, product in enumerate(association.products):
            science = association.member_paths("science", product=index)
            if not science:
                raise DataModelError(f"{value}: product {product.name or index} has no "
                                     "science member")
            if len(science) > 1:
                self.log.warning("%s: product %s has %d science members; using the first",
                                 value, product.name, len(science))
            model = self._as_slope_model(science[0])
            name = product.name or Path(science[0]).stem
            model.meta.filename = f"{name}.fits"
            model.meta.asn.pool_name = association.pool_name
            model.meta.asn.table_name = Path(value).name
            products.append((model, association.member_paths("background", product=index), name))
        return products

    @staticmethod
    def _as_slope_model(value):
        model = datamodels.open(value)
        if not isinstance(model, datamodels.ImageModel | datamodels.CubeModel):
            raise DataModelError(
                f"{getattr(model.meta, 'filename', None) or value}: calwebb_image2 needs a "
                f"rate (2-D) or rateints (3-D) product, got a {type(model).__name__}")
        return model

    def _calibrate(self, model, backgrounds, product_name, idx=None):
        named_after_product = self.save_results and self.output_file is None and product_name
        if named_after_product:  # the steps' saved results too (as the official pipeline)
            self.output_file = product_name
        try:
            return self._calibrate_product(model, backgrounds, idx)
        finally:
            if named_after_product:
                self.output_file = None

    def _calibrate_product(self, model, backgrounds, idx):
        if backgrounds:  # saved (save_results) as the official pipeline names it
            self.bkg_subtract.suffix = "bsubints" if model.data.ndim == 3 else "bsub"
            model = self.bkg_subtract.run(model, [str(path) for path in backgrounds])
        model = self.assign_wcs.run(model)
        model = self.flat_field.run(model)
        model = self.photom.run(model)
        self.suffix = "calints" if model.data.ndim == 3 else "cal"
        exp_type = (model.meta.exposure.type or "").upper()
        if model.data.ndim == 2 and exp_type in RESAMPLED_TYPES and \
                model.meta.cal_step.assign_wcs == "COMPLETE":
            if self.resample.skip:  # S_RESAMP = SKIPPED on the cal, and no i2d
                return self.resample.run(model)
            self.save_result_early(model, idx)
            resampled = self.resample.run(model)
            resampled.meta.filename = model.meta.filename
            self.save_model(resampled, suffix="i2d")
        return model
