"""Reference-pixel correction: analytic drifts removed; agreement with the official step."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.refpix.clipping import clipped_mean
from calwebb.refpix.step import RefPixStep


def test_clipped_mean_matches_scipy_sigmaclip():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    values = rng.normal(10, 2, (5, 300))
    values[:, :7] = 100
    ours = clipped_mean(values, np.ones(300, bool), 3.0)
    theirs = [stats.sigmaclip(row, 3.0, 3.0)[0].mean() for row in values]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert np.isnan(clipped_mean(values, np.zeros(300, bool), 3.0)).all()


def nir_ramp(ngroups=2, seed=1):
    rng = np.random.default_rng(seed)
    model = datamodels.RampModel((1, ngroups, 2048, 2048))
    model.meta.instrument.name = "NIRCAM"
    model.meta.subarray.fastaxis, model.meta.subarray.slowaxis = -1, 2
    scene = rng.normal(0, 1, (2048, 2048)).astype(np.float32)
    model.data[...] = scene
    return model, scene


def test_nir_amplifier_offsets_and_row_drift_are_removed():
    model, scene = nir_ramp()
    columns = np.arange(2048)
    offsets = np.array([[100, 103], [90, 95], [80, 70], [60, 66]], np.float32)
    # offsets are per amplifier and parity in the detector frame (FASTAXIS=-1 flips x)
    detector_columns = columns[::-1]
    column_offset = offsets[detector_columns // 512, detector_columns % 2]
    rows = np.arange(2048)
    drift = 5 * np.sin(2 * np.pi * rows / 700).astype(np.float32)
    for group in range(2):
        model.data[0, group] += column_offset[None, :] * (group + 1) + drift[:, None]
    model.zeroframe = model.data[:, 0].copy()  # corrected as a group of its own
    model.zeroframe[0, 500, 600:610] = 0  # unusable: stays 0
    result = RefPixStep.call(model)
    residual = result.data[0, :, 100:-100, 4:-4] - scene[100:-100, 4:-4]
    assert np.abs(np.median(residual)) < 0.05
    assert np.std(residual) < 1.2  # the scene noise (1) plus a little from the medians
    assert result.meta.cal_step.refpix == "COMPLETE"
    zeroframe = result.zeroframe[0]
    assert (zeroframe[500, 600:610] == 0).all()
    residual = zeroframe[100:-100, 4:-4] - scene[100:-100, 4:-4]
    assert np.abs(np.median(residual)) < 0.05 and np.std(residual) < 1.2


def test_subarray_uses_flagged_reference_pixels_or_skips():
    model = datamodels.RampModel((1, 3, 64, 64))
    model.meta.instrument.name = "NIRCAM"
    model.data[...] = 50.0
    model.data[0, :, :, 1::2] += 7
    skipped = RefPixStep.call(model)
    assert skipped.meta.cal_step.refpix == "SKIPPED"
    model.pixeldq[:4, :] = dqflags.REFERENCE_PIXEL
    result = RefPixStep.call(model)
    np.testing.assert_allclose(result.data, 0.0, atol=1e-5)


def test_miri_columns_by_amplifier_and_row_parity():
    rng = np.random.default_rng(2)
    model = datamodels.RampModel((1, 4, 1024, 1032))
    model.meta.instrument.name = "MIRI"
    scene = rng.normal(1000, 1, (1024, 1032)).astype(np.float32)
    drift = np.zeros((4, 1024, 1032), np.float32)
    for amplifier in range(4):
        for parity in range(2):
            drift[1:, parity::2, amplifier::4] = 10 * amplifier + 3 * parity + np.arange(1, 4)[
                :, None, None]
    expected = np.repeat(scene[None], 4, axis=0)
    expected[:, :, 4:1028] += np.arange(4)[:, None, None] * 2.0  # light only on science pixels
    model.data[0] = expected + drift
    result = RefPixStep.call(model)
    residual = result.data[0, 1:, :, 4:1028] - expected[1:, :, 4:1028]
    assert np.abs(residual).max() < 0.2
    sub = datamodels.RampModel((1, 4, 64, 72))
    sub.meta.instrument.name = "MIRI"
    assert RefPixStep.call(sub).meta.cal_step.refpix == "SKIPPED"


@pytest.mark.parametrize("odd_even_rows", [True, False])
def test_miri_correction_rounds_as_float32_plane_arithmetic(odd_even_rows):
    """Each value is taken relative to group 0, corrected and put back in float32, as the
    official step computes it on whole planes: the same bits."""
    from calwebb.refpix.miri import apply_miri

    rng = np.random.default_rng(6)
    ramp = rng.uniform(0, 60000, (5, 7, 12)).astype(np.float32)
    signal = rng.normal(0, 30, (4, 2, 4))
    expected = ramp.copy()
    first = expected[0].copy()
    parity = np.arange(3, 10) % 2 if odd_even_rows else np.zeros(7, int)
    for group in range(1, 5):
        plane = expected[group]
        plane -= first
        for amplifier in range(4):
            plane[:, amplifier::4] -= signal[group - 1, parity, amplifier].astype(
                np.float32)[:, None]
        plane += first
    apply_miri(ramp, signal, 3, odd_even_rows)
    np.testing.assert_array_equal(ramp.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("with_side", [True, False])
def test_nir_correction_rounds_as_float32_plane_arithmetic(with_side):
    """On a flipped detector-frame view, amplifier then side signal are subtracted as the
    two float32 whole-plane subtractions would: the same bits."""
    from calwebb.refpix import nir

    rng = np.random.default_rng(7)
    science = rng.uniform(0, 60000, (3, 6, 2048)).astype(np.float32)
    amplifier = rng.normal(0, 30, (3, 4, 2))
    side = rng.normal(0, 5, (3, 2048)) if with_side else None
    correction = nir.FullFrameCorrection(amplifier, side, True)
    expected = science.copy()
    view = nir.to_detector_frame(expected, -1, 2)
    view -= nir._column_signal(amplifier, np.arange(2048), True)[:, None, :].astype(np.float32)
    if with_side:
        view -= side[:, 100:106][:, :, None].astype(np.float32)
    nir.apply_full_frame(nir.to_detector_frame(science, -1, 2), correction, slice(100, 106),
                         slice(0, 2048))
    np.testing.assert_array_equal(science.view(np.uint32), expected.view(np.uint32))


@pytest.mark.compare
@pytest.mark.slow
@pytest.mark.parametrize("instrument, detector, exp_type, readpatt, axes", [
    ("NIRCAM", "NRCA1", "NRC_IMAGE", "RAPID", (-1, 2)),
    ("NIRCAM", "NRCA2", "NRC_IMAGE", "RAPID", (1, -2)),
    ("NIRISS", "NIS", "NIS_IMAGE", "NISRAPID", (-2, -1)),  # transposed detectors
    ("NIRSPEC", "NRS1", "NRS_MSASPEC", "NRSRAPID", (2, 1)),
    ("NIRSPEC", "NRS2", "NRS_MSASPEC", "NRSRAPID", (-2, -1)),
], ids=["NRCA1", "NRCA2", "NIS", "NRS1", "NRS2"])
def test_nir_full_frame_matches_official_step(instrument, detector, exp_type, readpatt, axes):
    """Full-frame NIR refpix on every detector orientation: the amplifiers and the reference
    rows and columns are found in the detector frame as the official step finds them."""
    official = pytest.importorskip("jwst.refpix")
    from stdatamodels.jwst import datamodels as official_models

    model, _ = nir_ramp(ngroups=1, seed=4)
    rng = np.random.default_rng(5)
    model.data[0, 0] += rng.normal(0, 3, 2048)[:, None].astype(np.float32)  # 1/f-like rows
    model.data[0, 0] += rng.normal(0, 2, 2048)[None, :].astype(np.float32)  # and columns
    model.data[0, 0] += np.where(np.arange(2048) % 2, 12, 30).astype(np.float32)
    model.pixeldq[0, 5] = dqflags.DO_NOT_USE
    theirs_input = official_models.RampModel(data=model.data.copy(), pixeldq=model.pixeldq.copy(),
                                              groupdq=model.groupdq.copy())
    for meta in (model.meta, theirs_input.meta):
        meta.instrument.name, meta.instrument.detector = instrument, detector
        meta.exposure.type, meta.exposure.readpatt = exp_type, readpatt
        meta.exposure.noutputs = 4
        meta.subarray.name = "FULL"
        meta.subarray.xstart = meta.subarray.ystart = 1
        meta.subarray.xsize = meta.subarray.ysize = 2048
        meta.subarray.fastaxis, meta.subarray.slowaxis = axes
    ours = RefPixStep.call(model)
    theirs = official.RefPixStep().run(theirs_input)
    assert np.abs(ours.data - model.data).max() > 10  # a correction was made
    np.testing.assert_allclose(ours.data, theirs.data, atol=2e-3)


def test_side_signal_is_the_nan_ignoring_running_median_bit_for_bit():
    """The running medians are nanmedian's bit for bit (its masked sort is only used for
    windows with an unusable pixel): without flags, with one, and with rows of them (windows
    with no usable pixel on one side take the other side's median)."""
    from calwebb.refpix.clipping import average_ignoring_nan
    from calwebb.refpix.nir import side_signal

    rng = np.random.default_rng(8)
    left, right = (rng.normal(1000, 30, (3, 64, 4)).astype(np.float32) for _ in range(2))
    good = np.ones((64, 4), bool)

    def by_nanmedian(columns, usable):
        values = np.pad(np.where(usable, columns, np.nan), ((0, 0), (5, 5), (0, 0)),
                        mode="reflect")
        windows = np.lib.stride_tricks.sliding_window_view(values, 11, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
            return np.nanmedian(windows.reshape(3, 64, -1), axis=-1)

    flagged = good.copy()
    flagged[10, 2] = False
    rows_flagged = flagged.copy()
    rows_flagged[30:45] = False
    for usable in (good, flagged, rows_flagged):
        expected = average_ignoring_nan(by_nanmedian(left, usable), by_nanmedian(right, good),
                                        both_nan=0.0)
        result = side_signal(left, right, usable, good, 11)
        np.testing.assert_array_equal(result.view(np.uint32), expected.view(np.uint32))
