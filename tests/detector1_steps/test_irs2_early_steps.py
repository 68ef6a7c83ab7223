"""dq_init, saturation, ipc and superbias on full-size NIRSpec IRS2 ramps (3200 rows, the
interleaved reference rows among them): analytic cases and the official functions."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.dq_init.step import DQInitStep
from calwebb.errors import ReferenceFileError
from calwebb.ipc.step import IPCStep
from calwebb.irs2 import IRS2Layout
from calwebb.saturation.irs2 import normal_part
from calwebb.saturation.step import SaturationStep
from calwebb.superbias.step import SuperBiasStep

DNU, SAT, LOW = dqflags.DO_NOT_USE, dqflags.SATURATED, dqflags.AD_FLOOR
FRAME, NORMAL = (3200, 2048), (2048, 2048)


def full_frame(model):
    """Full-frame subarray keywords, as IRS2 files carry them (SUBSIZE2 stays 2048)."""
    model.meta.instrument.name = "NIRSPEC"
    sub = model.meta.subarray
    sub.xstart, sub.ystart, sub.xsize, sub.ysize = 1, 1, 2048, 2048
    return model


def irs2_ramp(detector, data, groupdq=None, nframes=1, zeroframe=None):
    model = full_frame(datamodels.RampModel(data.shape))
    model.data[...] = data
    if groupdq is not None:
        model.groupdq[...] = groupdq
    if zeroframe is not None:
        model.zeroframe = zeroframe.copy()
    model.meta.instrument.detector = detector
    exposure = model.meta.exposure
    exposure.nframes, exposure.ngroups, exposure.nints = nframes, data.shape[1], data.shape[0]
    exposure.nrs_normal, exposure.nrs_reference = 16, 4
    return model


def official_ramp(model):
    """The same ramp as a stdatamodels RampModel."""
    from stdatamodels.jwst import datamodels as official

    arrays = {"data": model.data.copy(), "groupdq": model.groupdq.copy(),
              "pixeldq": model.pixeldq.copy()}
    if model.has_array("zeroframe"):
        arrays["zeroframe"] = model.zeroframe.copy()
    theirs = full_frame(official.RampModel(**arrays))
    theirs.meta.instrument.detector = model.meta.instrument.detector
    for name in ("nframes", "ngroups", "nints", "nrs_normal", "nrs_reference"):
        setattr(theirs.meta.exposure, name, getattr(model.meta.exposure, name))
    theirs.meta.exposure.zero_frame = model.has_array("zeroframe")
    return theirs


def normal_rows(detector):
    return IRS2Layout.of(irs2_ramp(detector, np.zeros((1, 1, 3200, 8), np.float32))).normal_rows()


# -- saturation -------------------------------------------------------------------------------

@pytest.mark.parametrize("coverage", ["normal rows", "whole frame"])
def test_saturation_flags_normal_pixels_and_their_normal_neighbours_only(coverage):
    """A pixel crossing the threshold in group 2 is SATURATED from group 2 on with its 3×3
    neighbours in the image of normal rows (across the reference rows between them); the
    reference rows, far above the threshold, are never flagged."""
    rows = normal_rows("NRS1")
    reference_rows = np.setdiff1d(np.arange(3200), rows)
    assert (rows[7], rows[8]) == (647, 652)  # a reference block lies between them
    data = np.full((1, 3, *FRAME), 100.0, np.float32)
    data[0][:, reference_rows] = 65000
    data[0, 1:, 647, 100] = 30000
    data[0, 0, rows[1000], 5] = -1  # A/D floor on a normal pixel ...
    data[0, 0, reference_rows[9], 5] = -1  # ... and on a reference pixel
    data[0, :, rows[500], 500] = 65000  # NO_SAT_CHECK
    thresholds = np.full(NORMAL, 30000.0, np.float32)
    ref_dq = np.zeros(NORMAL, np.uint32)
    ref_dq[500, 500] = dqflags.NO_SAT_CHECK
    if coverage == "whole frame":  # the reference rows' 0 thresholds and DQ are ignored
        frame_thresholds = np.zeros(FRAME, np.float32)
        frame_dq = np.full(FRAME, dqflags.DEAD, np.uint32)
        frame_thresholds[rows], frame_dq[rows] = thresholds, ref_dq
        thresholds, ref_dq = frame_thresholds, frame_dq
    reference = full_frame(datamodels.SaturationModel(data=thresholds, dq=ref_dq))
    result = SaturationStep.call(irs2_ramp("NRS1", data), override_saturation=reference,
                                 override_superbias="N/A")
    expected = np.zeros(result.groupdq.shape, np.uint8)
    for row in (646, 647, 652):
        expected[0, 1:, row, 99:102] = SAT
    expected[0, 0, rows[1000], 5] = LOW | DNU
    np.testing.assert_array_equal(result.groupdq, expected)
    expected_pixeldq = np.zeros(FRAME, np.uint32)
    expected_pixeldq[rows[500], 500] = dqflags.NO_SAT_CHECK
    np.testing.assert_array_equal(result.pixeldq, expected_pixeldq)
    assert result.meta.cal_step.saturation == "COMPLETE"


def test_irs2_group2_test_marks_group_2_saturated_and_grown():
    """Group 1 small, group 2 jumping by half the remaining range, group 3 saturated
    (NFRAMES=4): group 2 gets SATURATED on the pixel and its neighbours (the normal-frame
    path would set DO_NOT_USE on the pixel alone); a NaN bias exempts a pixel."""
    rows = normal_rows("NRS2")
    data = np.full((1, 3, *FRAME), 100.0, np.float32)
    bias = np.full(FRAME, 100.0, np.float32)
    for row, column in ((rows[300], 300), (rows[900], 900)):
        data[0, :, row, column] = [500, 500 + 0.5 * (30000 - 500), 30010]
    bias[rows[900], 900] = np.nan
    saturation = full_frame(datamodels.SaturationModel(data=np.full(NORMAL, 30000.0, np.float32)))
    result = SaturationStep.call(irs2_ramp("NRS2", data, nframes=4),
                                 override_saturation=saturation,
                                 override_superbias=full_frame(datamodels.SuperBiasModel(data=bias)))
    second = np.zeros(FRAME, np.uint8)
    second[rows[299:302], 299:302] = SAT
    np.testing.assert_array_equal(result.groupdq[0, 1], second)
    assert result.groupdq[0, 2, rows[899:902], 899:902].all()
    assert not (result.groupdq & DNU).any()


def test_references_must_cover_the_frame_or_its_normal_rows():
    rows = np.flatnonzero(np.arange(3200) % 25 < 16)  # 2048 rows
    image = np.arange(3200 * 3, dtype=np.float32).reshape(3200, 3)
    np.testing.assert_array_equal(normal_part(image, rows, 3200, "ref"), image[rows])
    assert normal_part(image[:2048], rows, 3200, "ref") is not None
    with pytest.raises(ReferenceFileError, match="fit neither"):
        normal_part(image[:3000], rows, 3200, "ref")


def _random_saturation_case(detector, ngroups, nframes, seed):
    """Ramps crossing random thresholds at every group, NaN/NO_SAT_CHECK thresholds, NaN and
    negative samples, SATURATED and DO_NOT_USE already set, a superbias with NaNs, a
    ZEROFRAME; group-2 events injected at 200 normal pixels (returned)."""
    rng = np.random.default_rng(seed)
    shape = (1, ngroups, *FRAME)
    data = np.cumsum(rng.random(shape, np.float32) * 12000, axis=1)
    draw = rng.random(shape, np.float32)  # one draw decides the rare samples
    data[draw < 2e-4] = -5
    data[(draw >= 2e-4) & (draw < 4e-4)] = np.nan
    groupdq = np.where(draw > 1 - 1e-3, DNU, np.where(draw > 1 - 2e-3, SAT, 0))
    thresholds = rng.uniform(20000, 40000, NORMAL).astype(np.float32)
    thresholds[rng.random(NORMAL) < 1e-3] = np.nan
    ref_dq = np.where(rng.random(NORMAL) < 1e-3, dqflags.NO_SAT_CHECK, 0).astype(np.uint32)
    ref_dq[rng.random(NORMAL) < 1e-3] |= dqflags.DEAD
    bias = rng.uniform(0, 3000, FRAME).astype(np.float32)
    bias[rng.random(FRAME) < 1e-3] = np.nan
    zeroframe = rng.uniform(-200, 35000, (1, *FRAME)).astype(np.float32)
    rows = normal_rows(detector)
    events = rng.choice(2048 * 2048, 200, replace=False)
    y, x = np.divmod(events, 2048)
    limit = np.where(np.isnan(thresholds[y, x]), 30000, thresholds[y, x])
    data[0, 0, rows[y], x] = 500
    data[0, 1, rows[y], x] = 500 + 0.6 * (limit - 500)
    data[0, 2:, rows[y], x] = (limit + 10)[:, None]  # indexed dimensions come first
    return data, groupdq.astype(np.uint8), thresholds, ref_dq, bias, zeroframe, (rows[y], x)


@pytest.mark.compare
@pytest.mark.parametrize(
    "detector, ngroups, nframes, n_pix_grow_sat, use_readpatt, with_zeroframe",
    [("NRS1", 4, 1, 1, True, True), ("NRS2", 3, 4, 2, True, False),
     ("NRS2", 3, 2, 1, False, True)])
def test_saturation_matches_official_irs2_flagging(detector, ngroups, nframes, n_pix_grow_sat,
                                                   use_readpatt, with_zeroframe):
    """GROUPDQ, PIXELDQ and ZEROFRAME identical to ``irs2_flag_saturation``."""
    pytest.importorskip("jwst")
    from jwst.saturation.saturation import irs2_flag_saturation
    from stdatamodels.jwst import datamodels as official

    data, groupdq, thresholds, ref_dq, bias, zeroframe, events = _random_saturation_case(
        detector, ngroups, nframes, seed=ngroups * nframes)
    ours = irs2_ramp(detector, data, groupdq, nframes, zeroframe if with_zeroframe else None)
    theirs = official_ramp(ours)
    result = SaturationStep.call(
        ours, n_pix_grow_sat=n_pix_grow_sat, use_readpatt=use_readpatt,
        override_saturation=full_frame(datamodels.SaturationModel(data=thresholds, dq=ref_dq)),
        override_superbias=full_frame(datamodels.SuperBiasModel(data=bias)))
    theirs = irs2_flag_saturation(
        theirs, full_frame(official.SaturationModel(data=thresholds.copy(), dq=ref_dq.copy())),
        n_pix_grow_sat, use_readpatt,
        bias_model=full_frame(official.SuperBiasModel(data=bias.copy())))
    np.testing.assert_array_equal(result.groupdq, theirs.groupdq)
    np.testing.assert_array_equal(result.pixeldq, theirs.pixeldq)
    if with_zeroframe:
        np.testing.assert_array_equal(result.zeroframe, theirs.zeroframe)
        assert (result.zeroframe == 0).mean() > 0.1
    # the cases exercise what they are meant to
    reached = result.groupdq & SAT != 0
    assert 0 < reached[0, 1].mean() < reached[0, -1].mean()
    assert 0.05 < reached[0, -1].mean() < 0.95
    assert (result.groupdq & LOW).any()
    if use_readpatt and nframes > 1:  # the injected group-2 events: SATURATED in group 2
        assert (result.groupdq[0, 1][events] & SAT != 0).mean() > 0.9


# -- ipc -------------------------------------------------------------------------------------

KERNEL = np.array([[0.001, -0.012, 0.002], [-0.015, 1.05, -0.013], [0.001, -0.011, 0.002]],
                  np.float32)


def test_ipc_convolves_the_image_of_normal_rows():
    """Normal rows: the 2-D convolution of the normal-row image (its 4-pixel reference
    border neither changed nor contributing); interleaved reference rows untouched."""
    from scipy import ndimage

    rng = np.random.default_rng(4)
    data = rng.normal(1000, 50, (1, 2, *FRAME)).astype(np.float32)
    result = IPCStep.call(irs2_ramp("NRS2", data),
                          override_ipc=datamodels.IPCModel(data=KERNEL))
    rows = normal_rows("NRS2")
    reference_rows = np.setdiff1d(np.arange(3200), rows)
    np.testing.assert_array_equal(result.data[0][:, reference_rows], data[0][:, reference_rows])
    for group in range(2):
        image = data[0, group, rows].astype(np.float64)
        science = np.zeros_like(image)
        science[4:-4, 4:-4] = image[4:-4, 4:-4]
        expected = ndimage.convolve(science, KERNEL.astype(np.float64), mode="constant")
        corrected = result.data[0, group, rows]
        np.testing.assert_allclose(corrected[4:-4, 4:-4], expected[4:-4, 4:-4], rtol=2e-6)
        np.testing.assert_array_equal(corrected[:4], data[0, group, rows[:4]])
        np.testing.assert_array_equal(corrected[:, -4:], data[0, group, rows][:, -4:])
    assert result.meta.cal_step.ipc == "COMPLETE"


@pytest.mark.compare
@pytest.mark.parametrize("detector, per_pixel, ngroups", [("NRS1", False, 3),
                                                          ("NRS2", True, 2)])
def test_ipc_matches_official_irs2_correction(detector, per_pixel, ngroups):
    """Identical to ``ipc_correction`` bit for bit (same float32 sums in the same order)."""
    pytest.importorskip("jwst")
    from jwst.ipc.ipc_corr import ipc_correction
    from stdatamodels.jwst import datamodels as official

    rng = np.random.default_rng(5)
    data = rng.normal(1000, 100, (1, ngroups, *FRAME)).astype(np.float32)
    kernel = KERNEL
    if per_pixel:
        kernel = KERNEL[:, :, None, None] * rng.uniform(0.9, 1.1, (3, 3, *NORMAL)).astype(
            np.float32)
    ours = irs2_ramp(detector, data)
    theirs = official_ramp(ours)
    result = IPCStep.call(ours, override_ipc=datamodels.IPCModel(data=kernel))
    theirs = ipc_correction(theirs, official.IPCModel(data=kernel.copy()))
    np.testing.assert_array_equal(result.data, theirs.data)
    assert not np.array_equal(result.data, data)


# -- dq_init and superbias -------------------------------------------------------------------

@pytest.mark.compare
def test_dq_init_and_superbias_match_official_with_irs2_references():
    """3200-row MASK and SUPERBIAS references (SUBSIZE2 = 2048) apply row for row, as
    ``do_dqinit`` and the superbias ``do_correction`` apply them."""
    pytest.importorskip("jwst")
    from jwst.dq_init.dq_initialization import do_dqinit
    from jwst.superbias.bias_sub import do_correction
    from stdatamodels.jwst import datamodels as official

    rng = np.random.default_rng(6)
    data = rng.uniform(10000, 20000, (1, 2, *FRAME)).astype(np.float32)
    zeroframe = rng.uniform(9000, 12000, (1, *FRAME)).astype(np.float32)
    zeroframe[0, rng.random(FRAME) < 0.01] = 0
    mask = np.where(rng.random(FRAME) < 0.01, rng.choice(
        [DNU, dqflags.HOT, DNU | dqflags.DEAD], FRAME), 0).astype(np.uint32)
    bias = rng.uniform(8000, 12000, FRAME).astype(np.float32)
    bias[rng.random(FRAME) < 0.01] = np.nan
    bias_dq = np.where(rng.random(FRAME) < 0.01, dqflags.UNRELIABLE_BIAS, 0).astype(np.uint32)
    ours = irs2_ramp("NRS2", data, zeroframe=zeroframe)
    theirs = official_ramp(ours)
    result = DQInitStep.call(ours, override_mask=full_frame(datamodels.MaskModel(dq=mask)))
    result = SuperBiasStep.call(result, override_superbias=full_frame(
        datamodels.SuperBiasModel(data=bias, dq=bias_dq)))
    theirs = do_dqinit(theirs, full_frame(official.MaskModel(dq=mask.copy())))
    theirs = do_correction(theirs, full_frame(official.SuperBiasModel(
        data=bias.copy(), dq=bias_dq.copy())))
    for name in ("data", "zeroframe", "pixeldq", "groupdq"):
        np.testing.assert_array_equal(getattr(result, name), getattr(theirs, name), err_msg=name)
    assert result.pixeldq.any() and (result.groupdq & DNU).any()
