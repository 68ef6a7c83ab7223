"""Every model class survives a save/read cycle through FITS and ASDF unchanged."""

import numpy as np
import pytest
from astropy.io import fits
from dm_helpers import ALL_CLASSES, build, declared_present

from calwebb import datamodels


def _assert_same_arrays(original, read):
    assert declared_present(read) == declared_present(original)  # save added any DQ_DEF
    for name in declared_present(original):
        spec = type(original).arrays[name]
        expected, got = getattr(original, name), getattr(read, name)
        if spec.is_table:
            assert got.dtype.names == expected.dtype.names, name
            for column in expected.dtype.names:
                np.testing.assert_array_equal(got[column], expected[column], err_msg=name)
        else:
            assert got.dtype == np.dtype(spec.dtype), name
            assert got.dtype.isnative, name
            np.testing.assert_array_equal(got, expected, err_msg=name)


def _flat(model):
    return {k: v for k, v in model.to_flat_dict().items() if not k.startswith("extra_fits")}


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("suffix", [".fits", ".asdf"])
def test_round_trip(tmp_path, cls, suffix):
    model = build(cls)
    path = model.save(tmp_path / f"model{suffix}")
    assert model.meta.filename == f"model{suffix}"
    read = cls(path)
    assert type(read) is cls
    _assert_same_arrays(model, read)
    assert _flat(read) == _flat(model)
    # spot checks of the three kinds of metadata
    assert read.meta.instrument.detector in ("NRCA1", "MIRIMAGE")
    assert read.meta.photometry.conversion_megajanskys == 0.25
    assert read.meta.exposure.zero_frame is False
    assert read.meta.cal_logs == ["step one ran", "step two ran"]
    assert read.meta.custom_block.values == [1.5, 2.5]
    assert read.meta.model_type == cls.__name__
    assert type(datamodels.open(path)) is cls


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_fits_layout_and_header_keywords(tmp_path, cls):
    model = build(cls)
    path = model.save(tmp_path / "model.fits")
    with fits.open(path) as hdul:
        names = [hdu.name for hdu in hdul]
        primary = hdul[0].header
        assert hdul[0].data is None
        assert names[-1] == "ASDF"
        assert primary["DATAMODL"] == cls.__name__
        assert primary["DETECTOR"] in ("NRCA1", "MIRIMAGE")
        assert primary["NGROUPS"] == 3
        assert primary["ZEROFRAM"] is False
        assert primary["S_JUMP"] == "COMPLETE"
        assert primary["R_GAIN"] == "crds://jwst_nircam_gain_0001.fits"
        assert primary["FILENAME"] == "model.fits"
        for name in declared_present(model):
            assert type(model).arrays[name].extname in names
            assert hdul[type(model).arrays[name].extname].header["EXTVER"] == 1  # as official
        assert "EXTVER" not in hdul["ASDF"].header
        if "data" in cls.arrays:
            assert names[1] == "SCI"
            assert hdul["SCI"].header["PHOTMJSR"] == 0.25
            assert "PHOTMJSR" not in primary
        if isinstance(model, datamodels.ReferenceModel):
            assert primary["REFTYPE"] == cls.reftype.upper()
            assert primary["PIXAR_SR"] == 9.3e-14
            assert primary["USEAFTER"] == "2022-01-01T00:00:00"
        # the ASDF tree points at the HDUs instead of repeating their bytes
        payload = hdul["ASDF"].data["ASDF_METADATA"][0].tobytes()
        assert b"fits:" in payload
        assert len(payload) < 20000


@pytest.mark.parametrize("cls", ALL_CLASSES, ids=lambda cls: cls.__name__)
def test_open_without_datamodl_guesses_the_class(tmp_path, cls):
    model = build(cls)
    path = model.save(tmp_path / "model.fits")
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["DATAMODL"]
    opened = datamodels.open(path)
    if cls is datamodels.Level1bModel:
        assert type(opened) is datamodels.RampModel
        np.testing.assert_array_equal(opened.data, model.data.astype(np.float32))
    else:
        assert type(opened) is cls
        _assert_same_arrays(model, opened)


@pytest.mark.parametrize(
    ("cls", "shape"),
    [(datamodels.ImageModel, (4, 3)), (datamodels.CubeModel, (2, 4, 3)),
     (datamodels.RampModel, (2, 3, 4, 3))],
)
def test_open_plain_fits_by_sci_dimensionality(tmp_path, cls, shape):
    path = tmp_path / "plain.fits"
    data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, name="SCI")]).writeto(path)
    opened = datamodels.open(path)
    assert type(opened) is cls
    np.testing.assert_array_equal(opened.data, data)


def test_unknown_header_cards_survive(tmp_path):
    model = build(datamodels.ImageModel)
    path = model.save(tmp_path / "a.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["MYPRIM"] = (42, "a private primary card")
        hdul["SCI"].header["MYSCI"] = ("text", "a private SCI card")
    read = datamodels.ImageModel(path)
    primary_cards = {card[0]: card[1:] for card in read.tree["extra_fits"]["PRIMARY"]["header"]}
    assert primary_cards["MYPRIM"] == [42, "a private primary card"]
    assert "DETECTOR" not in primary_cards  # known keywords live in meta only
    resaved = read.save(tmp_path / "b.fits")
    with fits.open(resaved) as hdul:
        assert hdul[0].header["MYPRIM"] == 42
        assert hdul[0].header.comments["MYPRIM"] == "a private primary card"
        assert hdul["SCI"].header["MYSCI"] == "text"
        assert list(hdul[0].header).count("MYPRIM") == 1
    again = datamodels.ImageModel(resaved)
    assert again.tree["extra_fits"] == read.tree["extra_fits"]


def test_header_is_authoritative_over_the_tree(tmp_path):
    model = build(datamodels.RampModel)
    path = model.save(tmp_path / "a.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["NGROUPS"] = 7
        hdul["SCI"].header["PHOTMJSR"] = 0.5
    read = datamodels.RampModel(path)
    assert read.meta.exposure.ngroups == 7
    assert read.meta.photometry.conversion_megajanskys == 0.5


def test_tables_round_trip_exactly(tmp_path):
    model = build(datamodels.RampModel)
    read = datamodels.RampModel(model.save(tmp_path / "r.fits"))
    assert read.int_times.dtype.names == datamodels.INT_TIMES_DTYPE.names
    assert read.group.dtype.names == datamodels.GROUP_DTYPE.names
    np.testing.assert_array_equal(read.int_times["integration_number"], [1, 2])
    assert read.group["group_end_time"][0] == b"2024-01-01T00:00:00.000"
    np.testing.assert_array_equal(read.int_times["int_mid_BJD_TDB"],
                                  model.int_times["int_mid_BJD_TDB"])


def test_constructors():
    image = datamodels.ImageModel((4, 3))
    assert image.data.shape == (4, 3) and image.data.dtype == np.float32
    assert image.dq.dtype == np.uint32 and image.dq.shape == (4, 3)
    assert not image.has_array("var_flat") and image.var_flat is None
    ramp = datamodels.RampModel((1, 2, 4, 3))
    assert ramp.pixeldq.shape == (4, 3) and ramp.groupdq.shape == (1, 2, 4, 3)
    assert ramp.groupdq.dtype == np.uint8
    from_arrays = datamodels.ImageModel(data=np.ones((2, 2), np.float64),
                                        dq=np.ones((2, 2), np.int16))
    assert from_arrays.data.dtype == np.float32 and from_arrays.dq.dtype == np.uint32
    cube = datamodels.CubeModel(np.zeros((2, 3, 3), np.float32))
    assert cube.err.shape == (2, 3, 3)
    with pytest.raises(datamodels.DataModelError, match="2 dimensions"):
        datamodels.ImageModel(data=np.zeros((2, 2, 2)))
    with pytest.raises(datamodels.DataModelError, match="uint32"):
        datamodels.ImageModel(data=np.zeros((2, 2)), dq=np.zeros((2, 2)))
    converted = datamodels.CubeModel(build(datamodels.CubeModel))
    assert converted.meta.instrument.detector == "NRCA1"
    ramp = datamodels.RampModel(build(datamodels.Level1bModel))
    assert ramp.data.dtype == np.float32 and ramp.meta.model_type == "RampModel"


def test_copy_is_deep():
    model = build(datamodels.ImageModel)
    twin = model.copy()
    twin.data[0, 0] = -1
    twin.meta.instrument.detector = "NRCB1"
    assert model.data[0, 0] != -1
    assert model.meta.instrument.detector == "NRCA1"
    with model as same:
        assert same is model


@pytest.mark.parametrize("suffix", [".fits", ".asdf"])
def test_history_round_trip_and_header_cards(tmp_path, suffix):
    model = build(datamodels.ImageModel)
    model.tree["history"] = {"entries": [{"description": "flat fielded"},
                                         {"description": "photometry applied"}]}
    path = model.save(tmp_path / f"h{suffix}")
    read = datamodels.open(path)
    assert read.tree["history"] == model.tree["history"]
    if suffix == ".fits":
        with fits.open(path) as hdul:
            assert list(hdul[0].header["HISTORY"]) == ["flat fielded", "photometry applied"]


def test_history_cards_without_tree_history(tmp_path):
    path = tmp_path / "plain.fits"
    primary = fits.PrimaryHDU()
    primary.header.add_history("made by hand")
    fits.HDUList([primary, fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI")]
                 ).writeto(path)
    read = datamodels.ImageModel(path)
    assert read.tree["history"] == {"entries": [{"description": "made by hand"}]}
    with fits.open(read.save(tmp_path / "again.fits")) as hdul:
        assert list(hdul[0].header["HISTORY"]) == ["made by hand"]


def test_open_passes_models_through():
    model = datamodels.ImageModel((2, 2))
    assert datamodels.open(model) is model


def test_integer_arrays_never_wrap():
    ramp = datamodels.RampModel((1, 2, 3, 3))
    with pytest.raises(datamodels.DataModelError, match=r"groupdq.*uint8.*1024"):
        ramp.groupdq = np.full((1, 2, 3, 3), 1024, np.uint32)
    ramp.groupdq = np.full((1, 2, 3, 3), 4, np.int64)  # fits: converted
    assert ramp.groupdq.dtype == np.uint8 and ramp.groupdq[0, 0, 0, 0] == 4
    image = datamodels.ImageModel((2, 2))
    with pytest.raises(datamodels.DataModelError, match=r"dq.*uint32"):
        image.dq = np.full((2, 2), -1)


def test_header_values_fits_cannot_hold(tmp_path):
    model = datamodels.ImageModel((2, 2))
    model.meta.exposure.frame_time = float("inf")
    model.meta.exposure.group_time = float("nan")
    path = model.save(tmp_path / "inf.fits")
    with fits.open(path) as hdul:
        assert "TFRAME" not in hdul[0].header and "TGROUP" not in hdul[0].header
    read = datamodels.ImageModel(path)
    assert read.meta.exposure.frame_time == float("inf")  # kept by the tree
    assert np.isnan(read.meta.exposure.group_time)
    model.meta.target.proposer_name = "Caf\u00e9"
    with pytest.raises(datamodels.DataModelError, match=r"meta.target.proposer_name.*TARGPROP"):
        model.save(tmp_path / "bad.fits")
    assert not (tmp_path / "bad.fits").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["inf.fits"]


def test_scaled_integer_hdu(tmp_path):
    path = tmp_path / "scaled.fits"
    stored = np.array([[0, 2], [4, 6]], np.int16)
    hdu = fits.ImageHDU(stored, name="DQ", do_not_scale_image_data=True)
    hdu.header["BSCALE"] = 2.5
    hdu.header["BZERO"] = 10.0
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((2, 2), np.float32), name="SCI"),
                  hdu]).writeto(path)
    with fits.open(path, mode="update", do_not_scale_image_data=True) as hdul:
        hdul["DQ"].header["BSCALE"] = 2.5
        hdul["DQ"].header["BZERO"] = 10.0
    np.testing.assert_array_equal(datamodels.ImageModel(path).dq, [[10, 15], [20, 25]])


def test_describe_arrays(tmp_path):
    from calwebb.datamodels.io import describe_arrays

    model = build(datamodels.RampModel)
    rows = describe_arrays(model.save(tmp_path / "d.fits"))
    assert ("SCI", (2, 3, 6, 5), "float32") in rows
    assert ("PIXELDQ", (6, 5), "uint32") in rows
    assert ("GROUPDQ", (2, 3, 6, 5), "uint8") in rows
    assert ("INT_TIMES", (2,), "table") in rows
    uncal = build(datamodels.Level1bModel)
    assert ("SCI", (2, 3, 6, 5), "uint16") in describe_arrays(uncal.save(tmp_path / "u.fits"))
    asdf_rows = describe_arrays(model.save(tmp_path / "d.asdf"))
    assert ("data", (2, 3, 6, 5), "float32") in asdf_rows
