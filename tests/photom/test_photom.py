"""photom: PHOTMJSR row selection, time dependence, units, pixel area (stage2.md §4.19)."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.photom import conversion
from calwebb.photom.step import PhotomStep
from image2_models import describe_reference, rate_model

PHOTOM_ROWS = [("F150W", "CLEAR", 0.25), ("F200W", "CLEAR", 0.30), ("F200W", "F162M", 0.9)]


def _photom(tmp_path, time_tables=None):
    table = np.zeros(len(PHOTOM_ROWS), dtype=[("filter", "S12"), ("pupil", "S12"),
                                              ("photmjsr", ">f4"), ("uncertainty", ">f4")])
    for index, row in enumerate(PHOTOM_ROWS):
        table[index] = (*row, 0.01)
    photom = datamodels.NrcImgPhotomModel(phot_table=table, **(time_tables or {}))
    describe_reference(photom, "photom")
    photom.meta.instrument.filter = photom.meta.instrument.pupil = None
    photom.meta.photometry.pixelarea_steradians = 2.3e-14
    photom.meta.photometry.pixelarea_arcsecsq = 0.00096
    return photom.save(tmp_path / "photom.fits")


def _area(tmp_path, shape=(100, 120)):
    area = datamodels.PixelAreaModel(
        data=np.linspace(0.98, 1.02, shape[0] * shape[1]).reshape(shape).astype(np.float32))
    describe_reference(area, "area", shape=shape)
    area.meta.instrument.pupil = None  # serves every pupil
    area.meta.photometry.pixelarea_steradians = 2.25e-14
    area.meta.photometry.pixelarea_arcsecsq = 0.000957
    return area, area.save(tmp_path / "area.fits")


def test_conversion_units_and_keywords(tmp_path):
    rate = rate_model()
    rate.var_flat = np.full(rate.data.shape, 0.02, np.float32)
    area, area_path = _area(tmp_path, shape=rate.data.shape)
    result = PhotomStep.call(rate, override_photom=str(_photom(tmp_path)),
                             override_area=str(area_path))
    np.testing.assert_allclose(result.data, rate.data * 0.3, rtol=1e-6)
    np.testing.assert_allclose(result.err, rate.err * 0.3, rtol=1e-6)
    np.testing.assert_allclose(result.var_poisson, rate.var_poisson * 0.09, rtol=1e-6)
    np.testing.assert_allclose(result.var_flat, 0.02 * 0.09, rtol=1e-6)
    assert result.meta.bunit_data == "MJy/sr" and result.meta.bunit_err == "MJy/sr"
    assert result.meta.photometry.conversion_megajanskys == pytest.approx(0.3)
    assert result.meta.photometry.conversion_microjanskys == pytest.approx(0.3 * 23.50443)
    assert result.meta.photometry.pixelarea_steradians == 2.25e-14  # AREA reference first
    np.testing.assert_array_equal(result.area, area.data)


def test_pupil_selects_the_row_and_area_is_cut_to_the_subarray(tmp_path):
    rate = rate_model(shape=(20, 30), xstart=41, ystart=31)
    rate.meta.instrument.pupil = "F162M"
    area, area_path = _area(tmp_path)
    result = PhotomStep.call(rate, override_photom=str(_photom(tmp_path)),
                             override_area=str(area_path))
    np.testing.assert_allclose(result.data, rate.data * 0.9, rtol=1e-6)
    np.testing.assert_array_equal(result.area, area.data[30:50, 40:70])


def test_no_matching_row_leaves_the_data_unchanged(tmp_path):
    rate = rate_model(filter_name="F444W")
    result = PhotomStep.call(rate, override_photom=str(_photom(tmp_path)), override_area="N/A")
    assert result.meta.cal_step.photom == "SKIPPED"
    np.testing.assert_array_equal(result.data, rate.data)


def test_pixel_area_falls_back_to_the_photom_header(tmp_path):
    result = PhotomStep.call(rate_model(), override_photom=str(_photom(tmp_path)),
                             override_area="N/A")
    assert result.meta.photometry.pixelarea_steradians == 2.3e-14
    assert not result.has_array("area")


def test_time_dependence_divides_the_conversion(tmp_path):
    t0, mjd = 60000.0, 60370.5  # rate_model's EXPMID
    days = mjd - t0

    def table(columns, values):
        out = np.zeros(1, dtype=[("filter", "S12"), ("pupil", "S12")] +
                       [(name, ">f8") for name in columns])
        out[0] = ("F200W", "CLEAR", *values)
        return out

    tables = {
        "timecoeff_linear": table(["t0", "lossperyear"], [t0, 0.02]),
        "timecoeff_exponential": table(["t0", "amplitude", "tau", "const"],
                                       [t0, 0.1, 200.0, 0.9]),
        "timecoeff_powerlaw": table(["t0", "year1value", "tsoft", "alpha"],
                                    [t0, 0.97, 10.0, -0.01]),
    }
    linear = 1 - 0.02 * days / 365
    exponential = 0.1 * np.exp(-days / 200) + 0.9
    power = (days + 10) ** -0.01 / ((365 + 10) ** -0.01 / 0.97)
    expected = 0.3 / (linear * exponential * power)
    rate = rate_model()
    path = _photom(tmp_path, tables)
    result = PhotomStep.call(rate, override_photom=str(path), override_area="N/A")
    assert result.meta.photometry.conversion_megajanskys == pytest.approx(expected, rel=1e-6)
    off = PhotomStep.call(rate, override_photom=str(path), override_area="N/A",
                          apply_time_correction=False)
    assert off.meta.photometry.conversion_megajanskys == pytest.approx(0.3)


def test_miri_falls_back_to_the_generic_subarray_row():
    table = np.zeros(3, dtype=[("filter", "S12"), ("subarray", "S17"), ("photmjsr", ">f4")])
    table[:] = [("F770W", "GENERIC", 0.2), ("F770W", "SUB256", 0.21), ("F560W", "GENERIC", 0.5)]
    generic = conversion.selection("MIRI", "F770W", None, "FULL")
    assert conversion.find_row(table, generic) == 0
    assert conversion.find_row(table, conversion.selection("MIRI", "F770W", None, "SUB256")) == 1
    assert conversion.find_row(table, conversion.selection("MIRI", "F1000W", None, "FULL")) is None


@pytest.mark.compare
def test_matches_the_official_photom(tmp_path, imaging_crds):
    pytest.importorskip("jwst")
    from jwst.photom import PhotomStep as OfficialPhotom

    rate = rate_model(shape=(20, 30), xstart=41, ystart=31)
    _, area_path = _area(tmp_path)
    photom_path = _photom(tmp_path)
    rate_path = rate.save(tmp_path / "jw_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialPhotom.call(str(rate_path), override_photom=str(photom_path),
                                       override_area=str(area_path))
    ours = PhotomStep.call(rate, override_photom=str(photom_path), override_area=str(area_path))
    for name in ("data", "err", "var_poisson", "var_rnoise", "area"):
        np.testing.assert_allclose(getattr(ours, name), getattr(official, name), rtol=1e-6,
                                   err_msg=name)
    for name in ("conversion_megajanskys", "conversion_microjanskys", "pixelarea_steradians",
                 "pixelarea_arcsecsq"):
        assert getattr(ours.meta.photometry, name) == pytest.approx(
            getattr(official.meta.photometry, name), rel=1e-6), name
