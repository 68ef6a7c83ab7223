"""Files calwebb writes open in the official stdatamodels without warnings, and vice versa."""

import warnings

import numpy as np
import pytest
from dm_helpers import group_table, int_times

from calwebb import datamodels

pytestmark = pytest.mark.compare

NINTS, NGROUPS, NY, NX = 2, 4, 8, 6


@pytest.fixture(scope="module")
def sd():
    return pytest.importorskip("stdatamodels.jwst.datamodels")


def nircam_meta(meta, model_type="RampModel"):
    """Metadata as a real NIRCam imaging exposure carries it."""
    meta.telescope = "JWST"
    meta.origin = "STSCI"
    meta.calibration_software_version = "1.0.0"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = "NRCA1"
    meta.instrument.module = "A"
    meta.instrument.channel = "SHORT"
    meta.instrument.filter = "F200W"
    meta.instrument.pupil = "CLEAR"
    meta.exposure.type = "NRC_IMAGE"
    meta.exposure.readpatt = "RAPID"
    meta.exposure.nints = NINTS
    meta.exposure.ngroups = NGROUPS
    meta.exposure.nframes = 1
    meta.exposure.groupgap = 0
    meta.exposure.frame_divisor = 1
    meta.exposure.drop_frames1 = 0
    meta.exposure.drop_frames3 = 0
    meta.exposure.nsamples = 1
    meta.exposure.sample_time = 10.0
    meta.exposure.frame_time = 10.73677
    meta.exposure.group_time = 10.73677
    meta.exposure.integration_time = 32.21031
    meta.exposure.exposure_time = 64.42062
    meta.exposure.duration = 85.89416
    meta.exposure.nresets_at_start = 1
    meta.exposure.nresets_between_ints = 1
    meta.exposure.zero_frame = False
    meta.exposure.noutputs = 4
    meta.exposure.start_time = 60310.1
    meta.exposure.mid_time = 60310.1005
    meta.exposure.end_time = 60310.101
    meta.exposure.integration_start = 1
    meta.exposure.integration_end = NINTS
    meta.subarray.name = "FULL"
    meta.subarray.xstart = 1
    meta.subarray.ystart = 1
    meta.subarray.xsize = NX
    meta.subarray.ysize = NY
    meta.subarray.fastaxis = -1
    meta.subarray.slowaxis = 2
    meta.observation.date = "2024-01-01"
    meta.observation.time = "01:02:03.456"
    meta.observation.program_number = "01234"
    meta.observation.observation_number = "001"
    meta.observation.visit_number = "001"
    meta.observation.visit_group = "01"
    meta.observation.sequence_id = "1"
    meta.observation.activity_id = "01"
    meta.observation.exposure_number = "00001"
    meta.observation.obs_id = "V01234001001P0000000001101"
    meta.target.proposer_name = "TEST-FIELD"
    meta.target.ra = 80.5
    meta.target.dec = -69.5
    meta.target.type = "FIXED"
    meta.dither.primary_type = "NONE"
    meta.dither.position_number = 1
    meta.dither.total_points = 1
    meta.aperture.name = "NRCA1_FULL"
    meta.visit.tsovisit = False
    meta.visit.engineering_quality = "OK"
    meta.wcsinfo.v2_ref = 120.6
    meta.wcsinfo.v3_ref = -527.5
    meta.wcsinfo.ra_ref = 80.5
    meta.wcsinfo.dec_ref = -69.5
    meta.wcsinfo.roll_ref = 10.0
    meta.wcsinfo.v3yangle = -0.5
    meta.wcsinfo.vparity = -1
    meta.pointing.ra_v1 = 80.6
    meta.pointing.dec_v1 = -69.6
    meta.pointing.pa_v3 = 9.5
    meta.ephemeris.type = "DEFINITIVE"
    meta.ephemeris.reference_frame = "EME2000"
    meta.cal_step.dq_init = "COMPLETE"
    meta.cal_step.saturation = "COMPLETE"
    meta.cal_step.jump = "SKIPPED"
    meta.ref_file.crds.context_used = "jwst_1200.pmap"
    meta.ref_file.crds.sw_version = "12.0.0"
    meta.ref_file.mask.name = "crds://jwst_nircam_mask_0001.fits"
    meta.ref_file.gain.name = "N/A"


def reference_meta(meta, reftype):
    meta.telescope = "JWST"
    meta.reftype = reftype
    meta.description = f"test {reftype} reference"
    meta.author = "calwebb tests"
    meta.pedigree = "GROUND"
    meta.useafter = "2022-01-01T00:00:00"
    meta.instrument.name = "NIRCAM"
    meta.instrument.detector = "NRCA1"
    meta.subarray.name = "FULL"
    meta.subarray.xstart = 1
    meta.subarray.ystart = 1
    meta.subarray.xsize = NX
    meta.subarray.ysize = NY
    meta.subarray.fastaxis = -1
    meta.subarray.slowaxis = 2


def miri_reference_meta(meta, reftype):
    reference_meta(meta, reftype)
    meta.instrument.name = "MIRI"
    meta.instrument.detector = "MIRIMAGE"
    meta.exposure.readpatt = "FAST"
    meta.subarray.fastaxis = 1
    meta.subarray.slowaxis = 2


def _rng():
    return np.random.default_rng(11)


def calwebb_ramp():
    rng = _rng()
    model = datamodels.RampModel((NINTS, NGROUPS, NY, NX))
    model.data = rng.normal(1e4, 30, model.data.shape).astype(np.float32)
    model.pixeldq[1, 1] = 1 | 1024
    model.groupdq[0, 2, 3, 3] = 4
    model.zeroframe = rng.normal(1e4, 30, (NINTS, NY, NX)).astype(np.float32)
    model.int_times = int_times(NINTS)
    model.group = group_table(NINTS, NGROUPS)
    nircam_meta(model.meta)
    return model


def calwebb_uncal():
    model = datamodels.Level1bModel(
        data=_rng().integers(0, 65535, (NINTS, NGROUPS, NY, NX)).astype(np.uint16))
    model.int_times = int_times(NINTS)
    model.group = group_table(NINTS, NGROUPS)
    nircam_meta(model.meta)
    return model


def _slope_model(model):
    rng = _rng()
    shape = model.data.shape
    model.data = rng.normal(1.0, 0.1, shape).astype(np.float32)
    model.err = np.full(shape, 0.1, np.float32)
    model.dq = np.zeros(shape, np.uint32)
    model.dq[..., 0, 0] = 1 | 512
    model.var_poisson = np.full(shape, 0.004, np.float32)
    model.var_rnoise = np.full(shape, 0.006, np.float32)
    nircam_meta(model.meta)
    model.meta.bunit_data = "DN/s"
    model.meta.bunit_err = "DN/s"
    model.meta.photometry.conversion_megajanskys = 0.25
    model.meta.photometry.pixelarea_steradians = 9.3e-14
    model.meta.photometry.pixelarea_arcsecsq = 0.00396
    model.meta.cal_step.ramp_fit = "COMPLETE"
    return model


def calwebb_image():
    return _slope_model(datamodels.ImageModel((NY, NX)))


def calwebb_cube():
    model = _slope_model(datamodels.CubeModel((NINTS, NY, NX)))
    model.int_times = int_times(NINTS)
    return model


def calwebb_gain():
    model = datamodels.GainModel(data=np.full((NY, NX), 2.05, np.float32))
    reference_meta(model.meta, "GAIN")
    model.meta.instrument.p_detector = "NRCA1|NRCA2|"
    return model


def calwebb_readnoise():
    model = datamodels.ReadnoiseModel(data=np.full((NY, NX), 6.5, np.float32))
    reference_meta(model.meta, "READNOISE")
    model.meta.exposure.readpatt = "ANY"
    model.meta.exposure.p_readpatt = "RAPID|BRIGHT1|"
    return model


def calwebb_mask():
    dq = np.zeros((NY, NX), np.uint32)
    dq[0, :] = 2**31  # REFERENCE_PIXEL
    dq[3, 3] = 1 | 1024
    dq[4, 4] = 1 | 2048
    model = datamodels.MaskModel(dq=dq)
    reference_meta(model.meta, "MASK")
    return model


def calwebb_saturation():
    model = datamodels.SaturationModel(data=np.full((NY, NX), 6e4, np.float32),
                                       dq=np.zeros((NY, NX), np.uint32))
    model.dq[2, 2] = 2**21  # NO_SAT_CHECK
    reference_meta(model.meta, "SATURATION")
    return model


def calwebb_superbias():
    model = datamodels.SuperBiasModel(data=np.full((NY, NX), 1.2e4, np.float32),
                                      err=np.full((NY, NX), 3.0, np.float32),
                                      dq=np.zeros((NY, NX), np.uint32))
    reference_meta(model.meta, "SUPERBIAS")
    model.meta.exposure.readpatt = "RAPID"
    return model


def calwebb_linearity():
    coeffs = np.zeros((5, NY, NX), np.float32)
    coeffs[1] = 1.0
    coeffs[2] = 1e-6
    model = datamodels.LinearityModel(coeffs=coeffs, dq=np.zeros((NY, NX), np.uint32))
    reference_meta(model.meta, "LINEARITY")
    return model


def calwebb_dark():
    model = datamodels.DarkModel(
        data=np.cumsum(np.full((NGROUPS, NY, NX), 0.1, np.float32), axis=0),
        err=np.full((NGROUPS, NY, NX), 0.01, np.float32), dq=np.zeros((NY, NX), np.uint32))
    reference_meta(model.meta, "DARK")
    model.meta.exposure.type = "NRC_IMAGE"
    model.meta.exposure.readpatt = "RAPID"
    model.meta.exposure.nframes = 1
    model.meta.exposure.ngroups = NGROUPS
    model.meta.exposure.groupgap = 0
    model.meta.exposure.noutputs = 4
    return model


def calwebb_dark_miri():
    shape = (2, NGROUPS, NY, NX)
    model = datamodels.DarkMIRIModel(data=np.full(shape, 0.5, np.float32),
                                     err=np.full(shape, 0.05, np.float32),
                                     dq=np.zeros((2, 1, NY, NX), np.uint32))
    miri_reference_meta(model.meta, "DARK")
    model.meta.exposure.nframes = 1
    model.meta.exposure.ngroups = NGROUPS
    model.meta.exposure.groupgap = 0
    return model


def calwebb_reset():
    shape = (2, NGROUPS, NY, NX)
    model = datamodels.ResetModel(data=np.full(shape, 3.0, np.float32),
                                  err=np.full(shape, 0.3, np.float32),
                                  dq=np.zeros((NY, NX), np.uint32))
    miri_reference_meta(model.meta, "RESET")
    model.meta.exposure.ngroups = NGROUPS
    model.meta.exposure.nints = 2
    return model


def calwebb_rscd():
    table = np.array(
        [(b"FULL", b"FAST", 1, 2), (b"MASK1550", b"FAST", 1, 2)],
        dtype=[("subarray", "S17"), ("readpatt", "S12"), ("group_skip1", ">i4"),
               ("group_skip", ">i4")],
    )
    model = datamodels.RSCDModel(rscd_group_skip_table=table)
    miri_reference_meta(model.meta, "RSCD")
    return model


def calwebb_ipc():
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1] = 0.98
    kernel[0, 1] = kernel[2, 1] = kernel[1, 0] = kernel[1, 2] = 0.005
    model = datamodels.IPCModel(data=kernel)
    reference_meta(model.meta, "IPC")
    for key in ("name", "xstart", "ystart", "xsize", "ysize", "fastaxis", "slowaxis"):
        delattr(model.meta.subarray, key)
    return model


WRITERS = [calwebb_ramp, calwebb_uncal, calwebb_image, calwebb_cube, calwebb_gain,
           calwebb_readnoise, calwebb_mask, calwebb_saturation, calwebb_superbias,
           calwebb_linearity, calwebb_dark, calwebb_dark_miri, calwebb_reset, calwebb_rscd,
           calwebb_ipc]


def _same_value(ours, theirs):
    if isinstance(ours, float) or isinstance(theirs, float):
        return ours == pytest.approx(theirs, rel=1e-15, abs=0)
    if hasattr(theirs, "isot"):  # astropy Time
        return ours == theirs.isot
    return ours == theirs


def _compare_meta(ours: dict, theirs: dict):
    compared = 0
    for key, value in ours.items():
        if not key.startswith("meta."):
            continue
        assert key in theirs, f"{key} missing in the official model"
        assert _same_value(value, theirs[key]), (
            f"{key}: calwebb {value!r}, official {theirs[key]!r}")
        compared += 1
    return compared


def _text(column):
    column = np.asarray(column)
    return np.char.decode(column, "ascii") if column.dtype.kind == "S" else column


def _same_dtype(got, expected):
    """Same kind and size; byte order may differ (the official library keeps big-endian)."""
    got, expected = np.dtype(got), np.dtype(expected)
    return (got.kind, got.itemsize) == (expected.kind, expected.itemsize)


def _compare_arrays(ours, theirs):
    for name, spec in type(ours).arrays.items():
        if not ours.has_array(name):
            continue
        expected = getattr(ours, name)
        got = getattr(theirs, name)
        assert got is not None, f"{name} missing in the other model"
        if spec.is_table:
            for column in expected.dtype.names:
                np.testing.assert_array_equal(_text(got[column]), _text(expected[column]),
                                              err_msg=f"{name}.{column}")
        else:
            assert _same_dtype(np.asarray(got).dtype, spec.dtype), name
            np.testing.assert_array_equal(np.asarray(got), expected, err_msg=name)


@pytest.mark.parametrize("writer", WRITERS, ids=lambda writer: writer.__name__)
def test_calwebb_files_open_in_official_library(tmp_path, sd, writer):
    model = writer()
    path = model.save(tmp_path / f"{writer.__name__}.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any ValidationWarning fails the test
        official = sd.open(path)
        official.validate()
        assert type(official).__name__ == type(model).__name__
        official_flat = official.to_flat_dict()
        assert _compare_meta(model.to_flat_dict(), official_flat) > 10
        _compare_arrays(model, official)
        # the official library can also write it back, and calwebb reads that again
        official.save(tmp_path / "resaved.fits")
        official.close()
    again = datamodels.open(tmp_path / "resaved.fits")
    assert type(again) is type(model)
    _compare_arrays(model, again)
    flat = model.to_flat_dict()
    for key, value in again.to_flat_dict().items():
        if key.startswith("meta.") and key not in ("meta.filename", "meta.date"):
            assert key in flat and _same_value(flat[key], value), key


def test_calwebb_uncal_opens_as_official_ramp(tmp_path, sd):
    model = calwebb_uncal()
    path = model.save(tmp_path / "x_uncal.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ramp = sd.RampModel(path)
        np.testing.assert_array_equal(ramp.data, model.data.astype(np.float32))
        assert ramp.meta.exposure.readpatt == "RAPID"
        assert ramp.meta.instrument.detector == "NRCA1"


# -- the other direction --------------------------------------------------------------------
def _official_ramp(sd):
    model = sd.RampModel((NINTS, NGROUPS, NY, NX))
    model.data[...] = _rng().normal(1e4, 30, model.data.shape).astype(np.float32)
    model.pixeldq[2, 2] = 1024
    model.groupdq[1, 1, 1, 1] = 2
    model.int_times = int_times(NINTS)
    model.group = group_table(NINTS, NGROUPS)
    nircam_meta(model.meta)
    return model


def _official_slope(sd, cls, shape):
    model = _slope_model(cls(shape))
    if len(shape) == 3:
        model.int_times = int_times(NINTS)
    return model


def _official_gain(sd):
    model = sd.GainModel(data=np.full((NY, NX), 2.05, np.float32))
    reference_meta(model.meta, "GAIN")
    return model


def _official_mask(sd):
    dq = np.zeros((NY, NX), np.uint32)
    dq[1, 1] = 1 | 1024
    dq[0, :] = 2**31
    dq_def = np.array(
        [(0, 1, "DO_NOT_USE", "Bad pixel"), (10, 1024, "DEAD", "Dead pixel"),
         (31, 2**31, "REFERENCE_PIXEL", "Reference pixel")],
        dtype=[("BIT", "<i4"), ("VALUE", "<u4"), ("NAME", "S40"), ("DESCRIPTION", "S80")],
    )
    model = sd.MaskModel(dq=dq, dq_def=dq_def)
    reference_meta(model.meta, "MASK")
    return model


OFFICIAL_BUILDERS = {
    "RampModel": _official_ramp,
    "ImageModel": lambda sd: _official_slope(sd, sd.ImageModel, (NY, NX)),
    "CubeModel": lambda sd: _official_slope(sd, sd.CubeModel, (NINTS, NY, NX)),
    "GainModel": _official_gain,
    "MaskModel": _official_mask,
}


@pytest.mark.parametrize("name", list(OFFICIAL_BUILDERS))
@pytest.mark.parametrize("suffix", [".fits", ".asdf"])
def test_official_files_open_in_calwebb(tmp_path, sd, name, suffix):
    official = OFFICIAL_BUILDERS[name](sd)
    path = tmp_path / f"official{suffix}"
    official.save(path)
    given = OFFICIAL_BUILDERS[name](sd)
    with sd.open(path) as reread:
        official_flat = reread.to_flat_dict()
        ours = datamodels.open(path)
        assert type(ours).__name__ == name
        assert _compare_meta(ours.to_flat_dict(), official_flat) > 10
        for array_name in type(ours).arrays:
            # values as given to a fresh official model: its own ASDF reader mistranslates
            # a DQ_DEF with byte-string names, and its FITS writer offsets the unsigned
            # VALUE column of the in-memory table, so neither is the reference here
            theirs = getattr(given, array_name, None)
            if theirs is None or not ours.has_array(array_name):
                continue
            expected = np.asarray(theirs)
            if expected.dtype.names:
                for column in expected.dtype.names:
                    np.testing.assert_array_equal(_text(getattr(ours, array_name)[column]),
                                                  _text(expected[column]))
            else:
                np.testing.assert_array_equal(getattr(ours, array_name), expected)
                assert getattr(ours, array_name).dtype == np.dtype(
                    type(ours).arrays[array_name].dtype)
    # calwebb's reading gives the values calwebb was given (spot checks)
    assert ours.meta.instrument.detector == "NRCA1"
    assert ours.meta.subarray.fastaxis == -1
    if name in ("RampModel", "ImageModel", "CubeModel"):
        assert ours.meta.exposure.ngroups == NGROUPS
        assert ours.meta.exposure.frame_time == 10.73677
        assert ours.meta.cal_step.jump == "SKIPPED"
        assert ours.meta.observation.time == "01:02:03.456"
    if name == "RampModel":
        assert ours.pixeldq[2, 2] == 1024 and ours.groupdq[1, 1, 1, 1] == 2
        np.testing.assert_array_equal(ours.int_times["integration_number"], [1, 2])
    if name == "ImageModel":
        assert ours.meta.photometry.conversion_megajanskys == 0.25
        assert ours.meta.bunit_data == "DN/s"
    if name == "MaskModel":
        assert ours.dq[1, 1] == 1 | 1024 and ours.dq[0, 0] == 2**31


def test_keyword_table_agrees_with_official_schemas(sd):
    """Every calwebb keyword-table path that an official model schema declares has the same
    keyword, HDU and type there."""
    from calwebb.datamodels import keywords

    def walk(schema, path, out):
        if not isinstance(schema, dict):
            return
        if "fits_keyword" in schema:
            out[path] = (schema["fits_keyword"], schema.get("fits_hdu", "PRIMARY"),
                         schema.get("type"))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in schema.get(key, []):
                walk(sub, path, out)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{path}.{name}" if path else name, out)

    official = {}
    for name in ("RampModel", "ImageModel", "CubeModel", "Level1bModel", "GainModel",
                 "MaskModel", "DarkModel", "DarkMIRIModel", "LinearityModel", "ResetModel",
                 "RSCDModel", "ReadnoiseModel", "SaturationModel", "SuperBiasModel",
                 "IPCModel"):
        walk(getattr(sd, name)().schema, "", official)
    types = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
    checked = 0
    for path, entry in keywords.table().items():
        if path not in official:
            continue
        keyword, hdu, kind = official[path]
        assert (entry.keyword, entry.hdu) == (keyword, hdu), path
        kinds = kind if isinstance(kind, list) else [kind]
        assert entry.type in {types.get(k, k) for k in kinds}, path
        checked += 1
    assert checked > 500
