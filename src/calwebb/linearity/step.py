"""LinearityStep: make the ramps linear in accumulated charge."""

from calwebb import datamodels
from calwebb.linearity.correct import linearize, linearize_zeroframe, sanitize_coefficients
from calwebb.stpipe import Step


class LinearityStep(Step):
    """Apply the LINEARITY reference polynomial to every unsaturated group."""

    class_alias = "linearity"
    reference_file_types = ["linearity"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        reference = self.open_reference(model, "linearity")
        if reference is None:
            return self.skip_model(model, "no LINEARITY reference")
        stored = reference.stored_part("coeffs")  # not read: mapped from the file
        coeffs = stored if stored is not None and stored.ndim == 3 else reference.coeffs
        coeffs, ref_dq = sanitize_coefficients(
            coeffs, datamodels.reference_dq(reference, coeffs.shape[1:]))
        model.pixeldq |= ref_dq
        linearize(model.data, model.groupdq, coeffs)
        if model.has_array("zeroframe"):
            linearize_zeroframe(model.zeroframe, coeffs)
        self.set_status(model, "COMPLETE")
        return model
