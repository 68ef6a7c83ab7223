"""Reference-file models, their DQ_DEF translation, and cutting them to a science subarray."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from calwebb import dqflags
from calwebb.datamodels.base import ArraySpec, DataModel, array_cut
from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.irs2 import is_irs2
from calwebb.stripes import DETECTOR_LENGTH, StripeReadout, cut_reference_image

log = logging.getLogger(__name__)

F32, U32 = np.float32, np.uint32
DQ_DEF_DTYPE = np.dtype([("BIT", ">i4"), ("VALUE", ">u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")])
DQ_DEF = ArraySpec("DQ_DEF", None, (1,), allocate=None)
#: primary-header keywords reference files keep in PRIMARY where science files use SCI
_PRIMARY_PHOTOMETRY = {
    "meta.photometry.pixelarea_steradians": "PRIMARY",
    "meta.photometry.pixelarea_arcsecsq": "PRIMARY",
}


class ReferenceModel(DataModel):
    """Base of reference-file models.

    On read, a DQ array stored with a private bit layout is translated to the standard
    pixel flags through the file's DQ_DEF table (dataformats.md §6.2). On write, DQ is
    stored in the standard layout with a DQ_DEF table naming every bit that is used.
    """

    reftype: str = ""
    primary_array = "data"
    #: False for types that must match the science subarray exactly (darks)
    can_cut_out = True
    #: the primary array is an image on the detector only with at least this many axes
    image_min_ndim = 2
    keyword_hdus = _PRIMARY_PHOTOMETRY
    remember_headers = True  # a pipeline reads the same references for exposure after exposure

    def __init__(self, init=None, **arrays):
        super().__init__(init, **arrays)
        if isinstance(init, str | Path) and "dq" in type(self).arrays and self.has_array("dq"):
            self._translate_dq_on_load()
        if self.reftype and self.meta.reftype is None:
            self.meta.reftype = self.reftype.upper()

    def _translate_dq_on_load(self) -> None:
        table = self.dq_def if self.has_array("dq_def") else None
        if table is None or len(table) == 0:
            return
        self.set_loader("dq", _TranslatingLoader(self._arrays["dq"], table, self.meta.filename))

    def save(self, path, overwrite: bool = True):
        if "dq_def" in type(self).arrays and self.has_array("dq"):
            self.dq_def = standard_dq_def(self.dq)
        return super().save(path, overwrite=overwrite)


class _TranslatingLoader:
    """A lazy DQ array translated to the standard flags on load (shape and parts as its
    raw loader)."""

    def __init__(self, raw: Any, table: np.ndarray, source: str | None):
        self.raw, self.table, self.source = raw, table, source
        self.shape = getattr(raw, "shape", None)
        self.disk_itemsize = getattr(raw, "disk_itemsize", None)  # (of the stored values)

    def __call__(self) -> np.ndarray:
        return self.read()

    def read(self, **parts: Any) -> np.ndarray:
        raw = self.raw.read(**parts) if callable(self.raw) else array_cut(self.raw, **parts)
        return translate_dq(raw, self.table, self.source)


def reference_dq(reference: ReferenceModel, shape: tuple[int, ...]) -> np.ndarray:
    """The reference's DQ (standard flags), or zeros of ``shape`` when it has none."""
    return reference.dq if reference.has_array("dq") else np.zeros(shape, np.uint32)


def translate_dq(raw: np.ndarray, dq_def: np.ndarray, source: str | None = None) -> np.ndarray:
    """Map a reference DQ array in a private bit layout to the standard pixel flags."""
    names = [_text(name).strip() for name in dq_def["NAME"]]
    # VALUE may be stored as signed int32 (bit 31 negative): take the 32-bit pattern
    values = np.asarray(dq_def["VALUE"]).astype(np.int64) & 0xFFFFFFFF
    standard = np.zeros(raw.shape, dtype=np.uint32)
    for value, name in zip(values, names, strict=True):
        flag = dqflags.PIXEL.get(name.upper())
        if flag is None:
            log.warning("%s: DQ_DEF names unknown flag %r; ignored", source or "reference", name)
            continue
        if flag:
            standard[(raw & np.uint32(value)) != 0] |= np.uint32(flag)
    return standard


def standard_dq_def(dq: np.ndarray) -> np.ndarray:
    """A DQ_DEF table for a DQ array already in the standard layout (one row per bit used)."""
    used = int(np.bitwise_or.reduce(dq, axis=None)) if dq.size else 0
    rows = [
        (bit, 1 << bit, dqflags.flag_names(1 << bit)[0], dqflags.flag_names(1 << bit)[0])
        for bit in range(32)
        if used & (1 << bit)
    ]
    return np.array(rows, dtype=DQ_DEF_DTYPE)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _image(extname: str, ndim: tuple[int, ...] = (2,), dtype=F32) -> ArraySpec:
    return ArraySpec(extname, dtype, ndim, allocate=None)


#: image dimensionalities of the references used on superstripe ramps (before refpix
#: collates them): cut for one, they hold a plane per stripe
PER_STRIPE = (2, 3)


class MaskModel(ReferenceModel):
    reftype = "mask"
    primary_array = "dq"
    arrays = {"dq": _image("DQ", PER_STRIPE, dtype=U32), "dq_def": DQ_DEF}


class SaturationModel(ReferenceModel):
    reftype = "saturation"
    arrays = {"data": _image("SCI", PER_STRIPE), "dq": _image("DQ", PER_STRIPE, dtype=U32),
              "dq_def": DQ_DEF}


class SuperBiasModel(ReferenceModel):
    reftype = "superbias"
    arrays = {
        "data": _image("SCI", PER_STRIPE), "err": _image("ERR", PER_STRIPE),
        "dq": _image("DQ", PER_STRIPE, dtype=U32), "dq_def": DQ_DEF,
    }


class LinearityModel(ReferenceModel):
    reftype = "linearity"
    primary_array = "coeffs"
    arrays = {
        "coeffs": _image("COEFFS", (3,)), "inv_coeffs": _image("INV_COEFFS", (3,)),
        "dq": _image("DQ", dtype=U32), "dq_def": DQ_DEF,
    }


class DarkModel(ReferenceModel):
    reftype = "dark"
    can_cut_out = False
    arrays = {
        "data": _image("SCI", (3,)), "err": _image("ERR", (3,)), "dq": _image("DQ", dtype=U32),
        "dq_def": DQ_DEF, "average_dark_current": _image("AVDRKCUR"),
    }


class DarkMIRIModel(ReferenceModel):
    reftype = "dark"
    can_cut_out = False
    arrays = {
        "data": _image("SCI", (4,)), "err": _image("ERR", (4,)),
        "dq": _image("DQ", (4,), dtype=U32), "dq_def": DQ_DEF,
        "average_dark_current": _image("AVDRKCUR"),
    }


class GainModel(ReferenceModel):
    reftype = "gain"
    arrays = {"data": _image("SCI")}


class ReadnoiseModel(ReferenceModel):
    reftype = "readnoise"
    arrays = {"data": _image("SCI")}


class IPCModel(ReferenceModel):
    """A [k, k] kernel for every pixel, or one [k, k, ny, nx] per pixel."""

    reftype = "ipc"
    image_min_ndim = 4
    arrays = {"data": _image("SCI", (2, 4))}


class ResetModel(ReferenceModel):
    reftype = "reset"
    arrays = {
        "data": _image("SCI", (4,)), "err": _image("ERR", (4,)), "dq": _image("DQ", dtype=U32),
        "dq_def": DQ_DEF,
    }


class RSCDModel(ReferenceModel):
    reftype = "rscd"
    primary_array = "rscd_group_skip_table"
    arrays = {"rscd_group_skip_table": ArraySpec("RSCD_GROUP_SKIP", None, (1,), allocate=None)}


class FlatModel(ReferenceModel):
    """Normalised detector response: science ÷ flat."""

    reftype = "flat"
    arrays = {
        "data": _image("SCI"), "err": _image("ERR"), "dq": _image("DQ", dtype=U32),
        "dq_def": DQ_DEF,
    }


class PixelAreaModel(ReferenceModel):
    """Relative pixel area (≈1); PIXAR_SR / PIXAR_A2 give the nominal area."""

    reftype = "area"
    arrays = {"data": _image("SCI")}


def _table(extname: str) -> ArraySpec:
    return ArraySpec(extname, None, (1,), allocate=None)


class PhotomModel(ReferenceModel):
    """Imaging PHOTOM table (filter/pupil/subarray → PHOTMJSR) and its time coefficients."""

    reftype = "photom"
    primary_array = "phot_table"
    arrays = {
        "phot_table": _table("PHOTOM"),
        "timecoeff_linear": _table("TIMECOEFF_LINEAR"),
        "timecoeff_exponential": _table("TIMECOEFF_EXPONENTIAL"),
        "timecoeff_powerlaw": _table("TIMECOEFF_POWERLAW"),
    }


class NrcImgPhotomModel(PhotomModel):
    pass


class NisImgPhotomModel(PhotomModel):
    pass


class MirImgPhotomModel(PhotomModel):
    pass


class FgsImgPhotomModel(PhotomModel):
    pass


class ApcorrModel(ReferenceModel):
    """Imaging aperture corrections (APCORR table: filter/pupil or subarray, eefraction,
    radius, apcorr, skyin, skyout)."""

    reftype = "apcorr"
    primary_array = "apcorr_table"
    arrays = {"apcorr_table": _table("APCORR")}


class NrcImgApcorrModel(ApcorrModel):
    pass


class NisImgApcorrModel(ApcorrModel):
    pass


class MirImgApcorrModel(ApcorrModel):
    pass


class FgsImgApcorrModel(ApcorrModel):
    pass


class IRS2Model(ReferenceModel):
    """NIRSpec IRS2 reference-pixel coefficients: the IRS2 table (float32 columns alpha_0-3
    and beta_0-3, real and imaginary parts on alternate rows, one complex value per
    frequency of a frame's readout) and the DQ table of bad interleaved reference pixels
    (OUTPUT, ODD_EVEN, MASK). Tables, not images: never cut to a subarray."""

    reftype = "refpix"
    primary_array = "irs2_table"
    arrays = {"irs2_table": _table("IRS2"), "dq_table": _table("DQ")}


#: the official model class (its DATAMODL) per reference type and instrument
INSTRUMENT_MODELS = {
    "photom": {"NIRCAM": NrcImgPhotomModel, "NIRISS": NisImgPhotomModel,
               "MIRI": MirImgPhotomModel, "FGS": FgsImgPhotomModel},
    "apcorr": {"NIRCAM": NrcImgApcorrModel, "NIRISS": NisImgApcorrModel,
               "MIRI": MirImgApcorrModel, "FGS": FgsImgApcorrModel},
}


class _TreeReference(ReferenceModel):
    """An ASDF reference whose content is a tree item rather than arrays."""

    primary_array = None
    can_cut_out = False


class DistortionModel(_TreeReference):
    """Detector pixel (0-based, full frame) → V2/V3 (arcsec) as an astropy model (``model``)."""

    reftype = "distortion"

    @property
    def transform(self):
        return self.tree.get("model")

    @transform.setter
    def transform(self, value) -> None:
        self.tree["model"] = value


class FilteroffsetModel(_TreeReference):
    """Per-filter pixel offsets (``filters``: list of filter, pupil, column/row_offset)."""

    reftype = "filteroffset"

    @property
    def filters(self) -> list[dict]:
        return list(self.tree.get("filters") or [])

    @filters.setter
    def filters(self, value: list[dict]) -> None:
        self.tree["filters"] = [dict(item) for item in value]


class ABVegaOffsetModel(_TreeReference):
    """AB − Vega magnitude offsets (``abvega_offset``: a table of filter, pupil or detector,
    abvega_offset)."""

    reftype = "abvegaoffset"

    @property
    def abvega_offset(self):
        return self.tree.get("abvega_offset")

    @abvega_offset.setter
    def abvega_offset(self, value) -> None:
        self.tree["abvega_offset"] = value


class EmiModel(_TreeReference):
    """MIRI EMI waveforms (ASDF): ``frequencies`` maps a frequency name to ``frequency`` (Hz)
    and ``phase_amplitudes`` (one period of the waveform, evenly sampled in phase);
    ``subarray_cases`` maps a subarray name (``FULL_FAST``/``FULL_SLOW`` for full frame) to
    ``rowclocks``, ``frameclocks`` and ``freqs``: ``FAST`` → frequency names, ``SLOW`` →
    detector → frequency names."""

    reftype = "emicorr"

    @property
    def frequencies(self) -> dict:
        return self.tree.get("frequencies") or {}

    @frequencies.setter
    def frequencies(self, value: dict) -> None:
        self.tree["frequencies"] = _plain(value)

    @property
    def subarray_cases(self) -> dict:
        return self.tree.get("subarray_cases") or {}

    @subarray_cases.setter
    def subarray_cases(self, value: dict) -> None:
        self.tree["subarray_cases"] = _plain(value)


def _plain(value):
    """Nested mappings as plain dicts (lists and arrays kept)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class PictureFrameModel(ReferenceModel):
    """NIRSpec thermal "picture frame" rate image (SCI, full frame)."""

    reftype = "pictureframe"
    arrays = {"data": _image("SCI")}


REFERENCE_MODELS: dict[str, type[ReferenceModel]] = {
    cls.reftype: cls
    for cls in (MaskModel, SaturationModel, SuperBiasModel, LinearityModel, DarkModel,
                GainModel, ReadnoiseModel, IPCModel, ResetModel, RSCDModel, FlatModel,
                PixelAreaModel, PhotomModel, DistortionModel, FilteroffsetModel, ApcorrModel,
                ABVegaOffsetModel, EmiModel, PictureFrameModel, IRS2Model)
}


def register_reference_model(cls: type[ReferenceModel]) -> type[ReferenceModel]:
    """Class decorator for models added by later steps: makes the reftype resolvable."""
    REFERENCE_MODELS[cls.reftype] = cls
    return cls


def reference_model_class(reftype: str, instrument: str | None = None) -> type[ReferenceModel]:
    """The model class of a reference type (``"gain"`` → GainModel); MIRI darks are 4-D."""
    reftype = reftype.lower()
    if reftype == "dark" and (instrument or "").upper() == "MIRI":
        return DarkMIRIModel
    by_instrument = INSTRUMENT_MODELS.get(reftype, {})
    if (instrument or "").upper() in by_instrument:
        return by_instrument[instrument.upper()]
    try:
        return REFERENCE_MODELS[reftype]
    except KeyError:
        raise DataModelError(f"no reference model for reference type {reftype!r}") from None


# -- subarray cut-outs ----------------------------------------------------------------------
def _window(model: DataModel, image_shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(xstart, ystart, xsize, ysize), 1-based starts; full frame when keywords are absent."""
    sub = model.meta.subarray
    ny, nx = image_shape
    values = (sub.xstart, sub.ystart, sub.xsize, sub.ysize)
    defaults = (1, 1, nx, ny)
    # only absent keywords default; an invalid 0 must not pass as 1
    return tuple(d if v is None else v for v, d in zip(values, defaults, strict=True))


def cutout_reference(reference: ReferenceModel, science: DataModel) -> ReferenceModel:
    """The reference cut to the science subarray (framework.md §7.3), or itself if it matches."""
    if type(reference).primary_array is None:
        return reference  # a tree-only reference (distortion, filter offsets)
    primary_shape = reference.array_shape(type(reference).primary_array)
    if len(primary_shape) < reference.image_min_ndim:
        return reference  # not a detector image (e.g. a single IPC kernel)
    ref_shape = tuple(primary_shape[-2:])
    sci_shape = tuple(science.data.shape[-2:])
    if is_irs2(sci_shape):
        return _irs2_reference(reference, ref_shape, sci_shape)
    readout = StripeReadout.of(science)
    rx, ry, rnx, rny = _window(reference, ref_shape)
    sx, sy, snx, sny = _window(science, sci_shape)
    matches = (rx, ry, rnx, rny) == (sx, sy, snx, sny) and ref_shape == sci_shape
    if matches and (readout is None or not readout.superstripe):
        return reference
    name = reference.meta.filename or type(reference).__name__
    x0, y0 = sx - rx, sy - ry
    if not reference.can_cut_out:
        raise ReferenceFileError(
            f"{name}: {reference.reftype.upper()} covers subarray "
            f"{reference.meta.subarray.name or 'FULL'} ({rnx}x{rny} at {rx},{ry}) but the science "
            f"data are {snx}x{sny} at {sx},{sy}; this reference type must match exactly"
        )
    if readout is not None:
        return _striped_reference(reference, readout, (rx, ry, rnx, rny), ref_shape,
                                  (sx, sy, snx, sny), science.meta.subarray.name)
    if x0 < 0 or y0 < 0 or x0 + snx > ref_shape[1] or y0 + sny > ref_shape[0]:
        raise ReferenceFileError(
            f"{name}: the {reference.reftype.upper()} reference ({rnx}x{rny} at {rx},{ry}) "
            f"does not cover the science subarray ({snx}x{sny} at {sx},{sy})"
        )
    arrays = {}
    for array_name in type(reference).arrays:
        if not reference.has_array(array_name):
            continue
        array = getattr(reference, array_name)
        if array.ndim >= 2 and tuple(array.shape[-2:]) == ref_shape:
            # a compact copy: the cut never shares memory with the (possibly cached) reference
            array = np.ascontiguousarray(array[..., y0 : y0 + sny, x0 : x0 + snx])
        else:
            array = array.copy()
        arrays[array_name] = array
    return _cut_model(reference, arrays, science.meta.subarray.name, (sx, sy, snx, sny))


def _cut_model(reference: ReferenceModel, arrays: dict[str, np.ndarray],
               subarray: str | None, window: tuple[int, int, int, int]) -> ReferenceModel:
    """A model of the reference's class with its metadata, the cut ``arrays`` and the
    science ``subarray`` name and (xstart, ystart, xsize, ysize) ``window``."""
    cut = reference.metadata_copy()  # the arrays are given
    for array_name, array in arrays.items():
        setattr(cut, array_name, array)
    sx, sy, snx, sny = window
    cut.meta.subarray.update(
        {"name": subarray, "xstart": sx, "ystart": sy, "xsize": snx, "ysize": sny})
    return cut


def _striped_reference(reference: ReferenceModel, readout: StripeReadout, ref_window: tuple,
                       ref_shape: tuple, sci_window: tuple, subarray: str | None):
    """The reference rows a striped readout reads (stripes.py), as the official cut-out:
    the primary array, ERR and DQ only, the reference covering the whole detector along the
    slow axis; a superstripe readout gets a plane per stripe (2-D references only)."""
    name = reference.meta.filename or type(reference).__name__
    rx, ry, rnx, rny = ref_window
    sx, sy, snx, sny = sci_window
    if readout.slow_axis == -2:  # |FASTAXIS| = 1: x is the fast axis
        fast_axis, ref_fast, ref_slow, (start, size) = -1, (rx, rnx), (ry, rny), (sx, snx)
    else:
        fast_axis, ref_fast, ref_slow, (start, size) = -2, (ry, rny), (rx, rnx), (sy, sny)
    if ref_slow != (1, DETECTOR_LENGTH) or ref_shape[readout.slow_axis] != DETECTOR_LENGTH:
        raise ReferenceFileError(
            f"{name}: a striped readout ({readout.name or 'multistripe'}) needs a "
            f"{reference.reftype.upper()} reference covering all {DETECTOR_LENGTH} detector "
            f"rows along the slow axis; this one covers {ref_slow[1]} from {ref_slow[0]}")
    offset = start - ref_fast[0]
    if offset < 0 or offset + size > ref_shape[fast_axis]:
        raise ReferenceFileError(
            f"{name}: the {reference.reftype.upper()} reference ({rnx}x{rny} at {rx},{ry}) "
            f"does not cover the science subarray ({snx}x{sny} at {sx},{sy})")
    fast_cut = (..., slice(offset, offset + size)) if fast_axis == -1 else (
        ..., slice(offset, offset + size), slice(None))
    arrays = {}
    for array_name in dict.fromkeys((type(reference).primary_array, "err", "dq")):
        if array_name not in type(reference).arrays or not reference.has_array(array_name):
            continue
        array = getattr(reference, array_name)
        spec = type(reference).arrays[array_name]
        if readout.superstripe and array.ndim + 1 not in spec.ndim:
            raise ReferenceFileError(
                f"{name}: {reference.reftype.upper()} {array_name} of shape {array.shape} "
                f"cannot be cut for superstripes (2-D images of mask, saturation and "
                f"superbias references only)")
        arrays[array_name] = cut_reference_image(array[fast_cut], readout)
    return _cut_model(reference, arrays, subarray, sci_window)


def _irs2_reference(reference: ReferenceModel, ref_shape: tuple, sci_shape: tuple):
    """IRS2 readouts are full frame only: a reference is either laid out like the raw frame
    (interleaved rows included) or holds the normal pixels alone; nothing is cut."""
    if ref_shape in (sci_shape, (sci_shape[1], sci_shape[1])):
        return reference
    name = reference.meta.filename or type(reference).__name__
    raise ReferenceFileError(
        f"{name}: the {reference.reftype.upper()} reference is {ref_shape[1]}x{ref_shape[0]}; "
        f"an IRS2 frame of {sci_shape[1]}x{sci_shape[0]} needs a reference of that size or "
        f"of its {sci_shape[1]}x{sci_shape[1]} normal pixels")


@register_reference_model
class SIRSKernelModel(_TreeReference):
    """SIRS side-reference-pixel kernels (ASDF), never cut to a subarray: per detector, a
    top-level item named as the detector in lower case (``nrcb1``, ``nrs2``) holding the
    Fourier coefficients ``gamma`` (left reference columns) and ``zeta`` (right ones),
    [amplifier, frequency] arrays (complex in the official files)."""

    reftype = "sirskernel"

    def coefficients(self, detector: str | None) -> tuple[np.ndarray, np.ndarray] | None:
        """(gamma, zeta) of ``detector`` (names compared ignoring case), or None when the file
        has no item with both for it."""
        if not detector:
            return None
        for name, item in self.tree.items():
            if name.lower() == detector.lower() and isinstance(item, dict):
                if item.get("gamma") is not None and item.get("zeta") is not None:
                    return np.asarray(item["gamma"]), np.asarray(item["zeta"])
        return None

    def set_coefficients(self, detector: str, gamma, zeta) -> None:
        """Store the coefficients of ``detector`` under its lower-case name."""
        self.tree[detector.lower()] = {"gamma": np.asarray(gamma), "zeta": np.asarray(zeta)}
