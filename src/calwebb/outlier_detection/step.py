"""OutlierDetectionStep: flag cosmic rays and other transients by comparing each input with
a median of all inputs (stage3.md §2.5). Imaging, TSO and coronagraphic modes; the spec and
IFU modes are not implemented yet."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.associations.library import ModelLibrary
from calwebb.errors import DataModelError, ParameterError
from calwebb.outlier_detection import cube, imaging
from calwebb.outlier_detection.flagging import (
    flag_against_blot,
    flag_against_reference,
    record_outliers,
)
from calwebb.outlier_detection.median import ImageStack, mask_low_weight, weight_threshold
from calwebb.resample import grid
from calwebb.stpipe import Step
from calwebb.suffixes import split_suffix

MODES = ("imaging", "spec", "ifu", "tso", "coron")
NOT_IMPLEMENTED = ("spec", "ifu")
IMAGE_EXP_TYPES = ("NRC_IMAGE", "MIR_IMAGE", "NRS_IMAGE", "NIS_IMAGE", "FGS_IMAGE")
SLIT_EXP_TYPES = ("NRC_WFSS", "MIR_LRS-FIXEDSLIT", "NRS_FIXEDSLIT", "NRS_MSASPEC", "NIS_WFSS")
IFU_EXP_TYPES = ("NRS_IFU", "MIR_MRS")
CORON_EXP_TYPES = ("NRC_CORON", "MIR_LYOT", "MIR_4QPM")
TSO_EXP_TYPES = ("NRC_TSIMAGE", "NRC_TSGRISM", "NRS_BRIGHTOBJ")
#: arrays made NaN where a pixel is DO_NOT_USE, besides SCI
ERROR_ARRAYS = ("err", "var_poisson", "var_rnoise", "var_flat")


def guess_mode(meta, single: bool) -> str | None:
    """The mode for data described by ``meta`` (the first input's metadata); ``single``: the
    input is one model, which alone can be TSO data. None when the exposure type has no mode."""
    exp_type = str(meta.exposure.type or "").upper()
    if single and is_tso(meta):
        return "tso"
    if exp_type in CORON_EXP_TYPES:
        return "coron"
    if exp_type in IMAGE_EXP_TYPES:
        return "imaging"
    if exp_type in SLIT_EXP_TYPES:
        return "spec"
    if exp_type in IFU_EXP_TYPES:
        return "ifu"
    return None


def is_tso(meta) -> bool:
    """TSOVISIT set or a TSO exposure type, unless the exposure has fewer than 2 integrations."""
    tso = bool(meta.visit.tsovisit) or str(meta.exposure.type or "").upper() in TSO_EXP_TYPES
    nints = meta.exposure.nints
    return tso and not (nints is not None and nints < 2)


def exposure_file_name(name: str, asn_id: str | None) -> str:
    """``<root>[_<asn_id>]<ext>``: ``name`` without its known suffix (``_cal``,
    ``_calints`` ...), with the association id unless the name already holds it."""
    base = Path(str(name)).name
    stem, ext = os.path.splitext(base)
    root, _, _ = split_suffix(stem)
    if asn_id and f"_{asn_id}" not in root:
        root = f"{root}_{asn_id}"
    return f"{root}{ext or '.fits'}"


class OutlierDetectionStep(Step):
    """DQ |= DO_NOT_USE | OUTLIER (and SCI, ERR, VAR_* = NaN) where an input departs from the
    median of all inputs."""

    class_alias = "outlier_detection"
    spec = """
        weight_type = option('ivm', 'exptime', default='ivm')  # weight of each pixel in the drizzled images
        pixfrac = float(min=0.0, max=1.0, default=1.0)  # drop size relative to an input pixel
        kernel = option('square', 'point', 'turbo', default='square')  # drizzle kernel
        fillval = string(default='NAN')  # drizzled value where no input contributes
        maskpt = float(default=0.7)  # weight threshold: this fraction of the clipped mean weight
        snr = string(default='5.0 4.0')  # snr1 snr2: noise multiples of the two tests
        scale = string(default='1.2 0.7')  # scale1 scale2: blot-gradient multiples of the two tests
        backg = float(default=0.0)  # background added to the blot (unless a sky level is recorded)
        kernel_size = string(default='7 7')  # IFU: median filter size
        threshold_percent = float(default=99.8)  # IFU: percentile of the flag threshold
        rolling_window_width = integer(default=25)  # TSO: integrations in the rolling median
        ifu_second_check = boolean(default=False)  # IFU: also flag where the minimum difference is NaN
        save_intermediate_results = boolean(default=False)  # save drizzled groups, median and blots
        resample_data = boolean(default=True)  # drizzle the groups first (False: inputs on one grid)
        good_bits = string(default='~DO_NOT_USE')  # DQ flags that still count as good
        search_output_file = boolean(default=False)  # take output_file from the enclosing pipeline
        in_memory = boolean(default=True)  # False: members and the median stack in temporary files
        pixmap_stepsize = float(default=1.0)  # evaluate the WCS every this many pixels
        pixmap_order = integer(default=1)  # spline order (1 or 3) interpolating the pixel map
        suffix = string(default='crf')  # suffix of the output files
    """  # noqa: E501 - parameter comments

    #: set by the Stage-3 pipelines ('imaging', 'spec', 'ifu', 'tso', 'coron'); None: guessed
    mode: str | None = None
    #: the association id used in output names (None: none known)
    _asn_id: str | None = None

    # -- inputs --------------------------------------------------------------------------------
    def prepare_input(self, value):
        """Libraries, association files and dicts, and models are used as given (a model is
        copied before it is changed); other file names are resolved and kept as paths."""
        if isinstance(value, ModelLibrary | datamodels.DataModel | dict):
            return value
        if isinstance(value, list | tuple):
            return [self.prepare_input(item) for item in value]
        if isinstance(value, str | os.PathLike):
            path = self._resolve_input_path(value)
            if not path.exists():
                raise DataModelError(f"{path}: no such file")
            return str(path)
        raise DataModelError(f"outlier_detection cannot use a {type(value).__name__}: give a "
                             "model, a file, a list of them, an association or a library")

    def _check_parameters(self) -> dict:
        def pair(name: str) -> tuple[float, float]:
            text = str(getattr(self, name))
            try:
                values = [float(part) for part in text.replace(",", " ").split()]
            except ValueError:
                values = []
            if len(values) != 2:
                raise ParameterError(f"{name} must be two numbers such as '5.0 4.0', got "
                                     f"{text!r}")
            return values[0], values[1]

        if self.pixmap_order not in (1, 3):
            raise ParameterError(f"pixmap_order must be 1 or 3, got {self.pixmap_order}")
        try:
            good_bits = dqflags.interpret_bit_flags(self.good_bits)
        except ValueError as error:
            raise ParameterError(f"good_bits: {error}") from None
        (snr1, snr2), (scale1, scale2) = pair("snr"), pair("scale")
        return dict(snr1=snr1, snr2=snr2, scale1=scale1, scale2=scale2, good_bits=good_bits)

    # -- processing ----------------------------------------------------------------------------
    def process(self, value):
        options = self._check_parameters()
        single = isinstance(value, datamodels.DataModel) or (
            isinstance(value, str) and not value.lower().endswith(".json"))
        if single:
            model = value if isinstance(value, datamodels.DataModel) else datamodels.open(value)
            owned = not isinstance(value, datamodels.DataModel) or self.parent is not None
            library = None
            meta = model.meta
        else:
            library = value if isinstance(value, ModelLibrary) else \
                ModelLibrary(value, on_disk=not self.in_memory)
            with library:
                first = library.borrow(0)
                meta = first.meta
                library.shelve(first, 0, modify=False)
        mode = self.mode or guess_mode(meta, single)
        self._asn_id = (library.asn_id if library is not None else None) or \
            self.search_up("asn_id")
        if mode is None:
            self.log.error("Outlier detection failed: exposure type %s has no outlier "
                           "detection mode", meta.exposure.type)
            if single:
                model = model if owned else model.copy()
                self.set_status(model, "FAILED")
                return model
            self._finish_library(library, "FAILED")
            return library
        if mode not in MODES:
            raise ParameterError(f"outlier_detection mode must be one of {MODES}, got {mode!r}")
        if mode in NOT_IMPLEMENTED:
            raise DataModelError(f"outlier_detection {mode!r} mode is not implemented yet "
                                 f"(implemented: imaging, tso, coron)")
        self.log.info("Outlier detection mode: %s; association id: %s", mode, self._asn_id)
        if mode in ("tso", "coron"):
            if not single:
                raise DataModelError(f"outlier_detection {mode} mode works on one cube of "
                                     f"integrations; run it on each cube separately")
            model = model if owned else model.copy()
            return self._cube(model, mode, options)
        if single:
            if not isinstance(model, datamodels.ImageModel):
                raise DataModelError(f"{meta.filename}: imaging outlier detection needs 2-D "
                                     f"images, got a {type(model).__name__}")
            try:  # one image: a one-member library, skipped below
                library = ModelLibrary(value, on_disk=not self.in_memory)
            except DataModelError:  # no exposure group can be told: skip the model itself
                model = model if owned else model.copy()
                return self.skip_model(model, "only 1 exposure given; outlier detection "
                                              "needs at least 2")
        return self._imaging(library, options)

    # -- imaging -------------------------------------------------------------------------------
    def _imaging(self, library: ModelLibrary, options: dict) -> ModelLibrary:
        count = len(library)
        if count < 2:
            self.log.warning("%s: only %d exposure given; outlier detection needs at least 2; "
                             "step skipped", self.qualified_name, count)
            self._finish_library(library, "SKIPPED")
            return library
        members = self._describe_members(library)
        directory = tempfile.TemporaryDirectory(prefix="calwebb_outlier_", dir=Path.cwd()) \
            if library.on_disk else None
        try:
            stack_dir = directory.name if directory is not None else None
            if self.resample_data:
                median, median_wcs = self._resampled_median(library, members, options, stack_dir)
            else:
                median, median_wcs = self._direct_median(library, members, options, stack_dir)
        finally:
            if directory is not None:
                directory.cleanup()
        total = 0
        with library:
            for index, info in enumerate(members):
                model = library.writable(index)
                total += self._flag_image(model, info, median, median_wcs, options)
                self.set_status(model, "COMPLETE")
                self.finalize_result(model)
                self._save_member(model, info["name"])
                library.shelve(model, index, modify=True)
        self.log.info("Outlier detection flagged %d pixels in %d images", total, count)
        return library

    def _describe_members(self, library: ModelLibrary) -> list[dict]:
        """Name, WCS, shape, group and drizzle weights/background of every member."""
        names = _member_names(library)
        described = []
        with library:
            for index in range(len(library)):
                model = library.borrow(index)
                name = names[index] or model.meta.filename or f"member{index}.fits"
                if not isinstance(model, datamodels.ImageModel):
                    library.shelve(model, index, modify=False)
                    raise DataModelError(f"{name}: imaging outlier detection needs 2-D images, "
                                         f"got a {type(model).__name__}")
                wcs = model.meta.wcs
                if self.resample_data and (wcs is None or not hasattr(wcs, "forward_transform")):
                    library.shelve(model, index, modify=False)
                    raise DataModelError(f"{name}: no WCS in meta.wcs (run assign_wcs first)")
                exposure, background = model.meta.exposure, model.meta.background
                weight_time = next((float(t) for t in (exposure.measurement_time,
                                                       exposure.exposure_time)
                                    if t is not None and t > 0), 1.0)
                level = background.level
                sky = level is not None and not background.subtracted
                described.append(dict(
                    name=name, wcs=wcs, shape=_image_shape(model),
                    group=library.group_ids[index], weight_time=weight_time,
                    ra_ref=model.meta.wcsinfo.ra_ref, dec_ref=model.meta.wcsinfo.dec_ref,
                    sky_recorded=sky, background=float(level) if sky else 0.0))
                library.shelve(model, index, modify=False)
        return described

    def _image_input(self, model, info: dict) -> imaging.ImageInput:
        return imaging.ImageInput(
            data=model.data, wcs=model.meta.wcs, dq=model.dq if model.has_array("dq") else None,
            var_rnoise=model.var_rnoise if model.has_array("var_rnoise") else None,
            exposure_time=info["weight_time"], background=info["background"], name=info["name"])

    def _resampled_median(self, library, members, options, stack_dir):
        """Drizzle each exposure group onto the common grid, drop low-weight pixels and take
        the NaN-median over groups; returns (median, grid WCS)."""
        first = members[0]
        output_wcs, ratio = grid.output_grid(
            [info["wcs"] for info in members], [info["shape"] for info in members],
            reference=(first["ra_ref"], first["dec_ref"]))
        shape = tuple(int(n) for n in output_wcs.array_shape)
        groups = list(library.group_indices.values())
        self.log.info("Drizzling %d exposure group(s) onto %d x %d pixels: pixfrac %g, %s "
                      "kernel, %s weights", len(groups), shape[1], shape[0], self.pixfrac,
                      self.kernel, self.weight_type)

        def stream(indices):
            for index in indices:
                model = library.borrow(index)
                try:
                    yield self._image_input(model, members[index])
                finally:
                    library.shelve(model, index, modify=False)

        with ImageStack(len(groups), shape, directory=stack_dir) as stack, library:
            for position, indices in enumerate(groups):
                data, weight = imaging.drizzle_group(
                    stream(indices), output_wcs, good_bits=options["good_bits"],
                    pixfrac=self.pixfrac, kernel=self.kernel, fillval=self.fillval,
                    weight_type=self.weight_type, pixel_scale_ratio=ratio,
                    pixmap_stepsize=self.pixmap_stepsize, pixmap_order=self.pixmap_order)
                if self.save_intermediate_results:
                    drizzled = datamodels.ImageModel(data=data, wht=weight)
                    self._save_intermediate(drizzled, library, indices[0], members,
                                            "outlier_i2d", output_wcs)
                threshold = weight_threshold(weight, self.maskpt)
                stack[position] = mask_low_weight(data, weight, threshold)
                del data, weight
            median = stack.median()
        if self.save_intermediate_results:
            with library:
                self._save_intermediate(datamodels.ImageModel(data=median), library, 0, members,
                                        "median", output_wcs)
        return median, output_wcs

    def _direct_median(self, library, members, options, stack_dir):
        """NaN-median over the input images themselves (all of one shape) after dropping
        low-weight pixels; returns (median, None)."""
        shape = members[0]["shape"]
        for info in members:
            if info["shape"] != shape:
                raise DataModelError(f"resample_data=False needs inputs of one shape: "
                                     f"{info['name']} is {info['shape']}, {members[0]['name']} "
                                     f"is {shape}")
        with ImageStack(len(members), shape, directory=stack_dir) as stack, library:
            for index, info in enumerate(members):
                model = library.borrow(index)
                item = self._image_input(model, info)
                weights = imaging.image_weights(item, self.weight_type, options["good_bits"])
                stack[index] = mask_low_weight(model.data, weights,
                                               weight_threshold(weights, self.maskpt))
                library.shelve(model, index, modify=False)
            median = stack.median()
        if self.save_intermediate_results:
            with library:
                self._save_intermediate(datamodels.ImageModel(data=median), library, 0, members,
                                        "median", members[0]["wcs"])
        return median, None

    def _flag_image(self, model, info, median, median_wcs, options) -> int:
        """Flag one input in place; returns the number of outliers."""
        if median_wcs is None:
            outliers = flag_against_reference(model.data, model.err, median, options["snr1"])
        else:
            blot = imaging.blot_median(median, median_wcs, model.meta.wcs, model.data.shape,
                                       pixmap_stepsize=self.pixmap_stepsize,
                                       pixmap_order=self.pixmap_order)
            if self.save_intermediate_results:
                blot_model = datamodels.ImageModel(data=blot)
                _copy_meta(blot_model, model, model.meta.wcs)
                self.save_model(blot_model, suffix="blot", force=True,
                                output_file=self._exposure_file(info["name"]))
            # the recorded sky was subtracted before drizzling: it goes back onto the blot
            background = info["background"] if info["sky_recorded"] else self.backg
            outliers = flag_against_blot(model.data, model.err, blot, background=background,
                                         snr1=options["snr1"], snr2=options["snr2"],
                                         scale1=options["scale1"], scale2=options["scale2"])
        found = record_outliers(outliers, model.dq, *_science_arrays(model))
        self.log.info("%s: %d pixels marked as outliers", info["name"], found)
        return found

    # -- TSO and coronagraphy --------------------------------------------------------------------
    def _cube(self, model, mode: str, options: dict):
        if not isinstance(model, datamodels.CubeModel) or model.data.ndim != 3:
            raise DataModelError(f"{model.meta.filename}: {mode} outlier detection needs a cube "
                                 f"of integrations, got a {type(model).__name__} of shape "
                                 f"{np.shape(model.data)}")
        dq = model.dq if model.has_array("dq") else None
        if mode == "tso":
            reference = cube.tso_reference(model.data, dq, options["good_bits"], self.maskpt,
                                           self.rolling_window_width)
        else:
            reference = cube.coron_median(model.data, dq, options["good_bits"], self.maskpt)
        if self.save_intermediate_results:
            median_model = datamodels.CubeModel(data=np.array(reference)) if mode == "tso" \
                else datamodels.ImageModel(data=reference)
            _copy_meta(median_model, model, model.meta.wcs)
            self.save_model(median_model, suffix="median", force=True,
                            output_file=self._exposure_file(model.meta.filename or "cube.fits"))
        outliers = flag_against_reference(model.data, model.err, reference, options["snr1"])
        found = record_outliers(outliers, model.dq, *_science_arrays(model))
        self.log.info("%s: %d pixels marked as outliers", model.meta.filename, found)
        self.set_status(model, "COMPLETE")
        return model

    # -- status and saving ---------------------------------------------------------------------
    def _finish_library(self, library: ModelLibrary, status: str) -> None:
        """Set ``status`` on every member (saving them when asked)."""
        names = _member_names(library)
        with library:
            for index in range(len(library)):
                model = library.writable(index)
                self.set_status(model, status)
                self.finalize_result(model)
                if status != "FAILED":
                    self._save_member(model, names[index] or model.meta.filename or
                                       f"member{index}.fits")
                library.shelve(model, index, modify=True)

    def _save_member(self, model, name: str) -> None:
        """Save a library member as <root>_<asn_id>_<suffix> when results are saved; the
        member keeps its own file name."""
        if not self.save_results:
            return
        original = model.meta.filename
        self.save_model(model, suffix=self.suffix, output_file=self._exposure_file(name))
        model.meta.filename = original

    def _exposure_file(self, name: str) -> str:
        return exposure_file_name(name, self._asn_id)

    def _save_intermediate(self, product, library, index, members, suffix, wcs) -> None:
        """Save ``product`` (metadata from member ``index``) as <root>_<asn_id>_<suffix>."""
        source = library.borrow(index)
        try:
            _copy_meta(product, source, wcs)
        finally:
            library.shelve(source, index, modify=False)
        self.save_model(product, suffix=suffix, force=True,
                        output_file=self._exposure_file(members[index]["name"]))

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False):
        """Exposure-based names: ``<root>_<asn_id>_<suffix>`` when an association id is known;
        a cube saved with the default suffix gets ``crfints``."""
        if not (force or self.save_results or output_file):
            return None
        if output_file is None and self.output_file is None and self._asn_id and \
                model.meta.filename:
            output_file = self._exposure_file(model.meta.filename)
        if suffix is None and self.suffix == "crf" and isinstance(model, datamodels.CubeModel):
            suffix = "crfints"
        return super().save_model(model, suffix=suffix, idx=idx, output_file=output_file,
                                  force=force)


def _member_names(library: ModelLibrary) -> list[str | None]:
    """The members' original file names from the library's association (None where they
    cannot be told), so names survive members kept in temporary files."""
    try:
        roles = library.asn.products[0].members
    except (AttributeError, IndexError):
        return [None] * len(library)
    science = [member for member in roles if member.exptype.lower() == "science"]
    if len(science) != len(library):
        return [None] * len(library)
    return [Path(member.expname).name for member in science]


def _image_shape(model) -> tuple[int, int]:
    """(ny, nx) from the WCS when it knows it (SCI need not be read), else from SCI."""
    shape = getattr(model.meta.wcs, "array_shape", None)
    return tuple(int(n) for n in shape) if shape is not None else tuple(model.data.shape)


def _science_arrays(model) -> list[np.ndarray]:
    """SCI and whichever of ERR and VAR_* the model holds."""
    return [model.data, *(getattr(model, name) for name in ERROR_ARRAYS
                          if model.has_array(name))]


def _copy_meta(target, source, wcs) -> None:
    """``source``'s metadata (without its WCS) on ``target``, with ``wcs``."""
    meta = {key: value for key, value in source.tree["meta"].items() if key != "wcs"}
    target.tree["meta"].update(copy.deepcopy(meta))
    target.meta.model_type = type(target).__name__
    if wcs is not None:
        target.meta.wcs = wcs
