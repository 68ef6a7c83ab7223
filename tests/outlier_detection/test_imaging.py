"""OutlierDetectionStep in imaging mode on dithered exposures of one star field with injected
cosmic rays (distorted gwcs WCSs, 100×100 pixels)."""

import json

import numpy as np
import pytest
from outlier_scenes import dithered_exposures

from calwebb import datamodels, dqflags
from calwebb.associations.library import ModelLibrary
from calwebb.outlier_detection import OutlierDetectionStep

OUTLIER = dqflags.DO_NOT_USE | dqflags.OUTLIER


def _flags(library) -> list[np.ndarray]:
    """Per member: True where the step set OUTLIER."""
    flags = []
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            flags.append((model.dq & dqflags.OUTLIER) != 0)
            library.shelve(model, index, modify=False)
    return flags


def _members(library) -> list:
    with library:
        models = [library.borrow(index) for index in range(len(library))]
        for index, model in enumerate(models):
            library.shelve(model, index, modify=False)
    return models


@pytest.fixture(scope="module")
def scene():
    return dithered_exposures(4, seed=11)


@pytest.fixture(scope="module")
def flagged(scene):
    """The step run once on the scene; the inputs' arrays copied before the run."""
    before = [(e.model.data.copy(), e.model.dq.copy(), e.model.err.copy()) for e in scene]
    result = OutlierDetectionStep().run([e.model for e in scene])
    return result, before


def test_cosmic_rays_are_flagged_and_stars_and_noise_are_not(scene, flagged):
    library, _ = flagged
    assert isinstance(library, ModelLibrary)
    for exposure, flags in zip(scene, _flags(library), strict=True):
        cosmic_rays = exposure.cosmic_rays
        assert cosmic_rays.sum() == 25 + 8 * 4
        assert flags[cosmic_rays].mean() >= 0.95
        assert not flags[exposure.star_core].any()  # peak S/N ~1000: cores never flagged
        # noise only: away from the stars and from the cosmic rays (and their neighbours)
        near_hits = np.zeros_like(cosmic_rays)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                near_hits |= np.roll(cosmic_rays, (dy, dx), axis=(0, 1))
        noise = ~near_hits & ~exposure.near_star
        assert noise.sum() > 7000
        assert flags[noise].mean() < 1e-3


def test_flagged_pixels_are_nan_and_do_not_use(flagged):
    library, _ = flagged
    for model in _members(library):
        outliers = (model.dq & dqflags.OUTLIER) != 0
        assert outliers.any()
        assert ((model.dq[outliers] & OUTLIER) == OUTLIER).all()
        for array in (model.data, model.err, model.var_poisson, model.var_rnoise,
                      model.var_flat):
            assert np.isnan(array[outliers]).all()
            assert np.isfinite(array[~outliers]).all()  # nothing else changed to NaN
        assert model.meta.cal_step.outlier_detection == "COMPLETE"


def test_inputs_are_not_modified(scene, flagged):
    _, before = flagged
    for exposure, (data, dq, err) in zip(scene, before, strict=True):
        np.testing.assert_array_equal(exposure.model.data, data)
        np.testing.assert_array_equal(exposure.model.dq, dq)
        np.testing.assert_array_equal(exposure.model.err, err)
        assert exposure.model.meta.cal_step.outlier_detection is None


def test_on_disk_library_gives_the_same_flags(scene, flagged, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # temporary files go to the working directory
    library, _ = flagged
    on_disk = OutlierDetectionStep(in_memory=False).run([e.model for e in scene])
    assert on_disk.on_disk
    for expected, result in zip(_flags(library), _flags(on_disk), strict=True):
        np.testing.assert_array_equal(result, expected)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("calwebb_outlier")]
    assert leftovers == []  # the median stack's temporary directory is removed
    on_disk.close()


def test_dq_flags_outside_good_bits_are_left_out_of_the_median():
    """With two exposures the median is their mean: a wild block in one of them reaches the
    other's comparison unless its DQ flag is outside good_bits."""
    exposures = dithered_exposures(2, seed=2, cosmic_rays=False)
    bad = exposures[0].model
    bad.data[40:50, 40:50] = 1e4
    bad.dq[40:50, 40:50] |= dqflags.SATURATED
    models = [e.model for e in exposures]
    # '~DO_NOT_USE+SATURATED': every flag but these two counts as good
    excluded = _flags(OutlierDetectionStep(good_bits="~DO_NOT_USE+SATURATED").run(models))
    assert excluded[0][40:50, 40:50].all()  # compared with the other exposure alone
    assert not excluded[1].any()
    included = _flags(OutlierDetectionStep(good_bits="~DO_NOT_USE").run(models))
    assert included[1].sum() > 50  # half the block landed in the median


def test_recorded_sky_level_is_added_back_to_the_blot():
    exposures = dithered_exposures(3, seed=5)
    for index, exposure in enumerate(exposures):
        level = 20.0 + 3.0 * index  # a different sky in each exposure, not subtracted
        exposure.model.data += level
        exposure.model.meta.background.level = level
        exposure.model.meta.background.subtracted = False
    library = OutlierDetectionStep().run([e.model for e in exposures])
    for exposure, flags in zip(exposures, _flags(library), strict=True):
        assert flags[exposure.cosmic_rays].mean() >= 0.95
        assert flags[~exposure.cosmic_rays].sum() <= 3


def test_without_resampling_uses_the_median_of_the_inputs():
    exposures = dithered_exposures(5, seed=3, dithered=False)  # one pointing, same grid
    library = OutlierDetectionStep(resample_data=False).run([e.model for e in exposures])
    for exposure, flags in zip(exposures, _flags(library), strict=True):
        assert flags[exposure.cosmic_rays].mean() >= 0.95
        assert flags[~exposure.cosmic_rays].mean() < 1e-3
        assert not flags[exposure.star_core].any()


def test_one_input_is_skipped(scene, tmp_path):
    model = scene[0].model
    for given in (model, [model]):
        library = OutlierDetectionStep(save_results=True, output_dir=str(tmp_path)).run(given)
        (member,) = _members(library)
        assert member.meta.cal_step.outlier_detection == "SKIPPED"
        assert not (member.dq & dqflags.OUTLIER).any()
        assert model.meta.cal_step.outlier_detection is None  # the input is untouched
    # still saved as crf (no association id for a bare model)
    assert [p.name for p in tmp_path.iterdir()] == ["jw01234001001_01101_00001_nrca1_crf.fits"]
    orphan = model.copy()  # no group id and no observation keywords
    orphan.meta.group_id = None
    result = OutlierDetectionStep().run(orphan)
    assert result.meta.cal_step.outlier_detection == "SKIPPED"


def _write_association(scene, directory, group_ids=None):
    members = []
    for index, exposure in enumerate(scene):
        model = exposure.model.copy()
        if group_ids is not None:
            model.meta.group_id = group_ids[index]
        name = exposure.model.meta.filename
        model.save(directory / name)
        members.append({"expname": name, "exptype": "science"})
    path = directory / "field_asn.json"
    path.write_text(json.dumps({"asn_id": "o001", "asn_pool": "pool.csv", "asn_type": "image3",
                                "products": [{"name": "field", "members": members}]}))
    return path


def test_crf_products_are_named_with_the_association_id(scene, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asn = _write_association(scene, tmp_path)
    out = tmp_path / "out"
    library = OutlierDetectionStep(save_results=True, output_dir=str(out)).run(str(asn))
    assert library.asn_id == "o001"
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"jw01234001001_01101_{i:05d}_nrca1_o001_crf.fits" for i in range(1, 5)]
    saved = datamodels.open(out / names[0])
    assert saved.meta.cal_step.outlier_detection == "COMPLETE"
    np.testing.assert_array_equal((saved.dq & dqflags.OUTLIER) != 0, _flags(library)[0])


def test_intermediate_products_one_drizzled_image_per_group(scene, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the first two members are two detectors of one exposure: one drizzled group image
    groups = ["exp1", "exp1", "exp2", "exp3"]
    asn = _write_association(scene, tmp_path, groups)
    out = tmp_path / "out"
    OutlierDetectionStep(save_intermediate_results=True, output_dir=str(out)).run(str(asn))
    names = sorted(p.name for p in out.iterdir())
    root = "jw01234001001_01101_{:05d}_nrca1_o001"
    expected = sorted([root.format(i) + "_outlier_i2d.fits" for i in (1, 3, 4)]
                      + [root.format(i) + "_blot.fits" for i in (1, 2, 3, 4)]
                      + [root.format(1) + "_median.fits"])
    assert names == expected  # no crf: save_results is off
    median = datamodels.open(out / (root.format(1) + "_median.fits"))
    drizzled = datamodels.open(out / (root.format(3) + "_outlier_i2d.fits"))
    assert median.data.shape == drizzled.data.shape and drizzled.has_array("wht")
    assert median.meta.wcs is not None
    blot = datamodels.open(out / (root.format(2) + "_blot.fits"))
    assert blot.data.shape == scene[1].model.data.shape
    # the blot of the median reproduces the noiseless scene where it is covered
    inside = np.isfinite(blot.data) & ~scene[1].near_star
    assert inside.mean() > 0.8
    assert np.abs(blot.data[inside] - scene[1].truth[inside]).mean() < 0.1
