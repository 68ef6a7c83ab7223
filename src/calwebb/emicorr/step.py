"""EmiCorrStep: remove periodic electromagnetic interference from MIRI ramps."""

from __future__ import annotations

from datetime import UTC, datetime

from calwebb import datamodels
from calwebb.emicorr import clocking
from calwebb.emicorr.correct import (
    on_the_fly_plan,
    on_the_fly_reference_tree,
    reference_plan,
    remove_emi,
)
from calwebb.stpipe import Step, naming

#: read patterns the correction is defined for
READ_PATTERNS = ("FAST", "FASTR1", "SLOW", "SLOWR1")
#: samples per pixel read when NSAMPLES is missing
DEFAULT_NSAMPLES = {"FAST": 1, "SLOW": 9}
#: column group (4 columns, 1-based end) that is the right-hand reference column
RIGHT_REFERENCE_COLUMN_GROUP = 258


class EmiCorrStep(Step):
    """Fit and subtract EMI waveforms phased to every pixel's read time (MIRI; off by
    default)."""

    class_alias = "emicorr"
    spec = """
        algorithm = option('sequential', 'joint', default='joint')  # 'joint': fit ramps and EMI together (≥3 groups); 'sequential': fit EMI to ramp residuals (≥10 groups advised)
        nints_to_phase = integer(default=None)  # sequential: integrations used to build the waveform
        nbins = integer(default=None)  # sequential: phase bins in one waveform (None: period/2)
        scale_reference = boolean(default=True)  # sequential: scale the reference waveform to the data
        onthefly_corr_freq = float_list(default=None)  # frequencies (Hz) to correct with waveforms from the data, ignoring the reference
        use_n_cycles = integer(default=3)  # sequential: EMI cycles to phase (None: all integrations)
        fit_ints_separately = boolean(default=False)  # joint: fit phase and amplitude per integration
        user_supplied_reffile = string(default=None)  # deprecated: use override_emicorr
        save_intermediate_results = boolean(default=False)  # save the waveforms derived on the fly as an EMICORR file
        skip = boolean(default=True)  # skip the step
    """  # noqa: E501
    reference_file_types = ["emicorr"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        instrument = model.meta.instrument.name
        if str(instrument).upper() != "MIRI":
            return self.skip_model(model, f"EMI correction not implemented for instrument: "
                                          f"{instrument}")
        readpatt = str(model.meta.exposure.readpatt or "").upper()
        if readpatt not in READ_PATTERNS:
            return self.skip_model(model, f"EMI correction not implemented for read pattern: "
                                          f"{model.meta.exposure.readpatt}")
        subarray = model.meta.subarray.name or "FULL"
        detector = model.meta.instrument.detector
        nints, ngroups, ny, nx = model.data.shape

        if self.onthefly_corr_freq is not None:
            self.log.info("Correcting with waveforms derived from the data (on the fly)")
            plan = on_the_fly_plan(subarray, readpatt, self.onthefly_corr_freq)
            reference_name = None
        else:
            reference = self._reference(model)
            if reference is None:
                return self.skip_model(model, "no EMICORR reference file")
            reference_name = reference.meta.filename
            plan = reference_plan(reference, subarray, readpatt, detector)
        if ngroups < 3:
            return self.skip_model(model, f"EMI correction cannot be performed for "
                                          f"ngroups={ngroups}")
        if nx % 4:
            return self.skip_model(model, f"{nx} columns is not a whole number of the four "
                                          "output channels")
        algorithm = self.algorithm
        if ngroups < 10 and algorithm == "sequential":
            self.log.warning("The 'sequential' algorithm is selected and ngroups=%d; the "
                             "'joint' algorithm is recommended for ngroups < 10", ngroups)
        if algorithm == "joint" and self.onthefly_corr_freq is not None:
            self.log.warning("The 'joint' algorithm needs an EMICORR reference waveform; "
                             "using 'sequential'")
            algorithm = "sequential"
        if plan is None or not plan.names:
            return self.skip_model(model, f"no EMI correction for subarray {subarray}, read "
                                          f"pattern {readpatt}, detector {detector}")
        self.log.info("Correcting %d frequencies %s with the '%s' algorithm (subarray %s, "
                      "read pattern %s, detector %s)", len(plan.names), plan.names, algorithm,
                      subarray, readpatt, detector)
        derived = remove_emi(
            model.data, model.pixeldq, plan, algorithm, self._nsamples(model, readpatt),
            readpatt, self._last_column_is_reference(model), self.nints_to_phase, self.nbins,
            self.scale_reference, self.use_n_cycles, self.fit_ints_separately)
        if self.save_intermediate_results and reference_name is None and derived:
            self._save_waveforms(model, derived, plan, subarray, readpatt, detector)
        self.set_status(model, "COMPLETE")
        return model

    def _reference(self, model):
        if self.user_supplied_reffile is not None:
            self.log.warning("The 'user_supplied_reffile' parameter is deprecated and will be "
                             "removed in a future release. Use 'override_emicorr' instead.")
            reference = datamodels.EmiModel(self.user_supplied_reffile)
            self.log.info("Using EMICORR reference file: %s", self.user_supplied_reffile)
            return reference
        return self.open_reference(model, "emicorr")

    def _nsamples(self, model, readpatt: str) -> int:
        nsamples = model.meta.exposure.nsamples
        if nsamples is None:
            nsamples = DEFAULT_NSAMPLES[clocking.readout_speed(readpatt)]
            self.log.warning("NSAMPLES is not set; assuming %d for read pattern %s", nsamples,
                             readpatt)
        return int(nsamples)

    @staticmethod
    def _last_column_is_reference(model) -> bool:
        """True when the data end at the right-hand reference column (full-frame width)."""
        xsize = model.meta.subarray.xsize or model.data.shape[-1]
        xstart = model.meta.subarray.xstart or 1
        return int(xsize / 4 + xstart - 1) == RIGHT_REFERENCE_COLUMN_GROUP

    def _save_waveforms(self, model, derived, plan, subarray, readpatt, detector) -> None:
        reference = datamodels.EmiModel()
        tree = on_the_fly_reference_tree(derived, plan, subarray, readpatt, detector)
        reference.frequencies = tree["frequencies"]
        reference.subarray_cases = tree["subarray_cases"]
        meta = reference.meta
        meta.instrument.name = "MIRI"
        meta.author, meta.description, meta.pedigree = (
            "calwebb", "EMI correction file", "GROUND")
        meta.useafter = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        path = naming.output_path(self, model, suffix="emi_ref_waves").with_suffix(".asdf")
        self.log.info("Writing on-the-fly reference file to: %s", path)
        reference.save(path)
