"""GainScaleStep: rescale slopes taken in a non-standard gain setting."""

from calwebb.gain_scale.scale import scale_by_gain_factor
from calwebb.references.cache import reference_metadata
from calwebb.stpipe import Step


class GainScaleStep(Step):
    """Multiply rates and errors by GAINFACT (from the data, else the GAIN reference)."""

    class_alias = "gain_scale"
    reference_file_types = ["gain"]

    def process(self, model):
        factor = model.meta.exposure.gain_factor
        if factor is None:
            path = self.get_reference_file(model, "gain")
            if path not in ("N/A", ""):  # the header CRDS selection has read already
                factor = reference_metadata(path).get("META.EXPOSURE.GAIN_FACTOR")
        if factor is None:
            return self.skip_model(model, "no GAINFACT in the data or the GAIN reference")
        # views may share memory with another product (one-integration rate and rateints):
        # those are scaled as copies
        arrays = {name: getattr(model, name) for name in
                  ("data", "err", "var_poisson", "var_rnoise") if model.has_array(name)}
        arrays = {name: array if array.base is None else array.copy()
                  for name, array in arrays.items()}
        scale_by_gain_factor(arrays, factor)
        for name, array in arrays.items():
            setattr(model, name, array)
        model.meta.exposure.gain_factor = factor
        self.set_status(model, "COMPLETE")
        return model
