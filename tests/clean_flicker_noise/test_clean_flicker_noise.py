"""clean_flicker_noise: analytic cases with injected flicker noise, step behaviour, and
agreement with the official step on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from flicker_scenes import make_exposure, reference_files, write_cache

from calwebb import datamodels, dqflags, references
from calwebb.clean_flicker_noise.fit import median_stripes, nsclean_full_frame
from calwebb.clean_flicker_noise.step import CleanFlickerNoiseStep
from calwebb.ramp_fitting.step import RampFitStep

FLICKER = 4.0  # DN per read and line: about 0.8 of the read noise


@pytest.fixture(scope="session")
def observations(tmp_path_factory):
    """NIRCam, MIRI and NIRSpec ramps (plus NIRCam rate and rateints) saved to files, and
    one CRDS cache with the gain, read noise and flat references they need."""
    directory = tmp_path_factory.mktemp("flicker")
    exposures = {
        "NIRCAM": make_exposure("NIRCAM", shape=(256, 256), ngroups=5, nints=2, seed=1,
                                flicker=FLICKER),
        "MIRI": make_exposure("MIRI", shape=(128, 128), ngroups=5, nints=2, seed=2,
                              flicker=FLICKER),
        "NIRSPEC": make_exposure("NIRSPEC", shape=(64, 256), ngroups=3, nints=1, seed=3,
                                 flicker=FLICKER),
    }
    rng = np.random.default_rng(7)
    paths = []
    for name, exposure in exposures.items():
        shape = exposure.model.data.shape[-2:]
        flat = flat_dq = None
        if name != "NIRSPEC":
            flat = rng.uniform(0.9, 1.1, shape)
            flat[10, 10], flat[20:23, 30] = np.nan, 0.0
        if name == "MIRI":  # the coronagraph side of the imager is not science
            flat_dq = np.zeros(shape, np.uint32)
            flat_dq[:, :16] = dqflags.NON_SCIENCE | dqflags.DO_NOT_USE
        paths += reference_files(directory / name, exposure.model, flat, flat_dq)
    cache = write_cache(directory, paths)
    files = {}
    for name, exposure in exposures.items():
        files[name] = directory / exposure.model.meta.filename
        exposure.model.save(files[name])
    return {"directory": directory, "cache": cache, "exposures": exposures, "files": files}


@pytest.fixture
def crds_cache(monkeypatch, observations):
    for variable in ("CRDS_CONTEXT", "CALWEBB_REFS"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("CRDS_PATH", str(observations["cache"]))
    monkeypatch.setenv("CRDS_SERVER_URL", references.SERVERLESS_URL)
    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    references.forget_crds_state()
    yield observations
    references.forget_crds_state()


@pytest.fixture
def rate_files(crds_cache, tmp_path):
    """The NIRCam exposure's rate and rateints (from our ramp fit), saved."""
    exposure = crds_cache["exposures"]["NIRCAM"]
    rate, rateints = RampFitStep.call(exposure.model)
    files = {}
    for kind, model in (("rate", rate), ("rateints", rateints)):
        model.meta.filename = exposure.model.meta.filename.replace("ramp", kind)
        files[kind] = tmp_path / model.meta.filename
        model.save(files[kind])
    return files


def line_residuals(cleaned, exposure, axis):
    """Per integration, group difference and line: the flicker left after cleaning,
    measured on source-free pixels (``axis`` -1: rows, -2: columns)."""
    left = np.diff(cleaned - (exposure.model.data - exposure.flicker), axis=1)
    return np.nanmedian(np.where(exposure.sources, np.nan, left), axis=axis)


def injected_lines(exposure, axis):
    return np.nanmedian(np.diff(exposure.flicker, axis=1), axis=axis)


def window_flux(ramp, pixels):
    """Summed last-minus-first-group signal over ``pixels`` (all integrations)."""
    return float((ramp[:, -1] - ramp[:, 0])[:, pixels].sum())


# -- analytic cases ---------------------------------------------------------------------------
def test_step_defaults():
    step = CleanFlickerNoiseStep()
    assert step.skip is True and step.class_alias == "clean_flicker_noise"
    pars = step.get_pars()
    assert pars["fit_method"] == "median" and pars["background_method"] == "median"
    assert pars["single_mask"] is True and pars["n_sigma"] == 2.0
    assert pars["background_box_size"] is None and pars["user_mask"] is None
    assert "override_flat" in pars and "override_pastasoss" in pars


def test_nircam_ramp_is_cleaned_and_sources_kept(crds_cache, tmp_path):
    """Row stripes drop from 4 DN per read to the median's noise floor; stars and the faint
    disc keep their flux; the scene mask covers them; group 0 is untouched."""
    exposure = crds_cache["exposures"]["NIRCAM"]
    cleaned = CleanFlickerNoiseStep.call(exposure.model, save_mask=True,
                                         output_dir=str(tmp_path))
    assert cleaned.meta.cal_step.clean_flicker_noise == "COMPLETE"
    np.testing.assert_array_equal(cleaned.data[:, 0], exposure.model.data[:, 0])
    injected = np.std(injected_lines(exposure, -1))
    left = np.std(line_residuals(cleaned.data, exposure, -1))
    assert injected > 4.5 and left < 0.25 * injected  # 0.9 DN: the 0.6 DN floor + clip bias

    truth = exposure.truth
    stars = exposure.sources & ~exposure.disc
    assert window_flux(cleaned.data, stars) == pytest.approx(window_flux(truth, stars),
                                                             rel=0.005)
    assert window_flux(cleaned.data, exposure.disc) == pytest.approx(
        window_flux(truth, exposure.disc), rel=0.02)

    mask = datamodels.open(tmp_path / "jw01234001001_01101_00001_nrca1_mask.fits").data
    assert mask.shape == (256, 256)
    assert not mask[exposure.rate > 5].any() and not mask[exposure.disc].any()
    assert 0.8 < mask.mean() < 0.95


def test_scene_mask_keeps_sources_out_of_the_fit(crds_cache, tmp_path):
    """With every pixel offered to the fit (a user mask of ones) the faint disc, invisible
    in each group difference, biases its rows' medians and loses flux."""
    exposure = crds_cache["exposures"]["NIRCAM"]
    ones = datamodels.ImageModel(data=np.ones((256, 256), np.float32))
    ones.save(tmp_path / "ones.fits")
    unmasked = CleanFlickerNoiseStep.call(exposure.model, user_mask=str(tmp_path / "ones.fits"))
    lost = 1 - window_flux(unmasked.data, exposure.disc) / window_flux(exposure.truth,
                                                                       exposure.disc)
    assert lost > 0.05


def test_miri_column_banding_is_removed(crds_cache):
    exposure = crds_cache["exposures"]["MIRI"]
    cleaned = CleanFlickerNoiseStep.call(exposure.model)
    injected = np.std(injected_lines(exposure, -2))
    assert np.std(line_residuals(cleaned.data, exposure, -2)) < 0.3 * injected
    stars = exposure.sources & ~exposure.disc
    assert window_flux(cleaned.data, stars) == pytest.approx(
        window_flux(exposure.truth, stars), rel=0.01)


def test_nirspec_fft_removes_slow_axis_noise(crds_cache):
    exposure = crds_cache["exposures"]["NIRSPEC"]
    cleaned = CleanFlickerNoiseStep.call(exposure.model, fit_method="fft")
    assert cleaned.meta.cal_step.clean_flicker_noise == "COMPLETE"
    injected = np.std(injected_lines(exposure, -2))
    # half the injected power is white from line to line; bands of ~8 lines fit only ~7
    # frequencies below the 1 kHz cut-off, so part of it stays
    assert np.std(line_residuals(cleaned.data, exposure, -2)) < 0.4 * injected


def test_median_stripes_by_channel():
    """Four amplifiers with their own offsets along a 2048-pixel slow axis."""
    rng = np.random.default_rng(0)
    offsets = np.repeat([1.0, -2.0, 3.0, 0.5], 512)
    image = (rng.normal(0, 0.1, (6, 2048)) + offsets).astype(np.float32)
    mask = np.ones(image.shape, bool)
    mask[:, 100:110] = False
    image[:, 100:110] += 50  # a masked source
    by_channel = median_stripes(image, mask, axis_to_correct=2, fit_by_channel=True)
    np.testing.assert_allclose(by_channel, np.broadcast_to(offsets, image.shape), atol=0.02)
    whole = median_stripes(image, mask, axis_to_correct=2)
    assert np.ptp(whole, axis=1).max() == 0
    columns = median_stripes(image.T, mask.T, axis_to_correct=1)
    np.testing.assert_array_equal(columns, whole.T)
    empty = median_stripes(image, np.zeros_like(mask), axis_to_correct=2)
    assert not empty.any()


def test_full_frame_fft_removes_smooth_line_offsets():
    """NSClean full-frame fit on correlated (1/f-like) line offsets in detector lines."""
    rng = np.random.default_rng(1)
    n = 256
    drift = np.cumsum(rng.normal(0, 1, n))
    drift = np.convolve(drift - drift.mean(), np.ones(9) / 9, mode="same")
    image = (rng.normal(0, 1, (n, n)) + drift[None, :]).astype(np.float32)  # NRS1: columns
    mask = np.ones((n, n), bool)
    cleaned = nsclean_full_frame(image, mask, "NRS1")
    lines = np.median(cleaned, axis=0)[8:-8]
    assert np.std(lines) < 0.2 * np.std(drift[8:-8])


# -- step behaviour -----------------------------------------------------------------------------
def rate_model(exp_type="NRC_IMAGE", shape=(32, 32), **meta):
    model = datamodels.ImageModel(data=np.random.default_rng(0).normal(
        1, 0.1, shape).astype(np.float32))
    model.meta.instrument.name = meta.get("instrument", "NIRCAM")
    model.meta.instrument.detector = meta.get("detector", "NRCA1")
    model.meta.exposure.type = exp_type
    model.meta.subarray.name = meta.get("subarray", "SUB32")
    model.meta.subarray.fastaxis, model.meta.subarray.slowaxis = -1, 2
    return model


@pytest.mark.parametrize("exp_type,params,status", [
    ("MIR_LRS-FIXEDSLIT", {}, "FAILED"),
    ("NRC_IMAGE", {"fit_method": "fft"}, "FAILED"),
    ("NRC_IMAGE", {"background_method": "median_image"}, "FAILED"),  # one integration
    ("NRS_IFU", {"mask_science_regions": True}, "SKIPPED"),
    ("NIS_SOSS", {"background_method": "median_image"}, "SKIPPED"),
    ("NRC_IMAGE", {}, "COMPLETE"),
])
def test_status(exp_type, params, status):
    model = rate_model(exp_type)
    result = CleanFlickerNoiseStep.call(model, **params)
    assert result.meta.cal_step.clean_flicker_noise == status
    if status != "COMPLETE":
        np.testing.assert_array_equal(result.data, model.data)


def test_user_mask_of_the_wrong_shape_fails(tmp_path):
    datamodels.ImageModel(data=np.ones((8, 8), np.float32)).save(tmp_path / "mask.fits")
    result = CleanFlickerNoiseStep.call(rate_model(), user_mask=str(tmp_path / "mask.fits"))
    assert result.meta.cal_step.clean_flicker_noise == "FAILED"


def test_rate_products_are_saved(tmp_path):
    model = rate_model()
    model.data[5] += 0.1  # one striped row (a bright row would be taken for a source)
    model.meta.filename = "jw01234001001_01101_00001_nrca1_rate.fits"
    result = CleanFlickerNoiseStep.call(model, save_mask=True, save_background=True,
                                        save_noise=True, output_dir=str(tmp_path))
    names = sorted(path.name for path in tmp_path.iterdir())
    stem = "jw01234001001_01101_00001_nrca1"
    assert names == [f"{stem}_flicker_bkg.fits", f"{stem}_flicker_noise.fits",
                     f"{stem}_mask.fits"]
    noise = datamodels.open(tmp_path / f"{stem}_flicker_noise.fits").data
    np.testing.assert_allclose(noise, result.data - model.data)
    assert noise[5].mean() == pytest.approx(-0.1, abs=0.04)
    background = datamodels.open(tmp_path / f"{stem}_flicker_bkg.fits").data
    assert np.ptp(background) == 0 and background[0, 0] == pytest.approx(1.0, abs=0.05)


# -- agreement with the official step ------------------------------------------------------
def official(path, **params):
    """The official step on the file (opened with stdatamodels), as strun would run it."""
    step_module = pytest.importorskip("jwst.clean_flicker_noise")
    from stdatamodels.jwst import datamodels as official_models

    return step_module.CleanFlickerNoiseStep.call(official_models.open(str(path)), skip=False,
                                                  **params)


def assert_agree(ours, theirs, original):
    """Same NaNs; values within 1e-4 relative, or 1e-4 of the correction's RMS."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    scale = np.nanstd(theirs - original)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * scale)


def saved(directory, suffix):
    """SCI of the product with ``suffix`` (read plainly: files of both pipelines)."""
    return fits.getdata(next(directory.glob(f"*_{suffix}.fits")), "SCI")


def compare(path, tmp_path, **params):
    ours = CleanFlickerNoiseStep.call(str(path), output_dir=str(tmp_path / "ours"), **params)
    theirs = official(path, output_dir=str(tmp_path / "official"), **params)
    assert ours.meta.cal_step.clean_flicker_noise == "COMPLETE"
    assert theirs.meta.cal_step.clean_flicker_noise == "COMPLETE"
    original = datamodels.open(path).data
    assert_agree(ours.data, theirs.data, original)
    return ours, theirs


def assert_masks_agree(tmp_path):
    ours, theirs = saved(tmp_path / "ours", "mask"), saved(tmp_path / "official", "mask")
    assert ours.shape == theirs.shape
    assert (ours == theirs).mean() >= 0.999


@pytest.mark.compare
def test_nircam_ramp_agrees_with_the_official_step(crds_cache, tmp_path):
    compare(crds_cache["files"]["NIRCAM"], tmp_path, save_mask=True)
    assert_masks_agree(tmp_path)


@pytest.mark.compare
def test_miri_ramp_with_flat_and_products_agrees(crds_cache, tmp_path):
    ours, _ = compare(crds_cache["files"]["MIRI"], tmp_path, mask_science_regions=True,
                      apply_flat_field=True, save_mask=True, save_background=True,
                      save_noise=True)
    assert_masks_agree(tmp_path)
    assert not saved(tmp_path / "ours", "mask")[:, :16].any()  # non-science columns
    for suffix in ("flicker_bkg", "flicker_noise"):
        theirs = saved(tmp_path / "official", suffix)
        assert_agree(saved(tmp_path / "ours", suffix), theirs, np.zeros_like(theirs))


@pytest.mark.compare
def test_nirspec_fft_agrees_with_the_official_step(crds_cache, tmp_path):
    compare(crds_cache["files"]["NIRSPEC"], tmp_path, fit_method="fft", save_mask=True)
    assert_masks_agree(tmp_path)


@pytest.mark.compare
@pytest.mark.parametrize("kind,params", [
    ("rate", {"fit_histogram": True}),
    ("rateints", {"background_method": "model", "background_box_size": [32, 32],
                  "single_mask": False}),
    ("rate", {"n_sigma": 0.0, "background_method": None}),
    ("rateints", {"background_method": "median_image"}),
    ("rate", {"autoparam": True}),
])
def test_rate_inputs_agree_with_the_official_step(rate_files, tmp_path, monkeypatch, kind,
                                                  params):
    if params.get("background_method") == "median_image":
        _official_without_wcs(monkeypatch)
    compare(rate_files[kind], tmp_path, save_mask=True, **params)
    assert_masks_agree(tmp_path)


@pytest.mark.compare
def test_median_image_ramp_agrees_with_the_official_step(crds_cache, tmp_path, monkeypatch):
    _official_without_wcs(monkeypatch)
    compare(crds_cache["files"]["NIRCAM"], tmp_path, background_method="median_image")


def _official_without_wcs(monkeypatch):
    """The official median_image path assigns a WCS to the draft rates; it only serves TSO
    scaling (not used for these non-TSO data) and would need distortion references."""
    module = pytest.importorskip("jwst.clean_flicker_noise.clean_flicker_noise")
    post_process = module.post_process_rate

    def without_wcs(model, input_dir="", assign_wcs=False, msaflagopen=False, flat_dq=False):
        return post_process(model, input_dir=input_dir, msaflagopen=msaflagopen,
                            flat_dq=flat_dq)

    monkeypatch.setattr(module, "post_process_rate", without_wcs)


@pytest.mark.compare
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_full_frame_fft_agrees_with_official_nsclean(detector):
    nsclean = pytest.importorskip("jwst.clean_flicker_noise.nsclean")
    rng = np.random.default_rng(4)
    image = (rng.normal(0, 5, (256, 256))
             + np.cumsum(rng.normal(0, 0.3, (256, 256)), axis=0)).astype(np.float32)
    mask = rng.random(image.shape) > 0.2
    mask[20:40, 50:90] = False
    theirs = nsclean.NSClean(detector, mask.copy()).clean(image.copy())
    ours = nsclean_full_frame(image, mask, detector)
    assert_agree(ours, theirs, image)


@pytest.mark.compare
@pytest.mark.parametrize("axis", [1, 2])
def test_channel_medians_agree_with_the_official_median_clean(axis):
    module = pytest.importorskip("jwst.clean_flicker_noise.clean_flicker_noise")
    rng = np.random.default_rng(5)
    shape = (2048, 12) if axis == 1 else (12, 2048)
    image = rng.normal(0, 3, shape).astype(np.float32)
    mask = rng.random(shape) > 0.3
    mask[:, 3] = False  # a line with no background (in the axis=2 case, a column)
    theirs = module.median_clean(image, mask, axis, fit_by_channel=True)
    ours = image - median_stripes(image, mask, axis, fit_by_channel=True)
    np.testing.assert_array_equal(ours, theirs)
