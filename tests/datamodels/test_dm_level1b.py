"""Raw (uncal) files read as ramps: dtype conversion, default DQ arrays, lazy loading, memory."""

import tracemalloc

import numpy as np
import pytest
from astropy.io import fits
from dm_helpers import build

from calwebb import datamodels
from calwebb.datamodels import fits_arrays


def _uncal(tmp_path, shape=(2, 3, 6, 5), name="raw_uncal.fits"):
    model = build(datamodels.Level1bModel)
    rng = np.random.default_rng(3)
    model.data = rng.integers(0, 65535, shape, endpoint=True).astype(np.uint16)
    model.data.flat[0] = 65535  # the extremes of uint16 must survive the BZERO offset
    model.data.flat[1] = 0
    return model, model.save(tmp_path / name)


def test_level1b_on_disk_is_uint16(tmp_path):
    model, path = _uncal(tmp_path)
    with fits.open(path) as hdul:
        assert hdul["SCI"].data.dtype.kind == "u" and hdul["SCI"].data.itemsize == 2
        assert "PIXELDQ" not in hdul and "GROUPDQ" not in hdul
    read = datamodels.open(path)
    assert type(read) is datamodels.Level1bModel
    assert read.data.dtype == np.uint16
    np.testing.assert_array_equal(read.data, model.data)


def test_uncal_read_as_ramp(tmp_path):
    model, path = _uncal(tmp_path)
    ramp = datamodels.RampModel(path)
    assert ramp.data.dtype == np.float32
    np.testing.assert_array_equal(ramp.data, model.data.astype(np.float32))
    assert ramp.data.max() == 65535.0 and ramp.data.min() == 0.0
    assert ramp.pixeldq.shape == (6, 5) and ramp.pixeldq.dtype == np.uint32
    assert ramp.groupdq.shape == (2, 3, 6, 5) and ramp.groupdq.dtype == np.uint8
    assert not ramp.pixeldq.any() and not ramp.groupdq.any()
    assert ramp.meta.model_type == "RampModel"
    assert ramp.meta.instrument.detector == "NRCA1"
    np.testing.assert_array_equal(ramp.int_times, model.int_times)
    np.testing.assert_array_equal(ramp.group, model.group)
    # saved again it is a proper ramp file
    again = datamodels.open(ramp.save(tmp_path / "raw_ramp.fits"))
    assert type(again) is datamodels.RampModel
    assert again.has_array("pixeldq") and again.has_array("groupdq")


def test_ramp_reads_existing_dq_extensions(tmp_path):
    ramp = build(datamodels.RampModel)
    ramp.pixeldq[0, 0] = 1024
    ramp.groupdq[1, 2, 3, 4] = 4
    read = datamodels.RampModel(ramp.save(tmp_path / "x_ramp.fits"))
    assert read.pixeldq[0, 0] == 1024 and read.groupdq[1, 2, 3, 4] == 4


def test_ramp_is_read_lazily(tmp_path, monkeypatch):
    _, path = _uncal(tmp_path)
    calls = []
    original = fits_arrays.ImageLayout.read

    def counting_read(layout, *args, **kwargs):
        calls.append(layout.shape)
        return original(layout, *args, **kwargs)

    monkeypatch.setattr(fits_arrays.ImageLayout, "read", counting_read)
    ramp = datamodels.RampModel(path)
    assert calls == []
    assert callable(ramp._arrays["data"])  # a loader, not an array
    assert ramp.has_array("data")
    assert ramp.meta.exposure.ngroups == 3  # metadata needs no pixels
    assert calls == []
    data = ramp.data
    assert calls == [data.shape]
    assert isinstance(ramp._arrays["data"], np.ndarray)
    assert ramp.data is data  # loaded once, then kept
    assert calls == [data.shape]


def test_ramp_is_copied_once(tmp_path):
    shape = (2, 10, 256, 256)
    _, path = _uncal(tmp_path, shape=shape)
    ramp = datamodels.RampModel(path)
    float_size = np.prod(shape) * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        data = ramp.data
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert data.dtype == np.float32 and data.shape == shape
    assert peak < 1.6 * float_size, f"peak {peak / float_size:.2f}x the float32 ramp"


@pytest.mark.parametrize("extname", ["ZEROFRAME", "REFOUT"])
def test_optional_raw_arrays_converted(tmp_path, extname):
    model, _ = _uncal(tmp_path)
    if extname == "ZEROFRAME":
        model.zeroframe = np.full((2, 6, 5), 40000, np.uint16)
    else:
        model.refout = np.full((2, 3, 6, 1), 123, np.uint16)
    path = model.save(tmp_path / "opt_uncal.fits")
    ramp = datamodels.RampModel(path)
    name = extname.lower()
    assert ramp.has_array(name)
    assert getattr(ramp, name).dtype == np.float32
    np.testing.assert_array_equal(getattr(ramp, name), getattr(model, name).astype(np.float32))
    assert not ramp.has_array("average_dark_current")


def test_leading_planes_read_only_what_is_asked(tmp_path, monkeypatch):
    model, path = _uncal(tmp_path, shape=(2, 4, 6, 5))
    asked = []
    original = fits_arrays.ImageLayout.read

    def recording_read(layout, *args, **kwargs):
        asked.append(kwargs.get("planes"))
        return original(layout, *args, **kwargs)

    monkeypatch.setattr(fits_arrays.ImageLayout, "read", recording_read)
    ramp = datamodels.RampModel(path)
    assert ramp.array_shape("data") == (2, 4, 6, 5)
    assert callable(ramp._arrays["data"])  # the shape came without reading
    part = ramp.leading_planes("data", 3)
    np.testing.assert_array_equal(part, model.data[:, :3].astype(np.float32))
    assert part.dtype == np.float32 and callable(ramp._arrays["data"])
    assert asked == [3]  # only the first three groups came off the disk
    np.testing.assert_array_equal(ramp.leading_planes("data", 9), ramp.data)  # now loaded


def test_stored_part_maps_only_values_stored_as_they_are(tmp_path):
    """Unscaled stored values are memory-mapped as stored; a raw ramp's (uint16 with BZERO)
    cannot be, and a loaded array's part is a view of it."""
    model, path = _uncal(tmp_path, shape=(2, 4, 6, 5))
    ramp = datamodels.RampModel(path)
    assert ramp.stored_part("data", planes=2) is None  # stored as int16 + 32768
    assert callable(ramp._arrays["data"])
    ramp.data  # noqa: B018 - now loaded
    part = ramp.stored_part("data", rows=(1, 3), planes=2)
    assert np.shares_memory(part, ramp.data)
    assert ramp.stored_part("data", dtype=np.float64) is None  # float32 values
    assert ramp.stored_part("data", dtype=np.float32) is not None
    np.testing.assert_array_equal(part, model.data[:, :2, 1:3].astype(np.float32))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int16, np.float32, np.float64])
def test_band_reads_equal_astropy(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(fits_arrays, "_CHUNK_BYTES", 64)  # many bands per plane
    values = (np.arange(3 * 11 * 7) * 1013 % 60000).reshape(3, 11, 7).astype(dtype)
    path = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(values, name="SCI")]).writeto(path)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        layout = fits_arrays.ImageLayout.of(path, hdul, 1)
        raw, header = np.array(hdul[1].data), hdul[1].header
    for target in (np.float32, dtype):  # as the whole stored array converted at once
        whole = fits_arrays.scaled(raw, header.get("BSCALE", 1), header.get("BZERO", 0), target)
        np.testing.assert_array_equal(layout.read(target), whole)
        np.testing.assert_array_equal(layout.read(target, rows=(2, 9), columns=(1, 4),
                                                  planes=2), whole[:2, 2:9, 1:4])
    np.testing.assert_array_equal(layout.read(dtype), values)


def test_compressed_image_loader_reads_what_astropy_reads(tmp_path):
    """A tile-compressed image: shape and stored size from its header (no re-opening), and
    whole or partial reads equal to astropy's decompressed values."""
    values = (np.arange(3 * 11 * 7) * 1013 % 60000).reshape(3, 11, 7).astype(np.uint16)
    path = tmp_path / "compressed.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(values, name="SCI")]).writeto(path)
    with fits.open(path) as hdul:
        expected = np.array(hdul[1].data, dtype=np.float32)
        loader = fits_arrays.ImageLoader(path, hdul, 1, np.float32)
    assert loader.layout is None and loader.shape == (3, 11, 7) and loader.disk_itemsize == 2
    np.testing.assert_array_equal(loader(), expected)
    np.testing.assert_array_equal(loader.read(rows=(2, 9), columns=(1, 4), planes=2),
                                  expected[:2, 2:9, 1:4])
    np.testing.assert_array_equal(loader.read(np.uint16), values)


def test_array_shape_of_an_unset_array_is_none_and_makes_no_default():
    image = datamodels.ImageModel(data=np.zeros((4, 5), np.float32))
    assert image.array_shape("data") == (4, 5)
    assert image.array_shape("dq") is None  # DQ would get a default when read ...
    assert not image.has_array("dq")  # ... but asking its shape made none
    assert image.dq.shape == (4, 5)
