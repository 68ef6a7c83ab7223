"""FlatFieldStep: divide imaging data by the FLAT reference (or a user flat)."""

from calwebb import datamodels
from calwebb.errors import ReferenceFileError
from calwebb.flat_field.apply import apply_flat
from calwebb.stpipe import Step

#: NIRSpec spectroscopic modes build their flat from F/S/D flats (not implemented)
NIRSPEC_SPECTRA = {"NRS_FIXEDSLIT", "NRS_MSASPEC", "NRS_IFU", "NRS_BRIGHTOBJ", "NRS_LAMP",
                   "NRS_AUTOWAVE", "NRS_AUTOFLAT"}


class FlatFieldStep(Step):
    """SCI ÷ flat; VAR_FLAT from the flat's ERR; bad flat pixels become DO_NOT_USE."""

    class_alias = "flat_field"
    spec = """
        save_interpolated_flat = boolean(default=False)  # NIRSpec: save the on-the-fly flat
        user_supplied_flat = string(default=None)  # a flat to use instead of CRDS's
        inverse = boolean(default=False)  # multiply by the flat instead of dividing
    """
    reference_file_types = ["flat", "fflat", "sflat", "dflat"]

    def process(self, model):
        if not isinstance(model, datamodels.ImageModel | datamodels.CubeModel):
            return self.skip_model(model, f"{type(model).__name__} input (image or cube expected)")
        if (model.meta.exposure.type or "").upper() in NIRSPEC_SPECTRA:
            return self.skip_model(model, "NIRSpec spectroscopic flats are not implemented yet")
        flat = self._flat(model)
        if flat is None:
            return self.skip_model(model, "no FLAT reference")
        try:
            flat = datamodels.cutout_reference(flat, model)
        except ReferenceFileError as exc:
            return self.skip_model(model, str(exc))
        arrays = {name: getattr(model, name) for name in ("data", "dq", "var_poisson",
                                                          "var_rnoise")
                  if name in ("data", "dq") or model.has_array(name)}
        apply_flat(arrays, flat.data, flat.err if flat.has_array("err") else None,
                   datamodels.reference_dq(flat, flat.data.shape), inverse=self.inverse)
        for name, array in arrays.items():
            setattr(model, name, array)
        self.record_other_references(model)  # (NIRSpec's: N/A)
        self.set_status(model, "COMPLETE")
        return model

    def _flat(self, model):
        if self.user_supplied_flat:
            from calwebb import references

            references.check_reference_matches(self.user_supplied_flat, model, "flat")
            self._references_used["flat"] = self.user_supplied_flat
            return datamodels.FlatModel(self.user_supplied_flat)
        path = self.get_reference_file(model, "flat")
        return None if path in ("N/A", "") else datamodels.FlatModel(path)
