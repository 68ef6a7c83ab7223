"""RefPixStep: remove bias drifts measured by the reference pixels."""

from calwebb import datamodels
from calwebb.refpix.miri import correct_miri
from calwebb.refpix.nir import correct_full_frame, correct_subarray, to_detector_frame
from calwebb.stpipe import Step

NIR_FULL = (2048, 2048)
MIRI_FULL = (1024, 1032)


class RefPixStep(Step):
    """Reference-pixel correction for NIR detectors (top/bottom + side) and MIRI columns."""

    class_alias = "refpix"
    spec = """
        odd_even_columns = boolean(default=True)  # NIR: separate statistics by column parity
        use_side_ref_pixels = boolean(default=True)  # NIR full frame: side-column correction
        side_smoothing_length = integer(default=11)  # NIR: running-median window height
        side_gain = float(default=1.0)  # NIR: multiplier of the side signal
        odd_even_rows = boolean(default=True)  # MIRI: separate statistics by row parity
        ovr_corr_mitigation_ftr = float(default=3.0)  # IRS2: bad interleaved pixel sigma factor
        preserve_irs2_refpix = boolean(default=False)  # IRS2: keep reference pixels
        irs2_mean_subtraction = boolean(default=False)  # IRS2: apply mean correction first
        refpix_algorithm = option('median', 'sirs', default='median')  # side-pixel method
        sigreject = float(default=4.0)  # SIRS outlier rejection
        gaussmooth = float(default=1.0)  # SIRS smoothing width
        halfwidth = integer(default=30)  # SIRS kernel half width
        siglimit = float(default=3.0)  # sigma-clip limit of every clipped mean
    """
    reference_file_types = ["refpix", "sirskernel"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        readpatt = (model.meta.exposure.readpatt or "").upper()
        if readpatt.startswith("NRSIRS2"):
            return self.skip_model(model, "NIRSpec IRS2 readouts are not supported yet")
        if self.refpix_algorithm == "sirs":
            self.log.warning("refpix_algorithm='sirs' is not available; using the running median")
        shape = model.data.shape[-2:]
        if (model.meta.instrument.name or "").upper() == "MIRI":
            if shape != MIRI_FULL:
                return self.skip_model(model, "MIRI subarrays have no reference columns to use")
            done = all(correct_miri(ramp, model.pixeldq, self.odd_even_rows, self.siglimit)
                       for ramp in model.data)
        else:
            done = self._correct_nir(model, shape)
        if not done:
            return self.skip_model(model, "no usable reference pixels")
        self.set_status(model, "COMPLETE")
        return model

    def _correct_nir(self, model, shape) -> bool:
        fast = model.meta.subarray.fastaxis or 1
        slow = model.meta.subarray.slowaxis or 2
        pixeldq = to_detector_frame(model.pixeldq, fast, slow)
        ramps = [to_detector_frame(ramp, fast, slow) for ramp in model.data]
        zeroframe = model.zeroframe if model.has_array("zeroframe") else None
        if zeroframe is not None:  # corrected as one-group ramps; zeros stay unusable
            unusable = zeroframe == 0
            ramps += [to_detector_frame(frame[None], fast, slow) for frame in zeroframe]
        if shape == NIR_FULL:
            done = [correct_full_frame(
                ramp, pixeldq, self.odd_even_columns, self.use_side_ref_pixels,
                self.side_smoothing_length, self.side_gain, self.siglimit) for ramp in ramps]
        else:
            done = [correct_subarray(ramp, pixeldq, self.odd_even_columns, self.siglimit)
                    for ramp in ramps]
        if zeroframe is not None:
            zeroframe[unusable] = 0
        return all(done)
