"""OutlierDetectionStep: flag cosmic rays and other transients by comparing each input with
a median of all inputs (stage3.md §2.5). Imaging, TSO and coronagraphic modes; the spec and
IFU modes are not implemented yet."""

from __future__ import annotations

import copy
import os
import tempfile
from itertools import repeat
from pathlib import Path

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.associations.library import ModelLibrary
from calwebb.datamodels.io import writes_in_background
from calwebb.errors import DataModelError, ParameterError
from calwebb.outlier_detection import cube, imaging
from calwebb.outlier_detection.flagging import (
    flag_against_blot,
    flag_against_reference,
    record_outliers,
)
from calwebb.outlier_detection.median import (
    ImageStack,
    mask_low_weight,
    nanmedian,
    row_bands,
    weight_threshold,
)
from calwebb.parallel.executor import as_files, current
from calwebb.resample import grid
from calwebb.resample.drizzle_images import PixelMapper, PixmapScratch
from calwebb.resample.step import task_info
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
    #: inside ``calwebb.parallel.using(...)`` its per-exposure work runs as tasks
    exposure_tasks = True
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
        return self.members_as_given(
            value, (ModelLibrary, datamodels.DataModel, dict),
            "a model, a file, a list of them, an association or a library")

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
        library.pixel_mappers.clear()  # (kept there for a mosaic on the same grid)
        executor = current()
        if executor is not None and self.resample_data:
            with executor.scratch("calwebb_outlier_") as directory:
                total = self._record(library, members, self._outliers_by_tasks(
                    executor, library, members, options, Path(directory)))
        else:
            directory = tempfile.TemporaryDirectory(prefix="calwebb_outlier_", dir=Path.cwd()) \
                if library.on_disk else None
            scratch = PixmapScratch()  # every member's pixel map, drizzled then blotted
            try:
                stack_dir = directory.name if directory is not None else None
                if self.resample_data:
                    median, median_wcs = self._resampled_median(library, members, options,
                                                                stack_dir, scratch)
                else:
                    median, median_wcs = self._direct_median(library, members, options,
                                                             stack_dir)
            finally:
                if directory is not None:
                    directory.cleanup()
            total = self._record(library, members, lambda model, index: self._outliers(
                model, members[index], median, median_wcs, options,
                library.pixel_mappers.get(index), scratch))
        self.log.info("Outlier detection flagged %d pixels in %d images", total, count)
        return library

    def _record(self, library: ModelLibrary, members: list[dict], outliers_of) -> int:
        """Flag every member where ``outliers_of(model, index)`` is True, set its status and
        save it when asked; returns the number of outliers."""
        total = 0
        with library, writes_in_background():  # a crf file is written while the next is made
            for index, info in enumerate(members):
                model = library.writable(index)
                found = record_outliers(outliers_of(model, index), model.dq,
                                        *_science_arrays(model))
                self.log.info("%s: %d pixels marked as outliers", info["name"], found)
                total += found
                self.set_status(model, "COMPLETE")
                self.finalize_result(model)
                self._save_member(model, info["name"])
                library.shelve(model, index, modify=True)
        return total

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

    def _median_grid(self, library, members):
        """(grid WCS, pixel-scale ratio, exposure groups) of the median; logs them."""
        first = members[0]
        output_wcs, ratio = grid.output_grid(
            [info["wcs"] for info in members], [info["shape"] for info in members],
            reference=(first["ra_ref"], first["dec_ref"]))
        groups = list(library.group_indices.values())
        ny, nx = output_wcs.array_shape
        self.log.info("Drizzling %d exposure group(s) onto %d x %d pixels: pixfrac %g, %s "
                      "kernel, %s weights", len(groups), nx, ny, self.pixfrac, self.kernel,
                      self.weight_type)
        return output_wcs, ratio, groups

    def _drizzle_settings(self, options: dict, ratio: float) -> dict:
        return dict(good_bits=options["good_bits"], pixfrac=self.pixfrac, kernel=self.kernel,
                    fillval=self.fillval, weight_type=self.weight_type,
                    pixel_scale_ratio=ratio, pixmap_stepsize=self.pixmap_stepsize,
                    pixmap_order=self.pixmap_order)

    def _flag_settings(self, info: dict, options: dict) -> dict:
        """What the derivative test needs for one member (the recorded sky was subtracted
        before drizzling: it goes back onto the blot)."""
        return dict(background=info["background"] if info["sky_recorded"] else self.backg,
                    snr1=options["snr1"], snr2=options["snr2"], scale1=options["scale1"],
                    scale2=options["scale2"], pixmap_stepsize=self.pixmap_stepsize,
                    pixmap_order=self.pixmap_order)

    def _resampled_median(self, library, members, options, stack_dir, scratch):
        """Drizzle each exposure group onto the common grid (pixel maps made in
        ``scratch``), drop low-weight pixels and take the NaN-median over groups; returns
        (median, grid WCS)."""
        output_wcs, ratio, groups = self._median_grid(library, members)
        shape = tuple(int(n) for n in output_wcs.array_shape)
        settings = self._drizzle_settings(options, ratio)

        def stream(indices):
            for index in indices:
                model = library.borrow(index)
                mapper = PixelMapper(model.meta.wcs, output_wcs, model.data.shape,
                                     self.pixmap_stepsize, self.pixmap_order)
                library.pixel_mappers[index] = mapper
                try:
                    yield image_input(model, members[index], mapper)
                finally:
                    library.shelve(model, index, modify=False)

        with ImageStack(len(groups), shape, directory=stack_dir) as stack, library:
            for position, indices in enumerate(groups):
                data, weight = imaging.drizzle_group(stream(indices), output_wcs,
                                                     scratch=scratch, **settings)
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
                item = image_input(model, info)
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

    def _outliers_by_tasks(self, executor, library, members, options, directory: Path):
        """Outliers found by tasks on ``executor``: each exposure group drizzled to a file, the
        median taken band of rows by band, and each member blotted and tested; returns
        ``outliers_of(model, index)`` for ``_record``, which takes the results in order."""
        output_wcs, ratio, groups = self._median_grid(library, members)
        self.log.info("Outlier detection tasks on %s", executor.description)
        paths = as_files((library.source(index) for index in range(len(library))), directory)
        infos = [task_info(info) for info in members]
        drizzled = [str(directory / f"drizzled{position:05d}.npy")
                    for position in range(len(groups))]
        keep = self.save_intermediate_results
        done = executor.map(
            drizzle_group_files, [[paths[index] for index in indices] for indices in groups],
            [[infos[index] for index in indices] for indices in groups], repeat(output_wcs),
            repeat(self._drizzle_settings(options, ratio)), repeat(self.maskpt), drizzled,
            repeat(keep))
        for indices, intermediate in zip(groups, done, strict=True):
            if intermediate is not None:
                with np.load(intermediate) as arrays:
                    product = datamodels.ImageModel(data=arrays["data"], wht=arrays["weight"])
                self._save_intermediate(product, library, indices[0], members, "outlier_i2d",
                                        output_wcs)
        shape = tuple(int(n) for n in output_wcs.array_shape)
        median = np.empty(shape, np.float32)
        bands = row_bands(len(groups), shape)
        for (start, stop), band in zip(bands, executor.map(
                median_of_files, repeat(drizzled), *zip(*bands, strict=True)), strict=True):
            median[start:stop] = band
        if keep:
            with library:
                self._save_intermediate(datamodels.ImageModel(data=median), library, 0, members,
                                        "median", output_wcs)
        median_path = str(directory / "median.npy")
        np.save(median_path, median)
        del median
        blots = [str(directory / f"blot{index:05d}.npy") if keep else None
                 for index in range(len(members))]
        results = executor.map(flag_file, paths, repeat(median_path), repeat(output_wcs),
                               [self._flag_settings(info, options) for info in members], blots)

        def outliers_of(model, index):
            flat, blot_path = next(results)
            if blot_path is not None:
                self._save_blot(np.load(blot_path), model, members[index])
            outliers = np.zeros(model.data.shape, bool)
            outliers.flat[flat] = True
            return outliers

        return outliers_of

    def _outliers(self, model, info, median, median_wcs, options, mapper,
                  scratch) -> np.ndarray:
        """Boolean outlier mask of a member against the median (``mapper``: its pixel map on
        the median grid, when made; made in ``scratch``)."""
        if median_wcs is None:
            return flag_against_reference(model.data, model.err, median, options["snr1"])
        blot, outliers = blot_and_test(model, median, median_wcs,
                                       self._flag_settings(info, options),
                                       mapper, scratch)
        if self.save_intermediate_results:
            self._save_blot(blot, model, info)
        return outliers

    def _save_blot(self, blot: np.ndarray, model, info: dict) -> None:
        blot_model = datamodels.ImageModel(data=blot)
        _copy_meta(blot_model, model, model.meta.wcs)
        self.save_model(blot_model, suffix="blot", force=True,
                        output_file=self._exposure_file(info["name"]))

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
        with library, writes_in_background():
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


# -- tasks (module level, so that worker processes can run them) --------------------------------
def image_input(model, info: dict, pixel_mapper=None) -> imaging.ImageInput:
    """What outlier detection drizzles of ``model``; ``info``: its name, weight time, sky."""
    return imaging.ImageInput(
        data=model.data, wcs=model.meta.wcs, dq=model.dq if model.has_array("dq") else None,
        var_rnoise=model.var_rnoise if model.has_array("var_rnoise") else None,
        exposure_time=info["weight_time"], background=info["background"], name=info["name"],
        pixel_mapper=pixel_mapper)


def blot_and_test(model, median, median_wcs, settings: dict, pixel_mapper=None,
                  scratch=None) -> tuple[np.ndarray, np.ndarray]:
    """(blot, outlier mask): the median blotted onto ``model`` and the derivative test."""
    blot = imaging.blot_median(median, median_wcs, model.meta.wcs, model.data.shape,
                               pixmap_stepsize=settings["pixmap_stepsize"],
                               pixmap_order=settings["pixmap_order"],
                               pixel_mapper=pixel_mapper, scratch=scratch)
    outliers = flag_against_blot(model.data, model.err, blot, background=settings["background"],
                                 snr1=settings["snr1"], snr2=settings["snr2"],
                                 scale1=settings["scale1"], scale2=settings["scale2"])
    return blot, outliers


def drizzle_group_files(paths: list[str], infos: list[dict], output_wcs, settings: dict,
                        maskpt: float, output: str, keep: bool) -> str | None:
    """Task: drizzle the images of one exposure group onto ``output_wcs`` and save the
    result without its low-weight pixels to ``output`` (.npy); with ``keep``, also the
    drizzled SCI and WHT (.npz), whose path is returned."""
    items = (image_input(datamodels.open(path), info)
             for path, info in zip(paths, infos, strict=True))
    data, weight = imaging.drizzle_group(items, output_wcs, **settings)
    np.save(output, mask_low_weight(data, weight, weight_threshold(weight, maskpt)))
    if not keep:
        return None
    intermediate = str(Path(output).with_suffix(".npz"))
    np.savez(intermediate, data=data, weight=weight)
    return intermediate


def median_of_files(paths: list[str], start: int, stop: int) -> np.ndarray:
    """Task: the NaN-median over the images in ``paths`` (.npy) of rows [start, stop)."""
    return nanmedian(np.stack([np.load(path, mmap_mode="r")[start:stop] for path in paths]))


def flag_file(path: str, median_path: str, median_wcs, settings: dict,
              blot_path: str | None) -> tuple[np.ndarray, str | None]:
    """Task: (flat indices of the outliers, ``blot_path`` or None) of the image in ``path``
    against the median in ``median_path``; the blot is saved to ``blot_path`` when given."""
    model = datamodels.open(path)
    blot, outliers = blot_and_test(model, np.load(median_path), median_wcs, settings)
    if blot_path is not None:
        np.save(blot_path, blot)
    return np.flatnonzero(outliers), blot_path


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
