"""Stage 1 steps on small ramps with hand-computed answers (stage1.md §2)."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.charge_migration.step import ChargeMigrationStep
from calwebb.dark_current.step import DarkCurrentStep
from calwebb.dark_current.subtract import (
    averaged_dark,
    can_represent,
    subtract_dark,
    subtract_frames,
)
from calwebb.dq_init.step import DQInitStep
from calwebb.firstframe.step import FirstFrameStep
from calwebb.gain_scale.step import GainScaleStep
from calwebb.group_scale.step import GroupScaleStep
from calwebb.lastframe.step import LastFrameStep
from calwebb.linearity.step import LinearityStep
from calwebb.superbias.step import SuperBiasStep

DNU, SAT = dqflags.DO_NOT_USE, dqflags.SATURATED


def ramp(nints=1, ngroups=4, ny=6, nx=5, value=100.0, instrument="NIRCAM"):
    model = datamodels.RampModel((nints, ngroups, ny, nx))
    model.data[...] = value
    model.meta.instrument.name = instrument
    model.meta.exposure.nframes = 1
    model.meta.exposure.groupgap = 0
    return model


def test_group_scale():
    model = ramp()
    model.meta.exposure.nframes, model.meta.exposure.frame_divisor = 5, 4
    result = GroupScaleStep.call(model)
    np.testing.assert_allclose(result.data, 100 * 4 / 5)
    assert result.meta.cal_step.group_scale == "COMPLETE"
    model.meta.exposure.frame_divisor = 5
    assert GroupScaleStep.call(model).meta.cal_step.group_scale == "SKIPPED"


def test_dq_init_or_s_mask_and_copies_only_do_not_use_to_groups():
    model = ramp()
    mask = np.zeros((6, 5), np.uint32)
    mask[1, 1] = DNU | dqflags.DEAD
    mask[2, 2] = dqflags.HOT
    result = DQInitStep.call(model, override_mask=datamodels.MaskModel(dq=mask))
    assert result.pixeldq[1, 1] == DNU | dqflags.DEAD and result.pixeldq[2, 2] == dqflags.HOT
    assert (result.groupdq[:, :, 1, 1] == DNU).all() and (result.groupdq[:, :, 2, 2] == 0).all()
    assert result.meta.cal_step.dq_init == "COMPLETE"
    assert model.pixeldq.sum() == 0  # the caller's model is untouched
    skipped = DQInitStep.call(model, override_mask="N/A")
    assert skipped.meta.cal_step.dq_init == "SKIPPED"


def test_superbias():
    model = ramp()
    model.zeroframe = np.full((1, 6, 5), 50.0, np.float32)
    model.zeroframe[0, 0, 0] = 0
    bias = np.full((6, 5), 30.0, np.float32)
    bias[3, 3] = np.nan
    dq = np.zeros((6, 5), np.uint32)
    dq[4, 4] = dqflags.UNRELIABLE_BIAS
    result = SuperBiasStep.call(model, override_superbias=datamodels.SuperBiasModel(
        data=bias, dq=dq))
    assert result.data[0, 0, 0, 0] == 70 and result.data[0, 0, 3, 3] == 100  # NaN bias → 0
    assert result.zeroframe[0, 0, 0] == 0 and result.zeroframe[0, 1, 1] == 20
    assert result.pixeldq[4, 4] == dqflags.UNRELIABLE_BIAS
    assert result.meta.cal_step.superbias == "COMPLETE"


def test_linearity_polynomial_and_bad_coefficients():
    model = ramp()
    model.data[0, :, 0, 0] = [0, 10, 20, 30]
    model.groupdq[0, 3, 0, 0] = SAT
    model.zeroframe = np.full((1, 6, 5), 10.0, np.float32)
    model.zeroframe[0, 0, 1] = 0  # unusable: stays 0
    coeffs = np.zeros((3, 6, 5), np.float32)
    coeffs[1], coeffs[2] = 1.0, 0.01
    coeffs[:, 1, 1] = np.nan
    coeffs[1, 2, 2] = 0
    result = LinearityStep.call(model, override_linearity=datamodels.LinearityModel(
        coeffs=coeffs))
    np.testing.assert_allclose(result.data[0, :, 0, 0], [0, 11, 24, 30])  # saturated kept
    np.testing.assert_allclose(result.data[0, 0, 3, 3], 100 + 0.01 * 100**2)
    assert result.data[0, 0, 1, 1] == 100 and result.data[0, 0, 2, 2] == 100
    np.testing.assert_allclose(result.zeroframe[0, 0, 0], 10 + 0.01 * 10**2, rtol=1e-6)
    assert result.zeroframe[0, 0, 1] == 0 and result.zeroframe[0, 1, 1] == 10  # identity
    assert result.pixeldq[1, 1] & dqflags.NO_LIN_CORR and result.pixeldq[2, 2] & dqflags.NO_LIN_CORR


def test_linearity_kernel_is_numpy_float32_bit_for_bit():
    """The compiled correction rounds as numpy's float32 Horner steps do (no fused
    multiply-add), NaN included, and leaves SATURATED groups alone."""
    from calwebb.linearity.correct import linearize

    rng = np.random.default_rng(3)
    data = rng.uniform(-100, 60000, (2, 5, 7, 9)).astype(np.float32)
    data[0, 1, 2, 3] = np.nan
    groupdq = np.where(rng.random(data.shape) < 0.2, SAT, 0).astype(np.uint8)
    coeffs = np.stack([rng.normal(0, 5, (7, 9)), rng.normal(1, 0.01, (7, 9)),
                       rng.normal(0, 1e-6, (7, 9)), rng.normal(0, 1e-11, (7, 9)),
                       rng.normal(0, 1e-16, (7, 9))]).astype(np.float32)
    expected = data.copy()
    for index in np.ndindex(data.shape[:2]):
        result = coeffs[-1].copy()
        for coefficient in coeffs[-2::-1]:
            result *= data[index]
            result += coefficient
        np.copyto(expected[index], result, where=(groupdq[index] & SAT) == 0)
    linearize(data, groupdq, coeffs)
    np.testing.assert_array_equal(data.view(np.uint32), expected.view(np.uint32))


def test_dark_averaging_matches_frame_means():
    frames = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 2, 2), np.float32)
    averaged = averaged_dark(frames, 3, nframes=4, groupgap=1, dark_nframes=1, dark_groupgap=0)
    np.testing.assert_allclose(averaged[:, 0, 0], [1.5, 6.5, 11.5])
    extended = averaged_dark(frames[:5], 8, 1, 0, 1, 0)
    np.testing.assert_allclose(extended[:, 0, 0], np.arange(8))  # extrapolated linearly
    assert not can_represent(2, 0, nframes=1, groupgap=0)


def test_dark_current_step():
    model = ramp(nints=2)
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 2, 1
    frames = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((1, 6, 5), np.float32)
    dark = datamodels.DarkModel(data=frames, dq=np.zeros((6, 5), np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.meta.exposure.average_dark_current = 0.5
    result = DarkCurrentStep.call(model, override_dark=dark)
    np.testing.assert_allclose(result.data[1, :, 2, 2], 100 - np.array([0.5, 3.5, 6.5, 9.5]))
    assert result.meta.cal_step.dark_sub == "COMPLETE"
    np.testing.assert_allclose(result.average_dark_current, 0.5)


def test_dark_output_is_the_subtracted_dark_named_as_a_saved_result(tmp_path):
    """dark_output: the dark averaged to the science readout (nframes 2, groupgap 1: frame
    means 0.5, 3.5, ...), with the reference's DQ, saved in output_dir with output_ext; a dark
    already in the science pattern is saved whole, NaN as 0 (as the official step)."""
    frames = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((1, 6, 5), np.float32)
    frames[3, 1, 1] = np.nan
    dq = np.zeros((6, 5), np.uint32)
    dq[2, 2] = dqflags.HOT
    dark = datamodels.DarkModel(data=frames, dq=dq)
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    model = ramp(nints=2)
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 2, 1
    DarkCurrentStep.call(model, override_dark=dark, dark_output="averaged",
                         output_dir=str(tmp_path))
    saved = datamodels.open(tmp_path / "averaged.fits")
    assert type(saved) is datamodels.DarkModel and saved.data.shape == (4, 6, 5)
    np.testing.assert_allclose(saved.data[:, 2, 2], [0.5, 3.5, 6.5, 9.5])
    np.testing.assert_array_equal(saved.dq, dq)
    assert (saved.meta.exposure.nframes, saved.meta.exposure.groupgap,
            saved.meta.exposure.ngroups) == (2, 1, 4)
    DarkCurrentStep.call(ramp(), override_dark=dark, dark_output="whole.fits",
                         output_dir=str(tmp_path))
    whole = datamodels.open(tmp_path / "whole.fits").data
    assert whole.shape == (12, 6, 5) and whole[3, 1, 1] == 0
    np.testing.assert_array_equal(np.delete(whole.ravel(), 3 * 30 + 6),
                                  np.delete(frames.ravel(), 3 * 30 + 6))


def test_gain_scale():
    rate = datamodels.ImageModel(data=np.full((3, 3), 2.0, np.float32))
    rate.err[...] = 1
    rate.var_poisson[...] = 1
    rate.meta.exposure.gain_factor = 2.0
    result = GainScaleStep.call(rate)
    assert result.data[0, 0] == 4 and result.err[0, 0] == 2 and result.var_poisson[0, 0] == 4
    assert result.meta.cal_step.gain_scale == "COMPLETE"
    rate.meta.exposure.gain_factor = None
    assert GainScaleStep.call(rate, override_gain="N/A").meta.cal_step.gain_scale == "SKIPPED"


def test_gain_scale_takes_gainfact_from_the_gain_reference(tmp_path):
    gain = datamodels.GainModel(data=np.full((3, 3), 2.0, np.float32))
    gain.meta.exposure.gain_factor = 1.5
    gain.save(tmp_path / "gain.fits")
    rate = datamodels.ImageModel(data=np.full((3, 3), 2.0, np.float32))
    result = GainScaleStep.call(rate, override_gain=str(tmp_path / "gain.fits"))
    assert result.data[0, 0] == 3 and result.meta.exposure.gain_factor == 1.5
    assert result.meta.cal_step.gain_scale == "COMPLETE"


def test_lastframe_and_firstframe_are_miri_only():
    nircam = LastFrameStep.call(ramp())
    assert nircam.meta.cal_step.lastframe == "SKIPPED" and not nircam.groupdq.any()
    miri = LastFrameStep.call(ramp(instrument="MIRI"))
    assert (miri.groupdq[:, -1] == DNU).all() and not miri.groupdq[:, :-1].any()
    model = ramp(ngroups=5, instrument="MIRI")
    model.groupdq[0, 2:, 0, 0] = SAT
    first = FirstFrameStep.call(model)
    assert first.groupdq[0, 0, 0, 0] == 0 and first.pixeldq[0, 0] & dqflags.FLUX_ESTIMATED
    assert first.groupdq[0, 0, 1, 1] == DNU


def test_charge_migration_flags_later_groups_and_neighbours():
    model = ramp(ngroups=4)
    model.data[0, 2:, 3, 2] = 30000
    result = ChargeMigrationStep.call(model)
    flagged = dqflags.CHARGELOSS | DNU
    for y, x in [(3, 2), (2, 2), (4, 2), (3, 1), (3, 3)]:
        assert (result.groupdq[0, 2:, y, x] == flagged).all()
        assert (result.groupdq[0, :2, y, x] == 0).all()
    assert result.groupdq[0, 3, 2, 1] == 0  # diagonal neighbour untouched


@pytest.mark.parametrize("step", [DQInitStep, SuperBiasStep, LinearityStep, DarkCurrentStep])
def test_steps_skip_on_not_applicable_reference(step):
    reftype = step.reference_file_types[0]
    result = step.call(ramp(), **{f"override_{reftype}": "N/A"})
    assert getattr(result.meta.cal_step, step.cal_step_attr or step.class_alias) == "SKIPPED"


def test_ipc_convolution_matches_scipy_and_spares_reference_pixels():
    from scipy import ndimage

    from calwebb.ipc.step import IPCStep

    rng = np.random.default_rng(1)
    model = datamodels.RampModel((1, 2, 20, 20))
    model.data[...] = rng.normal(100, 5, model.data.shape)
    model.meta.subarray.xstart, model.meta.subarray.ystart = 1, 1  # includes a reference border
    kernel = np.array([[0, -0.01, 0], [-0.02, 1.06, -0.01], [0, -0.02, 0]], np.float32)
    result = IPCStep.call(model, override_ipc=datamodels.IPCModel(data=kernel))
    science = np.zeros((20, 20), np.float32)
    science[4:, 4:] = model.data[0, 0, 4:, 4:]
    expected = ndimage.convolve(science, kernel, mode="constant")
    np.testing.assert_allclose(result.data[0, 0, 4:, 4:], expected[4:, 4:], rtol=1e-5)
    np.testing.assert_array_equal(result.data[0, 0, :4], model.data[0, 0, :4])
    assert result.meta.cal_step.ipc == "COMPLETE"


def test_reset_uses_matching_reference_integration():
    from calwebb.reset.step import ResetStep

    model = ramp(nints=3, ngroups=4, instrument="MIRI")
    correction = np.zeros((2, 2, 6, 5), np.float32)
    correction[0, :, :, :] = [[[1.0]], [[2.0]]]
    correction[1, :, :, :] = [[[10.0]], [[20.0]]]
    correction[1, 0, 0, 0] = np.nan
    result = ResetStep.call(model, override_reset=datamodels.ResetModel(data=correction))
    np.testing.assert_allclose(result.data[0, :, 1, 1], [99, 98, 100, 100])
    np.testing.assert_allclose(result.data[2, :, 1, 1], [90, 80, 100, 100])  # last ref int
    assert result.data[1, 0, 0, 0] == 100  # NaN → no correction
    assert ResetStep.call(ramp()).meta.cal_step.reset == "SKIPPED"


def _rscd_reference(skip1=3, skip=2):
    table = np.array([("FULL", "FASTR1", skip1, skip)],
                     dtype=[("subarray", "S17"), ("readpatt", "S12"), ("group_skip1", ">i4"),
                            ("group_skip", ">i4")])
    return datamodels.RSCDModel(rscd_group_skip_table=table)


def test_rscd_flags_leading_groups_and_backs_off_for_saturation():
    from calwebb.rscd.step import RscdStep

    model = ramp(nints=2, ngroups=10, instrument="MIRI")
    model.meta.exposure.readpatt, model.meta.subarray.name = "FASTR1", "FULL"
    model.groupdq[0, 3:, 1, 1] = SAT  # first saturated group 3 → only 1 group flagged
    model.groupdq[1, 0:, 2, 2] = SAT  # saturated from group 0 → unchanged
    result = RscdStep.call(model, override_rscd=_rscd_reference())
    dnu = (result.groupdq & DNU) != 0
    assert dnu[0, :3, 0, 0].all() and not dnu[0, 3:, 0, 0].any()
    assert dnu[1, :2, 0, 0].all() and not dnu[1, 2:, 0, 0].any()
    assert dnu[0, :1, 1, 1].all() and not dnu[0, 1, 1, 1]
    assert dnu[1, :2, 2, 2].all()
    assert result.pixeldq[1, 1] & dqflags.FLUX_ESTIMATED and not result.pixeldq[0, 0]
    assert result.meta.rscd.ngroups_skip_int1 == 3 and result.meta.rscd.ngroups_skip_int2p == 2
    assert result.meta.cal_step.rscd == "COMPLETE"
    model.meta.exposure.readpatt = "SLOWR1"
    assert RscdStep.call(model, override_rscd=_rscd_reference()).meta.cal_step.rscd == "SKIPPED"


def test_rscd_skips_per_pixel_as_the_rule_says():
    """Each pixel's first ``clip(s - 2, 0, skip)`` groups DO_NOT_USE (``skip`` when never
    saturated or saturated from group 0), other flags kept, over random saturation onsets."""
    from calwebb.rscd.flag import flag_skipped_groups

    rng = np.random.default_rng(11)
    nints, ngroups, skip = 2, 12, 4
    onset = rng.integers(0, ngroups + 3, (nints, 7, 9))
    groups = np.arange(ngroups)[None, :, None, None]
    groupdq = np.where(groups >= onset[:, None], SAT, 0).astype(np.uint8)
    groupdq |= rng.choice(np.uint8([0, dqflags.JUMP_DET]), groupdq.shape)
    expected_skip = np.where((onset == 0) | (onset >= ngroups), skip, np.clip(onset - 2, 0, skip))
    expected = groupdq | np.where(groups < expected_skip[:, None], DNU, 0).astype(np.uint8)
    skips = flag_skipped_groups(groupdq, skip)
    np.testing.assert_array_equal(skips, expected_skip)
    np.testing.assert_array_equal(groupdq, expected)


@pytest.mark.compare
def test_rscd_matches_official_flagging():
    official = pytest.importorskip("jwst.rscd.rscd_sub")
    from stdatamodels.jwst import datamodels as official_models

    from calwebb.rscd.step import RscdStep

    rng = np.random.default_rng(7)
    model = ramp(nints=3, ngroups=9, ny=20, nx=20, instrument="MIRI")
    model.meta.exposure.readpatt, model.meta.subarray.name = "FASTR1", "FULL"
    first_sat = rng.integers(0, 12, (3, 20, 20))
    model.groupdq[...] = np.where(np.arange(9)[None, :, None, None] >= first_sat[:, None], SAT, 0)
    ours = RscdStep.call(model, override_rscd=_rscd_reference(4, 3))
    theirs = official_models.RampModel(data=model.data.copy(), groupdq=model.groupdq.copy(),
                                       pixeldq=model.pixeldq.copy())
    theirs.meta.exposure.readpatt, theirs.meta.subarray.name = "FASTR1", "FULL"
    theirs.meta.exposure.nints, theirs.meta.exposure.ngroups = 3, 9
    theirs.meta.exposure.integration_start = 1
    reference = official_models.RSCDModel()
    reference.rscd_group_skip_table = _rscd_reference(4, 3).rscd_group_skip_table
    theirs = official.do_correction(theirs, reference)
    np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
    np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)


def test_dark_current_in_row_bands_is_identical(tmp_path, monkeypatch):
    import calwebb.dark_current.step as dark_step

    rng = np.random.default_rng(3)
    frames = rng.normal(0, 5, (12, 6, 5)).astype(np.float32)
    frames[3, 4, 1] = np.nan
    dark = datamodels.DarkModel(data=frames, dq=np.zeros((6, 5), np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.save(tmp_path / "dark.fits")
    results = []
    for band_bytes in (2**30, 4 * 12 * 5 * 4, 1):  # one band, 4 rows, 1 row
        monkeypatch.setattr(dark_step, "BAND_BYTES", band_bytes)
        model = ramp(nints=2)
        model.meta.exposure.nframes, model.meta.exposure.groupgap = 2, 1
        results.append(DarkCurrentStep.call(model, override_dark=str(tmp_path / "dark.fits"))
                       .data.copy())
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    # the lazily read bands equal the dark given in memory, and the analytic frame means
    model = ramp(nints=2)
    model.meta.exposure.nframes, model.meta.exposure.groupgap = 2, 1
    in_memory = DarkCurrentStep.call(model, override_dark=dark).data
    np.testing.assert_array_equal(results[0], in_memory)
    expected = model.data[1, :, 2, 2] - frames[[0, 3, 6, 9], 2, 2] / 2 \
        - frames[[1, 4, 7, 10], 2, 2] / 2
    np.testing.assert_allclose(results[0][1, :, 2, 2], expected, rtol=1e-6)


def test_gain_scale_scales_shared_planes_once():
    """One-integration rate and rateints share memory (ramp_fit): each is scaled once."""
    buffer = np.full((1, 3, 3), 2.0, np.float32)
    rate = datamodels.ImageModel(data=buffer[0])
    rateints = datamodels.CubeModel(data=buffer[:])
    step = GainScaleStep()
    for model in (rate, rateints):  # in place, as in the pipeline (a step on its own copies)
        model.meta.exposure.gain_factor = 2.0
        assert step.process(model).meta.cal_step.gain_scale == "COMPLETE"
    assert rate.data[0, 0] == 4 and rateints.data[0, 0, 0] == 4 and buffer[0, 0, 0] == 2


@pytest.mark.parametrize("ndark", [1, 2])
@pytest.mark.parametrize("byte_order", ["<", ">"])
def test_dark_frames_subtracted_in_one_pass_as_group_by_group(ndark, byte_order):
    """The compiled pass (frames stored in either byte order, one or two dark integrations
    for three science ones) gives subtract_dark's bits, NaN and ±inf in the dark included."""
    rng = np.random.default_rng(11)
    data = rng.normal(1000, 50, (3, 5, 7, 9)).astype(np.float32)
    frames = rng.normal(0, 5, (ndark, 6, 7, 9)).astype(np.float32)  # one frame to spare
    frames[0, 1, 2, 3], frames[-1, 2, 4, 4], frames[0, 3, 6, 8] = np.nan, np.inf, -np.inf
    expected = data.copy()
    subtract_dark(expected, list(frames), 1, 0, 1, 0)
    stored = frames.astype(byte_order + "f4")[:, :5]
    subtract_frames(data, stored if ndark == 2 else stored[0])
    np.testing.assert_array_equal(data.view(np.uint32), expected.view(np.uint32))
    assert np.isfinite(expected).all()  # NaN subtracted as 0, ±inf as ±float32 max


def test_dark_current_reads_no_dark_frame_when_the_pattern_matches(tmp_path, monkeypatch):
    """With the science readout pattern the dark file's frames are subtracted from a memory
    map of its stored values, none read into an array; the result is the in-memory dark's."""
    import calwebb.dark_current.step as dark_step

    rng = np.random.default_rng(5)
    frames = rng.normal(0, 5, (2, 6, 6, 5)).astype(np.float32)
    frames[1, 2, 3, 4] = np.nan
    dark = datamodels.DarkMIRIModel(data=frames, dq=np.zeros((2, 1, 6, 5), np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.save(tmp_path / "dark.fits")
    monkeypatch.setattr(dark_step, "_subtract_in_bands", None)  # not to be used
    from_file = DarkCurrentStep.call(ramp(nints=3, instrument="MIRI"),
                                     override_dark=str(tmp_path / "dark.fits"))
    monkeypatch.undo()
    in_memory = DarkCurrentStep.call(ramp(nints=3, instrument="MIRI"), override_dark=dark)
    np.testing.assert_array_equal(from_file.data, in_memory.data)
    model = ramp(nints=3)
    np.testing.assert_array_equal(from_file.data[2, :, 1, 1],
                                  model.data[2, :, 1, 1] - frames[1, :4, 1, 1])


def test_dark_current_reads_the_frames_where_the_file_cannot_be_mapped(tmp_path, monkeypatch):
    """A file system without memory maps: the dark is read in bands, with the same result."""
    frames = np.random.default_rng(6).normal(0, 5, (4, 6, 5)).astype(np.float32)
    dark = datamodels.DarkModel(data=frames, dq=np.zeros((6, 5), np.uint32))
    dark.meta.exposure.nframes, dark.meta.exposure.groupgap = 1, 0
    dark.save(tmp_path / "dark.fits")
    mapped = DarkCurrentStep.call(ramp(), override_dark=str(tmp_path / "dark.fits")).data

    def unmappable(*args, **kwargs):
        raise OSError("mmap: no such device")

    monkeypatch.setattr(np, "memmap", unmappable)
    read = DarkCurrentStep.call(ramp(), override_dark=str(tmp_path / "dark.fits")).data
    np.testing.assert_array_equal(read, mapped)
    np.testing.assert_array_equal(read, ramp().data - frames)


@pytest.mark.parametrize("stored_as", ["<f4", ">f4", "<f8"])
def test_linearity_coefficients_sanitized_as_plane_arithmetic(stored_as):
    """The compiled pass over stored coefficients (either byte order, or converted) gives
    the identity polynomial and NO_LIN_CORR exactly where the whole-plane rules do."""
    from calwebb.linearity.correct import sanitize_coefficients

    rng = np.random.default_rng(9)
    coeffs = rng.normal(0, 1, (4, 6, 5)).astype(np.float32)
    coeffs[2, 1, 1] = np.nan
    coeffs[1, 2, 2] = 0.0
    coeffs[1, 3, 3] = -0.0
    reference_dq = np.zeros((6, 5), np.uint32)
    reference_dq[4, 4] = dqflags.NO_LIN_CORR
    reference_dq[0, 1] = dqflags.DO_NOT_USE
    expected = coeffs.copy()
    broken = np.isnan(expected).any(axis=0) | (expected[1] == 0)
    expected_dq = reference_dq.copy()
    expected_dq[broken] |= dqflags.NO_LIN_CORR
    identity = (expected_dq & dqflags.NO_LIN_CORR) != 0
    expected[:, identity] = 0
    expected[1, identity] = 1
    result, dq = sanitize_coefficients(coeffs.astype(stored_as), reference_dq)
    np.testing.assert_array_equal(result.view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(dq, expected_dq)
    assert result.dtype == np.float32 and reference_dq[1, 1] == 0  # inputs untouched
