"""The input ramp read by bands of rows, and the frame kept between the stages of a tiled
run."""

import numpy as np

from calwebb import datamodels
from calwebb.parallel import frame_store


def test_fits_rows_and_frame_store_round_trip(tmp_path):
    data = np.arange(2 * 3 * 10 * 7, dtype=np.uint16).reshape(2, 3, 10, 7) * 97
    model = datamodels.Level1bModel(data=data)
    model.save(tmp_path / "x_uncal.fits")
    lazy = datamodels.RampModel(tmp_path / "x_uncal.fits")
    rows = frame_store.InputRows(lazy)
    whole = datamodels.RampModel(tmp_path / "x_uncal.fits").data
    band = rows.read((4, 9))
    np.testing.assert_array_equal(band["data"], whole[..., 4:9, :])
    assert band["data"].dtype == np.float32 and lazy.pending_loader("data") is not None
    assert band["groupdq"].shape == (2, 3, 5, 7) and not band["groupdq"].any()
    store = frame_store.FrameStore(10, tmp_path)
    store.write((0, 6), {"data": whole[..., :6, :], "pixeldq": np.ones((6, 7), np.uint32)})
    store.write((6, 10), {"data": whole[..., 6:, :], "pixeldq": np.ones((4, 7), np.uint32)})
    assert "data" in store.files and "pixeldq" in store.arrays  # the ramp goes to disk
    np.testing.assert_array_equal(store.read((3, 8))["data"], whole[..., 3:8, :])
    np.testing.assert_array_equal(store.whole("data"), whole)
    store.close()
