"""APCORR / ABVEGAOFFSET row selection (stage3.md §2.7 step 1)."""

import numpy as np
import pytest
from astropy.table import Table

from calwebb.errors import ParameterError, ReferenceFileError
from calwebb.source_catalog import reference_data as rd

DTYPE = [("filter", "S12"), ("pupil", "S12"), ("subarray", "S12"), ("eefraction", "f4"),
         ("radius", "f4"), ("apcorr", "f4"), ("skyin", "f4"), ("skyout", "f4")]


def _table(rows):
    return np.array(rows, dtype=DTYPE)


def _apcorr():
    rows = []
    for ee in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        rows.append(("F200W", "CLEAR", "FULL", ee, 10 * ee, 1 / ee, 8.0, 12.0))
        rows.append(("F200W", "F162M", "FULL", ee, 20 * ee, 2 / ee, 9.0, 13.0))
        rows.append(("F560W", "N/A", "SUB64", ee, 30 * ee, 3 / ee, 6.0, 9.0))
    return _table(rows)


def test_nircam_rows_chosen_by_filter_and_pupil():
    selector = rd.apcorr_selector("NIRCAM", "F200W", "F162M", "FULL")
    params = rd.aperture_params_from_apcorr(_apcorr(), (30, 50, 70), selector)
    assert params.aperture_ee == (30, 50, 70)
    np.testing.assert_allclose(params.radii, (6.0, 10.0, 14.0), rtol=1e-6)
    np.testing.assert_allclose(params.corrections, (2 / 0.3, 4.0, 2 / 0.7), rtol=1e-6)
    assert (params.bkg_inner_radius, params.bkg_outer_radius) == (9.0, 13.0)


def test_miri_rows_chosen_by_filter_and_subarray_and_scaled_by_pixel_ratio():
    selector = rd.apcorr_selector("MIRI", "F560W", None, "SUB64")
    assert selector == {"filter": "F560W", "subarray": "SUB64"}
    params = rd.aperture_params_from_apcorr(_apcorr(), (20, 40, 80), selector,
                                            pixel_scale_ratio=0.5)
    # output pixels half the native size: every radius doubles
    np.testing.assert_allclose(params.radii, (12.0, 24.0, 48.0), rtol=1e-6)
    assert (params.bkg_inner_radius, params.bkg_outer_radius) == (12.0, 18.0)
    meta = params.as_meta()
    assert list(meta) == ["aperture_ee", "aperture_radii", "aperture_corrections",
                          "bkg_aperture_inner_radius", "bkg_aperture_outer_radius"]
    np.testing.assert_array_equal(meta["aperture_ee"], [20, 40, 80])


def test_fgs_uses_every_row():
    table = _table([("ANY", "ANY", "FULL", ee, ee * 10, 1.0, 5.0, 7.0) for ee in (0.3, 0.5, 0.7)])
    assert rd.apcorr_selector("FGS", None, None, None) is None
    params = rd.aperture_params_from_apcorr(table, (30, 50, 70), None)
    np.testing.assert_allclose(params.radii, (3.0, 5.0, 7.0), rtol=1e-6)


@pytest.mark.parametrize("ee", [(50, 30, 70), (30, 30, 70), (0, 50, 70), (30, 50, 100),
                                (30, 50)])
def test_bad_aperture_ee_is_a_parameter_error(ee):
    with pytest.raises(ParameterError, match="aperture_ee"):
        rd.validate_aperture_ee(ee)


def test_ee_missing_from_the_table_is_a_parameter_error():
    selector = rd.apcorr_selector("NIRCAM", "F200W", "CLEAR", "FULL")
    with pytest.raises(ParameterError, match="35%"):
        rd.aperture_params_from_apcorr(_apcorr(), (30, 35, 70), selector)


def test_no_rows_for_the_mode_or_two_annuli_are_reference_errors():
    with pytest.raises(ReferenceFileError, match="F444W"):
        rd.aperture_params_from_apcorr(
            _apcorr(), (30, 50, 70), rd.apcorr_selector("NIRCAM", "F444W", "CLEAR", "FULL"))
    table = _apcorr()
    table["skyin"][table["eefraction"] > 0.65] = 99.0
    with pytest.raises(ReferenceFileError, match="SKYIN"):
        rd.aperture_params_from_apcorr(
            table, (30, 50, 70), rd.apcorr_selector("NIRCAM", "F200W", "CLEAR", "FULL"))


def test_abvega_offset_selection_per_instrument():
    table = Table({"filter": ["F200W", "F200W", "F560W"], "pupil": ["CLEAR", "F162M", "N/A"],
                   "abvega_offset": [1.5, 1.7, 4.1]})
    selector = rd.abvega_selector("NIRISS", "F200W", "F162M", "NIS")
    assert rd.abvega_offset_from_table(table, selector) == pytest.approx(1.7)
    assert rd.abvega_offset_from_table(table, rd.abvega_selector("MIRI", "F560W", None, None)) \
        == pytest.approx(4.1)
    fgs = Table({"detector": ["GUIDER1", "GUIDER2"], "abvega_offset": [0.3, 0.4]})
    assert rd.abvega_offset_from_table(fgs, rd.abvega_selector("FGS", None, None, "GUIDER2")) \
        == pytest.approx(0.4)
    with pytest.raises(ReferenceFileError, match="2 rows"):  # MIRI selects by filter only
        rd.abvega_offset_from_table(table, rd.abvega_selector("MIRI", "F200W", None, None))
    with pytest.raises(ReferenceFileError, match="no row"):
        rd.abvega_offset_from_table(table, rd.abvega_selector("NIRCAM", "F090W", "CLEAR", None))


def test_defaults_without_apcorr():
    params = rd.default_aperture_params()
    assert params.radii == (1.0, 2.0, 3.0)
    assert params.corrections == (1.0, 1.0, 1.0)
    assert (params.bkg_inner_radius, params.bkg_outer_radius) == (5.0, 10.0)
    assert params.aperture_ee == (1, 2, 3)
