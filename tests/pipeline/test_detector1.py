"""calwebb_detector1 end to end on a small exposure: truth, products, and the official result."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.cli.main import main
from detector1_exposure import assert_rates_agree, write_exposure
from offline_crds import offline_crds


@pytest.fixture
def exposure(tmp_path):
    uncal, cache, rate = write_exposure(tmp_path)
    with offline_crds(cache):
        yield uncal, rate, tmp_path


@pytest.mark.slow
def test_detector1_recovers_the_true_rate(exposure):
    uncal, truth, directory = exposure
    before = uncal.read_bytes()
    assert main(["run", "calwebb_detector1", str(uncal), "--output_dir", str(directory / "out"),
                 "--steps.jump.rejection_threshold=5", "--save_calibrated_ramp=true",
                 "--quiet"]) == 0
    assert uncal.read_bytes() == before
    out = directory / "out"
    names = sorted(path.name for path in out.iterdir())
    stem = "jw01234001001_01101_00001_nrca1"
    assert names == [f"{stem}_ramp.fits", f"{stem}_rate.fits", f"{stem}_rateints.fits"]
    rate = datamodels.open(out / f"{stem}_rate.fits")
    rateints = datamodels.open(out / f"{stem}_rateints.fits")
    assert isinstance(rate, datamodels.ImageModel) and isinstance(rateints, datamodels.CubeModel)
    assert rateints.data.shape == (2, 64, 64)
    status = rate.meta.cal_step
    for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub", "jump",
                 "ramp_fit"):
        assert getattr(status, step) == "COMPLETE", step
    assert status.ipc == "SKIPPED"  # no IPC reference in this context
    assert rate.meta.ref_file.gain.name == "crds://jwst_nircam_gain_9002.fits"
    assert rate.meta.ref_file.crds.context_used == "jwst_9000.pmap"
    clean = (rate.dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET)) == 0
    clean[:4, :] = clean[:, :4] = False
    pull = (rate.data - truth)[clean] / rate.err[clean]
    assert abs(np.std(pull) - 1) < 0.05 and abs(np.median(pull)) < 0.05
    assert np.isnan(rate.data[50, 50]) and rate.dq[50, 50] & dqflags.DEAD
    assert (rate.dq[30:34, 30:34] & dqflags.SATURATED).all()


@pytest.mark.slow
@pytest.mark.compare
def test_detector1_agrees_with_the_official_pipeline(exposure):
    pipeline = pytest.importorskip("jwst.pipeline")
    uncal, _, _ = exposure
    from calwebb.pipeline.detector1 import Detector1Pipeline

    assert_rates_agree(Detector1Pipeline.call(str(uncal)),
                       pipeline.Detector1Pipeline.call(str(uncal)))


@pytest.mark.slow
@pytest.mark.compare
def test_miri_detector1_agrees_with_the_official_pipeline(tmp_path):
    pipeline = pytest.importorskip("jwst.pipeline")
    from calwebb.pipeline.detector1 import Detector1Pipeline

    uncal, cache, truth = write_exposure(tmp_path, instrument="MIRI", shape=(64, 72),
                                         ngroups=10, nints=2)
    with offline_crds(cache):
        ours = Detector1Pipeline.call(str(uncal))
        theirs = pipeline.Detector1Pipeline.call(str(uncal))
    assert ours.meta.cal_step.lastframe == "COMPLETE" and ours.meta.cal_step.refpix == "SKIPPED"
    good = assert_rates_agree(ours, theirs)
    clean = good & ((ours.dq & (dqflags.SATURATED | dqflags.JUMP_DET)) == 0)
    clean[:, :4] = clean[:, -4:] = False
    pull = (ours.data - truth)[clean] / ours.err[clean]
    assert abs(np.std(pull) - 1) < 0.1


@pytest.mark.compare
def test_every_parameter_and_default_is_the_official_one():
    """The pipeline's and each step's parameters (get_pars) are the official ones, with the
    same defaults; calwebb adds only max_memory and the override_<reftype> parameters.
    input_dir is left out: unset, the official property reports '' where calwebb keeps
    None."""
    import warnings

    from calwebb.pipeline.detector1 import Detector1Pipeline

    official = pytest.importorskip("jwst.pipeline").Detector1Pipeline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the official schema's warnings)
        theirs = official().get_pars()
    ours = Detector1Pipeline().get_pars()
    their_steps, our_steps = theirs.pop("steps"), ours.pop("steps")
    assert set(our_steps) == set(their_steps)
    for name, (mine, official_pars) in {"pipeline": (ours, theirs), **{
            step: (our_steps[step], their_steps[step]) for step in their_steps}}.items():
        extra = {key for key in set(mine) - set(official_pars)
                 if not key.startswith("override_") and key != "max_memory"}
        assert not extra, (name, extra)
        for key in set(official_pars) - {"input_dir"}:
            assert key in mine and mine[key] == official_pars[key], (name, key)


@pytest.mark.compare
@pytest.mark.parametrize("instrument", ["NIRCAM", "MIRI"])
@pytest.mark.parametrize("nframes", [1, 2])
def test_dark_output_is_the_official_file(tmp_path, instrument, nframes):
    """dark_output: the same file name, model, arrays and readout keywords as the official
    step's, for a dark in the science readout pattern (saved whole) and one averaged to it
    (NFRAMES 2 over 4 groups)."""
    official = pytest.importorskip("jwst.dark_current").DarkCurrentStep
    from calwebb.dark_current.step import DarkCurrentStep

    uncal, cache, _ = write_exposure(tmp_path, instrument=instrument)
    if nframes > 1:
        model = datamodels.open(uncal)
        model.data = np.ascontiguousarray(model.data[:, :4])
        model.meta.exposure.ngroups, model.meta.exposure.nframes = 4, nframes
        model.save(uncal)
    dark = next(cache.rglob("*dark*.fits"))
    saved = {}
    with offline_crds(cache):
        for name, step in (("ours", DarkCurrentStep), ("official", official)):
            step.call(str(uncal), dark_output="subtracted", override_dark=str(dark),
                      output_dir=str(tmp_path / name))
            saved[name] = datamodels.open(tmp_path / name / "subtracted.fits")
    ours, theirs = saved["ours"], saved["official"]
    assert type(ours).__name__ == type(theirs).__name__ == (
        "DarkMIRIModel" if instrument == "MIRI" else "DarkModel")
    np.testing.assert_array_equal(ours.data, theirs.data)
    np.testing.assert_array_equal(ours.dq, theirs.dq)
    for key in ("nframes", "groupgap", "ngroups"):
        assert getattr(ours.meta.exposure, key) == getattr(theirs.meta.exposure, key), key


#: header cards that name the software, its version or the time of writing
VERSION_CARDS = {"DATE", "CAL_VER", "CAL_VCS", "CRDS_VER", "HISTORY", "COMMENT", ""}


@pytest.mark.slow
@pytest.mark.compare
def test_products_have_the_official_hdus_and_header_cards(exposure):
    """rate and rateints files: the same HDUs in the same order, and every header card the
    same (name and value) as the official pipeline's, apart from versions and dates."""
    from astropy.io import fits

    from calwebb.pipeline.detector1 import Detector1Pipeline

    pipeline = pytest.importorskip("jwst.pipeline")
    uncal, _, directory = exposure
    Detector1Pipeline.call(str(uncal), save_results=True, output_dir=str(directory / "ours"))
    pipeline.Detector1Pipeline.call(str(uncal), save_results=True,
                                    output_dir=str(directory / "official"))
    for suffix in ("rate", "rateints"):
        name = uncal.name.replace("uncal", suffix)
        with fits.open(directory / "ours" / name) as ours, \
                fits.open(directory / "official" / name) as theirs:
            assert [hdu.name for hdu in ours] == [hdu.name for hdu in theirs]
            for mine, official in zip(ours[:-1], theirs[:-1], strict=True):  # (not ASDF)
                cards = {key: mine.header[key] for key in mine.header
                         if key not in VERSION_CARDS}
                assert cards == {key: official.header[key] for key in official.header
                                 if key not in VERSION_CARDS}, (suffix, mine.name)
