"""CleanFlickerNoiseStep: remove 1/f (NIR) or vertical banding (MIRI imaging) noise.

Runs on ramps (Detector1, after jump) or on rate / rateints images. A draft rate from a
quick ramp fit gives the scene mask; each group difference (or image) then has its
background removed, the noise fitted on background pixels and subtracted.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from calwebb import datamodels
from calwebb.clean_flicker_noise.autoparam import automatic_parameters
from calwebb.clean_flicker_noise.background import fill_flat_gaps
from calwebb.clean_flicker_noise.correct import CleaningOptions, clean_exposure
from calwebb.clean_flicker_noise.fit import ALLSLITS_CUTOFFS, SUBARRAY_CUTOFFS
from calwebb.clean_flicker_noise.masking import scene_mask
from calwebb.clean_flicker_noise.median_image import integration_scale, scaled_median_image
from calwebb.errors import DataModelError
from calwebb.stpipe import Step
from calwebb.stpipe.log import quiet

#: exposure types the 'fft' (NSClean) fit applies to
FFT_EXP_TYPES = ("NRS_MSASPEC", "NRS_IFU", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")
#: NIRSpec modes whose science regions come from the WCS (slits, IFU slices)
NIRSPEC_WCS_REGIONS = ("NRS_IFU", "NRS_MSASPEC", "NRS_FIXEDSLIT", "NRS_BRIGHTOBJ")
#: median_image modes that scale integrations by extracted spectra or TSO photometry
TSO_SCALED = ("NIS_SOSS", "NRS_BRIGHTOBJ", "NRC_TSGRISM", "NRC_TSIMAGE")
#: most group differences cleaned at once
MAX_THREADS = 4
#: suffixes of the optional products
MASK_SUFFIX, BACKGROUND_SUFFIX, NOISE_SUFFIX = "mask", "flicker_bkg", "flicker_noise"


class CleanFlickerNoiseStep(Step):
    """Fit and subtract flicker noise along the slow axis (or MIRI columns) per image."""

    class_alias = "clean_flicker_noise"
    spec = """
        autoparam = boolean(default=False)  # choose background and channel fitting from the data
        fit_method = option('fft', 'median', default='median')  # noise fitting algorithm
        fit_by_channel = boolean(default=False)  # NIR full frame: fit each amplifier apart
        background_method = option('median', 'model', 'median_image', None, default='median')  # background removed before fitting
        background_box_size = int_list(min=2, max=2, default=None)  # box of the 'model' background
        mask_science_regions = boolean(default=False)  # mask known science regions (NIRSpec, MIRI)
        apply_flat_field = boolean(default=False)  # divide by the flat before fitting
        n_sigma = float(default=2.0)  # clip level for signal in the scene mask (0: none)
        fit_histogram = boolean(default=False)  # clip sigma from a Gaussian fit to a histogram
        single_mask = boolean(default=True)  # one scene mask for all integrations
        user_mask = string(default=None)  # a mask image to use instead of the scene mask
        save_mask = boolean(default=False)  # save the scene mask (suffix mask)
        save_background = boolean(default=False)  # save the background (suffix flicker_bkg)
        save_noise = boolean(default=False)  # save the fitted noise (suffix flicker_noise)
        skip = boolean(default=True)  # skipped unless enabled
    """  # noqa: E501
    reference_file_types = ["flat", "pastasoss"]

    def process(self, model):
        if not isinstance(model, datamodels.RampModel | datamodels.ImageModel |
                          datamodels.CubeModel):
            return self.skip_model(model, f"{type(model).__name__} input (ramp, rate or "
                                          "rateints expected)")
        self._flat_cache = self._drafts = None
        exp_type = (model.meta.exposure.type or "").upper()
        if self.autoparam:
            self._set_automatic_parameters(model, exp_type)
        background_method = self.background_method
        unsupported = self._unsupported(model, exp_type, background_method)
        if unsupported:
            return self.skip_model(model, unsupported)
        if exp_type.startswith("MIR") and exp_type != "MIR_IMAGE":
            return self._fail(model, f"EXP_TYPE {exp_type} is not supported")
        if self.fit_method == "fft" and exp_type not in FFT_EXP_TYPES:
            return self._fail(model, f"fit_method 'fft' cannot be applied to EXP_TYPE "
                                     f"{exp_type}")
        options, single_mask = self._options(model, exp_type, background_method)
        flat = self._flat(model) if self.apply_flat_field else None
        options.flat = flat
        median_wanted = background_method == "median_image"
        user_mask = None if str(self.user_mask).lower() == "none" else self.user_mask

        rates = model
        if user_mask is None or median_wanted:
            rates = self._draft_rates(model, per_integration=not single_mask)
            if rates is None:
                return self._fail(model, "the draft ramp fit produced no rates")
            if (self.mask_science_regions or median_wanted) and exp_type == "MIR_IMAGE":
                self._add_flat_dq(rates)
            if flat is not None:
                rates = rates.copy() if rates is model else rates
                rates.data = rates.data / flat
        if user_mask is not None:
            mask = datamodels.open(user_mask).data.astype(bool)
        else:
            mask = scene_mask(rates.data, rates.dq, exp_type, self.mask_science_regions,
                              self.n_sigma, self.fit_histogram, single_mask)
        problem = _shape_problem(model.data, mask)
        if problem:
            return self._fail(model, problem)

        median = None
        if median_wanted:
            median = self._median_image(model, rates)
            if median is None:
                return self._fail(model, "no median image could be made")
            options.background_method = None
        if self.save_mask:
            self._save_product(model, rates, mask, MASK_SUFFIX)
        original = model.data.copy() if self.save_noise else None
        self.log.info("Cleaning %s (%s fit, background %s)", model.meta.filename or "the data",
                      options.fit_method, options.background_method if median is None else
                      "median_image")
        done, background = clean_exposure(
            model.data, mask, options,
            groupdq=model.groupdq if isinstance(model, datamodels.RampModel) else None,
            median_image=median, keep_background=self.save_background, threads=_threads())
        if not done:
            return self._fail(model, "the noise fit failed; the data are unchanged")
        if background is not None:
            self._save_product(model, model, background, BACKGROUND_SUFFIX)
        if original is not None:
            self._save_product(model, model, model.data - original, NOISE_SUFFIX)
        self.set_status(model, "COMPLETE")
        return model

    # -- parameters ---------------------------------------------------------------------------
    def _set_automatic_parameters(self, model, exp_type: str) -> None:
        """Override background_method, fit_by_channel and apply_flat_field (NIRCam and
        NIRISS imaging) from statistics of the draft rate."""
        if exp_type not in ("NIS_IMAGE", "NRC_IMAGE"):
            self.log.warning("Automatic parameters are not available for EXP_TYPE %s; using "
                             "the parameters as given", exp_type)
            return
        if isinstance(model, datamodels.RampModel):
            drafts = self._draft_rates(model, per_integration=False)
            image = None if drafts is None else drafts.data
        elif isinstance(model, datamodels.CubeModel):
            with np.errstate(invalid="ignore"), _ignore_runtime_warnings():
                image = np.nanmean(model.data, axis=0)
        else:
            image = model.data
        if image is None:
            self.log.warning("Automatic parameter setting failed; using the parameters as given")
            return
        chosen = automatic_parameters(image, self._slowaxis(model), exp_type,
                                      self._flat(model, quiet=True))
        self.log.info("Automatic parameters for %s: %s", exp_type, chosen)
        for name, value in chosen.items():
            setattr(self, name, value)

    def _options(self, model, exp_type: str, background_method):
        """Cleaning options, and whether one mask serves all integrations, standardised
        for the exposure (MIRI bands are vertical; channels only for NIR full frames)."""
        subarray = (model.meta.subarray.name or "").upper()
        single_mask = self.single_mask
        if background_method == "median_image" and single_mask:
            self.log.warning("The median_image background needs per-integration rates; "
                             "setting single_mask to False")
            single_mask = False
        fit_by_channel = self.fit_by_channel
        if fit_by_channel and (subarray != "FULL" or exp_type.startswith("MIR")):
            self.log.warning("fit_by_channel applies to full-frame NIR data only; ignored")
            fit_by_channel = False
        options = CleaningOptions(
            fit_method=self.fit_method,
            background_method=background_method,
            background_box_size=self.background_box_size,
            n_sigma=self.n_sigma,
            axis_to_correct=1 if exp_type.startswith("MIR") else abs(self._slowaxis(model)),
            fit_by_channel=fit_by_channel,
            detector=(model.meta.instrument.detector or "").upper(),
            cutoffs=ALLSLITS_CUTOFFS if subarray == "ALLSLITS" else SUBARRAY_CUTOFFS,
        )
        return options, single_mask

    def _unsupported(self, model, exp_type: str, background_method) -> str | None:
        """Why calwebb cannot (yet) treat this input as the official pipeline would."""
        if self.mask_science_regions and exp_type in NIRSPEC_WCS_REGIONS:
            return (f"mask_science_regions for {exp_type} needs the NIRSpec slit/IFU WCS, "
                    "which calwebb does not provide yet")
        if exp_type == "NIS_SOSS" and (self.mask_science_regions or
                                       background_method == "median_image"):
            return "NIRISS SOSS trace masking and median_image scaling are not implemented yet"
        tso_imaging = exp_type == "MIR_IMAGE" and bool(model.meta.visit.tsovisit) and (
            (model.meta.exposure.nints or 2) >= 2)
        if background_method == "median_image" and (exp_type in TSO_SCALED or tso_imaging):
            return (f"median_image for {exp_type} TSO data scales integrations by extracted "
                    "spectra or aperture photometry, which is not implemented yet")
        return None

    def _slowaxis(self, model) -> int:
        slowaxis = model.meta.subarray.slowaxis
        if slowaxis is None:
            raise DataModelError(f"{model.meta.filename or 'input'}: SLOWAXIS (meta.subarray."
                                 "slowaxis) is missing; it says which axis to clean")
        return int(slowaxis)

    # -- references and helper products -------------------------------------------------------
    def _flat(self, model, quiet: bool = False) -> np.ndarray | None:
        """The FLAT cut to the data with its gaps filled, or None when none applies."""
        if self._flat_cache is None:
            reference = self.open_reference(model, "flat")
            self._flat_cache = (None,) if reference is None else (
                fill_flat_gaps(reference.data),)
        flat = self._flat_cache[0]
        if flat is None and not quiet:
            self.log.warning("No flat is available for EXP_TYPE %s; fitting without one",
                             model.meta.exposure.type)
        return flat

    def _draft_rates(self, model, per_integration: bool):
        """The draft rate (or rates per integration) of ``model``: fitted once for ramps
        with the ramp_fit defaults; the input itself for rate data."""
        if not isinstance(model, datamodels.RampModel):
            return model
        if self._drafts is None:
            from calwebb.ramp_fitting.step import RampFitStep

            self.log.info("Fitting a draft rate for scene masking")
            with quiet("calwebb.step.RampFitStep", "calwebb.ramp_fitting"):
                self._drafts = RampFitStep(name="ramp_fit").process(model)
        rate, rateints = self._drafts
        return rateints if per_integration else rate

    def _add_flat_dq(self, rates) -> None:
        """OR the DQ that flat fielding would give into ``rates`` (MIRI non-science areas)."""
        from calwebb.flat_field.step import FlatFieldStep

        self.log.info("Retrieving flat DQ for scene masking")
        with quiet("calwebb.step.FlatFieldStep", "calwebb.flat_field"):
            flattened = FlatFieldStep(name="flat_field").process(rates.copy())
        if flattened.meta.cal_step.flat_field == "COMPLETE":
            rates.dq |= flattened.dq

    def _median_image(self, model, rates) -> np.ndarray | None:
        if model.data.ndim < 3 or model.data.shape[0] <= 1:
            self.log.warning("The median_image background needs several integrations")
            return None
        try:
            scale = integration_scale(rates.data)
            stack = model.data if model.data.ndim == 4 else rates.data
            return scaled_median_image(stack, scale)
        except ValueError as exc:
            self.log.warning("No median image: %s", exc)
            return None

    def _save_product(self, model, template, array: np.ndarray, suffix: str) -> None:
        """Save ``array`` with ``template``'s metadata as a ramp, cube or image model."""
        product_class = {4: datamodels.RampModel, 3: datamodels.CubeModel}.get(
            array.ndim, datamodels.ImageModel)
        product = product_class(data=array)
        for key, value in template.tree["meta"].items():
            if key != "model_type":
                product.tree["meta"][key] = _copy(value)
        self.save_model(product, suffix=suffix, force=True,
                        output_file=model.meta.filename or None)

    def _fail(self, model, reason: str):
        self.log.warning("%s: %s; step skipped", self.qualified_name, reason)
        self.set_status(model, "FAILED")
        return model


def _threads() -> int:
    """Images cleaned at once: the numba thread count (NUMBA_NUM_THREADS), at most 4 (each
    holds a few full-frame float64 work arrays)."""
    import numba

    return max(1, min(MAX_THREADS, numba.get_num_threads()))


def _copy(value):
    import copy

    return copy.deepcopy(value)


@contextmanager
def _ignore_runtime_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _shape_problem(data: np.ndarray, mask: np.ndarray) -> str | None:
    """Why ``mask`` cannot serve ``data`` (None when it can)."""
    if mask.shape[-2:] != data.shape[-2:]:
        return f"the mask shape {mask.shape} does not match the data {data.shape}"
    if data.ndim > 2 and mask.ndim == 3 and mask.shape[0] != data.shape[0]:
        return f"the mask has {mask.shape[0]} planes for {data.shape[0]} integrations"
    return None
