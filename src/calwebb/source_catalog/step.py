"""SourceCatalogStep: detect sources on an i2d mosaic; photometric and morphological catalog
plus a segmentation map (stage3.md §2.7)."""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path

import asdf
import numpy as np
from astropy.io import fits
from photutils.utils import NoDetectionsWarning

from calwebb import datamodels
from calwebb.datamodels import keywords
from calwebb.datamodels.tree import get_path, set_path
from calwebb.errors import ReferenceFileError
from calwebb.source_catalog import catalog as catalogs
from calwebb.source_catalog import morphology, photometry, reference_data
from calwebb.stpipe import Step, naming
from calwebb.tweakreg.detection import FinderOptions, find_sources

#: how the official format names the segmentation-map model (DATAMODL)
SEGMENTATION_MODEL = "SegmentationMapModel"
#: the extension and column that carry the ASDF tree in JWST FITS files
ASDF_EXTNAME, ASDF_COLUMN = "ASDF", "ASDF_METADATA"


class _NoCatalog(Exception):
    """A reference problem after which the official step makes no catalog (a warning)."""


class _OverrideError(ReferenceFileError):
    """A user-given reference that cannot be used: an error, not a warning."""


class SourceCatalogStep(Step):
    """Aperture and segment photometry, shapes and positions of the sources of a mosaic."""

    class_alias = "source_catalog"
    input_model_class = datamodels.ImageModel
    spec = """
        aperture_ee1 = integer(default=30)  # encircled energy (%) of the smallest aperture
        aperture_ee2 = integer(default=50)  # encircled energy (%) of the middle aperture
        aperture_ee3 = integer(default=70)  # encircled energy (%) of the largest aperture
        ci1_star_threshold = float(default=2.0)  # star limit of the first concentration index
        ci2_star_threshold = float(default=1.8)  # star limit of the second concentration index
        suffix = string(default='cat')  # suffix of the catalog file
        starfinder = option('dao', 'iraf', 'segmentation', default='segmentation')  # finder
        snr_threshold = float(default=3.0)  # detection threshold in background-RMS units
        bkg_boxsize = integer(default=1000)  # background mesh box size (pixels)
        kernel_fwhm = float(default=2.0)  # FWHM (pixels) of the smoothing / DAOFind kernel
        minsep_fwhm = float(default=0.0)  # dao/iraf: minimum separation in FWHM
        sigma_radius = float(default=1.5)  # dao/iraf: kernel truncation radius in sigma
        sharplo = float(default=0.5)  # dao/iraf: lowest sharpness kept
        sharphi = float(default=2.0)  # dao/iraf: highest sharpness kept
        roundlo = float(default=0.0)  # dao/iraf: lowest roundness kept
        roundhi = float(default=0.2)  # dao/iraf: highest roundness kept
        brightest = integer(default=200)  # dao/iraf: keep the brightest N sources
        peakmax = float(default=None)  # dao/iraf: drop sources with a peak at or above this
        npixels = integer(default=25)  # segmentation: minimum connected pixels of a source
        connectivity = option(4, 8, default=8)  # segmentation: pixel connectivity
        nlevels = integer(default=32)  # segmentation: deblending threshold levels
        contrast = float(default=0.001)  # segmentation: deblending flux fraction
        multithresh_mode = option('exponential', 'linear', 'sinh', default='exponential')
        localbkg_width = integer(default=0)  # segmentation: local background annulus width
        apermask_method = option('correct', 'mask', 'none', default='correct')  # neighbours
        kron_params = float_list(min=2, max=3, default=None)  # Kron aperture parameters
        deblend = boolean(default=True)  # segmentation: deblend overlapping sources
    """
    reference_file_types = ["apcorr", "abvegaoffset"]

    def process(self, model):
        aperture_ee = reference_data.validate_aperture_ee(
            (self.aperture_ee1, self.aperture_ee2, self.aperture_ee3))
        try:
            apertures, abvega_offset = self._reference_data(model, aperture_ee)
        except _NoCatalog as exc:
            self.log.warning("%s; source catalog will not be created.", exc)
            return None

        photometry.check_units(model.meta.bunit_data, model.meta.bunit_err)
        error_mjysr = np.asarray(model.err, float)
        coverage = np.isnan(error_mjysr)
        if model.has_array("wht") and model.wht is not None:
            coverage |= np.asarray(model.wht) == 0
        pixel_area = model.meta.photometry.pixelarea_steradians
        if pixel_area is None:
            self.log.warning("PIXAR_SR is not set: fluxes stay in MJy/sr, not Jy per pixel")
            pixel_area = 1.0e-6
        data = photometry.jansky_per_pixel(model.data, pixel_area)
        error = photometry.jansky_per_pixel(error_mjysr, pixel_area)
        mask = coverage | ~np.isfinite(data)

        options = FinderOptions.from_step(self)
        wcs = model.meta.wcs
        try:
            with warnings.catch_warnings():  # an empty result is reported below
                warnings.simplefilter("ignore", NoDetectionsWarning)
                detection = find_sources(data, coverage, options, error=error, wcs=wcs)
        except ValueError as exc:
            self.log.warning("Source detection failed (%s); source catalog will not be "
                             "created.", exc)
            return None
        sources = detection.sources
        if len(sources) == 0:
            self.log.warning("No sources found in the image; source catalog will not be "
                             "created.")
            return None
        self.log.info("%d sources found with the %s finder", len(sources), options.starfinder)

        segments, finder_meta = None, None
        if detection.segmentation is not None:
            finder_meta = {"local_bkg_width": options.localbkg_width,
                           "aperture_mask_method": options.apermask_method,
                           "kron_params": tuple(options.kron_params or (2.5, 1.4, 0.0))}
            subtracted = np.where(mask, 0.0, np.where(mask, 0.0, data) - detection.background)
            segments = morphology.segment_properties(
                subtracted, detection.segmentation, detection.convolved, error, mask, wcs,
                options.localbkg_width, options.apermask_method, options.kron_params)
        measured = catalogs.Measurements(
            labels=np.asarray(sources["id"]), x=np.asarray(sources["xcentroid"], float),
            y=np.asarray(sources["ycentroid"], float), data=data, error=error,
            apertures=apertures, abvega_offset=abvega_offset, kernel_fwhm=self.kernel_fwhm,
            ci_thresholds=(self.ci1_star_threshold, self.ci2_star_threshold), wcs=wcs,
            segments=segments, north=self._north_angle(model), finder_meta=finder_meta)
        table = catalogs.build_catalog(measured)

        if self.save_results:
            path = self._output_path(model, self.suffix, ".ecsv")
            _write_atomically(path, lambda temporary: table.write(
                temporary, format="ascii.ecsv", overwrite=True))
            model.meta.source_catalog = path.name
            self.log.info("Wrote source catalog %s", path)
            if detection.segmentation is not None:
                path = self._output_path(model, "segm", ".fits")
                write_segmentation_map(np.asarray(detection.segmentation.data), model, path)
                model.meta.segmentation_map = path.name
                self.log.info("Wrote segmentation map %s", path)
        return table

    # -- helpers ------------------------------------------------------------------------------
    def _reference_data(self, model, aperture_ee):
        """(ApertureParams, AB − Vega offset); defaults where a reference is N/A.

        _NoCatalog when CRDS cannot choose a file or a table has no row for this mode (the
        step then makes no catalog); an unusable override is raised as is."""
        try:
            return self._read_reference_data(model, aperture_ee)
        except _OverrideError:
            raise
        except ReferenceFileError as exc:
            raise _NoCatalog(str(exc)) from exc

    def _read_reference_data(self, model, aperture_ee):
        instrument = model.meta.instrument
        apcorr = self._open(model, "apcorr")
        if apcorr is None:
            apertures = reference_data.default_aperture_params()
        else:
            source = f"APCORR {apcorr.meta.filename or ''}".strip()
            selector = reference_data.apcorr_selector(
                instrument.name, instrument.filter, instrument.pupil, model.meta.subarray.name)
            ratio = model.meta.resample.pixel_scale_ratio
            if ratio is None:
                self.log.warning("PXSCLRT (pixel_scale_ratio) is not set; assuming the native "
                                 "pixel scale")
            apertures = reference_data.aperture_params_from_apcorr(
                apcorr.apcorr_table, aperture_ee, selector, ratio, source)
        abvega = self._open(model, "abvegaoffset")
        if abvega is None:
            self.log.warning("No ABVEGAOFFSET reference file: Vega magnitudes equal AB "
                             "magnitudes")
            offset = 0.0
        else:
            source = f"ABVEGAOFFSET {abvega.meta.filename or ''}".strip()
            table = abvega.abvega_offset
            if table is None:
                raise ReferenceFileError(f"{source} has no abvega_offset table")
            selector = reference_data.abvega_selector(
                instrument.name, instrument.filter, instrument.pupil, instrument.detector)
            offset = reference_data.abvega_offset_from_table(table, selector, source)
        self.log.info("Aperture radii %s px, corrections %s, background annulus %.3g–%.3g px",
                      [round(r, 4) for r in apertures.radii], list(apertures.corrections),
                      apertures.bkg_inner_radius, apertures.bkg_outer_radius)
        return apertures, offset

    def _open(self, model, reftype: str):
        """The reference model, or None for N/A. A failed CRDS lookup is ReferenceFileError
        (no catalog); a failing override is _OverrideError (raised to the caller)."""
        if getattr(self, f"override_{reftype}", None) is None:
            return self.open_reference(model, reftype)
        try:
            return self.open_reference(model, reftype)
        except ReferenceFileError as exc:
            raise _OverrideError(str(exc)) from exc

    def _north_angle(self, model) -> float | None:
        """Angle of North from +x at the reference pixel (CRPIX; image centre if unset)."""
        wcs = model.meta.wcs
        if wcs is None:
            return None
        crpix1, crpix2 = model.meta.wcsinfo.crpix1, model.meta.wcsinfo.crpix2
        if crpix1 is None or crpix2 is None:
            ny, nx = model.data.shape
            x, y = (nx - 1) / 2.0, (ny - 1) / 2.0
        else:
            x, y = float(crpix1) - 1.0, float(crpix2) - 1.0
        try:
            return morphology.north_angle(wcs, x, y)
        except (TypeError, ValueError) as exc:
            self.log.warning("No sky orientation: the WCS direction of North is unknown (%s)",
                             exc)
            return None

    def _output_path(self, model, suffix: str, extension: str) -> Path:
        return naming.output_path(self, model, suffix=suffix).with_suffix(extension)


def _write_atomically(path: Path, write) -> None:
    """Call ``write(temporary)`` then rename the temporary file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix,
                                         dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _header_from_tree(header: fits.Header, tree: dict, hdu_name: str) -> dict:
    """Set the keywords the keyword table puts in ``hdu_name``; returns the paths written."""
    written = {}
    for entry in keywords.in_hdu(hdu_name):
        value = get_path(tree, entry.path)
        if value is None or isinstance(value, dict | list):
            continue
        if isinstance(value, float) and not np.isfinite(value):
            continue
        try:
            header[entry.keyword] = value
        except (ValueError, TypeError):
            continue
        written[entry.path] = value
    return written


def write_segmentation_map(labels: np.ndarray, model, path: Path) -> Path:
    """Write the label map (0 = background) as a SegmentationMapModel-style FITS file: the
    mosaic's primary keywords, SCI (uint32) with its WCS and photometry keywords, and an ASDF
    extension holding the metadata and the gwcs."""
    tree = model.tree
    primary = fits.PrimaryHDU()
    written = _header_from_tree(primary.header, tree, "PRIMARY")
    primary.header["FILENAME"] = path.name
    primary.header["DATAMODL"] = SEGMENTATION_MODEL
    sci = fits.ImageHDU(np.asarray(labels).astype(np.uint32), name="SCI")
    written.update(_header_from_tree(sci.header, tree, "SCI"))

    meta: dict = {}
    for dotted, value in written.items():
        set_path(meta, dotted, value)
    meta = meta.get("meta", {})
    meta["filename"] = path.name
    meta["model_type"] = SEGMENTATION_MODEL
    if model.meta.wcs is not None:
        meta["wcs"] = model.meta.wcs
    buffer = io.BytesIO()
    asdf.AsdfFile({"meta": meta}).write_to(buffer)
    payload = np.frombuffer(buffer.getbuffer(), dtype=np.uint8)[None, :]
    column = fits.Column(name=ASDF_COLUMN, format=f"{payload.shape[1]}B", array=payload)
    embedded = fits.BinTableHDU.from_columns([column], name=ASDF_EXTNAME)

    hdul = fits.HDUList([primary, sci, embedded])
    _write_atomically(path, lambda temporary: hdul.writeto(temporary, overwrite=True))
    return path
