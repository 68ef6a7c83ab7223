"""tweakreg on simulated exposures with guiding errors: the introduced shifts and rotations
are recovered (relative alignment to the first exposure, absolute alignment to a catalog)."""

import numpy as np
import pytest
from astropy.table import Table

from calwebb.associations.library import ModelLibrary
from calwebb.errors import ParameterError
from calwebb.tweakreg.step import TweakRegStep

TOLERANCE_MAS = 5.0


def sky_error_mas(wcs, truth_wcs, shape):
    """(east, north) error (mas) of ``wcs`` against the truth on a grid over the image."""
    yy, xx = np.mgrid[10:shape[0] - 10:15j, 10:shape[1] - 10:15j]
    ra, dec = wcs(xx, yy)
    ra_true, dec_true = truth_wcs(xx, yy)
    east = (ra - ra_true) * np.cos(np.radians(dec_true)) * 3.6e6
    return east, (dec - dec_true) * 3.6e6


@pytest.fixture
def jittered(stage3_observation):
    return (stage3_observation.cals, stage3_observation.true_wcs,
            stage3_observation.observation)


def cal_models(jittered):
    cals, _, _ = jittered
    return [model.copy() for model in cals]


def test_the_simulated_headers_are_off_by_the_guiding_error(jittered):
    cals, truths, _ = jittered
    errors = [np.hypot(*sky_error_mas(m.meta.wcs, t, m.data.shape)).max()
              for m, t in zip(cals, truths, strict=True)]
    assert max(errors) > 50.0  # much larger than what alignment must reach


def test_relative_alignment_recovers_shifts_and_rotations(jittered):
    cals, truths, _ = jittered
    result = TweakRegStep.call(cal_models(jittered))
    with result:
        models = [result.borrow(i) for i in range(len(result))]
        reference = sky_error_mas(models[0].meta.wcs, truths[0], models[0].data.shape)
        for model, truth in zip(models[1:], truths[1:], strict=True):
            east, north = sky_error_mas(model.meta.wcs, truth, model.data.shape)
            # every exposure now shares the reference exposure's pointing error
            assert np.hypot(east - reference[0], north - reference[1]).max() < TOLERANCE_MAS
        for index, model in enumerate(models):
            assert model.meta.cal_step.tweakreg == "COMPLETE"
            assert "v2v3corr" in model.meta.wcs.available_frames or index == 0
            result.shelve(model, index, modify=False)
    # the caller's models are untouched
    assert cals[1].meta.cal_step.tweakreg is None


def test_absolute_alignment_to_a_reference_catalog(jittered, tmp_path):
    cals, truths, observation = jittered
    truth = Table.read(observation.truth_catalog)
    truth = truth[truth["kind"] == "star"]  # as an astrometric catalog (Gaia) would be
    refcat = tmp_path / "refcat.ecsv"
    Table({"RA": truth["ra"], "DEC": truth["dec"]}).write(refcat)
    result = TweakRegStep.call(cal_models(jittered), abs_refcat=str(refcat), abs_minobj=10)
    with result:
        for index, truth_wcs in enumerate(truths):
            model = result.borrow(index)
            east, north = sky_error_mas(model.meta.wcs, truth_wcs, model.data.shape)
            assert np.hypot(east, north).max() < TOLERANCE_MAS
            assert model.meta.wcsinfo.s_region.startswith("POLYGON ICRS")
            result.shelve(model, index, modify=False)


def test_one_exposure_without_reference_catalog_is_skipped(jittered):
    result = TweakRegStep.call(cal_models(jittered)[:1])
    with result:
        model = result.borrow(0)
        assert model.meta.cal_step.tweakreg == "SKIPPED"
        result.shelve(model, 0, modify=False)


def test_saved_catalogs_and_custom_catalogs(jittered, tmp_path):
    models = cal_models(jittered)
    result = TweakRegStep.call(models, save_catalogs=True, output_dir=str(tmp_path))
    names = [m.meta.filename.replace(".fits", "_cat.ecsv") for m in models]
    for name in names:
        table = Table.read(tmp_path / name)
        assert {"x", "y"} <= set(table.colnames) and len(table) > 20
    catfile = tmp_path / "catfile.txt"
    catfile.write_text("# image catalog\n" + "".join(
        f"{m.meta.filename} {name}\n" for m, name in zip(models, names, strict=True)))
    again = TweakRegStep.call(models, use_custom_catalogs=True, catfile=str(catfile))
    with result, again:
        for index in range(len(models)):
            a, b = result.borrow(index), again.borrow(index)
            ra_a, _ = a.meta.wcs(100.0, 100.0)
            ra_b, _ = b.meta.wcs(100.0, 100.0)
            assert ra_a == pytest.approx(ra_b, abs=1e-9)
            result.shelve(a, index, modify=False)
            again.shelve(b, index, modify=False)


def test_on_disk_library_gives_the_same_solution(jittered, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    in_memory = TweakRegStep.call(cal_models(jittered))
    on_disk = TweakRegStep.call(ModelLibrary(cal_models(jittered), on_disk=True))
    with in_memory, on_disk:
        for index in range(len(in_memory)):
            a, b = in_memory.borrow(index), on_disk.borrow(index)
            np.testing.assert_allclose(a.meta.wcs(50.0, 60.0), b.meta.wcs(50.0, 60.0),
                                       rtol=0, atol=1e-10)
            in_memory.shelve(a, index, modify=False)
            on_disk.shelve(b, index, modify=False)


def test_bad_parameters_are_clear(jittered):
    with pytest.raises(ParameterError, match="separation"):
        TweakRegStep.call(cal_models(jittered), separation=0.5, tolerance=0.7)
    with pytest.raises(ParameterError, match="abs_separation"):
        TweakRegStep.call(cal_models(jittered), abs_refcat="x.ecsv", abs_separation=0.1)
