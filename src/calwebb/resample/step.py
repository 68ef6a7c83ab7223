"""ResampleStep: drizzle calibrated images onto a distortion-free grid (i2d)."""

from __future__ import annotations

import copy

import asdf
import numpy as np

from calwebb import datamodels, dqflags
from calwebb.assign_wcs.imaging import SIP_PREFIXES, footprint_region
from calwebb.errors import DataModelError, ParameterError
from calwebb.resample import grid
from calwebb.resample.drizzle_images import DrizzleInput, drizzle_images
from calwebb.stpipe import Step

ARCSEC2_PER_SR = (180 / np.pi * 3600) ** 2
#: pointing keywords that describe the input detectors, not the resampled grid
DETECTOR_WCSINFO = ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity",
                    "siaf_xref_sci", "siaf_yref_sci", "cd1_1", "cd1_2", "cd2_1", "cd2_2",
                    "sipmxerr", "sipiverr", "lonpole", "latpole", "mjdref", "wcsname")


class ResampleStep(Step):
    """Weighted drizzle of one or more 2-D images; SCI, ERR, WHT, CON and resampled VAR_*."""

    class_alias = "resample"
    spec = """
        pixfrac = float(min=0.0, max=1.0, default=1.0)  # drop size relative to the input pixel
        kernel = option('square','gaussian','point','turbo','lanczos2','lanczos3',default='square')
        fillval = string(default='NAN')  # output value where no input contributes
        weight_type = option('ivm', 'exptime', None, default='ivm')  # per-input weighting
        output_shape = int_list(min=2, max=2, default=None)  # [nx, ny] of the output
        crpix = float_list(min=2, max=2, default=None)  # 0-based output reference pixel
        crval = float_list(min=2, max=2, default=None)  # RA, Dec of the reference pixel
        rotation = float(default=None)  # PA of output +y (deg); None keeps the input's
        pixel_scale_ratio = float(default=1.0)  # output / input pixel scale
        pixel_scale = float(default=None)  # output pixel scale (arcsec); overrides the ratio
        output_wcs = string(default='')  # ASDF file holding the output gwcs (overrides above)
        single = boolean(default=False)  # one output per exposure (outlier detection)
        blendheaders = boolean(default=True)  # combine the inputs' headers
        in_memory = boolean(default=True)  # keep the inputs in memory
        enable_ctx = boolean(default=True)  # compute the CON context array
        enable_err = boolean(default=True)  # compute ERR from the resampled variances
        report_var = boolean(default=True)  # keep the resampled VAR_* arrays
        propagate_dq = boolean(default=False)  # resample the DQ array (not supported yet)
        pixmap_stepsize = float(default=1.0)  # pixel-map sampling step (full sampling)
        pixmap_order = integer(default=1)  # pixel-map interpolation order
    """

    def process(self, value):
        models = self._inputs(value)
        if self.propagate_dq:
            self.log.warning("propagate_dq is not supported yet; the output has no DQ array")
        output_wcs, ratio = self._output_grid(models)
        groups = self._groups(models) if self.single else [models]
        results = [self._resample(group, output_wcs, ratio) for group in groups]
        if self.single:
            self.suffix = "outlier_i2d"
            return results
        return results[0]

    # -- inputs and grid -------------------------------------------------------------------------
    def _inputs(self, value) -> list:
        items = value if isinstance(value, list | tuple) else [value]
        models = [datamodels.open(item) for item in items]
        for model in models:
            name = model.meta.filename or type(model).__name__
            if model.data.ndim != 2:
                raise DataModelError(f"{name}: resample needs 2-D images, SCI is "
                                     f"{model.data.ndim}-D")
            if model.meta.wcs is None:
                raise DataModelError(f"{name}: no WCS (run assign_wcs first)")
        return models

    def _output_grid(self, models):
        first = models[0]
        centre = ((first.data.shape[1] - 1) / 2.0, (first.data.shape[0] - 1) / 2.0)
        input_scale = grid.pixel_scale_deg(first.meta.wcs, *centre) * 3600.0
        if self.output_wcs:
            with asdf.open(self.output_wcs) as af:
                wcs = af.tree.get("wcs")
                if wcs is None:
                    raise ParameterError(f"output_wcs {self.output_wcs}: no 'wcs' in the tree")
                if self.output_shape is not None:
                    wcs.array_shape = tuple(self.output_shape[::-1])
                if wcs.array_shape is None:
                    raise ParameterError(f"output_wcs {self.output_wcs}: the WCS has no "
                                         "array_shape and output_shape is not given")
            centre_out = ((wcs.array_shape[1] - 1) / 2.0, (wcs.array_shape[0] - 1) / 2.0)
            return wcs, grid.pixel_scale_deg(wcs, *centre_out) * 3600.0 / input_scale
        ratio = self.pixel_scale_ratio if self.pixel_scale is None else \
            self.pixel_scale / input_scale
        wcs = grid.output_grid(
            [model.meta.wcs for model in models], [model.data.shape for model in models],
            pixel_scale_ratio=ratio, rotation=self.rotation,
            crpix=tuple(self.crpix) if self.crpix else None,
            crval=tuple(self.crval) if self.crval else None,
            output_shape=tuple(self.output_shape) if self.output_shape else None)
        return wcs, ratio

    @staticmethod
    def _groups(models) -> list[list]:
        groups: dict[str, list] = {}
        for model in models:
            key = model.meta.group_id or model.meta.filename or str(id(model))
            groups.setdefault(key, []).append(model)
        return list(groups.values())

    # -- drizzling -------------------------------------------------------------------------------
    def _resample(self, models, output_wcs, ratio):
        def stream():
            for model in models:
                variances = {name: getattr(model, name) for name in
                             ("var_poisson", "var_rnoise", "var_flat") if model.has_array(name)}
                yield DrizzleInput(model.data, model.dq, model.meta.wcs,
                                   self._exposure_time(model), variances)

        self.log.info("Drizzling %d image(s) onto %s pixels (pixfrac %.2f, %s kernel, %s "
                      "weights)", len(models), output_wcs.array_shape, self.pixfrac, self.kernel,
                      self.weight_type)
        result = drizzle_images(stream(), output_wcs, pixfrac=self.pixfrac, kernel=self.kernel,
                                fillval=self.fillval, weight_type=self.weight_type,
                                enable_context=self.enable_ctx,
                                variances=self.enable_err or self.report_var,
                                pixel_scale_ratio=ratio)
        output = datamodels.ImageModel(data=result.data, wht=result.weight)
        if result.context is not None:
            output.con = result.context.astype(np.int32)
        if self.enable_err:
            output.err = result.error
        if self.report_var:
            for name, array in result.variances.items():
                setattr(output, name, array)
        output.dq = np.where(result.weight > 0, 0, dqflags.DO_NOT_USE).astype(np.uint32)
        self._describe(output, models, output_wcs, ratio)
        self.set_status(output, "COMPLETE")
        return output

    @staticmethod
    def _exposure_time(model) -> float:
        exposure = model.meta.exposure
        for value in (exposure.measurement_time, exposure.exposure_time):
            if value is not None and value > 0:
                return float(value)
        return 1.0

    def _describe(self, output, models, output_wcs, ratio) -> None:
        """Metadata of the product: the first input's, with the grid and the sums."""
        output.tree["meta"] = copy.deepcopy({key: value for key, value in
                                             models[0].tree["meta"].items()
                                             if key not in ("wcs", "cal_logs")})
        wcsinfo = output.meta.wcsinfo
        for name in list(wcsinfo):
            if name.startswith(SIP_PREFIXES) or name in DETECTOR_WCSINFO or name.startswith(
                    ("pc", "cdelt", "crpix", "crval", "ctype", "cunit")):
                delattr(wcsinfo, name)
        for name, value in grid.fits_keywords(output_wcs).items():
            setattr(wcsinfo, name, value)
        output.meta.wcs = output_wcs
        wcsinfo.s_region = footprint_region(output_wcs)
        scale_deg = grid.pixel_scale_deg(output_wcs, *(
            (n - 1) / 2.0 for n in output_wcs.array_shape[::-1]))
        photometry = output.meta.photometry
        photometry.pixelarea_arcsecsq = (scale_deg * 3600.0) ** 2
        photometry.pixelarea_steradians = (scale_deg * 3600.0) ** 2 / ARCSEC2_PER_SR
        resample = output.meta.resample
        resample.pointings = len({model.meta.group_id or model.meta.filename
                                  for model in models})
        resample.weight_type = str(self.weight_type)
        resample.pixfrac, resample.pixel_scale_ratio = self.pixfrac, ratio
        self._exposure_times(output, models)

    @staticmethod
    def _exposure_times(output, models) -> None:
        exposures = {}
        for model in models:  # one detector per exposure counted
            exposures.setdefault(model.meta.group_id or model.meta.filename, model.meta.exposure)
        exposure = output.meta.exposure

        def total(name):
            values = [getattr(item, name) for item in exposures.values()]
            return None if any(value is None for value in values) else float(sum(values))

        exposure.exposure_time = total("exposure_time")
        exposure.effective_exposure_time = exposure.exposure_time
        exposure.measurement_time = total("measurement_time")
        exposure.duration = total("duration")
        exposure.elapsed_exposure_time = exposure.duration
        starts = [item.start_time for item in exposures.values() if item.start_time is not None]
        ends = [item.end_time for item in exposures.values() if item.end_time is not None]
        exposure.start_time = min(starts) if starts else None
        exposure.end_time = max(ends) if ends else None
