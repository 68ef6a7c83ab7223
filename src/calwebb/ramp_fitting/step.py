"""RampFitStep: slopes (DN/s) from corrected ramps, per exposure and per integration."""

from __future__ import annotations

import copy

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.kernels import limited_threads, sorting_network
from calwebb.ramp_fitting.likely import MIN_NGROUPS, fit_ramps_likely, read_times
from calwebb.ramp_fitting.ols import (
    PRODUCT_TYPES,
    fit_one_integration,
    fit_ramps,
    slope_coefficients,
)
from calwebb.ramp_fitting.ols_optional import optional_products
from calwebb.ramp_fitting.prepare import apply_group_range, drop_unusable_miri_groups
from calwebb.stpipe import Step

PRODUCT_ARRAYS = (("data", "slope"), ("err", "err"), ("dq", "dq"),
                  ("var_poisson", "var_poisson"), ("var_rnoise", "var_rnoise"))


class RampFitStep(Step):
    """Fit every pixel's ramp; returns (rate ImageModel, rateints CubeModel).

    With ``save_opt`` the optional product is written as well (``fitopt`` for OLS_C,
    ``likely_chisq`` for LIKELY) and kept in ``optional_model``.

    For one integration (OLS_C), the rate and rateints arrays whose values are identical
    are the same memory (views of one buffer): scale or edit them as copies.
    """

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

    #: the optional product of the last run with save_opt (None otherwise)
    optional_model = None
    #: set by a tiled run (calwebb.parallel.tiles) to the tile being processed: MIRI groups
    #: are then trimmed by the frame's fully-bad groups ``tile.all_do_not_use``, and whether
    #: every pixel is saturated in the first group goes to ``tile.flags`` instead of ending
    #: the fit
    tile = None

    def process(self, model):
        self.optional_model = None
        readnoise = self.open_reference(model, "readnoise")
        gain_model = self.open_reference(model, "gain")
        if readnoise is None or gain_model is None:
            raise ReferenceFileError("ramp_fit needs GAIN and READNOISE references; got N/A")
        algorithm = self._choose_algorithm(model)
        data, groupdq = model.data, model.groupdq
        if self.firstgroup is not None or self.lastgroup is not None:
            groupdq = groupdq.copy()
            apply_group_range(groupdq, self.firstgroup, self.lastgroup)
        if algorithm == "LIKELY":
            rate, rateints = self._fit_likely(model, data, groupdq, gain_model.data,
                                              readnoise.data)
        else:
            if (model.meta.instrument.name or "").upper() == "MIRI":
                data, groupdq = drop_unusable_miri_groups(
                    data, groupdq, self._frame_unusable_groups(groupdq.shape[1]))
                if data is None:
                    self.log.warning("Fewer than two usable MIRI groups: no rate products")
                    return None, None
            first_saturated = (groupdq[:, 0] & dqflags.SATURATED) != 0
            if self.tile is not None:  # the whole frame decides whether there are products
                self.tile.flags["ramp_fit.first_group_saturated"] = bool(
                    self.tile.flags.get("ramp_fit.first_group_saturated", True)
                    and first_saturated[..., self.tile.rows, :].all())
            elif first_saturated.all():
                self.log.warning("Every pixel saturated in the first group: no rate products")
                return None, None
            rate, rateints = self._fit(model, data, groupdq, gain_model.data, readnoise.data)
        gain_factor = gain_model.meta.exposure.gain_factor
        if self.optional_model is not None and gain_factor is not None:
            self.optional_model.meta.exposure.gain_factor = gain_factor
        for product in (rate, rateints):
            product.meta.bunit_data = product.meta.bunit_err = "DN/s"
            if gain_factor is not None:
                product.meta.exposure.gain_factor = gain_factor
            self.set_status(product, "COMPLETE")
        if self.optional_model is not None:
            self.save_model(self.optional_model, suffix=self._optional_suffix(algorithm),
                            output_file=self.opt_name or model.meta.filename or None)
        return rate, rateints

    def _choose_algorithm(self, model) -> str:
        """LIKELY when asked for or when explicit read times exist; OLS_C below 4 groups."""
        algorithm = self.algorithm.upper()
        if _explicit_read_times(model) is not None and algorithm != "LIKELY":
            self.log.warning("Explicit read times (unevenly sampled exposure): using LIKELY")
            algorithm = "LIKELY"
        ngroups = model.data.shape[1]
        if algorithm == "LIKELY" and ngroups < MIN_NGROUPS:
            self.log.info("LIKELY needs at least %d groups but NGROUPS = %d: using OLS_C",
                          MIN_NGROUPS, ngroups)
            algorithm = "OLS_C"
        self.log.info("Using algorithm = %s", algorithm)
        return algorithm

    @staticmethod
    def _optional_suffix(algorithm: str) -> str:
        return "likely_chisq" if algorithm == "LIKELY" else "fitopt"

    def _frame_unusable_groups(self, ngroups: int) -> np.ndarray | None:
        """In a tiled run: the groups DO_NOT_USE on every pixel of the frame (None otherwise)."""
        if self.tile is None:
            return None
        ranged = np.zeros((1, ngroups, 1, 1), np.uint8)
        apply_group_range(ranged, self.firstgroup, self.lastgroup)
        return self.tile.all_do_not_use.all(axis=0) | (ranged[0, :, 0, 0] != 0)

    def _fit(self, model, data, groupdq, gain, readnoise):
        nints, _, ny, nx = data.shape
        exposure = model.meta.exposure
        tframe = exposure.frame_time or exposure.group_time
        nframes = int(exposure.nframes or 1)
        has_zeroframe = model.has_array("zeroframe")
        # never read without a ZEROFRAME: a placeholder instead of a frame of zeros
        zeroframe = model.zeroframe if has_zeroframe else np.zeros((nints, 1, 1), np.float32)
        dark = _dark_rate(model)
        data = np.ascontiguousarray(data)
        groupdq = np.ascontiguousarray(groupdq)
        gain = gain.astype(np.float32, copy=False)
        readnoise = readnoise.astype(np.float32, copy=False)
        arguments = (data, groupdq, model.pixeldq, gain, readnoise, dark, zeroframe,
                     has_zeroframe, slope_coefficients(data.shape[1]),
                     sorting_network(data.shape[1] - 1), float(exposure.group_time),
                     float(tframe), nframes, self.suppress_one_group)
        with limited_threads(self.maximum_cores):
            if nints == 1:  # rate and rateints share the planes where they are equal
                image, cube = fit_one_integration(arguments, (ny, nx))
            else:
                image = [np.empty((ny, nx), kind) for kind in PRODUCT_TYPES]
                cube = [np.empty((nints, ny, nx), kind) for kind in PRODUCT_TYPES]
                fit_ramps(*arguments, 0, *image, *cube)
            if self.save_opt:
                arrays = optional_products(
                    data, groupdq, model.pixeldq, gain, readnoise, dark, zeroframe,
                    has_zeroframe, float(exposure.group_time), float(tframe), nframes,
                    int(exposure.groupgap or 0), int(exposure.drop_frames1 or 0),
                    self.suppress_one_group, cube[0])
                self.optional_model = _with_meta(datamodels.RampFitOutputModel(**arrays), model)
        names = [name for name, _ in PRODUCT_ARRAYS]
        return _rate_products(model, dict(zip(names, image, strict=True)),
                              dict(zip(names, cube, strict=True)))

    def _fit_likely(self, model, data, groupdq, gain, readnoise):
        exposure = model.meta.exposure
        times = _explicit_read_times(model)
        if times is not None and len(times) != data.shape[1]:
            raise DataModelError(
                f"{model.meta.filename or 'ramp'}: meta.exposure.read_times lists {len(times)} "
                f"groups; the ramp has NGROUPS = {data.shape[1]}")
        if times is None:
            times = read_times(data.shape[1], int(exposure.nframes or 1),
                               int(exposure.groupgap or 0),
                               float(exposure.frame_time or exposure.group_time))
        zeroframe = model.zeroframe if model.has_array("zeroframe") else None
        with limited_threads(self.maximum_cores):
            image, cube = fit_ramps_likely(data, groupdq, model.pixeldq, gain, readnoise,
                                           _dark_rate(model), times, zeroframe,
                                           int(exposure.nframes or 1))
        if self.save_opt:
            self.optional_model = _with_meta(datamodels.ImageModel(data=image["chisq"]), model)
        return _rate_products(model, {name: image[key] for name, key in PRODUCT_ARRAYS},
                              {name: cube[key] for name, key in PRODUCT_ARRAYS})


def _explicit_read_times(model):
    """``meta.exposure.read_times`` (per group, the times of the reads averaged), or None."""
    try:
        times = model.meta.exposure.read_times
    except AttributeError:
        return None
    if times is None or len(times) == 0:
        return None
    return list(times)


def _dark_rate(model) -> np.ndarray:
    if model.has_array("average_dark_current"):
        return model.average_dark_current.astype(np.float32, copy=False)
    return np.zeros(model.data.shape[-2:], np.float32)


def _with_meta(product, model):
    product.tree["meta"] = copy.deepcopy(model.tree["meta"])
    product.meta.model_type = type(product).__name__
    return product


def _rate_products(model, image: dict, cube: dict):
    """(rate ImageModel, rateints CubeModel) with the ramp's metadata, INT_TIMES and (from
    superstripes) INT_TIMES_STRIPE."""
    rate = _with_meta(datamodels.ImageModel(**image), model)
    rateints = _with_meta(datamodels.CubeModel(**cube), model)
    for table in ("int_times", "int_times_stripe"):
        if model.has_array(table):
            setattr(rateints, table, getattr(model, table))
    return rate, rateints
