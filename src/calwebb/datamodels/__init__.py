"""JWST data models: metadata tree + typed arrays, read and written in the official formats.

``open(path_or_model)`` picks the class from the file's DATAMODL keyword, else from its
arrays; each class can also be built directly from a path, a shape, arrays or a model.
"""

from __future__ import annotations

import os
from pathlib import Path

from calwebb.datamodels.base import ArraySpec, DataModel
from calwebb.datamodels.models import (
    GROUP_DTYPE,
    INT_TIMES_DTYPE,
    INT_TIMES_STRIPE_DTYPE,
    CubeModel,
    ImageModel,
    Level1bModel,
    RampFitOutputModel,
    RampModel,
    SuperstripeRampModel,
)
from calwebb.datamodels.reference import (
    REFERENCE_MODELS,
    ABVegaOffsetModel,
    ApcorrModel,
    DarkMIRIModel,
    DarkModel,
    DistortionModel,
    EmiModel,
    FgsImgApcorrModel,
    FgsImgPhotomModel,
    FilteroffsetModel,
    FlatModel,
    GainModel,
    IPCModel,
    IRS2Model,
    LinearityModel,
    MaskModel,
    MirImgApcorrModel,
    MirImgPhotomModel,
    NisImgApcorrModel,
    NisImgPhotomModel,
    NrcImgApcorrModel,
    NrcImgPhotomModel,
    PhotomModel,
    PictureFrameModel,
    PixelAreaModel,
    ReadnoiseModel,
    ReferenceModel,
    ResetModel,
    RSCDModel,
    SaturationModel,
    SIRSKernelModel,
    SuperBiasModel,
    cutout_reference,
    reference_dq,
    reference_model_class,
    register_reference_model,
)
from calwebb.errors import DataModelError

__all__ = [
    "ArraySpec", "DataModel", "ReferenceModel", "Level1bModel", "RampModel", "ImageModel",
    "RampFitOutputModel", "SuperstripeRampModel",
    "CubeModel", "MaskModel", "SaturationModel", "SuperBiasModel", "LinearityModel", "DarkModel",
    "DarkMIRIModel", "GainModel", "ReadnoiseModel", "IPCModel", "ResetModel", "RSCDModel",
    "FlatModel", "PixelAreaModel", "PhotomModel", "NrcImgPhotomModel", "NisImgPhotomModel",
    "MirImgPhotomModel", "FgsImgPhotomModel", "DistortionModel", "FilteroffsetModel",
    "ApcorrModel", "NrcImgApcorrModel", "NisImgApcorrModel", "MirImgApcorrModel",
    "FgsImgApcorrModel", "ABVegaOffsetModel", "EmiModel", "PictureFrameModel", "IRS2Model",
    "SIRSKernelModel",
    "GROUP_DTYPE", "INT_TIMES_DTYPE", "INT_TIMES_STRIPE_DTYPE", "open", "model_class",
    "cutout_reference", "reference_dq", "reference_model_class", "register_reference_model",
]


def _all_classes(root: type = DataModel) -> dict[str, type[DataModel]]:
    found = {}
    for cls in root.__subclasses__():
        found[cls.__name__] = cls
        found.update(_all_classes(cls))
    return found


def model_class(name: str) -> type[DataModel]:
    """The model class called ``name`` (as in the DATAMODL keyword)."""
    classes = _all_classes()
    try:
        return classes[name]
    except KeyError:
        raise DataModelError(
            f"unknown model type {name!r}; calwebb reads {', '.join(sorted(classes))}"
        ) from None


def open(init, **kwargs) -> DataModel:  # noqa: A001 - the official name
    """Open a file (or pass through a model) as the model class its contents call for."""
    if isinstance(init, DataModel):
        return init
    if not isinstance(init, str | os.PathLike):
        raise DataModelError(f"cannot open {type(init).__name__}: expected a file path or a model")
    path = Path(init)
    return _detect_class(path)(path, **kwargs)


def _detect_class(path: Path) -> type[DataModel]:
    from calwebb.datamodels.asdf_library import open_asdf
    from calwebb.datamodels.io import open_fits

    if not path.exists():
        raise DataModelError(f"{path}: no such file")
    if path.suffix.lower() == ".asdf":
        try:
            with open_asdf(path, lazy_load=True, lazy_tree=True) as af:
                name = (af.tree.get("meta") or {}).get("model_type")
        except Exception as exc:  # noqa: BLE001
            raise DataModelError(f"{path}: not a readable ASDF file ({exc})") from exc
        if not name:
            raise DataModelError(f"{path}: no meta.model_type; cannot tell which model it holds")
        return model_class(name)
    with open_fits(path) as hdul:
        header = hdul[0].header
        reftype = header.get("REFTYPE")
        if header.get("DATAMODL"):
            try:
                return model_class(header["DATAMODL"])
            except DataModelError:
                # an official reference class calwebb does not have (DarkNirspecModel...):
                # the reference type still says how to read it
                if not reftype or str(reftype).lower() not in REFERENCE_MODELS:
                    raise
        if reftype:  # reference files: the type decides (MASK, LINEARITY have no SCI)
            return reference_model_class(str(reftype), header.get("INSTRUME"))
        names = {hdu.name for hdu in hdul}
        if "SCI" not in names:
            raise DataModelError(
                f"{path}: no DATAMODL or REFTYPE keyword and no SCI extension; "
                "cannot tell which model it holds"
            )
        ndim = hdul["SCI"].header.get("NAXIS", 0)
    by_ndim = {2: ImageModel, 3: CubeModel, 4: RampModel}
    if ndim not in by_ndim:
        raise DataModelError(f"{path}: SCI has {ndim} dimensions; expected 2, 3 or 4")
    return by_ndim[ndim]
