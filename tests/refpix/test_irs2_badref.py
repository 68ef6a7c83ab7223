"""IRS2 bad interleaved reference pairs and the optional mean subtraction: injected outliers
flagged and replaced, known output offsets removed; agreement with the official functions."""

import numpy as np
import pytest

from calwebb import dqflags
from calwebb.irs2 import IRS2Layout
from calwebb.refpix.irs2_badref import (
    BAD_PAIR_FLAGS,
    flag_bad_reference_pairs,
    interleaved_reference_rows,
    odd_readout_columns,
    pair_first_rows,
    replace_bad_reference_pairs,
    subtract_top_bottom_means,
)

NRS1, NRS2 = IRS2Layout(), IRS2Layout(flipped=True)


def test_pairs_and_parities_follow_the_interleave_pattern():
    first = pair_first_rows(NRS1)
    assert first.shape == (5, 64)
    np.testing.assert_array_equal(first[0, :4], [8, 10, 28, 30])
    np.testing.assert_array_equal(first[1, :2], [648, 650])
    reference = interleaved_reference_rows(NRS1)
    assert reference.sum() == 5 * 128
    # in the amplifiers they are exactly the rows that are not normal pixels
    np.testing.assert_array_equal(reference[640:], ~NRS1.normal_mask()[640:])
    np.testing.assert_array_equal(interleaved_reference_rows(NRS2), reference)
    odd = odd_readout_columns(NRS1)
    np.testing.assert_array_equal(odd[640:656], [1, 0, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(odd[:640], odd[640:1280])  # the reference output as A


def flat_ramp(ngroups=3, columns=16):
    """Every row alike, so every pair has the same statistics and none stands out."""
    column_pattern = np.arange(columns, dtype=np.float32)
    group_level = 1000 + 50 * np.arange(ngroups, dtype=np.float32)
    ramp = group_level[:, None, None] + column_pattern + np.zeros((3200, 1), np.float32)
    return ramp[None].copy()


@pytest.mark.parametrize("statistic", ["difference", "mean", "spread"])
def test_an_outlier_pair_is_flagged_on_all_columns(statistic):
    data = flat_ramp()
    pixeldq = np.zeros((3200, 16), np.uint32)
    pixeldq[2048, 3] = dqflags.BAD_REF_PIXEL  # a pre-flagged row: its pair is not tested
    if statistic == "difference":  # a large difference, the pair mean unchanged
        data[0, :, 1308] += 40
        data[0, :, 1309] -= 40
    elif statistic == "mean":
        data[0, :, 1308:1310] += 40
    else:  # a large spread, the pair mean unchanged
        data[0, :, 1308:1310, ::2] += 40
        data[0, :, 1308:1310, 1::2] -= 40
    before = data.copy()
    flagged = flag_bad_reference_pairs(data, pixeldq, NRS1, 3.0)
    np.testing.assert_array_equal(np.flatnonzero(flagged), [1308, 1309, 2048])
    assert (pixeldq[[1308, 1309, 2048]] == BAD_PAIR_FLAGS).all()
    assert not pixeldq[np.flatnonzero(~flagged)].any()
    np.testing.assert_array_equal(data, before)  # flagging leaves the data alone


def test_flagged_rows_take_their_neighbours_mean_or_fall_back():
    data = np.random.default_rng(3).normal(1000, 5, (2, 2, 3200, 8)).astype(np.float32)
    before = data.copy()
    pixeldq = np.zeros((3200, 8), np.uint32)
    # flagged row: the row that replaces it (two rows: their mean; None: zero)
    expected_source = {
        1308: (1288, 1328),  # one interleave period (20 rows) below and above
        1348: 1328,  # 1368 above is flagged
        1388: 1408,  # 1368 below is flagged
        1368: 1370,  # 1348 and 1388 flagged, 1366 a normal row: the next reference row
        648: 668,  # 628 lies in the reference output
        28: 48,
        10: 30,  # -10 outside the output
        8: None,  # -12 outside, 28 and 10 flagged, 6 a normal row
    }
    pixeldq[list(expected_source), 1] = BAD_PAIR_FLAGS
    replace_bad_reference_pairs(data, pixeldq, NRS1)
    for row, source in expected_source.items():
        if source is None:
            expected = 0
        elif isinstance(source, tuple):
            expected = (before[:, :, source[0]] + before[:, :, source[1]]) / 2
        else:
            expected = before[:, :, source]
        np.testing.assert_array_equal(data[:, :, row], expected, err_msg=f"row {row}")
    untouched = np.ones(3200, bool)
    untouched[list(expected_source)] = False
    np.testing.assert_array_equal(data[:, :, untouched], before[:, :, untouched])


@pytest.mark.parametrize("layout", [NRS1, NRS2], ids=["NRS1", "NRS2"])
@pytest.mark.parametrize("odd_even_columns", [True, False])
def test_output_and_parity_offsets_are_removed(layout, odd_even_columns):
    rng = np.random.default_rng(4)
    ngroups, columns = 2, 64
    scene = rng.integers(-50, 50, (ngroups, 3200, columns)).astype(np.float32)
    scene[:, :, :4] = scene[:, :, -4:] = 0  # the reference strips see only the offsets
    offsets = rng.integers(100, 200, (ngroups, 5, 2)).astype(np.float32)
    if not odd_even_columns:
        offsets[..., 1] = offsets[..., 0]
    readout = np.arange(3200)
    parity = np.where(odd_readout_columns(layout), 0, 1)
    by_readout = offsets[:, readout // 640, parity]  # [ngroups, readout position]
    by_row = by_readout[:, ::-1] if layout.flipped else by_readout
    data = (scene + by_row[:, :, None])[None]
    pixeldq = np.zeros((3200, columns), np.uint32)
    dead = slice(1280, 1920)  # amplifier B for both detectors: no usable reference pixel
    pixeldq[dead, :4] = pixeldq[dead, -4:] = dqflags.DO_NOT_USE
    subtract_top_bottom_means(data, pixeldq, layout, odd_even_columns, 3.0)
    expected = scene.copy()
    expected[:, dead] += by_row[:, dead, None]
    np.testing.assert_array_equal(data[0], expected)


# --- agreement with the official functions ---------------------------------------------------


def official_ramp(detector, ngroups, seed):
    """A synthetic IRS2 ramp (stdatamodels) with per-row offsets, a noisy reference pair, a
    hot reference row and pre-flagged rows; also returns our layout."""
    from stdatamodels.jwst import datamodels as official_models

    rng = np.random.default_rng(seed)
    data = 1000 + 5 * rng.standard_normal((1, ngroups, 3200, 2048), np.float32)
    data += rng.normal(0, 3, 3200).astype(np.float32)[:, None]
    data[0, :, 1048:1050] += rng.normal(0, 100, (ngroups, 2, 2048)).astype(np.float32)
    data[0, :, 2990] += 30
    pixeldq = np.zeros((3200, 2048), np.uint32)
    pixeldq[[1008, 2000], 7] = dqflags.BAD_REF_PIXEL  # an interleaved and a normal row
    pixeldq[:, 2046] |= dqflags.DO_NOT_USE
    pixeldq[2588:2592, :4] |= dqflags.DO_NOT_USE
    model = official_models.RampModel(data=data, pixeldq=pixeldq,
                                      groupdq=np.zeros(data.shape, np.uint8))
    model.meta.instrument.name, model.meta.instrument.detector = "NIRSPEC", detector
    model.meta.exposure.type, model.meta.exposure.readpatt = "NRS_FIXEDSLIT", "NRSIRS2"
    model.meta.exposure.nrs_normal, model.meta.exposure.nrs_reference = 16, 4
    model.meta.exposure.noutputs = 4
    model.meta.subarray.name = "FULL"
    model.meta.subarray.xstart = model.meta.subarray.ystart = 1
    model.meta.subarray.xsize = model.meta.subarray.ysize = 2048
    flipped = detector == "NRS2"
    model.meta.subarray.fastaxis, model.meta.subarray.slowaxis = (-2, -1) if flipped else (2, 1)
    return model, IRS2Layout(flipped=flipped)


@pytest.mark.compare
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_flagging_and_replacement_match_official(detector):
    pytest.importorskip("jwst")
    from jwst.refpix.irs2_subtract_reference import flag_bad_refpix

    model, layout = official_ramp(detector, ngroups=3, seed=11)
    data, pixeldq = model.data.copy(), model.pixeldq.copy()
    flag_bad_refpix(model, n_sigma=3.0, flag_only=True)
    flagged = flag_bad_reference_pairs(data, pixeldq, layout, 3.0)
    assert flagged[[1008, 1048, 1049, 2000, 2990]].all()
    np.testing.assert_array_equal(pixeldq, model.pixeldq)
    np.testing.assert_array_equal(data, model.data)
    flag_bad_refpix(model, replace_only=True)
    replace_bad_reference_pairs(data, pixeldq, layout)
    np.testing.assert_array_equal(data, model.data)  # the same float32 values
    np.testing.assert_array_equal(pixeldq, model.pixeldq)


@pytest.mark.compare
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
@pytest.mark.parametrize("odd_even_columns", [True, False])
def test_mean_subtraction_matches_official(detector, odd_even_columns):
    pytest.importorskip("jwst")
    from jwst.refpix.reference_pixels import correct_model

    model, layout = official_ramp(detector, ngroups=2, seed=12)
    rng = np.random.default_rng(13)
    offsets = rng.normal(0, 40, (2, 3200)).astype(np.float32)  # per group and readout row
    model.data[0] += offsets[:, :, None]
    model.pixeldq[1280:1920, :4] |= dqflags.DO_NOT_USE  # an output with one strip unusable
    model.pixeldq[2560:, :4] |= dqflags.DO_NOT_USE  # and one with none: left alone
    model.pixeldq[2560:, -4:] |= dqflags.DO_NOT_USE
    data, pixeldq = model.data.copy(), model.pixeldq.copy()
    kernel = {"refpix_algorithm": "median", "sirs_kernel_model": None, "sigreject": 4.0,
              "gaussmooth": 1.0, "halfwidth": 30}
    correct_model(model, odd_even_columns, False, 11, 1.0, True, kernel, 3.0)
    subtract_top_bottom_means(data, pixeldq, layout, odd_even_columns, 3.0)
    # float64 clipped means against float32 ones: a few units in the last place of the
    # ~1000 levels (spacing 6e-5)
    np.testing.assert_allclose(data, model.data, rtol=0, atol=4e-4)
    assert np.abs(data - model.data).mean() < 1e-4
