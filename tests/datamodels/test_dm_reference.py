"""Reference models: DQ_DEF translation both ways, subarray cut-outs, reftype lookup."""

import logging

import numpy as np
import pytest
from astropy.io import fits

from calwebb import datamodels, dqflags
from calwebb.errors import DataModelError, ReferenceFileError

PRIVATE = {"DEAD": 1, "HOT": 2, "NO_SAT_CHECK": 4, "MADE_UP_FLAG": 8}


def _private_dq_def():
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(name="BIT", format="J", array=[0, 1, 2, 3]),
            fits.Column(name="VALUE", format="J", bzero=2**31, array=np.array(
                list(PRIVATE.values()), dtype=np.uint32)),
            fits.Column(name="NAME", format="40A", array=list(PRIVATE)),
            fits.Column(name="DESCRIPTION", format="80A", array=["dead", "hot", "nosat", "?"]),
        ],
        name="DQ_DEF",
    )


def _private_file(path, reftype="SATURATION", datamodl=None):
    dq = np.array([[0, 1, 2, 3], [4, 5, 8, 9], [15, 0, 0, 6]], dtype=np.uint32)
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = reftype
    primary.header["INSTRUME"] = "NIRCAM"
    primary.header["DETECTOR"] = "NRCA1"
    if datamodl:
        primary.header["DATAMODL"] = datamodl
    hdus = [primary]
    if reftype != "MASK":
        hdus.append(fits.ImageHDU(np.full(dq.shape, 6e4, np.float32), name="SCI"))
    hdus += [fits.ImageHDU(dq, name="DQ"), _private_dq_def()]
    fits.HDUList(hdus).writeto(path)
    return dq


def _expected(dq):
    dead, hot, nosat = dqflags.PIXEL["DEAD"], dqflags.PIXEL["HOT"], dqflags.PIXEL["NO_SAT_CHECK"]
    out = np.zeros(dq.shape, np.uint32)
    out[(dq & 1) != 0] |= dead
    out[(dq & 2) != 0] |= hot
    out[(dq & 4) != 0] |= nosat
    return out


@pytest.mark.parametrize(
    ("reftype", "cls"),
    [("SATURATION", datamodels.SaturationModel), ("MASK", datamodels.MaskModel)],
)
def test_dq_def_translation_on_load(tmp_path, caplog, reftype, cls):
    path = tmp_path / "private.fits"
    dq = _private_file(path, reftype)
    with caplog.at_level(logging.WARNING):
        model = datamodels.open(path)
        assert type(model) is cls
        translated = model.dq
    assert translated.dtype == np.uint32
    np.testing.assert_array_equal(translated, _expected(dq))
    assert translated[0, 1] == 1024 and translated[0, 2] == 2048
    assert translated[1, 0] == 2097152 and translated[0, 3] == 1024 | 2048
    assert translated[1, 2] == 0  # only the unknown bit
    assert any("MADE_UP_FLAG" in record.getMessage() and "private.fits" in record.getMessage()
               for record in caplog.records)


def test_no_dq_def_means_standard(tmp_path):
    path = tmp_path / "std.fits"
    dq = np.array([[1, 1024], [2048, 0]], np.uint32)
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = "MASK"
    fits.HDUList([primary, fits.ImageHDU(dq, name="DQ")]).writeto(path)
    np.testing.assert_array_equal(datamodels.MaskModel(path).dq, dq)


def test_translate_dq_function():
    from calwebb.datamodels.reference import DQ_DEF_DTYPE, translate_dq

    table = np.array([(0, 1, b"dead", b""), (5, 32, b"DO_NOT_USE", b"")], dtype=DQ_DEF_DTYPE)
    raw = np.array([0, 1, 32, 33, 2], np.uint32)
    np.testing.assert_array_equal(translate_dq(raw, table), [0, 1024, 1, 1025, 0])


def test_saving_writes_standard_dq_and_dq_def(tmp_path):
    path = tmp_path / "private.fits"
    dq = _private_file(path, "SATURATION")
    model = datamodels.SaturationModel(path)
    out = model.save(tmp_path / "standard.fits")
    with fits.open(out) as hdul:
        np.testing.assert_array_equal(hdul["DQ"].data, _expected(dq))
        table = hdul["DQ_DEF"].data
        names = [name.strip() for name in table["NAME"]]
        assert names == ["DEAD", "HOT", "NO_SAT_CHECK"]
        np.testing.assert_array_equal(table["VALUE"], [1024, 2048, 2097152])
        np.testing.assert_array_equal(table["BIT"], [10, 11, 21])
        assert table.columns["VALUE"].format == "J"  # 32-bit, stored with TZERO as unsigned
    again = datamodels.SaturationModel(out)
    np.testing.assert_array_equal(again.dq, _expected(dq))  # translation is the identity now


def test_new_reference_model_saves_dq_def(tmp_path):
    mask = datamodels.MaskModel(dq=np.array([[0, 1], [2**31, 1 | 2**30]], np.uint32))
    assert mask.meta.reftype == "MASK"
    out = mask.save(tmp_path / "mask.fits")
    with fits.open(out) as hdul:
        assert hdul[0].header["REFTYPE"] == "MASK"
        table = hdul["DQ_DEF"].data
        np.testing.assert_array_equal(table["VALUE"], [1, 2**30, 2**31])
        assert [name.strip() for name in table["NAME"]] == [
            "DO_NOT_USE", "OTHER_BAD_PIXEL", "REFERENCE_PIXEL"]
    np.testing.assert_array_equal(datamodels.MaskModel(out).dq, mask.dq)


# -- cut-outs -------------------------------------------------------------------------------
FULL_NY, FULL_NX = 20, 16


def _full_frame(cls=datamodels.SuperBiasModel, window=True):
    data = np.arange(FULL_NY * FULL_NX, dtype=np.float32).reshape(FULL_NY, FULL_NX)
    model = cls(data=data, err=data / 10, dq=data.astype(np.uint32))
    model.meta.filename = "full_superbias.fits"
    if window:
        model.meta.subarray.update({"name": "FULL", "xstart": 1, "ystart": 1,
                                    "xsize": FULL_NX, "ysize": FULL_NY})
    return model


def _science(xstart, ystart, xsize, ysize, name="SUBTEST"):
    science = datamodels.RampModel((1, 2, ysize, xsize))
    science.meta.subarray.update({"name": name, "xstart": xstart, "ystart": ystart,
                                  "xsize": xsize, "ysize": ysize})
    return science


@pytest.mark.parametrize("window", [True, False])
def test_cutout_full_frame(window):
    reference = _full_frame(window=window)
    science = _science(5, 3, 4, 6)
    cut = datamodels.cutout_reference(reference, science)
    assert type(cut) is datamodels.SuperBiasModel and cut is not reference
    np.testing.assert_array_equal(cut.data, reference.data[2:8, 4:8])  # 1-based starts
    np.testing.assert_array_equal(cut.err, reference.err[2:8, 4:8])
    np.testing.assert_array_equal(cut.dq, reference.dq[2:8, 4:8])
    assert cut.data[0, 0] == (3 - 1) * FULL_NX + (5 - 1)
    assert cut.meta.subarray.to_dict() == {"name": "SUBTEST", "xstart": 5, "ystart": 3,
                                           "xsize": 4, "ysize": 6}
    assert reference.data.shape == (FULL_NY, FULL_NX)  # the original is untouched
    assert reference.meta.subarray.name == ("FULL" if window else None)
    assert cut.meta.filename == "full_superbias.fits"


def test_cutout_corner_cases():
    reference = _full_frame()
    whole_right_edge = datamodels.cutout_reference(reference, _science(13, 15, 4, 6))
    np.testing.assert_array_equal(whole_right_edge.data, reference.data[14:20, 12:16])


def test_cutout_from_a_subarray_reference():
    reference = _full_frame()
    reference.meta.subarray.update({"name": "SUBREF", "xstart": 3, "ystart": 2})
    cut = datamodels.cutout_reference(reference, _science(5, 4, 4, 3))
    np.testing.assert_array_equal(cut.data, reference.data[2:5, 2:6])


def test_cutout_identity_when_matching():
    reference = _full_frame()
    science = _science(1, 1, FULL_NX, FULL_NY, name="FULL")
    assert datamodels.cutout_reference(reference, science) is reference
    no_keywords = datamodels.RampModel((1, 2, FULL_NY, FULL_NX))
    bare = _full_frame(window=False)
    assert datamodels.cutout_reference(bare, no_keywords) is bare


@pytest.mark.parametrize("window", [(14, 1, 4, 6), (1, 16, 4, 6), (0, 1, 4, 4), (1, 1, 17, 4)])
def test_cutout_out_of_bounds(window):
    with pytest.raises(ReferenceFileError, match=r"full_superbias\.fits.*does not cover"):
        datamodels.cutout_reference(_full_frame(), _science(*window))


def test_dark_must_match_exactly():
    dark = datamodels.DarkModel(data=np.zeros((2, FULL_NY, FULL_NX), np.float32))
    dark.meta.filename = "dark.fits"
    dark.meta.subarray.update({"name": "FULL", "xstart": 1, "ystart": 1,
                               "xsize": FULL_NX, "ysize": FULL_NY})
    with pytest.raises(ReferenceFileError, match=r"dark\.fits.*DARK.*match exactly"):
        datamodels.cutout_reference(dark, _science(5, 3, 4, 6))
    assert datamodels.cutout_reference(dark, _science(1, 1, FULL_NX, FULL_NY)) is dark
    miri = datamodels.DarkMIRIModel(data=np.zeros((2, 2, FULL_NY, FULL_NX), np.float32))
    with pytest.raises(ReferenceFileError, match="match exactly"):
        datamodels.cutout_reference(miri, _science(5, 3, 4, 6))


def test_cutout_3d_and_4d_references():
    coeffs = np.arange(3 * FULL_NY * FULL_NX, dtype=np.float32).reshape(3, FULL_NY, FULL_NX)
    linearity = datamodels.LinearityModel(coeffs=coeffs)
    cut = datamodels.cutout_reference(linearity, _science(2, 2, 3, 3))
    np.testing.assert_array_equal(cut.coeffs, coeffs[:, 1:4, 1:4])
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 1] = 1
    ipc = datamodels.IPCModel(data=kernel)
    assert datamodels.cutout_reference(ipc, _science(2, 2, 3, 3)) is ipc
    per_pixel = datamodels.IPCModel(data=np.zeros((3, 3, FULL_NY, FULL_NX), np.float32))
    cut = datamodels.cutout_reference(per_pixel, _science(2, 2, 3, 4))
    assert cut.data.shape == (3, 3, 4, 3)


def test_cutout_mask_model():
    dq = np.arange(FULL_NY * FULL_NX, dtype=np.uint32).reshape(FULL_NY, FULL_NX)
    mask = datamodels.MaskModel(dq=dq)
    cut = datamodels.cutout_reference(mask, _science(3, 4, 2, 2))
    np.testing.assert_array_equal(cut.dq, dq[3:5, 2:4])


# -- reftype lookup -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reftype", "instrument", "cls"),
    [
        ("gain", None, datamodels.GainModel),
        ("GAIN", "NIRCAM", datamodels.GainModel),
        ("readnoise", None, datamodels.ReadnoiseModel),
        ("mask", None, datamodels.MaskModel),
        ("saturation", None, datamodels.SaturationModel),
        ("superbias", None, datamodels.SuperBiasModel),
        ("linearity", None, datamodels.LinearityModel),
        ("dark", "NIRCAM", datamodels.DarkModel),
        ("dark", "MIRI", datamodels.DarkMIRIModel),
        ("ipc", None, datamodels.IPCModel),
        ("reset", "MIRI", datamodels.ResetModel),
        ("rscd", "MIRI", datamodels.RSCDModel),
    ],
)
def test_reference_model_class(reftype, instrument, cls):
    assert datamodels.reference_model_class(reftype, instrument) is cls


def test_reference_model_class_unknown():
    with pytest.raises(DataModelError, match="nosuchtype"):
        datamodels.reference_model_class("nosuchtype")


def test_register_reference_model():
    from calwebb.datamodels.reference import REFERENCE_MODELS

    @datamodels.register_reference_model
    class TestOnlyModel(datamodels.ReferenceModel):
        reftype = "testonly"
        arrays = {"data": datamodels.ArraySpec("SCI", np.float32, (2,), allocate=None)}

    try:
        assert datamodels.reference_model_class("TESTONLY") is TestOnlyModel
        assert datamodels.model_class("TestOnlyModel") is TestOnlyModel
    finally:
        REFERENCE_MODELS.pop("testonly")


def test_cutout_is_a_separate_compact_copy():
    reference = _full_frame()
    cut = datamodels.cutout_reference(reference, _science(5, 3, 4, 6))
    assert not np.shares_memory(cut.data, reference.data)
    assert cut.data.flags.c_contiguous
    cut.data[:] = -1
    cut.meta.instrument.name = "MIRI"
    assert (reference.data >= 0).all()
    assert reference.meta.instrument.name is None


def test_unknown_datamodl_with_known_reftype(tmp_path):
    path = tmp_path / "nrs_dark.fits"
    primary = fits.PrimaryHDU()
    primary.header["DATAMODL"] = "DarkNirspecModel"
    primary.header["REFTYPE"] = "DARK"
    primary.header["INSTRUME"] = "NIRSPEC"
    fits.HDUList([primary, fits.ImageHDU(np.zeros((2, 3, 3), np.float32), name="SCI")]
                 ).writeto(path)
    assert type(datamodels.open(path)) is datamodels.DarkModel
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["REFTYPE"] = "SOMETHINGELSE"
    with pytest.raises(DataModelError, match="DarkNirspecModel"):
        datamodels.open(path)


def test_dq_def_with_signed_value_column(tmp_path):
    """Some reference files store VALUE as plain int32, so bit 31 reads as negative."""
    path = tmp_path / "signed.fits"
    primary = fits.PrimaryHDU()
    primary.header["REFTYPE"] = "MASK"
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="BIT", format="J", array=[0, 31]),
            fits.Column(name="VALUE", format="J", array=np.array([1, -2**31], np.int32)),
            fits.Column(name="NAME", format="40A", array=["HOT", "REFERENCE_PIXEL"]),
            fits.Column(name="DESCRIPTION", format="80A", array=["", ""]),
        ],
        name="DQ_DEF",
    )
    dq = np.array([[1, 2**31], [2**31 + 1, 0]], np.uint32)
    fits.HDUList([primary, fits.ImageHDU(dq, name="DQ"), table]).writeto(path)
    np.testing.assert_array_equal(datamodels.MaskModel(path).dq,
                                  [[2048, 2**31], [2**31 | 2048, 0]])


def test_irs2_references_are_used_whole():
    science = datamodels.RampModel(data=np.zeros((1, 1, 3200, 2048), np.float32))
    science.meta.subarray.update({"name": "FULL", "xstart": 1, "ystart": 1,
                                  "xsize": 2048, "ysize": 2048})
    raw_layout = datamodels.SuperBiasModel(data=np.zeros((3200, 2048), np.float32))
    normal_only = datamodels.SaturationModel(data=np.zeros((2048, 2048), np.float32))
    assert datamodels.cutout_reference(raw_layout, science) is raw_layout
    assert datamodels.cutout_reference(normal_only, science) is normal_only
    other = datamodels.MaskModel(dq=np.zeros((3000, 2048), np.uint32))
    other.meta.filename = "mask.fits"
    with pytest.raises(ReferenceFileError, match=r"mask\.fits.*2048x3000.*IRS2 frame"):
        datamodels.cutout_reference(other, science)
