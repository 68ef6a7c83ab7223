"""SIRS side-reference-pixel correction: kernels, the per-amplifier signal, the reference
model, and agreement with the official ``optimized_convolution`` / ``correct_model``."""

import logging

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.datamodels.reference import SIRSKernelModel
from calwebb.refpix import nir, sirs
from calwebb.refpix.step import RefPixStep

FREQUENCIES = np.arange(1025)  # the official files: rfft of 2048 rows


def low_pass_coefficients(scale=1.0):
    """(gamma, zeta) [4, 1025] complex: a low-pass kernel per amplifier, a little skewed."""
    gamma = np.array([(0.5 - 0.03 * amplifier) * scale * np.exp(-(FREQUENCIES / 300.0) ** 2)
                      + 0.02j * np.sin(FREQUENCIES / 50.0 + amplifier) for amplifier in range(4)])
    zeta = np.array([(0.45 + 0.02 * amplifier) * scale * np.exp(-(FREQUENCIES / 250.0) ** 2)
                     - 0.01j * np.cos(FREQUENCIES / 70.0 + amplifier) for amplifier in range(4)])
    return gamma, zeta


def kernel_model(detector="nrca1"):
    model = SIRSKernelModel()
    model.set_coefficients(detector, *low_pass_coefficients())
    meta = model.meta
    meta.telescope, meta.instrument.name = "JWST", "NIRCAM"
    meta.useafter, meta.pedigree = "2000-01-01T00:00:00", "DUMMY"
    meta.author, meta.description = "calwebb tests", "SIRS test kernels"
    return model


def official_kernel_model(detector="nrca1"):
    official_models = pytest.importorskip("stdatamodels.jwst.datamodels")
    model = official_models.SIRSKernelModel()
    setattr(model, detector, dict(zip(("gamma", "zeta"), low_pass_coefficients(), strict=True)))
    meta = model.meta
    meta.instrument.name, meta.useafter, meta.pedigree = "NIRCAM", "2000-01-01T00:00:00", "DUMMY"
    meta.author, meta.description = "calwebb tests", "SIRS test kernels"
    return model


# -- reference model ---------------------------------------------------------------------------
def test_kernel_model_round_trips_and_is_never_cut(tmp_path):
    model = kernel_model()
    path = model.save(tmp_path / "jwst_nircam_sirskernel_9001.asdf")
    loaded = datamodels.open(path)
    assert isinstance(loaded, SIRSKernelModel)
    assert datamodels.reference_model_class("sirskernel") is SIRSKernelModel
    gamma, zeta = loaded.coefficients("NRCA1")  # detector names in any case
    expected = low_pass_coefficients()
    assert gamma.dtype == np.complex128
    np.testing.assert_array_equal(gamma, expected[0])
    np.testing.assert_array_equal(zeta, expected[1])
    assert loaded.coefficients("NRCB2") is None and loaded.coefficients(None) is None
    science = datamodels.RampModel((1, 1, 64, 64))
    science.meta.subarray.name, science.meta.subarray.xstart = "SUB64P", 100
    assert datamodels.cutout_reference(loaded, science) is loaded


@pytest.mark.compare
def test_official_kernel_file_loads_and_ours_loads_there(tmp_path):
    official = official_kernel_model("nrcb1")
    official.save(tmp_path / "official_sirskernel.asdf")
    ours = datamodels.open(tmp_path / "official_sirskernel.asdf")
    assert isinstance(ours, SIRSKernelModel)
    np.testing.assert_array_equal(ours.coefficients("nrcb1")[0], official.nrcb1.gamma)
    np.testing.assert_array_equal(ours.coefficients("NRCB1")[1], official.nrcb1.zeta)
    kernel_model("nrcb1").save(tmp_path / "ours_sirskernel.asdf")
    back = type(official)(str(tmp_path / "ours_sirskernel.asdf"))
    np.testing.assert_array_equal(back.nrcb1.gamma, low_pass_coefficients()[0])


# -- kernels and the side signal -----------------------------------------------------------------
def test_flat_spectrum_gives_the_mean_of_the_kept_side_pixels():
    """Constant coefficients 0.5 are half a delta kernel; with a negligible smoothing the
    signal of every amplifier is, row by row, the mean of the mean left and the mean right
    reference pixel, an outlier (sigreject) left out of its row's mean."""
    flat = np.full((4, 1025), 0.5 + 0j)
    kernels = sirs.make_kernels(flat, flat, 0.05, 30)
    assert kernels.shape == (2, 4, 61)
    np.testing.assert_allclose(kernels[:, :, 30], 0.5, rtol=1e-12)
    rng = np.random.default_rng(0)
    left, right = (rng.uniform(98, 102, (2, 256, 4)) for _ in range(2))  # none beyond 4σ
    left[1, 40, 2] = 1e4
    signal = sirs.side_signal(left, right, kernels, 4.0)
    kept = np.ones(left.shape, bool)
    kept[1, 40, 2] = False
    expected = 0.5 * ((left * kept).sum(-1) / kept.sum(-1) + right.mean(-1))
    np.testing.assert_allclose(signal, np.repeat(expected[:, None], 4, axis=1), rtol=1e-12)


def test_amplifiers_without_a_kernel_get_no_signal():
    gamma, zeta = low_pass_coefficients()
    kernels = sirs.make_kernels(gamma[:1], zeta[:1], 1.0, 30)
    columns = np.random.default_rng(1).normal(0, 1, (1, 128, 4))
    signal = sirs.side_signal(columns, columns, kernels, 4.0)
    assert np.abs(signal[:, 0]).max() > 0
    assert not signal[:, 1:].any()
    assert sirs.detector_kernels(None, 1.0, 30) is None


def test_row_correlated_drift_is_reduced():
    """A 1/f-like drift common to the side columns and the science pixels of every amplifier
    is largely removed by kernels that average the two sides (DC gain 1)."""
    rng = np.random.default_rng(2)
    ny = 512
    drift = np.cumsum(rng.normal(0, 1, (2, ny)), axis=1)
    drift = (drift - drift.mean(axis=1, keepdims=True)).astype(np.float32)
    ramp = rng.normal(0, 1, (2, ny, 2048)).astype(np.float32) + drift[:, :, None]
    before = ramp[:, 4:-4, 4:-4].std()
    strips = nir.science_strips(ramp)
    good = nir.science_strips(np.ones((ny, 2048), bool))
    kernels = sirs.make_kernels(*low_pass_coefficients(scale=1.0 / 0.95), 1.0, 30)
    correction = nir.measure_full_frame(strips, good, True, True, 11, 1.0, 3.0,
                                        sirs_kernels=kernels, sigreject=4.0)
    assert correction.side.shape == (2, 4, ny)
    nir.apply_full_frame(ramp, correction, slice(0, ny), slice(0, 2048))
    after = ramp[:, 30:-30, 4:-4].std()  # (the kernels' ends see zeros beyond the frame)
    assert before > 5 and after < 0.35 * before


# -- against the official functions -------------------------------------------------------------
@pytest.mark.compare
def test_kernels_match_official():
    convolution = pytest.importorskip("jwst.refpix.optimized_convolution")
    official = official_kernel_model("nrcb1")
    for gaussmooth, halfwidth in ((1.0, 30), (2.5, 12)):
        theirs = convolution.make_kernels(official, "NRCB1", gaussmooth, halfwidth)
        ours = sirs.make_kernels(*kernel_model("nrcb1").coefficients("NRCB1"), gaussmooth,
                                 halfwidth)
        np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-12, atol=1e-15)
    assert convolution.make_kernels(official, "NRCA3", 1.0, 30) is None
    assert kernel_model("nrcb1").coefficients("NRCA3") is None


@pytest.mark.compare
def test_side_correction_matches_official_apply_conv_kernel():
    """On the same amplifier-corrected detector-frame groups (with outliers and a drift), the
    SIRS correction equals the official one within 1 float32 ulp."""
    convolution = pytest.importorskip("jwst.refpix.optimized_convolution")
    rng = np.random.default_rng(3)
    frames = rng.normal(0, 8, (3, 2048, 2048)).astype(np.float32)
    frames += np.cumsum(rng.normal(0, 1, (3, 2048)), axis=1)[:, :, None].astype(np.float32)
    frames[1, 300, 1] += 500
    frames[2, 1500, 2046] -= 800
    kernels = convolution.make_kernels(official_kernel_model(), "NRCA1", 1.0, 30)
    expected = np.stack([convolution.apply_conv_kernel(frame, kernels, sigreject=4.0)
                         for frame in frames]).astype(np.float32)
    side = sirs.side_signal(frames[:, :, :4], frames[:, :, -4:], np.array(kernels), 4.0)
    correction = nir.FullFrameCorrection(np.zeros((3, 4, 2)), side, True)
    nir.apply_full_frame(frames, correction, slice(0, 2048), slice(0, 2048))
    np.testing.assert_array_max_ulp(frames, expected, maxulp=1)


def nir_full_frame(instrument, detector, fastaxis, slowaxis, ngroups=3, seed=4):
    """(data [1, ngroups, 2048, 2048] at a ~1000 DN bias with a 1/f-like row drift in the
    detector frame and a hot side pixel, pixeldq, official RampModel with the same)."""
    official_models = pytest.importorskip("stdatamodels.jwst.datamodels")
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 5, (1, ngroups, 2048, 2048)).astype(np.float32)
    detector_view = nir.to_detector_frame(data[0], fastaxis, slowaxis)
    detector_view += np.cumsum(rng.normal(0, 1, (ngroups, 2048)), axis=1)[:, :, None].astype(
        np.float32)
    detector_view[:, 700, 2] += 400
    pixeldq = np.zeros((2048, 2048), np.uint32)
    theirs = official_models.RampModel(data=data.copy(), pixeldq=pixeldq.copy(),
                                       groupdq=np.zeros(data.shape, np.uint8))
    meta = theirs.meta
    meta.instrument.name, meta.instrument.detector = instrument, detector
    meta.exposure.type = "NRC_IMAGE" if instrument == "NIRCAM" else "NRS_FIXEDSLIT"
    meta.exposure.readpatt, meta.exposure.noutputs = "RAPID" if instrument == "NIRCAM" else "NRS", 4
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "FULL", 1, 1
    meta.subarray.xsize = meta.subarray.ysize = 2048
    meta.subarray.fastaxis, meta.subarray.slowaxis = fastaxis, slowaxis
    return data, pixeldq, theirs


def official_correct(theirs, algorithm, kernel_model):
    reference_pixels = pytest.importorskip("jwst.refpix.reference_pixels")
    parameters = {"refpix_algorithm": algorithm, "sirs_kernel_model": kernel_model,
                  "sigreject": 4.0, "gaussmooth": 1.0, "halfwidth": 30}
    reference_pixels.correct_model(theirs, True, True, 11, 1.0, True, parameters, 3.0)
    return theirs.data


@pytest.mark.compare
@pytest.mark.parametrize(("instrument", "detector", "fastaxis", "slowaxis"),
                         [("NIRCAM", "NRCA1", -1, 2), ("NIRSPEC", "NRS1", 2, 1)])
def test_full_frame_sirs_matches_official_correct_model(instrument, detector, fastaxis,
                                                        slowaxis):
    """Amplifier then SIRS correction of a full-frame ramp (3 groups), as the step does it
    with nir.py: within 1.25e-4 DN of the official result at a ~1000 DN level (1 float32
    ulp at 1024-2048 DN; the official amplifier means of the first group are float32 means
    subtracted in float32, ours float64 ones; the SIRS part alone agrees within 1 ulp)."""
    data, pixeldq, theirs = nir_full_frame(instrument, detector, fastaxis, slowaxis)
    expected = official_correct(theirs, "sirs", official_kernel_model(detector.lower()))
    kernels = sirs.detector_kernels(kernel_model(detector.lower()).coefficients(detector), 1.0,
                                    30)
    ramp = data[0]
    strips = nir.detector_strips(nir.science_strips(ramp), fastaxis, slowaxis)
    good = nir.detector_strips(nir.science_strips(nir.usable(pixeldq)), fastaxis, slowaxis)
    correction = nir.measure_full_frame(strips, good, True, True, 11, 1.0, 3.0,
                                        sirs_kernels=kernels, sigreject=4.0)
    nir.apply_full_frame(nir.to_detector_frame(ramp, fastaxis, slowaxis), correction,
                         slice(0, 2048), slice(0, 2048))
    np.testing.assert_allclose(data, expected, rtol=0, atol=1.25e-4)


# -- through the step (once RefPixStep opens SIRSKERNEL) ----------------------------------------
def step_input(data, pixeldq, theirs):
    model = datamodels.RampModel(data=data.copy(), pixeldq=pixeldq.copy(),
                                 groupdq=np.zeros(data.shape, np.uint8))
    meta, official = model.meta, theirs.meta
    meta.instrument.name, meta.instrument.detector = (official.instrument.name,
                                                      official.instrument.detector)
    meta.exposure.type, meta.exposure.readpatt = official.exposure.type, official.exposure.readpatt
    meta.exposure.noutputs = 4
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "FULL", 1, 1
    meta.subarray.xsize = meta.subarray.ysize = 2048
    meta.subarray.fastaxis = official.subarray.fastaxis
    meta.subarray.slowaxis = official.subarray.slowaxis
    return model


@pytest.mark.compare
def test_step_sirs_matches_official_and_falls_back_to_the_median(tmp_path, caplog):
    data, pixeldq, theirs = nir_full_frame("NIRCAM", "NRCA1", -1, 2)
    median_input = theirs.copy()
    path = kernel_model("nrca1").save(tmp_path / "jwst_nircam_sirskernel_9001.asdf")
    model = step_input(data, pixeldq, theirs)
    ours = RefPixStep.call(model, refpix_algorithm="sirs", override_sirskernel=str(path))
    expected = official_correct(theirs, "sirs", official_kernel_model("nrca1"))
    np.testing.assert_allclose(ours.data, expected, rtol=0, atol=1.25e-4)
    assert ours.meta.cal_step.refpix == "COMPLETE"
    # a detector the file has no kernels for: the running median, said in the log
    other = kernel_model("nrcb4").save(tmp_path / "jwst_nircam_sirskernel_9002.asdf")
    with caplog.at_level(logging.INFO):
        fallback = RefPixStep.call(model, refpix_algorithm="sirs", override_sirskernel=str(other))
    assert "running median" in caplog.text
    median = RefPixStep.call(model)
    np.testing.assert_array_equal(fallback.data, median.data)
    np.testing.assert_allclose(fallback.data, official_correct(median_input, "median", None),
                               rtol=0, atol=2.5e-4)
