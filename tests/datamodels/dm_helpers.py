"""Builders of small, fully populated models for the datamodels tests."""

from __future__ import annotations

import numpy as np

from calwebb import datamodels

NY, NX = 6, 5
NINTS, NGROUPS = 2, 3

ALL_CLASSES = [
    datamodels.Level1bModel, datamodels.RampModel, datamodels.ImageModel,
    datamodels.CubeModel, datamodels.MaskModel, datamodels.SaturationModel,
    datamodels.SuperBiasModel, datamodels.LinearityModel, datamodels.DarkModel,
    datamodels.DarkMIRIModel, datamodels.GainModel, datamodels.ReadnoiseModel,
    datamodels.IPCModel, datamodels.ResetModel, datamodels.RSCDModel,
]

RSCD_DTYPE = np.dtype([("subarray", "S17"), ("readpatt", "S12"), ("group_skip1", ">i4"),
                       ("group_skip", ">i4")])


def int_times(nints: int = NINTS) -> np.ndarray:
    table = np.zeros(nints, dtype=datamodels.INT_TIMES_DTYPE)
    table["integration_number"] = np.arange(1, nints + 1)
    for n, column in enumerate(datamodels.INT_TIMES_DTYPE.names[1:]):
        table[column] = 60000.0 + np.arange(nints) * 0.01 + n * 1e-4
    return table


def group_table(nints: int = NINTS, ngroups: int = NGROUPS) -> np.ndarray:
    table = np.zeros(nints * ngroups, dtype=datamodels.GROUP_DTYPE)
    table["integration_number"] = np.repeat(np.arange(1, nints + 1), ngroups)
    table["group_number"] = np.tile(np.arange(1, ngroups + 1), nints)
    table["group_end_time"] = b"2024-01-01T00:00:00.000"
    table["completion_code_text"] = b"COMPLETE"
    table["bary_end_time"] = 60310.5
    return table


def _shape_for(cls, name: str, spec) -> tuple[int, ...]:
    full = (NINTS, NGROUPS, NY, NX)
    dims = spec.ndim[0] if spec.ndim else 2
    if cls is datamodels.IPCModel:
        return (3, 3)
    if name == "refout":
        return (NINTS, NGROUPS, NY, NX // 4 or 1)
    if cls is datamodels.DarkMIRIModel and name == "dq":
        return (NINTS, 1, NY, NX)
    if cls is datamodels.LinearityModel and name in ("coeffs", "inv_coeffs"):
        return (4, NY, NX)
    if cls is datamodels.DarkModel and name in ("data", "err"):
        return (NGROUPS, NY, NX)
    if cls is datamodels.CubeModel and name == "area":
        return (NY, NX)
    return full[4 - dims:]


def fill_arrays(model, rng: np.random.Generator | None = None) -> None:
    """Give ``model`` every declared array with random values of the declared dtype."""
    rng = rng or np.random.default_rng(1)
    cls = type(model)
    for name, spec in cls.arrays.items():
        if spec.is_table:
            if spec.extname == "INT_TIMES":
                value = int_times()
            elif spec.extname == "GROUP":
                value = group_table()
            elif spec.extname == "RSCD_GROUP_SKIP":
                value = np.array([(b"FULL", b"FAST", 1, 2), (b"SUB64", b"SLOW", 2, 3)],
                                 dtype=RSCD_DTYPE)
            else:  # DQ_DEF: written by save
                continue
        else:
            shape = _shape_for(cls, name, spec)
            dtype = np.dtype(spec.dtype)
            if dtype.kind == "f":
                value = rng.normal(100.0, 10.0, shape).astype(dtype)
            elif name in ("dq", "pixeldq"):
                value = rng.choice(np.array([0, 1, 2, 1024, 2048, 2**21], dtype=np.uint32),
                                   shape).astype(dtype)
            else:
                value = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
        setattr(model, name, value)


def fill_meta(model) -> None:
    """Primary keywords, SCI keywords, tree-only and unknown items."""
    meta = model.meta
    is_miri = type(model) in (datamodels.DarkMIRIModel, datamodels.ResetModel,
                              datamodels.RSCDModel)
    meta.telescope = "JWST"
    meta.instrument.name = "MIRI" if is_miri else "NIRCAM"
    meta.instrument.detector = "MIRIMAGE" if is_miri else "NRCA1"
    meta.instrument.filter = "F770W" if is_miri else "F200W"
    meta.exposure.type = "MIR_IMAGE" if is_miri else "NRC_IMAGE"
    meta.exposure.readpatt = "FAST" if is_miri else "RAPID"
    meta.exposure.ngroups = NGROUPS
    meta.exposure.nints = NINTS
    meta.exposure.nframes = 1
    meta.exposure.group_time = 10.73677
    meta.exposure.zero_frame = False
    meta.exposure.start_time = 60310.123456789
    meta.subarray.name = "FULL"
    meta.subarray.xstart = 1
    meta.subarray.ystart = 1
    meta.subarray.xsize = NX
    meta.subarray.ysize = NY
    meta.observation.date = "2024-01-01"
    meta.observation.time = "00:00:00.000"
    meta.observation.program_number = "01234"
    meta.cal_step.jump = "COMPLETE"
    meta.ref_file.gain.name = "crds://jwst_nircam_gain_0001.fits"
    meta.photometry.conversion_megajanskys = 0.25
    meta.photometry.pixelarea_steradians = 9.3e-14
    meta.wcsinfo.ra_ref = 80.5
    meta.target.source_type = "POINT"
    meta.cal_logs = ["step one ran", "step two ran"]
    meta.custom_block = {"number": 3, "text": "hello", "values": [1.5, 2.5]}
    if isinstance(model, datamodels.ReferenceModel):
        meta.useafter = "2022-01-01T00:00:00"
        meta.pedigree = "GROUND"
        meta.description = "test reference"
        meta.author = "calwebb tests"


def build(cls):
    model = cls()
    fill_arrays(model)
    fill_meta(model)
    return model


def declared_present(model) -> list[str]:
    return [name for name in type(model).arrays if model.has_array(name)]
