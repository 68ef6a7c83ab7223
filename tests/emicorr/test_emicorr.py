"""EMI removal (stage1.md §2.3): injected sinusoids removed, skips, and the official step."""

import logging
import warnings

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.emicorr import clocking, sequential
from calwebb.emicorr.step import EmiCorrStep

FREQUENCY = 390.625  # Hz: a 256-clock period
SUB64 = {"rowclocks": 28, "frameclocks": 8512}
AMPLITUDE = 5.0
LENGTH = 64  # samples in the reference waveform
#: the joint fit places integrations after the first on a 1/500-cycle grid of trial phases
#: (as the official code does): a phase error up to 0.002 cycles, 2π·0.002 ≈ 1.3% of the
#: amplitude in the residual
JOINT_TOLERANCE = 0.02


def injected_emi(nints, ngroups, ny, nx, phase, readpatt, amplitude=AMPLITUDE,
                 frequency=FREQUENCY, rowclocks=28, frameclocks=8512, nsamples=1):
    """amplitude · sin(2π (t / period + phase)) at each pixel's read time, written out from
    the MIRI clocking facts: 10 µs per sample, four channels read together, rowclocks per
    row, 7 clocks per unread detector row, one reset frame between R1 integrations."""
    period = 1.0 / frequency / 10e-6
    frame = ny * rowclocks + (1024 - ny) * 7
    between = frameclocks if readpatt.endswith("R1") else 0
    i, g, y, x = np.ogrid[:nints, :ngroups, :ny, :nx]
    ticks = i * (ngroups * frame + between) + g * frame + y * rowclocks + (x // 4) * nsamples
    return amplitude * np.sin(2 * np.pi * (ticks / period + phase))


def miri_ramp(nints=2, ngroups=10, shape=(64, 72), readpatt="FASTR1", phase=0.3, noise=1.0,
              seed=1, nsamples=1, instrument="MIRI", emi=None):
    """(ramp model with EMI, the same ramps without it, injected EMI)."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    rate = rng.uniform(1, 20, shape)
    rate[20:23, 30:33] = 2000.0  # a bright source
    groups = np.arange(ngroups)[None, :, None, None]
    clean = rng.normal(10000, 50, shape) + rate * groups + rng.normal(0, noise, (
        nints, ngroups, ny, nx))
    if emi is None:
        emi = injected_emi(nints, ngroups, ny, nx, phase, readpatt, nsamples=nsamples)
    model = datamodels.RampModel(data=(clean + emi).astype(np.float32))
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = instrument, "MIRIMAGE"
    meta.exposure.type, meta.exposure.readpatt = "MIR_IMAGE", readpatt
    meta.exposure.nsamples, meta.exposure.nints, meta.exposure.ngroups = nsamples, nints, ngroups
    meta.exposure.group_time = meta.exposure.frame_time = 2.775
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "SUB64", 1, 1
    meta.subarray.xsize, meta.subarray.ysize = nx, ny
    meta.observation.date, meta.observation.time = "2024-01-01", "00:00:00"
    return model, clean.astype(np.float32), emi


def emi_reference(path, scale=1.0):
    """An EMICORR reference: one period of a unit sine at 390.625 Hz for SUB64."""
    model = datamodels.EmiModel()
    samples = scale * np.sin(2 * np.pi * (np.arange(LENGTH) + 0.5) / LENGTH)
    model.frequencies = {"Hz390": {"frequency": FREQUENCY,
                                   "phase_amplitudes": samples.astype(np.float32)}}
    model.subarray_cases = {"SUB64": {**SUB64, "freqs": {
        "FAST": ["Hz390"], "SLOW": {"MIRIMAGE": ["Hz390"], "MIRIFULONG": []}}}}
    meta = model.meta
    meta.telescope, meta.instrument.name = "JWST", "MIRI"
    meta.useafter, meta.pedigree = "2000-01-01T00:00:00", "DUMMY"
    meta.author, meta.description = "calwebb tests", "EMI test waveform"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return emi_reference(tmp_path_factory.mktemp("emi") / "jwst_miri_emicorr_9001.asdf")


def residual(result, clean):
    return result.data.astype(np.float64) - clean


def test_clocking_facts():
    assert clocking.period_in_clocks(390.625) == pytest.approx(256.0)
    # a subarray frame: rows × rowclocks + 7 per unread row = the reference FRAMECLOCKS
    for name, ny in (("SUB64", 64), ("SUB128", 128), ("SUB256", 256)):
        rowclocks, frameclocks = clocking.SUBARRAY_CLOCKS[name]
        assert clocking.frame_clocks(ny, rowclocks) == frameclocks
    assert clocking.reset_clocks("FASTR1", 8512) == 8512 and clocking.reset_clocks("FAST", 9) == 0
    phases = clocking.integration_phases(1, 3, 4, 5, 1, 28, 8512, 256.0, False)
    frame = 4 * 28 + 1020 * 7  # a 4-row frame
    ticks = (3 * frame + 8512 + np.arange(3)[:, None, None] * frame
             + np.arange(4)[:, None] * 28 + np.arange(5))
    np.testing.assert_allclose(phases, (ticks / 256.0) % 1)


def test_resampling_and_binning_helpers():
    values = np.arange(4.0)
    np.testing.assert_array_equal(sequential.resample_nearest(values, 8), np.repeat(values, 2))
    assert sequential.resample_nearest(np.arange(128.0), 457.62).shape == (458,)
    phases = np.array([0.0, 0.1, 0.25, 0.3, 0.5, 0.9, 1.0 - 1e-12])
    means = sequential.bin_by_phase(phases, np.array([9.0, 1, 2, 3, 4, 5, 6]), 4)
    np.testing.assert_allclose(means, [1.5, 3.5, np.nan, 5.5])  # (b/4, (b+1)/4]; 0 in none
    wave = np.sin(2 * np.pi * np.arange(32) / 32)
    assert sequential.best_circular_shift(wave, np.roll(wave, 5)) == 5


def test_joint_removes_an_injected_sinusoid_and_leaves_sources(reference):
    model, clean, emi = miri_ramp()
    result = EmiCorrStep.call(model, override_emicorr=reference)
    assert result.meta.cal_step.emicorr == "COMPLETE"
    left = residual(result, clean)
    # the fitted waveform matches the injected one to 2% of its amplitude (rms)
    assert np.sqrt(np.mean(left**2)) < JOINT_TOLERANCE * AMPLITUDE
    assert np.sqrt(np.mean((model.data - clean) ** 2)) > 0.7 * AMPLITUDE
    source = left[:, :, 20:23, 30:33]
    assert np.abs(source).max() < 3 * JOINT_TOLERANCE * AMPLITUDE  # the source is untouched
    assert np.all(model.data != result.data)  # the input model is not modified


def test_sequential_with_reference_and_on_the_fly(reference, tmp_path):
    model, clean, _ = miri_ramp(ngroups=12)
    model.meta.filename = "jw01_mirimage_uncal.fits"
    for options in ({"algorithm": "sequential"},
                    {"onthefly_corr_freq": [FREQUENCY], "save_intermediate_results": True}):
        result = EmiCorrStep.call(model, override_emicorr=reference, output_dir=str(tmp_path),
                                  **options)
        assert result.meta.cal_step.emicorr == "COMPLETE"
        # the data-derived waveform is binned (period/2 bins) and noisy: 5% of amplitude
        assert np.sqrt(np.mean(residual(result, clean) ** 2)) < 0.05 * AMPLITUDE, options
    # the waveform derived on the fly is saved as an EMICORR reference
    saved = datamodels.open(tmp_path / "jw01_mirimage_emi_ref_waves.asdf")
    assert isinstance(saved, datamodels.EmiModel)
    waveform = saved.frequencies["390.625"]["phase_amplitudes"]
    assert waveform.shape == (128,)  # period / 2 bins
    assert np.ptp(waveform) == pytest.approx(2 * AMPLITUDE, rel=0.1)
    assert saved.subarray_cases["SUB64"]["freqs"] == {"FASTR1": ["390.625"]}


def test_fit_ints_separately_follows_a_phase_jump(reference):
    nints, ngroups, ny, nx = 2, 10, 64, 72
    emi = np.concatenate([injected_emi(1, ngroups, ny, nx, 0.3, "FASTR1"),
                          injected_emi(1, ngroups, ny, nx, 0.8, "FASTR1")])
    model, clean, _ = miri_ramp(nints=nints, ngroups=ngroups, emi=emi)
    together = EmiCorrStep.call(model, override_emicorr=reference)
    separate = EmiCorrStep.call(model, override_emicorr=reference, fit_ints_separately=True)
    assert np.sqrt(np.mean(residual(separate, clean) ** 2)) < JOINT_TOLERANCE * AMPLITUDE
    assert np.sqrt(np.mean(residual(together, clean) ** 2)) > 0.3 * AMPLITUDE


def test_slow_mode_samples(reference):
    model, clean, _ = miri_ramp(readpatt="SLOWR1", nsamples=9)
    result = EmiCorrStep.call(model, override_emicorr=reference)
    assert np.sqrt(np.mean(residual(result, clean) ** 2)) < JOINT_TOLERANCE * AMPLITUDE


@pytest.mark.parametrize("change,message", [
    ({"instrument": "NIRCAM"}, "not implemented for instrument: NIRCAM"),
    ({"readpatt": "SLOWGRPAVG"}, "not implemented for read pattern"),
    ({"ngroups": 2}, "ngroups=2"),
])
def test_inapplicable_exposures_are_skipped(reference, caplog, change, message):
    options = {"ngroups": change.get("ngroups", 10), "readpatt": change.get("readpatt", "FAST"),
               "instrument": change.get("instrument", "MIRI")}
    model, _, _ = miri_ramp(**options)
    with caplog.at_level(logging.WARNING):
        result = EmiCorrStep.call(model, override_emicorr=reference)
    assert result.meta.cal_step.emicorr == "SKIPPED"
    assert any(message in record.getMessage() for record in caplog.records)
    np.testing.assert_array_equal(result.data, model.data)


def test_subarray_without_a_case_is_skipped(reference, caplog):
    model, _, _ = miri_ramp()
    model.meta.subarray.name = "SUB128"
    with caplog.at_level(logging.WARNING):
        result = EmiCorrStep.call(model, override_emicorr=reference)
    assert result.meta.cal_step.emicorr == "SKIPPED"
    assert any("no EMI correction for subarray SUB128" in record.getMessage()
               for record in caplog.records)


def test_reference_is_chosen_through_crds(reference, tmp_path, monkeypatch):
    from calwebb import references
    from calwebb.references.cache import write_local_cache

    cache = write_local_cache([reference], tmp_path / "crds", "jwst_9002.pmap")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT", "CALWEBB_REFS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    references.forget_crds_state()
    try:
        model, clean, _ = miri_ramp(nints=1)
        result = EmiCorrStep.call(model)
    finally:
        references.forget_crds_state()
    assert result.meta.cal_step.emicorr == "COMPLETE"
    assert result.meta.ref_file.emicorr.name == "crds://jwst_miri_emicorr_9001.asdf"
    assert np.sqrt(np.mean(residual(result, clean) ** 2)) < JOINT_TOLERANCE * AMPLITUDE


def test_default_is_skipped_in_a_pipeline():
    assert EmiCorrStep.parameters()["skip"].default is True


# -- the official step ---------------------------------------------------------------------
@pytest.fixture
def official_setup(tmp_path, monkeypatch, reference):
    pytest.importorskip("jwst.emicorr")
    from calwebb import references
    from calwebb.references.cache import write_local_cache

    cache = write_local_cache([reference], tmp_path / "crds", "jwst_9001.pmap")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT", "CALWEBB_REFS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    references.forget_crds_state()
    yield tmp_path
    references.forget_crds_state()


def run_official(path, **options):
    from jwst.emicorr import EmiCorrStep as OfficialEmiCorr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return OfficialEmiCorr.call(str(path), skip=False, **options)


@pytest.mark.compare
@pytest.mark.parametrize("ramp_options,options", [
    ({}, {}),
    ({"readpatt": "SLOWR1", "nsamples": 9, "nints": 3}, {"fit_ints_separately": True}),
    ({"readpatt": "SLOW", "nsamples": 9, "nints": 3, "ngroups": 12},
     {"algorithm": "sequential", "nints_to_phase": 2, "scale_reference": False}),
    ({"readpatt": "FAST", "ngroups": 12, "nints": 3},
     {"onthefly_corr_freq": [FREQUENCY], "nbins": 40, "use_n_cycles": None}),
])
def test_matches_the_official_step(official_setup, reference, ramp_options, options):
    model, _, _ = miri_ramp(**ramp_options)
    path = model.save(official_setup / "jw01_mirimage_ramp.fits")
    theirs = run_official(path, override_emicorr=reference, **options)
    ours = EmiCorrStep.call(str(path), override_emicorr=reference, **options)
    assert ours.meta.cal_step.emicorr == theirs.meta.cal_step.emicorr == "COMPLETE"
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-6)
    # the subtracted EMI itself agrees to 1e-4 of its amplitude
    our_correction = model.data.astype(np.float64) - ours.data
    their_correction = model.data.astype(np.float64) - theirs.data
    assert np.abs(our_correction - their_correction).max() < 1e-4 * np.abs(
        their_correction).max() + 2e-3  # float32 rounding of ~1e4 DN values
