"""The simulator: deterministic, physically consistent with its references, and calibratable."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table

from calwebb import datamodels, dqflags
from calwebb.simulate import (
    ObservationConfig,
    exposure,
    reference_set,
    simulate_observation,
)
from calwebb.simulate.detector import observed_from_linear
from calwebb.simulate.optics import ExposureGeometry

SMALL = dict(subarray="SUB160", readpatt="RAPID", ngroups=6, n_dithers=2, n_stars=15,
             cosmic_ray_rate=1e-3,
             n_galaxies=5)


@pytest.fixture(scope="module", name="observation")
def small_observation(tmp_path_factory):
    return simulate_observation(ObservationConfig(**SMALL), tmp_path_factory.mktemp("sim"))


def test_files_and_names(observation):
    names = [path.name for path in observation.uncal_files]
    assert names == ["jw01234001001_03101_00001_nrca1_uncal.fits",
                     "jw01234001001_03101_00002_nrca1_uncal.fits"]
    uncal = datamodels.open(observation.uncal_files[0])
    assert isinstance(uncal, datamodels.Level1bModel)
    assert uncal.data.shape == (1, 6, 160, 160) and uncal.data.dtype == np.uint16
    meta = uncal.meta
    assert (meta.instrument.detector, meta.exposure.readpatt, meta.subarray.name) == (
        "NRCA1", "RAPID", "SUB160")
    assert meta.exposure.nframes == 1 and meta.exposure.group_time > 0
    assert uncal.int_times["integration_number"][0] == 1
    np.testing.assert_array_equal(uncal.group["group_number"], np.arange(1, 7))
    ends = uncal.group["end_milliseconds"] + uncal.group["end_submilliseconds"] / 1000
    np.testing.assert_allclose(np.diff(ends), meta.exposure.group_time * 1000, atol=0.002)
    assert len(Table.read(observation.truth_catalog)) == 20
    assert observation.level3_asn.exists() and observation.level2_asn.exists()
    assert (observation.crds_path / "mappings" / "jwst" / "jwst_9000.pmap").exists()


def test_deterministic_for_a_seed(observation, tmp_path):
    from calwebb import simulate

    again = simulate.observation(tmp_path, **SMALL)
    first = datamodels.open(observation.uncal_files[1]).data
    np.testing.assert_array_equal(first, datamodels.open(again.uncal_files[1]).data)


def test_one_exposure_in_memory_is_deterministic_and_knows_its_truth():
    """``exposure``: ramps, truth rate and the sources' true pixel positions, the same for
    the same arguments and different for another dither."""
    options = dict(subarray="SUB64P", readpatt="RAPID", ngroups=3, n_stars=8, n_galaxies=0,
                   cosmic_ray_rate=0.0, seed=5)
    first, again = exposure(dither=1, **options), exposure(dither=1, **options)
    other = exposure(dither=0, **options)
    np.testing.assert_array_equal(first.uncal.data, again.uncal.data)
    assert not np.array_equal(first.uncal.data, other.uncal.data)
    assert first.uncal.data.shape == (1, 3, 64, 64)
    assert first.basename == "jw01234001001_03101_00002_nrca1"
    assert first.truth_rate.meta.bunit_data == "DN/s"
    x, y = ExposureGeometry.from_model(first.truth_rate).pixel(first.sources["ra"],
                                                               first.sources["dec"])
    np.testing.assert_allclose(first.sources["x"], x, atol=1e-6)
    np.testing.assert_allclose(first.sources["y"], y, atol=1e-6)
    shift = np.hypot(first.sources["x"] - other.sources["x"],
                     first.sources["y"] - other.sources["y"])
    np.testing.assert_allclose(shift, np.hypot(0.7, 0.35) / 0.0311, rtol=0.02)
    miri = exposure(instrument="MIRI", detectors=("MIRIMAGE",), filter="F770W",
                    readpatt="FASTR1", subarray="SUB64", ngroups=4, n_stars=3, n_galaxies=0)
    assert miri.uncal.meta.instrument.detector == "MIRIMAGE"
    assert miri.uncal.data.shape == (1, 4, 64, 72)


def test_reference_set_selects_offline(tmp_path, monkeypatch):
    """``reference_set``: every Stage 1 and Image2 reference type of the configuration,
    selected for a matching exposure through its CRDS cache."""
    from calwebb import references

    refs = reference_set(tmp_path, subarray="SUB64P", readpatt="RAPID", ngroups=3)
    kinds = {path.name.split("_")[-2] for path in refs.files}
    assert {"mask", "saturation", "superbias", "linearity", "dark", "gain", "readnoise",
            "distortion", "flat", "photom", "area", "apcorr"} <= kinds
    monkeypatch.setenv("CRDS_PATH", str(refs.crds_path))
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    references.forget_crds_state()
    uncal = exposure(subarray="SUB64P", readpatt="RAPID", ngroups=3, n_stars=2,
                     n_galaxies=0).uncal
    try:
        selected = references.get_reference_file(uncal, "dark")
    finally:
        references.forget_crds_state()
    assert Path(selected).name in {path.name for path in refs.files}


def test_linearity_reference_inverts_the_simulated_nonlinearity():
    linear = np.linspace(0, 60000, 50)
    a = np.full_like(linear, 1.5e-6)
    raw = observed_from_linear(linear, a)
    np.testing.assert_allclose(raw + a * raw**2, linear, rtol=1e-9, atol=1e-6)


def test_dithers_move_sources_on_the_sky(observation):
    catalog = Table.read(observation.truth_catalog)
    positions = []
    for path in observation.uncal_files:
        geometry = ExposureGeometry.from_model(datamodels.open(path))
        positions.append(np.column_stack(geometry.pixel(catalog["ra"], catalog["dec"])))
    shift = positions[1] - positions[0]
    expected = np.hypot(0.7, 0.35) / 0.0311  # the dither step, in pixels
    np.testing.assert_allclose(np.hypot(*shift.T), expected, rtol=0.02)  # + distortion


def test_truth_rate_puts_star_flux_where_the_catalog_says(observation):
    catalog = Table.read(observation.truth_sources[0])
    truth = datamodels.open(observation.truth_rates[0])
    x, y = ExposureGeometry.from_model(truth).pixel(catalog["ra"], catalog["dec"])
    np.testing.assert_allclose(np.column_stack([x, y]),
                               np.column_stack([catalog["x"], catalog["y"]]), atol=1e-6)
    stars = (catalog["kind"] == "star") & (x > 10) & (x < 150) & (y > 10) & (y < 150)
    assert stars.any()
    for xi, yi in zip(x[stars], y[stars], strict=True):
        peak = np.unravel_index(np.argmax(truth.data[int(yi) - 2:int(yi) + 3,
                                                     int(xi) - 2:int(xi) + 3]), (5, 5))
        assert abs(peak[0] - 2 - (yi - int(yi))) <= 1.0 and abs(peak[1] - 2 - (xi - int(xi))) <= 1


@pytest.mark.slow
def test_stage1_recovers_the_truth_and_finds_the_cosmic_rays(observation, monkeypatch):
    from calwebb.pipeline.detector1 import Detector1Pipeline

    monkeypatch.setenv("CRDS_PATH", str(observation.crds_path))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    pulls, found, strong = [], 0, 0
    for uncal, truth_path in zip(observation.uncal_files, observation.truth_rates, strict=True):
        rate = Detector1Pipeline.call(str(uncal))
        truth = datamodels.open(truth_path).data
        bad = dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.HOT
        clean = ((rate.dq & bad) == 0) & ((rate.dq & dqflags.REFERENCE_PIXEL) == 0)
        pulls.append(((rate.data - truth) / rate.err)[clean])
        for _, group, y, x, electrons in observation.cosmic_rays[uncal.name]:
            if electrons > 1000 and group > 0:
                strong += 1
                found += bool(rate.dq[y, x] & (dqflags.JUMP_DET | dqflags.DO_NOT_USE))
    pull = np.concatenate(pulls)
    assert abs(np.std(pull) - 1) < 0.05
    assert abs(np.mean(pull)) < 0.2
    assert strong and found / strong > 0.9


@pytest.mark.compare
def test_official_library_accepts_the_files(observation):
    official = pytest.importorskip("stdatamodels.jwst.datamodels")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in observation.uncal_files + observation.reference_files:
            with official.open(path) as model:
                model.validate()


def _calibrate(observation, monkeypatch, **steps):
    from calwebb import references
    from calwebb.pipeline.detector1 import Detector1Pipeline

    monkeypatch.setenv("CRDS_PATH", str(observation.crds_path))
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        monkeypatch.delenv(variable, raising=False)
    references.forget_crds_state()
    return Detector1Pipeline.call(str(observation.uncal_files[0]), steps=steps)


def _pull(rate, truth_path):
    truth = datamodels.open(truth_path).data
    bad = dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.HOT
    clean = ((rate.dq & bad) == 0) & ((rate.dq & dqflags.REFERENCE_PIXEL) == 0)
    return ((rate.data - truth) / rate.err)[clean]


@pytest.fixture(scope="module")
def miri_observation(tmp_path_factory):
    config = ObservationConfig(instrument="MIRI", detectors=("MIRIMAGE",), filter="F770W",
                               readpatt="FASTR1", ngroups=12, nints=2, subarray="SUB256",
                               n_dithers=1, n_stars=20, n_galaxies=5)
    return simulate_observation(config, tmp_path_factory.mktemp("miri"))


@pytest.mark.slow
def test_miri_exposure_is_calibrated_to_the_truth(miri_observation, monkeypatch):
    """The reset anomaly (its RESET reference), the first-group transient (the RSCD
    reference) and the last-frame offset (the lastframe step) are removed: pulls are unit
    normal."""
    rate = _calibrate(miri_observation, monkeypatch)
    assert rate.meta.cal_step.lastframe == rate.meta.cal_step.rscd == "COMPLETE"
    assert (rate.meta.rscd.ngroups_skip_int1, rate.meta.rscd.ngroups_skip_int2p) == (1, 3)
    assert rate.meta.cal_step.reset == "COMPLETE"
    pull = _pull(rate, miri_observation.truth_rates[0])
    assert abs(np.std(pull) - 1) < 0.05 and abs(np.mean(pull)) < 0.1


@pytest.mark.slow
def test_miri_first_group_transient_needs_the_rscd_step(miri_observation, monkeypatch):
    """The first group (the first three in later integrations) carries a ~30 DN transient
    that the RSCD reference tells the rscd step to skip: without that step rates fall below
    the truth; with it they are unbiased (test above)."""
    rate = _calibrate(miri_observation, monkeypatch, rscd={"skip": True})
    assert rate.meta.cal_step.rscd == "SKIPPED"
    assert np.mean(_pull(rate, miri_observation.truth_rates[0])) < -1


@pytest.mark.compare
def test_official_library_accepts_miri_and_ipc_references(miri_observation, tmp_path):
    official = pytest.importorskip("stdatamodels.jwst.datamodels")
    from calwebb.simulate.detector import make_detector
    from calwebb.simulate.instruments import detector
    from calwebb.simulate.references import write_detector_references

    ipc = write_detector_references(make_detector(detector("NRCA1"), 1, ipc_alpha=0.01),
                                    tmp_path, 1, "RAPID", "NRC_IMAGE", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in miri_observation.reference_files + [p for p in ipc if "_ipc_" in p.name]:
            with official.open(path) as model:
                model.validate()
    reset = next(p for p in miri_observation.reference_files if "_reset_" in p.name)
    with official.ResetModel(reset) as model:
        assert model.data.shape[:2] == (1, 12)


@pytest.mark.slow
def test_miri_reset_anomaly_biases_rates_without_its_reference(miri_observation,
                                                               monkeypatch):
    """Without the reset correction the decaying anomaly (40 DN at group 0, τ = 2 groups)
    bends every ramp down: rates fall well below the truth."""
    rate = _calibrate(miri_observation, monkeypatch, reset={"skip": True})
    assert np.mean(_pull(rate, miri_observation.truth_rates[0])) < -1


@pytest.mark.slow
def test_ipc_is_simulated_and_removed_by_the_ipc_step(tmp_path, monkeypatch):
    """With 1.5 % coupling to each neighbour, the ipc step's deconvolution (the simulated IPC
    reference) restores the truth; skipped, star peaks lose about 4α of their rate."""
    config = ObservationConfig(subarray="SUB160", readpatt="RAPID", ngroups=6, n_dithers=1,
                               n_stars=30, n_galaxies=0, cosmic_ray_rate=0.0, ipc_alpha=0.015)
    observation = simulate_observation(config, tmp_path)
    rate = _calibrate(observation, monkeypatch)
    assert rate.meta.cal_step.ipc == "COMPLETE"
    pull = _pull(rate, observation.truth_rates[0])
    assert abs(np.std(pull) - 1) < 0.05 and abs(np.mean(pull)) < 0.05
    from scipy import ndimage

    truth = datamodels.open(observation.truth_rates[0]).data
    peaks = ((truth == ndimage.maximum_filter(truth, 3)) & (truth > 2000)  # S/N > 100
             & ((rate.dq & dqflags.DO_NOT_USE) == 0))
    corrected = np.median(rate.data[peaks] / truth[peaks])
    raw = _calibrate(observation, monkeypatch, ipc={"skip": True})
    uncorrected = np.median(raw.data[peaks] / truth[peaks])
    assert abs(corrected - 1) < 0.005 and uncorrected < 1 - 0.02


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--instrument", "fgs"], "expected nircam, miri, niriss or nirspec"),
        (["--instrument", "nirspec", "--detectors", "NRCA1"], "NRCA1 is not a NIRSPEC one"),
        (["--instrument", "nirspec", "--size", "64"], "for the other instruments give --subarray"),
        (["--size", "100"], "NIRCam sizes are"),
        (["--ipc-alpha", "0.3"], "expected 0 ≤ alpha < 0.25"),
        (["--readpatt", "FOO"], "no readout pattern 'FOO'"),
        (["--detectors", "NRCC9"], "unknown detector 'NRCC9'"),
        (["--subarray", "SUB999"], "no subarray 'SUB999'"),
    ],
)
def test_simulate_command_rejects_bad_arguments(argv, message, tmp_path, capsys):
    from calwebb.cli.main import main

    assert main(["simulate", *argv, "--outdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_simulate_command_writes_an_observation(tmp_path, capsys):
    from calwebb.cli.main import main

    assert main(["simulate", "--size", "64", "--exposures", "1", "--ngroups", "4",
                 "--outdir", str(tmp_path)]) == 0
    assert (tmp_path / "jw01234001001_03101_00001_nrca1_uncal.fits").exists()
    assert "CRDS_PATH" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.compare
def test_official_detector1_runs_on_simulated_data(observation, monkeypatch):
    official = pytest.importorskip("jwst.pipeline")
    monkeypatch.setenv("CRDS_PATH", str(observation.crds_path))
    monkeypatch.setenv("CRDS_SERVER_URL", "https://crds-serverless-mode.stsci.edu")
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    result = official.Detector1Pipeline.call(str(observation.uncal_files[0]))
    truth = datamodels.open(observation.truth_rates[0]).data
    clean = (result.dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)) == 0
    pull = ((result.data - truth) / result.err)[clean & np.isfinite(result.data)]
    assert abs(np.std(pull) - 1) < 0.1


def test_group_difference_variance_matches_read_and_poisson_noise():
    from calwebb.simulate import instruments
    from calwebb.simulate.detector import make_detector, simulate_ramps

    detector = instruments.detector("NRCA1")
    truth = make_detector(detector, seed=5)
    window = (5, 5, 256, 256)  # science pixels only
    rate = np.full((256, 256), 20.0, np.float32)
    tframe = instruments.frame_time("NIRCAM", 256, 256, 1, "RAPID")
    ramps = simulate_ramps(rate, truth, window, 1, 0, 8, 1, tframe, 0.0,
                           np.random.default_rng(2)).data.astype(float)
    diffs = np.diff(ramps[0], axis=0)
    for parity in (0, 1):  # drifts are common along a row, amplifier offsets per column parity
        columns = diffs[..., parity::2]
        columns -= np.median(columns, axis=2, keepdims=True)
    good = (truth.mask[4:260, 4:260] == 0)
    gain = truth.gain[4:260, 4:260]
    expected = truth.read_noise[4:260, 4:260] ** 2 + 20.0 * tframe / gain
    measured = diffs[:, good].var(axis=0).mean()
    assert measured == pytest.approx(expected[good].mean(), rel=0.05)


def test_apcorr_radii_are_those_of_the_broadened_gaussian():
    """For a wide PSF the four pixel boxes act as a Gaussian of variance 4/12 px²: radii
    follow r = σ·√(−2 ln(1 − EE)) with σ² = σ_psf² + 1/3 (within 0.2 %)."""
    from calwebb.simulate.references import EE_FRACTIONS, encircled_energy_radii

    fwhm = 12.0
    sigma = np.sqrt((fwhm / (2 * np.sqrt(2 * np.log(2)))) ** 2 + 4 / 12)
    expected = sigma * np.sqrt(-2 * np.log(1 - np.asarray(EE_FRACTIONS)))
    np.testing.assert_allclose(encircled_energy_radii(fwhm), expected, rtol=2e-3)


def test_catalog_references_describe_every_filter(observation):
    by_type = {datamodels.open(path).meta.reftype.lower(): path
               for path in observation.reference_files
               if "apcorr" in path.name or "abvegaoffset" in path.name}
    apcorr = datamodels.open(by_type["apcorr"]).apcorr_table
    f200w = apcorr[apcorr["filter"] == "F200W"]
    np.testing.assert_allclose(f200w["apcorr"], 1 / f200w["eefraction"], rtol=1e-6)
    assert np.all(np.diff(f200w["radius"]) > 0) and np.all(f200w["skyin"] > f200w["radius"])
    offsets = datamodels.open(by_type["abvegaoffset"]).abvega_offset
    row = offsets[offsets["filter"] == "F444W"]
    # Vega ∝ λ⁻² from 700 Jy at 2 µm: AB − Vega = 2.5 log10(3631 / (700 (2/λ)²)), λ = 4.421 µm
    assert float(row["abvega_offset"][0]) == pytest.approx(
        2.5 * np.log10(3631 / (700 * (2 / 4.421) ** 2)), abs=1e-4)
