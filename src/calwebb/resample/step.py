"""ResampleStep: drizzle calibrated 2-D images onto a distortion-free grid (``i2d``),
stage2.md §4.22 and stage3.md §2.6."""

from __future__ import annotations

import copy
import functools
import math
from itertools import repeat
from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.associations.library import ModelLibrary, exposure_group_id
from calwebb.errors import DataModelError, ParameterError
from calwebb.parallel.executor import as_files, current
from calwebb.resample import footprints, grid
from calwebb.resample.drizzle_images import VARIANCES, DrizzleInput, DrizzleSums, drizzle_images
from calwebb.stpipe import Step

ARCSEC_PER_RADIAN = 180.0 / math.pi * 3600.0
#: wcsinfo entries that describe an input detector's pointing or distortion, not the grid
DETECTOR_WCSINFO = ("v2_ref", "v3_ref", "ra_ref", "dec_ref", "roll_ref", "v3yangle", "vparity",
                    "cd1_1", "cd1_2", "cd2_1", "cd2_2", "sipmxerr", "sipiverr")
SIP_PREFIXES = ("a_", "b_", "ap_", "bp_")
GRID_WCSINFO = ("wcsaxes", "ctype", "cunit", "crpix", "crval", "cdelt", "pc")


class ResampleStep(Step):
    """Weighted drizzle of one or more 2-D images: SCI, ERR, WHT, CON and resampled VAR_*."""

    class_alias = "resample"
    #: inside ``calwebb.parallel.using(...)`` its per-exposure work runs as tasks
    exposure_tasks = True
    spec = """
        pixfrac = float(min=0.0, max=1.0, default=1.0)  # drop size relative to an input pixel
        kernel = option('square', 'gaussian', 'point', 'turbo', 'lanczos2', 'lanczos3', default='square')  # drizzle kernel
        fillval = string(default='NAN')  # output value where no input contributes
        weight_type = option('ivm', 'exptime', None, default='ivm')  # weight of each input pixel
        output_shape = int_list(min=2, max=2, default=None)  # [nx, ny] of the output
        crpix = float_list(min=2, max=2, default=None)  # 0-based output pixel of crval
        crval = float_list(min=2, max=2, default=None)  # RA, Dec (deg) of the reference pixel
        rotation = float(default=None)  # PA of the output +y axis (deg); None keeps the input's
        pixel_scale_ratio = float(default=1.0)  # output / input pixel scale
        pixel_scale = float(default=None)  # output pixel scale (arcsec); overrides the ratio
        output_wcs = string(default='')  # ASDF file with the output gwcs (overrides the above)
        single = boolean(default=False)  # one output per exposure group (outlier detection)
        blendheaders = boolean(default=True)  # combine the inputs' headers (HDRTAB: not yet)
        in_memory = boolean(default=True)  # inputs given as files are read one at a time anyway
        enable_ctx = boolean(default=True)  # compute the CON context array
        enable_err = boolean(default=True)  # resample the variances and compute ERR
        report_var = boolean(default=True)  # keep the resampled VAR_* arrays in the output
        propagate_dq = boolean(default=False)  # OR the DQ of contributing pixels into a DQ array
        pixmap_stepsize = float(default=1.0)  # evaluate the WCS every this many pixels
        pixmap_order = integer(default=1)  # spline order (1 or 3) interpolating the pixel map
        suffix = string(default='i2d')  # suffix of the output file name
    """  # noqa: E501 - the kernel option list

    # -- inputs --------------------------------------------------------------------------------
    def prepare_input(self, value):
        """Files stay paths (each is read when drizzled); models are used as given, never
        modified; an association (.json) becomes its first product's science members."""
        return self.members_as_given(
            value, (ModelLibrary, datamodels.DataModel),
            "an image model, a file, a list of them or an association")

    def _sources(self, value) -> list:
        """Models or file paths to resample, in order (a library's members as calls giving
        them, so that no member read from disk stays loaded)."""
        if isinstance(value, ModelLibrary):
            if value.asn.table_name:
                self._association = (value.asn, value.asn.table_name)
            self._group_ids = value.group_ids
            self._pixel_mappers = value.pixel_mappers
            return [functools.partial(value.source, index) for index in range(len(value))]
        if isinstance(value, str) and value.lower().endswith(".json"):
            from calwebb.associations import load_association

            association = load_association(value)
            members = association.member_paths("science")
            if not members:
                raise DataModelError(f"{value}: the first product has no science members")
            self._association = (association, Path(value).name)
            return [str(path) for path in members]
        return list(value) if isinstance(value, list | tuple) else [value]

    @staticmethod
    def _open(source):
        source = _given(source)
        return source if isinstance(source, datamodels.DataModel) else datamodels.open(source)

    # -- processing ----------------------------------------------------------------------------
    def process(self, value):
        self._association = None
        self._group_ids = None  # an association's grouping, when the input is a library
        self._pixel_mappers = {}  # a library's pixel maps (used where the grid is the same)
        sources = self._sources(value)
        if not sources:
            raise DataModelError("resample got an empty list of inputs")
        described = [self._describe_input(index, source) for index, source in
                     enumerate(sources)]
        not_images = [info for info in described if info["skip"]]
        if not_images:
            reason = "; ".join(info["skip"] for info in not_images)
            models = [self._open(source) for source in sources]
            for model in models:
                self.skip_model(model, reason)
            return models[0] if len(models) == 1 else models
        self._check_parameters()
        output_wcs, pixel_info = self._output_grid(described)
        if self.single:
            groups: dict[str, list[int]] = {}
            for index, info in enumerate(described):
                groups.setdefault(info["group_id"], []).append(index)
            return [self._resample([sources[i] for i in members],
                                   [described[i] for i in members], output_wcs, pixel_info,
                                   single=True) for members in groups.values()]
        result = self._resample(sources, described, output_wcs, pixel_info, single=False)
        self._name_output(result, sources, described)
        return result

    def _describe_input(self, index: int, source) -> dict:
        """What the grid and bookkeeping need from one input, without keeping its arrays."""
        model = self._open(source)
        name = model.meta.filename or (source if isinstance(source, str) else f"input {index}")
        info = {"name": name, "skip": None, "index": index}
        if not isinstance(model, datamodels.ImageModel):  # ImageModel SCI is always 2-D
            kind = type(model).__name__
            info["skip"] = f"{name} is a {kind}, not a 2-D image; resample needs 2-D images"
            return info
        wcs = model.meta.wcs
        if wcs is None or not hasattr(wcs, "forward_transform"):
            raise DataModelError(f"{name}: no WCS in meta.wcs (run assign_wcs first)")
        if wcs.output_frame is None or wcs.output_frame.naxes != 2:
            raise DataModelError(f"{name}: meta.wcs must map pixels to (ra, dec)")
        exposure = model.meta.exposure
        background = model.meta.background
        group_id = self._group_ids[index] if self._group_ids else \
            exposure_group_id(model.meta, fallback=str(model.meta.filename or f"input {index}"))
        info.update(
            wcs=wcs, shape=_image_shape(model), group_id=group_id,
            ra_ref=model.meta.wcsinfo.ra_ref, dec_ref=model.meta.wcsinfo.dec_ref,
            pixelarea_steradians=model.meta.photometry.pixelarea_steradians,
            weight_time=_positive(exposure.measurement_time) or _positive(
                exposure.exposure_time) or 1.0,
            exposure={key: getattr(exposure, key) for key in (
                "exposure_time", "measurement_time", "duration", "start_time", "end_time")},
            background=float(background.level) if background.level is not None and
            not background.subtracted else 0.0)
        return info

    def _check_parameters(self) -> None:
        if self.pixmap_order not in (1, 3):
            raise ParameterError(f"pixmap_order must be 1 or 3, got {self.pixmap_order}")
        if self.pixel_scale_ratio is None or self.pixel_scale_ratio <= 0:
            raise ParameterError(f"pixel_scale_ratio must be positive, got "
                                 f"{self.pixel_scale_ratio}")
        if self.pixel_scale is not None and self.pixel_scale <= 0:
            raise ParameterError(f"pixel_scale must be positive, got {self.pixel_scale}")
        if self.output_shape is not None and min(self.output_shape) < 1:
            raise ParameterError(f"output_shape must be positive, got {self.output_shape}")
        for name in ("propagate_dq",) if self.propagate_dq else ():
            self.log.info("%s: the output gets a DQ array (OR of contributing pixels)", name)
        if self.blendheaders:
            self.log.debug("blendheaders: HDRTAB is not written yet; the first input's "
                           "metadata is kept")

    def _output_grid(self, described: list[dict]):
        """The output gwcs and (pixel-scale ratio, output pixel area in arcsec²)."""
        first = described[0]
        if self.output_wcs:
            wcs, extras = grid.load_output_wcs(self.output_wcs, self.output_shape)
            if extras["pixel_area"] is not None:
                area = float(extras["pixel_area"])
            elif extras["pixel_scale"] is not None:
                area = float(extras["pixel_scale"]) ** 2
            else:
                area = (grid.describe(wcs).pixel_scale * 3600.0) ** 2
            input_area = first["pixelarea_steradians"] or grid.mean_pixel_area(
                first["wcs"], first["shape"])
            ratio = math.sqrt(area) / (math.sqrt(input_area) * ARCSEC_PER_RADIAN)
            self.log.info("Output grid from %s: %s pixels", self.output_wcs, wcs.array_shape)
            return wcs, (ratio, area)
        wcs, ratio = grid.output_grid(
            [info["wcs"] for info in described], [info["shape"] for info in described],
            pixel_scale_ratio=self.pixel_scale_ratio, pixel_scale_arcsec=self.pixel_scale,
            rotation=self.rotation, crpix=self.crpix, crval=self.crval,
            output_shape=self.output_shape, reference=(first["ra_ref"], first["dec_ref"]))
        area = (grid.describe(wcs).pixel_scale * 3600.0) ** 2
        self.log.info("Output grid: %d x %d pixels of %.5f arcsec (ratio %.4f)",
                      wcs.array_shape[1], wcs.array_shape[0], math.sqrt(area), ratio)
        return wcs, (ratio, area)

    def _resample(self, sources, described, output_wcs, pixel_info, single: bool):
        ratio, area = pixel_info
        options = dict(
            pixfrac=self.pixfrac, kernel=self.kernel, fillval=self.fillval,
            weight_type=self.weight_type, pixel_scale_ratio=ratio,
            enable_context=self.enable_ctx,
            variance_names=VARIANCES if (self.enable_err and not single) else (),
            error="err" if single else ("variances" if self.enable_err else None),
            propagate_dq=self.propagate_dq, pixmap_stepsize=self.pixmap_stepsize,
            pixmap_order=self.pixmap_order, n_inputs=len(sources))

        def stream():
            for source, info in zip(sources, described, strict=True):
                self.log.info("Drizzling %s", info["name"])
                item = drizzle_input(self._open(source), task_info(info))
                item.pixel_mapper = self._pixel_mappers.get(info["index"])
                yield item

        self.log.info("Drizzling %d image(s) onto %d x %d pixels: pixfrac %g, %s kernel, "
                      "%s weights, fillval %s", len(sources), output_wcs.array_shape[1],
                      output_wcs.array_shape[0], self.pixfrac, self.kernel, self.weight_type,
                      self.fillval)
        executor = current()
        if executor is None or single:
            result = drizzle_images(stream(), output_wcs, **options)
        else:
            result = self._drizzle_as_tasks(executor, sources, described, output_wcs, options)
        output = datamodels.ImageModel(data=result.data, wht=result.weight)
        if result.context is not None:
            output.con = result.context
        if result.error is not None:
            output.err = result.error
        if self.report_var and not single:
            for name, array in result.variances.items():
                setattr(output, name, array)
        if result.dq is not None:
            output.dq = result.dq
        first = self._open(sources[0])
        self._set_metadata(output, first, described, output_wcs, ratio, area)
        return output

    def _drizzle_as_tasks(self, executor, sources, described, output_wcs, options):
        """Each input drizzled on its own by a task into a file of sums, merged here in input
        order one file at a time (memory: the mosaic's sums and one input's)."""
        self.log.info("Drizzling one task per image on %s", executor.description)
        total = DrizzleSums(output_wcs, **options)
        with executor.scratch("calwebb_resample_") as directory:
            paths = as_files(map(_given, sources), directory)
            states = [str(Path(directory) / f"sums{index:05d}.npz")
                      for index in range(len(sources))]
            settings = [dict(options, first_index=index) for index in range(len(sources))]
            done = executor.map(drizzle_file, paths, [task_info(info) for info in described],
                                repeat(output_wcs), settings, states)
            for state_path, info in zip(done, described, strict=True):
                self.log.info("Drizzled %s", info["name"])
                with np.load(state_path) as state:
                    total.merge(state)
                Path(state_path).unlink()
        return total.result()

    # -- metadata ------------------------------------------------------------------------------
    def _set_metadata(self, output, first, described, output_wcs, ratio, area) -> None:
        """The first input's metadata with the grid, pixel area, drizzle parameters, summed
        exposure times and S_REGION of the product."""
        output.tree["meta"] = copy.deepcopy(
            {key: value for key, value in first.tree["meta"].items()
             if key not in ("wcs", "cal_logs", "filename")})
        meta = output.meta
        if not self.enable_err and "bunit_err" in meta:
            del meta.bunit_err
        wcsinfo = meta.wcsinfo
        for name in list(wcsinfo):
            if name in DETECTOR_WCSINFO or name.startswith(SIP_PREFIXES + GRID_WCSINFO):
                delattr(wcsinfo, name)
        wcsinfo.update(grid.fits_keywords(grid.describe(output_wcs)))
        meta.wcs = output_wcs
        outlines = [grid.footprint(info["wcs"], info["shape"], points_per_side=1)
                    for info in described]
        region = footprints.s_region(output_wcs, outlines)
        if region is None:
            del wcsinfo.s_region
        else:
            wcsinfo.s_region = region
        meta.photometry.pixelarea_arcsecsq = area
        meta.photometry.pixelarea_steradians = area / ARCSEC_PER_RADIAN**2
        resample = meta.resample
        resample.pointings = len({info["group_id"] for info in described})
        resample.pixfrac = float(self.pixfrac)
        resample.pixel_scale_ratio = float(ratio)
        resample.kernel = self.kernel
        resample.fillval = str(self.fillval)
        if self.weight_type is None:
            del resample.weight_type
        else:
            resample.weight_type = self.weight_type
        del meta.background.level
        del meta.background.subtracted
        _sum_exposure_times(meta.exposure, described)
        if self._association is not None:
            association, table_name = self._association
            meta.asn.pool_name = association.pool_name
            meta.asn.table_name = table_name
        self.set_status(output, "COMPLETE")

    def _name_output(self, output, sources, described) -> None:
        """Product name: the association's product, else the first input's file name."""
        name = described[0]["name"]
        if self._association is not None:
            product = self._association[0].products[0].name
            if product:
                name = f"{product}.fits"
        output.meta.filename = Path(str(name)).name
        if self.parent is None:
            self._input_filename = output.meta.filename


def _given(source):
    """A source as a model or path (a library member's call made)."""
    return source() if callable(source) else source


def drizzle_input(model, info: dict) -> DrizzleInput:
    """What drizzle takes of an image ``model``; ``info``: its name, weight time and sky."""
    return DrizzleInput(
        data=model.data, wcs=model.meta.wcs, dq=model.dq,
        err=model.err if model.has_array("err") else None,
        variances={name: getattr(model, name) for name in VARIANCES if model.has_array(name)},
        exposure_time=info["weight_time"], background=info["background"], name=info["name"])


def drizzle_file(path: str, info: dict, output_wcs, options: dict, state_path: str) -> str:
    """Task: drizzle the image in ``path`` into new ``DrizzleSums(output_wcs, **options)``
    and save their state (.npz) to ``state_path``, which is returned."""
    sums = DrizzleSums(output_wcs, **options)
    sums.add(drizzle_input(datamodels.open(path), info))
    np.savez(state_path, **sums.state())
    return state_path


def task_info(info: dict) -> dict:
    """The few values of a described input that a drizzle task needs (name, weight time,
    background): what is sent to a worker instead of the whole description."""
    return {key: info[key] for key in ("name", "weight_time", "background")}


def _image_shape(model) -> tuple[int, int]:
    """(ny, nx) from the WCS when it knows it (no need to read SCI), else from SCI."""
    shape = model.meta.wcs.array_shape
    return tuple(int(n) for n in shape) if shape is not None else tuple(model.data.shape)


def _positive(value) -> float | None:
    return float(value) if value is not None and value > 0 else None


def _sum_exposure_times(exposure, described: list[dict]) -> None:
    """EFFEXPTM/XPOSURE and DURATION/TELAPSE summed over exposure groups, TMEASURE summed when
    every group has it, EXPSTART the earliest and EXPEND the latest."""
    groups: dict[str, dict] = {}
    for info in described:  # one detector image per exposure counted
        groups.setdefault(info["group_id"], info["exposure"])
    values = list(groups.values())

    def total(key: str, require_all: bool = False) -> float | None:
        present = [float(v[key]) for v in values if v[key] is not None]
        if not present or (require_all and len(present) < len(values)):
            return None
        return float(np.sum(present))

    exposure.exposure_time = total("exposure_time")
    exposure.effective_exposure_time = exposure.exposure_time
    exposure.measurement_time = total("measurement_time", require_all=True)
    exposure.duration = total("duration")
    exposure.elapsed_exposure_time = exposure.duration
    starts = [v["start_time"] for v in values if v["start_time"] is not None]
    ends = [v["end_time"] for v in values if v["end_time"] is not None]
    exposure.start_time = min(starts) if starts else None
    exposure.end_time = max(ends) if ends else None
