"""AssignWcsStep: attach the detector → sky gwcs, its FITS SIP approximation and footprint."""

from calwebb import datamodels
from calwebb.assign_wcs import imaging
from calwebb.stpipe import Step

#: exposure types whose WCS is the imaging one (distortion + pointing)
IMAGING_TYPES = {
    "NRC_IMAGE", "NRC_TSIMAGE", "NRC_CORON", "NRC_FOCUS", "NRC_TACQ", "NRC_TACONFIRM",
    "MIR_IMAGE", "MIR_TACQ", "MIR_CORONCAL", "MIR_4QPM", "MIR_LYOT", "MIR_TACONFIRM",
    "NIS_IMAGE", "NIS_AMI", "NIS_TACQ", "NIS_TACONFIRM", "NIS_FOCUS",
    "FGS_IMAGE", "FGS_FOCUS",
}


class AssignWcsStep(Step):
    """Detector pixels → V2/V3 (distortion, filter offset) → velocity aberration → RA/Dec."""

    class_alias = "assign_wcs"
    spec = """
        sip_approx = boolean(default=True)  # write a FITS SIP approximation to the SCI header
        sip_max_pix_error = float(default=0.01)  # largest SIP forward error allowed (pixels)
        sip_degree = integer(max=6, default=None)  # SIP degree; None picks the best up to 6
        sip_max_inv_pix_error = float(default=0.01)  # largest SIP inverse error (pixels)
        sip_inv_degree = integer(max=6, default=None)  # inverse SIP degree; None = best
        sip_npoints = integer(default=12)  # grid points per axis for the SIP fit
        slit_y_low = float(default=-0.55)  # NIRSpec slit lower edge (shutter units)
        slit_y_high = float(default=0.55)  # NIRSpec slit upper edge (shutter units)
        nrs_ifu_slice_wcs = boolean(default=False)  # NIRSpec IFU: keep per-slice WCS
    """
    #: the official step's types (R_* keywords record them all); imaging uses the first two
    reference_file_types = ["distortion", "filteroffset", "specwcs", "regions",
                            "wavelengthrange", "camera", "chromcorr", "collimator", "disperser",
                            "fore", "fpa", "msa", "ote", "ifupost", "ifufore", "ifuslicer"]

    def process(self, model):
        if not isinstance(model, datamodels.ImageModel | datamodels.CubeModel):
            return self.skip_model(model, f"{type(model).__name__} input (image or cube expected)")
        exp_type = (model.meta.exposure.type or "").upper()
        if exp_type not in IMAGING_TYPES:
            return self.skip_model(model, f"EXP_TYPE {exp_type or 'unset'} is not an imaging mode "
                                          "(spectroscopic WCS is not implemented yet)")
        source = model.meta.filename or "input"
        pointing = imaging.pointing_from(model.meta.wcsinfo,
                                         model.meta.velocity_aberration.scale_factor, source)
        distortion = self.open_reference(model, "distortion")
        if distortion is None:
            return self.skip_model(model, "no DISTORTION reference")
        offsets = self.open_reference(model, "filteroffset")
        shape = model.data.shape[-2:]
        to_v2v3 = imaging.detector_to_v2v3(
            distortion.transform, shape, model.meta.subarray.xstart or 1,
            model.meta.subarray.ystart or 1, self._filter_offset(model, offsets),
            distortion.meta.filename or "DISTORTION reference")
        wcs = imaging.imaging_wcs(to_v2v3, pointing, shape)
        model.meta.wcs = wcs
        model.meta.wcsinfo.s_region = imaging.footprint_region(wcs)
        if self.sip_approx:
            self._write_sip(model, wcs)
        self.record_other_references(model)
        self.set_status(model, "COMPLETE")
        return model

    def _filter_offset(self, model, offsets) -> tuple[float, float] | None:
        """(column, row) offset of this exposure's filter (and pupil), if the reference has it."""
        if offsets is None:
            return None
        instrument = model.meta.instrument
        for entry in offsets.filters:
            if entry.get("filter") != instrument.filter:
                continue
            if "pupil" in entry and instrument.pupil and entry["pupil"] != instrument.pupil:
                continue
            self.log.info("Filter offset for %s: column %+.3f, row %+.3f pixels",
                          instrument.filter, entry["column_offset"], entry["row_offset"])
            return float(entry["column_offset"]), float(entry["row_offset"])
        return None

    def _write_sip(self, model, wcs) -> None:
        imaging.write_sip(model.meta.wcsinfo, wcs, self.sip_max_pix_error, self.sip_degree,
                          self.sip_max_inv_pix_error, self.sip_inv_degree, self.sip_npoints)
