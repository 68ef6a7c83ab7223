"""Atomic saving, read-only inputs, and clear errors for bad files."""

import hashlib
import os
import warnings

import asdf
import numpy as np
import pytest
from astropy.io import fits
from dm_helpers import build

from calwebb import datamodels
from calwebb.datamodels.io import writes_in_background
from calwebb.errors import CalwebbError, DataModelError


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- atomic save ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".fits", ".asdf"])
def test_failed_write_leaves_nothing_and_keeps_destination(tmp_path, monkeypatch, suffix):
    model = build(datamodels.ImageModel)
    destination = model.save(tmp_path / f"out{suffix}")
    before = _digest(destination)

    def failing_fits(self, name, *args, **kwargs):
        with open(name, "wb") as stream:
            stream.write(b"SIMPLE  =                    T" + b" " * 100)  # a partial file
        raise OSError("disk full")

    original_asdf = asdf.AsdfFile.write_to

    def failing_asdf(self, name, *args, **kwargs):
        if not isinstance(name, str | os.PathLike):  # the ASDF extension of a FITS file
            return original_asdf(self, name, *args, **kwargs)
        with open(name, "wb") as stream:
            stream.write(b"#ASDF 1.0.0\n")
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", failing_fits)
    monkeypatch.setattr(asdf.AsdfFile, "write_to", failing_asdf)
    changed = build(datamodels.ImageModel)
    changed.data[:] = -5
    with pytest.raises(OSError, match="disk full"):
        changed.save(destination)
    with pytest.raises(OSError, match="disk full"):
        changed.save(tmp_path / f"new{suffix}")
    assert sorted(os.listdir(tmp_path)) == [f"out{suffix}"]
    assert _digest(destination) == before


def test_background_writes_equal_plain_saves_and_leave_arrays_alone(tmp_path, monkeypatch):
    models = [build(datamodels.ImageModel) for _ in range(4)]
    for index, model in enumerate(models):
        model.data[:] = np.arange(model.data.size).reshape(model.data.shape) * (index + 1)
    plain = [model.save(tmp_path / f"plain{index}.fits") for index, model in enumerate(models)]
    before = [model.data.copy() for model in models]
    original_writearray = fits.file._File.writearray

    def checking_writearray(self, array):  # while astropy writes, the models are untouched
        for model, data in zip(models, before, strict=True):
            np.testing.assert_array_equal(model.data, data)
        return original_writearray(self, array)

    monkeypatch.setattr(fits.file._File, "writearray", checking_writearray)
    with writes_in_background():
        with writes_in_background():  # an inner block leaves its files to the outer one
            written = [model.save(tmp_path / f"later{index}.fits", background=True)
                       for index, model in enumerate(models)]
            at_once = models[1].save(tmp_path / "at_once.fits")  # not asked: written now
            assert at_once.exists()
            models[0].meta.filename = "changed after saving.fits"
            models[0].meta.instrument.filter = "F444W"
    for model in models:
        assert model.data.flags.writeable
    for index, (one, other) in enumerate(zip(plain, written, strict=True)):
        with fits.open(one) as first, fits.open(other) as second:
            for extname in ("SCI", "DQ", "ERR"):
                np.testing.assert_array_equal(first[extname].data, second[extname].data)
        reread = datamodels.open(other)
        assert reread.meta.filename == f"later{index}.fits"
        assert reread.meta.instrument.filter == "F200W"
    assert sorted(os.listdir(tmp_path)) == sorted([p.name for p in plain + written] +
                                                  ["at_once.fits"])


def test_background_write_failure_is_raised_at_the_end_of_the_block(tmp_path, monkeypatch):
    def failing_fits(self, name, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fits.HDUList, "writeto", failing_fits)
    with pytest.raises(OSError, match="disk full"), writes_in_background():
        build(datamodels.ImageModel).save(tmp_path / "a.fits", background=True)
    assert os.listdir(tmp_path) == []


def test_overwrite_false_refuses(tmp_path):
    model = build(datamodels.ImageModel)
    path = model.save(tmp_path / "a.fits")
    before = _digest(path)
    with pytest.raises(DataModelError, match="a.fits"):
        model.save(path, overwrite=False)
    assert _digest(path) == before


def test_save_creates_directories_and_sets_filename(tmp_path):
    model = build(datamodels.CubeModel)
    path = model.save(tmp_path / "deep" / "dir" / "c_rateints.fits")
    assert path.exists()
    assert model.meta.filename == "c_rateints.fits"
    assert datamodels.open(path).meta.filename == "c_rateints.fits"


@pytest.mark.parametrize("suffix", [".fits", ".asdf"])
def test_reading_never_modifies_the_input(tmp_path, suffix):
    model = build(datamodels.RampModel)
    path = model.save(tmp_path / f"in{suffix}")
    before, mtime = _digest(path), path.stat().st_mtime_ns
    read = datamodels.open(path)
    for name in type(read).arrays:
        array = getattr(read, name)
        if isinstance(array, np.ndarray) and array.dtype.names is None:
            array += 1  # modifying the model's arrays must not reach the file
    read.meta.exposure.ngroups = 99
    read.close()
    assert _digest(path) == before
    assert path.stat().st_mtime_ns == mtime
    assert datamodels.RampModel(path).meta.exposure.ngroups == 3


def test_reference_read_does_not_modify_input(tmp_path):
    mask = build(datamodels.MaskModel)
    path = mask.save(tmp_path / "mask.fits")
    before = _digest(path)
    read = datamodels.MaskModel(path)
    read.dq[:] = 0
    assert _digest(path) == before


# -- bad input ------------------------------------------------------------------------------
def test_text_file(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not a FITS file\n" * 10)
    with pytest.raises(DataModelError, match=r"notes\.fits.*not a readable FITS"):
        datamodels.open(path)
    with pytest.raises(DataModelError, match=r"notes\.fits.*not a readable FITS"):
        datamodels.ImageModel(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataModelError, match=r"nothere\.fits.*no such file"):
        datamodels.open(tmp_path / "nothere.fits")
    with pytest.raises(DataModelError, match=r"nothere\.fits.*no such file"):
        datamodels.RampModel(tmp_path / "nothere.fits")


def test_not_a_path():
    with pytest.raises(DataModelError, match="expected a file path"):
        datamodels.open(12)
    with pytest.raises(DataModelError, match="ImageModel"):
        datamodels.ImageModel(12.5)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_fits(tmp_path, keep):
    model = build(datamodels.RampModel)
    model.data = np.zeros((2, 3, 64, 64), np.float32)
    model.groupdq = None
    model.pixeldq = None
    good = model.save(tmp_path / "good.fits")
    raw = good.read_bytes()
    bad = tmp_path / "cut.fits"
    bad.write_bytes(raw[: int(len(raw) * keep) // 2880 * 2880 + 100])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own error, not astropy's warning
        with pytest.raises(DataModelError, match=r"cut\.fits") as info:
            datamodels.RampModel(bad).data  # noqa: B018
    assert "truncated" in str(info.value) or "not a readable FITS" in str(info.value)
    with pytest.raises(DataModelError, match=r"cut\.fits"):
        datamodels.open(bad)


def test_missing_sci(tmp_path):
    path = tmp_path / "nosci.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((3, 3), np.uint32), name="DQ")]
                 ).writeto(path)
    with pytest.raises(DataModelError, match=r"nosci\.fits.*no SCI extension.*ImageModel"):
        datamodels.ImageModel(path)
    with pytest.raises(DataModelError, match=r"nosci\.fits.*SCI"):
        datamodels.open(path)


def test_wrong_dimensionality(tmp_path):
    path = datamodels.ImageModel(np.zeros((4, 4), np.float32)).save(tmp_path / "img.fits")
    with pytest.raises(DataModelError, match=r"img\.fits.*SCI has 2 dimensions.*RampModel.*4"):
        datamodels.RampModel(path)


def test_plain_fits_with_1d_sci(tmp_path):
    path = tmp_path / "line.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(5, np.float32), name="SCI")]
                 ).writeto(path)
    with pytest.raises(DataModelError, match=r"line\.fits.*1 dimensions"):
        datamodels.open(path)


def test_float_data_in_dq(tmp_path):
    path = tmp_path / "floatdq.fits"
    fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(np.zeros((3, 3), np.float32), name="SCI"),
        fits.ImageHDU(np.zeros((3, 3), np.float32), name="DQ"),
    ]).writeto(path)
    with pytest.raises(DataModelError, match=r"floatdq\.fits.*DQ.*floating-point.*uint32"):
        datamodels.ImageModel(path)


def test_table_where_image_expected(tmp_path):
    path = tmp_path / "tabsci.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1, 2])],
                                          name="SCI")
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(DataModelError, match=r"tabsci\.fits.*SCI must be an image"):
        datamodels.ImageModel(path)


def test_unknown_datamodl(tmp_path):
    path = datamodels.ImageModel(np.zeros((2, 2), np.float32)).save(tmp_path / "odd.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["DATAMODL"] = "FancyModel"
    with pytest.raises(DataModelError, match="FancyModel.*ImageModel"):
        datamodels.open(path)


def test_corrupt_asdf_extension(tmp_path):
    path = datamodels.ImageModel(np.zeros((2, 2), np.float32)).save(tmp_path / "bad.fits")
    with fits.open(path, mode="update") as hdul:
        hdul["ASDF"].data["ASDF_METADATA"][0][:20] = 0
    with pytest.raises(DataModelError, match=r"bad\.fits.*ASDF extension"):
        datamodels.ImageModel(path)


def test_bad_asdf_file(tmp_path):
    path = tmp_path / "junk.asdf"
    path.write_text("hello: [unclosed\n")
    with pytest.raises(DataModelError, match=r"junk\.asdf"):
        datamodels.open(path)
    with pytest.raises(DataModelError, match=r"junk\.asdf"):
        datamodels.ImageModel(path)


def test_asdf_without_model_type(tmp_path):
    path = tmp_path / "plain.asdf"
    asdf.AsdfFile({"data": np.zeros((2, 2))}).write_to(path)
    with pytest.raises(DataModelError, match=r"plain\.asdf.*model_type"):
        datamodels.open(path)
    assert datamodels.ImageModel(path).data.shape == (2, 2)


def test_bad_header_value_is_ignored_with_a_warning(tmp_path, caplog):
    path = build(datamodels.ImageModel).save(tmp_path / "hdr.fits")
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["NGROUPS"] = "lots"
    read = datamodels.ImageModel(path)
    assert read.meta.exposure.ngroups == 3  # the tree value stands
    assert any("NGROUPS" in record.getMessage() for record in caplog.records)


def test_errors_are_calwebb_errors():
    assert issubclass(DataModelError, CalwebbError)
