"""Reference files cut to the tiles of a tiled run: only a tile's rows are read."""

import numpy as np
from astropy.io import fits

from calwebb import datamodels, dqflags
from calwebb.parallel import tile_references


def test_tile_reference_parts_are_read_through_the_reference_loader(tmp_path):
    """A tile's reference arrays read only the tile's rows (and, as the dark step asks, the
    leading planes and a band of them); a private DQ layout is translated once."""
    from calwebb.datamodels.reference import DQ_DEF_DTYPE

    sci = np.arange(3 * 8 * 6, dtype=np.float32).reshape(3, 8, 6)
    raw_dq = np.zeros((8, 6), np.uint32)
    raw_dq[3, 2] = 8  # a private bit for HOT
    table = np.array([(3, 8, "HOT", "hot pixel")], dtype=DQ_DEF_DTYPE)
    path = tmp_path / "dark.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(raw_dq, name="DQ"),
                  fits.BinTableHDU(table, name="DQ_DEF")]).writeto(path)
    reference = datamodels.DarkModel(str(path))
    cut = datamodels.DarkModel()
    cut.set_loader("data", tile_references.CutLoader(reference, "data", (2, 6), (1, 5)))
    cut.set_loader("dq", tile_references.CutLoader(reference, "dq", (2, 6), (1, 5)))
    assert cut.array_shape("data") == (3, 4, 4)
    np.testing.assert_array_equal(cut.leading_planes("data", 2, (1, 3)), sci[:2, 3:5, 1:5])
    mapped = cut.stored_part("data", planes=2)  # the stored (big-endian) values, not read
    assert isinstance(mapped.base, np.memmap) and not mapped.dtype.isnative
    np.testing.assert_array_equal(mapped, sci[:2, 2:6, 1:5])
    assert cut.has_array("data") and callable(cut._arrays["data"])  # still not loaded
    np.testing.assert_array_equal(cut.data, sci[:, 2:6, 1:5])
    expected = np.zeros((4, 4), np.uint32)
    expected[1, 1] = dqflags.PIXEL["HOT"]
    np.testing.assert_array_equal(cut.dq, expected)
    reference.dq  # noqa: B018 - loaded: cuts are then taken from memory
    np.testing.assert_array_equal(tile_references.CutLoader(reference, "dq", (2, 6), (1, 5))(),
                                  expected)


def test_reference_images_are_sized_without_reading_them(tmp_path):
    """Planning sizes a reference's images, the DQ translated on load included, from the
    file's headers; nothing is read."""
    dq = np.zeros((10, 7), np.uint32)
    dq[2, 2] = dqflags.DO_NOT_USE
    dark = datamodels.DarkModel(data=np.zeros((3, 10, 7), np.float32), dq=dq)
    dark.save(tmp_path / "dark.fits")
    frame = datamodels.RampModel((1, 3, 10, 7))
    references = tile_references.TileReferences(frame, (10, 7))
    images = references.stored_images(str(tmp_path / "dark.fits"), "dark")
    assert {name: (image.shape, image.disk_itemsize) for name, image in images.items()} == {
        "SCI": ((3, 10, 7), 4), "DQ": ((10, 7), 4)}


def test_steps_of_a_tile_share_a_reference_cut(tmp_path):
    """Jump and ramp_fit cut GAIN once per tile (the same rows read once); another tile's
    window gets its own cut, of its own rows."""
    from calwebb.jump.step import JumpStep
    from calwebb.ramp_fitting.step import RampFitStep

    gain = np.arange(10 * 7, dtype=np.float32).reshape(10, 7)
    datamodels.GainModel(data=gain).save(tmp_path / "gain.fits")
    frame = datamodels.RampModel((1, 3, 10, 7))
    references = tile_references.TileReferences(frame, (10, 7), shared={"gain"})
    jump, ramp_fit = (JumpStep(name="jump", override_gain=str(tmp_path / "gain.fits")),
                      RampFitStep(name="ramp_fit", override_gain=str(tmp_path / "gain.fits")))
    first, second = (datamodels.RampModel((1, 3, 4, 7)) for _ in range(2))
    for tile, ystart in ((first, 1), (second, 5)):
        tile.meta.subarray.update({"xstart": 1, "ystart": ystart, "xsize": 7, "ysize": 4})
    cut = references.open(jump, first, "gain")
    assert references.open(ramp_fit, first, "gain") is cut
    np.testing.assert_array_equal(cut.data, gain[:4])
    other = references.open(ramp_fit, second, "gain")
    assert other is not cut
    np.testing.assert_array_equal(other.data, gain[4:8])
    references.forget_cuts()
    assert references.open(jump, second, "gain") is not other
    assert tile_references.shared_reference_types([jump, ramp_fit]) == {"gain", "readnoise"}
