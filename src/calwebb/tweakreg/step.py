"""TweakRegStep: measure sources in each image, align the images to each other and optionally
to an absolute catalog, and correct their WCSs (stage3.md §2.3)."""

from __future__ import annotations

import logging
import os
from itertools import repeat
from pathlib import Path

import numpy as np
from astropy.table import Table

from calwebb import datamodels, dqflags
from calwebb.assign_wcs import imaging
from calwebb.associations.library import ModelLibrary
from calwebb.errors import DataModelError, ParameterError
from calwebb.parallel.executor import as_files, current
from calwebb.stpipe import Step
from calwebb.tweakreg import alignment
from calwebb.tweakreg.detection import FinderOptions, find_sources

log = logging.getLogger(__name__)

#: DQ flags of pixels that source finding ignores
COVERAGE_FLAGS = dqflags.DO_NOT_USE | dqflags.NON_SCIENCE


class TweakRegStep(Step):
    """Relative (and optionally absolute) astrometric alignment of imaging exposures."""

    class_alias = "tweakreg"
    #: inside ``calwebb.parallel.using(...)`` its per-exposure work runs as tasks
    exposure_tasks = True
    spec = """
        save_catalogs = boolean(default=False)  # write each image's source catalog
        use_custom_catalogs = boolean(default=False)  # use catalogs given by catfile/asn
        catalog_format = option('ecsv', 'fits', default='ecsv')  # format of saved catalogs
        catfile = string(default='')  # text file: image name, catalog name per line
        starfinder = option('dao', 'iraf', 'segmentation', default='iraf')  # source finder
        snr_threshold = float(default=10.0)  # detection threshold in background RMS
        kernel_fwhm = float(default=2.5)  # Gaussian kernel FWHM (pixels)
        bkg_boxsize = integer(default=400)  # background mesh box (pixels)
        minsep_fwhm = float(default=0.0)  # minimum separation of sources (in FWHM)
        sigma_radius = float(default=1.5)  # kernel truncation radius (in sigma)
        sharplo = float(default=0.5)  # lower sharpness bound
        sharphi = float(default=2.0)  # upper sharpness bound
        roundlo = float(default=0.0)  # lower roundness bound
        roundhi = float(default=0.2)  # upper roundness bound
        brightest = integer(default=200)  # keep this many brightest sources
        peakmax = float(default=None)  # reject sources with a higher peak
        npixels = integer(default=10)  # segmentation: minimum connected pixels
        connectivity = integer(default=8)  # segmentation: pixel connectivity (4 or 8)
        nlevels = integer(default=32)  # segmentation: deblending levels
        contrast = float(default=0.001)  # segmentation: deblending contrast
        multithresh_mode = option('exponential', 'linear', 'sinh', default='exponential')  # deblending level spacing
        localbkg_width = integer(default=0)  # segmentation: local background annulus width
        apermask_method = option('correct', 'mask', 'none', default='correct')  # neighbour handling
        kron_params = float_list(min=2, max=3, default=None)  # Kron aperture parameters
        deblend = boolean(default=True)  # segmentation: deblend sources
        enforce_user_order = boolean(default=False)  # align in input order
        expand_refcat = boolean(default=False)  # grow the reference catalog as images align
        minobj = integer(default=15)  # minimum matched sources for a fit
        fitgeometry = option('shift', 'rshift', 'rscale', 'general', default='rshift')  # fit
        nclip = integer(min=0, default=3)  # sigma-clipping iterations of the fit
        sigma = float(min=0.0, default=3.0)  # clipping limit (× RMSE)
        searchrad = float(default=2.0)  # search radius for a match (arcsec)
        use2dhist = boolean(default=True)  # find the initial offset from a 2-D histogram
        separation = float(default=1.0)  # minimum source separation (arcsec)
        tolerance = float(default=0.7)  # matching tolerance (arcsec)
        xoffset = float(default=0.0)  # initial x offset guess (arcsec)
        yoffset = float(default=0.0)  # initial y offset guess (arcsec)
        abs_refcat = string(default='')  # absolute reference catalog file
        save_abs_catalog = boolean(default=False)  # write the absolute reference catalog
        abs_minobj = integer(default=15)  # minimum matched sources (absolute)
        abs_fitgeometry = option('shift', 'rshift', 'rscale', 'general', default='rshift')
        abs_nclip = integer(min=0, default=3)  # clipping iterations (absolute)
        abs_sigma = float(min=0.0, default=3.0)  # clipping limit (absolute)
        abs_searchrad = float(default=6.0)  # search radius (absolute, arcsec)
        abs_use2dhist = boolean(default=True)  # 2-D histogram offset (absolute)
        abs_separation = float(default=1.0)  # minimum separation (absolute, arcsec)
        abs_tolerance = float(default=0.7)  # matching tolerance (absolute, arcsec)
        sip_approx = boolean(default=True)  # refit the FITS SIP approximation
        sip_max_pix_error = float(default=0.01)  # largest SIP forward error (pixels)
        sip_degree = integer(max=6, default=None)  # SIP degree; None = best up to 6
        sip_max_inv_pix_error = float(default=0.01)  # largest SIP inverse error (pixels)
        sip_inv_degree = integer(max=6, default=None)  # inverse SIP degree; None = best
        sip_npoints = integer(default=12)  # grid points per axis for the SIP fit
        output_use_model = boolean(default=True)  # name outputs after the models
        in_memory = boolean(default=True)  # False: keep members in temporary files
    """  # noqa: E501 - option lists

    def prepare_input(self, value):
        if isinstance(value, ModelLibrary):
            return value
        return ModelLibrary(value, on_disk=not self.in_memory)

    def process(self, library: ModelLibrary):
        relative = self._options("")
        relative.check("")
        absolute = self._options("abs_") if self.abs_refcat else None
        if absolute is not None:
            absolute.check("abs_")
        if len(set(library.group_ids)) < 2 and not self.abs_refcat and not self.save_catalogs:
            self.log.warning("tweakreg: one exposure group and no abs_refcat; nothing to align")
            return self._set_all(library, "SKIPPED")
        images = self._catalogs(library)
        correctors = [alignment.make_corrector(image["wcs"], image["wcsinfo"],
                                               image["catalog"], image["group_id"],
                                               image["name"]) for image in images]
        aligned = self._relative(correctors, relative)
        if absolute is not None:
            if not aligned:  # start again from the WCSs as they came
                correctors = [alignment.make_corrector(
                    image["wcs"], image["wcsinfo"], image["catalog"], image["group_id"],
                    image["name"]) for image in images]
            aligned = self._absolute(correctors, absolute) or aligned
        if not aligned:
            return self._set_all(library, "SKIPPED")
        return self._apply(library, correctors)

    def _options(self, prefix: str) -> alignment.MatchOptions:
        names = alignment.MatchOptions.__dataclass_fields__
        values = {name: getattr(self, prefix + name) for name in names
                  if hasattr(self, prefix + name)}
        if prefix:  # absolute matching starts without offsets
            values.update(xoffset=0.0, yoffset=0.0)
        return alignment.MatchOptions(**values)

    # -- catalogs ------------------------------------------------------------------------------
    def _catalogs(self, library: ModelLibrary) -> list[dict]:
        """Per image: name, group, WCS, pointing and its source catalog (x, y)."""
        custom = self._custom_catalog_names(library) if self.use_custom_catalogs else {}
        finder = FinderOptions.from_step(self)
        found = self._found_by_tasks(library, finder) if current() is not None and \
            not self.use_custom_catalogs else None
        images = []
        with library:
            for index in range(len(library)):
                model = library.borrow(index)
                name = model.meta.filename or f"image {index}"
                wcs = model.meta.wcs
                if wcs is None:
                    library.shelve(model, index, modify=False)
                    raise DataModelError(f"{name}: no WCS (run assign_wcs first)")
                catalog_file = custom.get(Path(name).name) or (
                    model.meta.tweakreg_catalog if self.use_custom_catalogs else None)
                if catalog_file:
                    catalog = _read_catalog(catalog_file, library)
                elif found is not None:
                    catalog = found[index]
                else:
                    catalog = source_positions(model, finder, name, self.log)
                catalog = alignment.inside_bounding_box(catalog, wcs)
                self.log.info("%s: %d sources", name, len(catalog))
                if self.save_catalogs:
                    model.meta.tweakreg_catalog = self._save_catalog(catalog, name)
                images.append({"name": name, "wcs": wcs, "catalog": catalog,
                               "group_id": library.group_ids[index],
                               "wcsinfo": {key: getattr(model.meta.wcsinfo, key) for key in
                                           ("v2_ref", "v3_ref", "roll_ref")}})
                library.shelve(model, index, modify=self.save_catalogs)
        return images

    def _found_by_tasks(self, library: ModelLibrary, finder: FinderOptions) -> list[Table]:
        """Every member's source positions, found by one task per member."""
        executor = current()
        self.log.info("Source finding tasks on %s", executor.description)
        with executor.scratch("calwebb_tweakreg_") as directory:
            paths = as_files((library.source(index) for index in range(len(library))),
                             directory)
            return list(executor.map(find_sources_in_file, paths, repeat(finder),
                                     library.names))

    def _save_catalog(self, catalog: Table, image_name: str) -> str:
        extension = ".ecsv" if self.catalog_format == "ecsv" else ".fits"
        name = Path(image_name).name.replace(".fits", f"_cat{extension}")
        path = Path(self.output_dir or ".") / name
        temporary = path.with_name(f".{path.name}.tmp{extension}")
        catalog.write(temporary, format="ascii.ecsv" if extension == ".ecsv" else "fits",
                      overwrite=True)
        os.replace(temporary, path)
        self.log.info("Saved source catalog %s", path)
        return name

    def _custom_catalog_names(self, library: ModelLibrary) -> dict[str, str]:
        """{image file name: catalog path} from ``catfile`` (relative to its directory)."""
        if not self.catfile:
            return {}
        path = Path(self.catfile)
        if not path.is_file():
            raise ParameterError(f"catfile {path}: no such file")
        names = {}
        for line in path.read_text().splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) > 1:
                names[Path(fields[0]).name] = str(path.parent / fields[1])
        return names

    # -- alignment -----------------------------------------------------------------------------
    def _relative(self, correctors: list, options: alignment.MatchOptions) -> bool:
        if len({c.meta["group_id"] for c in correctors}) < 2:
            return False
        before = [c.wcs for c in correctors]
        if not alignment.align(correctors, options, enforce_user_order=self.enforce_user_order,
                               expand_refcat=self.expand_refcat or bool(self.abs_refcat)):
            return False
        limit = 2.0 * ((options.searchrad if options.use2dhist else
                        max(abs(options.xoffset), abs(options.yoffset))) + options.tolerance)
        shift = alignment.largest_corner_shift(before, [c.wcs for c in correctors])
        if shift >= limit:
            self.log.warning("relative alignment rejected: a footprint moved %.3f arcsec "
                             "(limit %.3f)", shift, limit)
            for corrector in correctors:
                corrector.meta["fit_info"] = {"status": "FAILED: shift too large"}
            return False
        for corrector in correctors:
            self.log.info("%s: relative fit %s", corrector.meta["name"],
                          alignment.fit_status(corrector))
        return True

    def _absolute(self, correctors: list, options: alignment.MatchOptions) -> bool:
        refcat = alignment.read_reference_catalog(self.abs_refcat)
        if len(refcat) < self.abs_minobj:
            self.log.warning("abs_refcat %s has %d sources, fewer than abs_minobj=%d; no "
                             "absolute alignment", self.abs_refcat, len(refcat), self.abs_minobj)
            return False
        if self.save_abs_catalog:
            name = f"fit_{Path(self.abs_refcat).stem.lower()}_ref.ecsv"
            refcat.write(Path(self.output_dir or ".") / name, format="ascii.ecsv",
                         overwrite=True)
        groups = [c.meta["group_id"] for c in correctors]
        for corrector in correctors:
            corrector.meta["group_id"] = alignment.ABSOLUTE_GROUP
        done = alignment.align(correctors, options, refcat=refcat, enforce_user_order=True)
        for corrector, group in zip(correctors, groups, strict=True):
            corrector.meta["group_id"] = group
            self.log.info("%s: absolute fit %s", corrector.meta["name"],
                          alignment.fit_status(corrector))
        return done

    def _apply(self, library: ModelLibrary, correctors: list) -> ModelLibrary:
        with library:
            for index, corrector in enumerate(correctors):
                model = library.writable(index)
                if "SUCCESS" in alignment.fit_status(corrector):
                    model.meta.wcs = corrector.wcs
                    model.meta.wcsinfo.s_region = imaging.footprint_region(corrector.wcs)
                    if self.sip_approx:
                        self._refit_sip(model)
                self.set_status(model, "COMPLETE")
                library.shelve(model, index)
        return library

    def _refit_sip(self, model) -> None:
        try:
            imaging.write_sip(model.meta.wcsinfo, model.meta.wcs, self.sip_max_pix_error,
                              self.sip_degree, self.sip_max_inv_pix_error, self.sip_inv_degree,
                              self.sip_npoints)
        except (ValueError, RuntimeError) as error:
            self.log.warning("%s: SIP approximation failed (%s)", model.meta.filename, error)

    def _set_all(self, library: ModelLibrary, status: str) -> ModelLibrary:
        with library:
            for index in range(len(library)):
                model = library.writable(index)
                self.set_status(model, status)
                library.shelve(model, index)
        return library


def source_positions(model, finder: FinderOptions, name: str,
                     logger: logging.Logger = log) -> Table:
    """(x, y) of the sources found in ``model`` (DO_NOT_USE and NON_SCIENCE pixels masked);
    an empty table, with a warning, when there are none."""
    mask = (model.dq & COVERAGE_FLAGS) != 0 if model.has_array("dq") else None
    try:
        sources = find_sources(model.data, mask, finder).sources
    except ValueError as error:
        logger.warning("%s: no sources (%s)", name, error)
        sources = Table({"xcentroid": [], "ycentroid": []})
    if len(sources) == 0:
        logger.warning("%s: no sources found", name)
    return Table({"x": np.asarray(sources["xcentroid"], float),
                  "y": np.asarray(sources["ycentroid"], float)})


def find_sources_in_file(path: str, finder: FinderOptions, name: str) -> Table:
    """Task: ``source_positions`` of the image in ``path`` (``name``: its member name)."""
    return source_positions(datamodels.open(path), finder, name)


def _read_catalog(path: str, library: ModelLibrary) -> Table:
    """A custom source catalog: x/y, xcentroid/ycentroid or x_centroid/y_centroid columns."""
    candidate = Path(path)
    if not candidate.is_absolute() and not candidate.exists():
        candidate = library.asn.asn_dir / candidate
    try:
        table = Table.read(candidate, format="ascii.ecsv" if candidate.suffix == ".ecsv"
                           else None)
    except (OSError, ValueError) as error:
        raise DataModelError(f"{candidate}: cannot read the source catalog ({error})") from None
    for x_name, y_name in (("x", "y"), ("xcentroid", "ycentroid"), ("x_centroid", "y_centroid")):
        if x_name in table.colnames and y_name in table.colnames:
            return Table({"x": np.asarray(table[x_name], float),
                          "y": np.asarray(table[y_name], float)})
    raise DataModelError(f"{candidate}: a source catalog needs x/y (or xcentroid/ycentroid) "
                         f"columns; it has {', '.join(table.colnames)}")
