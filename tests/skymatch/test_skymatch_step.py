"""SkyMatchStep through its models: known skies on dithered distorted images."""

import numpy as np
import pytest
from skymatch_scenes import exposure, levels_of, three_overlapping

from calwebb import dqflags
from calwebb.associations.library import ModelLibrary
from calwebb.errors import DataModelError, ParameterError
from calwebb.skymatch.step import SkyMatchStep

SKIES = (1.0, 1.5, 2.2)


@pytest.fixture(scope="module")
def images():
    """Three overlapping exposures with skies 1.0, 1.5, 2.2 (+ noise 0.02 + sources); never
    modified by the step (checked in test_inputs_are_not_modified)."""
    return three_overlapping(SKIES)


def run(inputs, **params):
    return levels_of(SkyMatchStep(**params).run(inputs))


def levels(results):
    return np.array([result[0] for result in results])


# -- methods ----------------------------------------------------------------------------------
def test_local_recovers_each_sky(images):
    results = run(images, skymethod="local")
    assert np.allclose(levels(results), SKIES, rtol=0.01)
    for (_, subtracted, method, status, data), model in zip(results, images, strict=True):
        assert (subtracted, method, status) == (False, "local", "COMPLETE")
        assert np.array_equal(data, model.data)  # recorded, not subtracted


def test_global_assigns_the_lowest_sky(images):
    results = run(images, skymethod="global")
    assert np.allclose(levels(results), SKIES[0], rtol=0.01)
    assert len(set(levels(results))) == 1
    assert {result[2] for result in results} == {"global"}


@pytest.mark.parametrize("match_down, expected", [(True, (0.0, 0.5, 1.2)),
                                                  (False, (-1.2, -0.7, 0.0))])
def test_match_gives_sky_differences(images, match_down, expected):
    results = run(images, skymethod="match", match_down=match_down)
    assert np.allclose(levels(results), expected, atol=0.005)  # 1 % of the 0.5 step
    assert levels(results)[2 if not match_down else 0] == 0.0  # the reference image
    assert {result[3] for result in results} == {"COMPLETE"}


def test_default_is_match_and_stepsize_changes_nothing(images):
    default = levels(run(images))
    assert np.allclose(default, (0.0, 0.5, 1.2), atol=0.005)
    assert np.allclose(levels(run(images, stepsize=30)), default, atol=1e-3)


def test_global_plus_match_restores_absolute_skies(images):
    results = run(images, skymethod="global+match")
    assert np.allclose(levels(results), SKIES, rtol=0.01)
    assert {result[2] for result in results} == {"global+match"}


def test_subtract_removes_the_sky_from_sci(images):
    results = run(images, skymethod="match", subtract=True)
    for (level, subtracted, _, status, data), model in zip(results, images, strict=True):
        assert subtracted is True and status == "COMPLETE"
        assert np.allclose(data, model.data - np.float32(level), atol=1e-6)
    medians = [np.median(result[4]) for result in results]
    assert np.allclose(medians, SKIES[0], atol=0.01)  # every image now at the lowest sky


def test_dq_flagged_and_nan_pixels_are_ignored():
    model = exposure(1.0, 0.0, 0.0, 1, sources=False)
    model.data[:, :50] = 3.0  # more than half the image: would dominate the mode
    model.dq[:, :10] = dqflags.DO_NOT_USE
    model.dq[:, 10:50] = dqflags.NON_SCIENCE | dqflags.HOT
    model.data[:5, 60:] = np.nan
    (level, *_), = run([model], skymethod="local", skystat="median")
    assert level == pytest.approx(1.0, rel=0.01)
    (level, *_), = run([model], skymethod="local", skystat="median", dqbits="None")
    assert level == pytest.approx(3.0, rel=0.01)
    (level, *_), = run([model], skymethod="local", skystat="median",
                     dqbits="~DO_NOT_USE")
    assert level == pytest.approx(3.0, rel=0.01)  # NON_SCIENCE columns are usable now


# -- groups, validity -----------------------------------------------------------------------------
def test_detectors_of_one_exposure_share_one_sky():
    """Two detectors (one group) side by side with skies 1.5 and 1.7, a second exposure with
    sky 1.0 overlapping both."""
    group = "jw01234001001_01101_00001"
    detectors = [exposure(1.5, -4.6, 0.0, 1, group=group, detector="nrca1"),
                 exposure(1.7, 4.6, 0.0, 2, group=group, detector="nrca2")]
    other = exposure(1.0, 0.0, 1.0, 3)
    library = ModelLibrary([*detectors, other])
    assert list(library.group_indices.values()) == [[0, 1], [2]]
    local = levels(run(library, skymethod="local"))
    assert local[0] == local[1] == pytest.approx(1.5, rel=0.01)  # the group's lowest sky
    assert local[2] == pytest.approx(1.0, rel=0.01)
    matched = levels(run([*detectors, other], skymethod="match"))
    assert matched[0] == matched[1]
    assert matched[2] == 0.0
    # the group's overlap sky is the pixel-weighted mean of its two detectors' (equal areas)
    assert matched[0] == pytest.approx(0.6, abs=0.02)


def test_images_without_overlap_are_skipped():
    near = three_overlapping(SKIES)[:2]
    far = exposure(3.0, 60.0, 0.0, 7)  # 60 arcsec away: no overlap
    results = run([*near, far], skymethod="match")
    assert [result[3] for result in results] == ["COMPLETE", "COMPLETE", "SKIPPED"]
    assert results[2][0] is None and results[2][2] is None
    assert np.allclose(levels(results[:2]), (0.0, 0.5), atol=0.005)
    (single,) = run([far], skymethod="match")
    assert single[3] == "SKIPPED" and single[0] is None
    # global+match: the unmatched image joins the global minimum
    results = run([*near, far], skymethod="global+match")
    assert [result[3] for result in results] == ["COMPLETE"] * 3
    assert np.allclose(levels(results), (1.0, 1.5, 1.0), rtol=0.01)


def test_image_without_usable_pixels_is_skipped():
    model = exposure(1.0, 0.0, 0.0, 1)
    model.dq[...] = dqflags.DO_NOT_USE
    (result,) = run([model], skymethod="local")
    assert result[3] == "SKIPPED" and result[0] is None


# -- re-runs and inputs ----------------------------------------------------------------------------
def test_rerun_with_other_subtract_setting_fails(images):
    library = SkyMatchStep(skymethod="local").run(images)
    with pytest.raises(DataModelError, match="BKGSUB=False.*subtract=True"):
        SkyMatchStep(skymethod="local", subtract=True).run(library)
    model = images[0].copy()
    model.meta.background.level = 0.3
    with pytest.raises(DataModelError, match="BKGSUB is not set"):
        SkyMatchStep().run([model])


def test_rerun_with_subtract_accumulates_the_level(images):
    first = SkyMatchStep(skymethod="local", subtract=True).run(images)
    before = levels_of(first)
    after = levels_of(SkyMatchStep(skymethod="local", subtract=True).run(first))
    for (level_1, _, _, _, data_1), (level_2, subtracted, _, _, data_2) in zip(
            before, after, strict=True):
        assert subtracted is True
        assert level_2 == pytest.approx(level_1, abs=0.005)  # earlier sky + ~0 residual
        assert np.allclose(data_2, data_1, atol=0.005)


def test_inputs_are_not_modified(images):
    data = [model.data.copy() for model in images]
    SkyMatchStep(skymethod="global+match", subtract=True).run(images)
    for model, original in zip(images, data, strict=True):
        assert np.array_equal(model.data, original)
        assert model.meta.background.level is None
        assert model.meta.cal_step.skymatch is None


def test_files_on_disk(tmp_path, images):
    paths = []
    for model in images[:2]:
        paths.append(tmp_path / model.meta.filename)
        model.save(paths[-1])
    stamps = [path.stat().st_mtime_ns for path in paths]
    library = SkyMatchStep(skymethod="match", subtract=True, in_memory=False).run(
        [str(path) for path in paths])
    assert library.on_disk
    results = levels_of(library)
    assert np.allclose(levels(results), (0.0, 0.5), atol=0.005)
    assert np.median(results[1][4]) == pytest.approx(SKIES[0], abs=0.01)
    assert [path.stat().st_mtime_ns for path in paths] == stamps


# -- user skies ------------------------------------------------------------------------------------
def _skylist(tmp_path, lines):
    path = tmp_path / "skies.txt"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_user_skies_matched_by_stem(tmp_path, images):
    stems = [model.meta.filename.removesuffix("_cal.fits") for model in images]
    skylist = _skylist(tmp_path, ["# name sky", f"{stems[2]}_crf.fits 0.7",
                                  f"/data/{stems[0]}_cal.fits 0.25", "",
                                  f"{stems[1]}.fits 0.5"])
    results = run(images, skymethod="user", skylist=skylist, subtract=True)
    assert np.allclose(levels(results), (0.25, 0.5, 0.7))
    for (level, subtracted, method, status, data), model in zip(results, images, strict=True):
        assert (subtracted, method, status) == (True, "user", "COMPLETE")
        assert np.allclose(data, model.data - np.float32(level))


@pytest.mark.parametrize("lines, message", [
    (["{0}_cal.fits 1", "{1}_cal.fits 2"], "has 2 entries but there are 3 images"),
    (["{0}_cal.fits 1", "{1}_cal.fits 2", "other_cal.fits 3"], "no entry for"),
    (["{0}_cal.fits 1", "{1}_cal.fits 2", "{1}_crf.fits 3"], "2 times"),
    (["{0}_cal.fits 1", "{1}_cal.fits", "{2}_cal.fits 3"], "line 2"),
])
def test_user_skylist_errors_name_the_file(tmp_path, images, lines, message):
    stems = [model.meta.filename.removesuffix("_cal.fits") for model in images]
    skylist = _skylist(tmp_path, [line.format(*stems) for line in lines])
    with pytest.raises(ParameterError, match=message) as error:
        run(images, skymethod="user", skylist=skylist)
    assert "skies.txt" in str(error.value)


def test_user_needs_a_readable_skylist(tmp_path, images):
    with pytest.raises(ParameterError, match="needs skylist"):
        run(images, skymethod="user")
    with pytest.raises(ParameterError, match="missing.txt cannot be read"):
        run(images, skymethod="user", skylist=str(tmp_path / "missing.txt"))


# -- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("params, word", [
    ({"skystat": "average"}, "skystat"), ({"skymethod": "median"}, "skymethod"),
    ({"nclip": -1}, "nclip"), ({"binwidth": "wide"}, "binwidth"),
])
def test_bad_parameters_are_rejected_at_construction(params, word):
    with pytest.raises(ParameterError, match=word):
        SkyMatchStep(**params)


@pytest.mark.parametrize("attribute, value, word", [
    ("skystat", "average", "skystat"), ("skymethod", "best", "skymethod"),
    ("stepsize", 0, "stepsize"), ("dqbits", "~NO_SUCH_FLAG", "dqbits"),
    ("binwidth", 0.0, "binwidth"), ("lower", 3.0, "lower"),
])
def test_bad_parameters_are_rejected_when_run(images, attribute, value, word):
    step = SkyMatchStep(upper=2.0)
    setattr(step, attribute, value)
    with pytest.raises(ParameterError, match=word):
        step.run(images)


# -- official implementation -----------------------------------------------------------------------
@pytest.mark.compare
@pytest.mark.parametrize("method", ["local", "global", "match", "global+match"])
def test_same_levels_as_stcal(images, method):
    stcal_skymatch = pytest.importorskip("stcal.skymatch")
    sky_images = [stcal_skymatch.SkyImage(
        model.data.copy(), np.isfinite(model.data), model.meta.wcs.__call__,
        model.meta.wcs.invert, stcal_skymatch.SkyStats("mode")) for model in images]
    stcal_skymatch.skymatch(sky_images, skymethod=method)
    expected = [image.sky for image in sky_images]
    assert np.allclose(levels(run(images, skymethod=method)), expected, atol=2e-3)
