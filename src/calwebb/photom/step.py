"""PhotomStep: count rate → surface brightness, and the pixel area of the exposure."""

from calwebb import datamodels
from calwebb.photom import conversion
from calwebb.stpipe import Step

#: time-dependence tables of a PHOTOM reference, by the form they describe
TIME_TABLES = {"linear": "timecoeff_linear", "exponential": "timecoeff_exponential",
               "powerlaw": "timecoeff_powerlaw"}


class PhotomStep(Step):
    """SCI, ERR × PHOTMJSR (MJy/sr per DN/s), variances × its square; PIXAR_* and AREA."""

    class_alias = "photom"
    spec = """
        inverse = boolean(default=False)  # undo a previous calibration (divide)
        source_type = string(default=None)  # override SRCTYPE: POINT or EXTENDED
        apply_time_correction = boolean(default=True)  # apply the throughput's time dependence
    """
    reference_file_types = ["photom", "area"]

    def process(self, model):
        if not isinstance(model, datamodels.ImageModel | datamodels.CubeModel):
            return self.skip_model(model, f"{type(model).__name__} input (image or cube expected)")
        photom = self.open_reference(model, "photom")
        if photom is None:
            return self.skip_model(model, "PHOTOM reference is N/A for this mode")
        instrument = model.meta.instrument
        chosen = conversion.selection(instrument.name or "", instrument.filter,
                                      instrument.pupil, model.meta.subarray.name)
        row = conversion.find_row(photom.phot_table, chosen)
        if row is None:
            return self.skip_model(
                model, f"no row of {photom.meta.filename or 'the PHOTOM reference'} matches "
                       f"{', '.join(f'{k.upper()}={v}' for k, v in chosen.items())}")
        factor = float(photom.phot_table[row]["photmjsr"])
        if self.apply_time_correction and model.meta.exposure.mid_time is not None:
            tables = {kind: getattr(photom, name) for kind, name in TIME_TABLES.items()
                      if photom.has_array(name)}
            factor /= conversion.time_factor(tables, chosen, model.meta.exposure.mid_time)
        self.log.info("PHOTMJSR = %.6g MJy/sr per DN/s", factor)
        arrays = {name: getattr(model, name) for name in
                  ("data", "err", "var_poisson", "var_rnoise", "var_flat")
                  if model.has_array(name)}
        conversion.convert(arrays, 1.0 / factor if self.inverse else factor)
        photometry = model.meta.photometry
        photometry.conversion_megajanskys = factor
        photometry.conversion_microjanskys = factor * conversion.MICROJANSKY_ARCSEC2_PER_MJY_SR
        model.meta.bunit_data = model.meta.bunit_err = "DN/s" if self.inverse else "MJy/sr"
        self._pixel_area(model, photom)
        self.set_status(model, "COMPLETE")
        return model

    def _pixel_area(self, model, photom) -> None:
        """PIXAR_SR/PIXAR_A2 from the AREA reference (else PHOTOM), and the AREA array."""
        area = self.open_reference(model, "area")
        source = area if area is not None else photom
        photometry = model.meta.photometry
        photometry.pixelarea_steradians = source.meta.photometry.pixelarea_steradians
        photometry.pixelarea_arcsecsq = source.meta.photometry.pixelarea_arcsecsq
        if area is not None:
            model.area = area.data
