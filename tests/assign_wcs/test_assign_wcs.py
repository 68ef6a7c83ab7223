"""assign_wcs on simulated imaging: the gwcs reproduces the simulator's true geometry."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from calwebb import datamodels
from calwebb.assign_wcs import imaging
from calwebb.assign_wcs.step import AssignWcsStep
from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.simulate.optics import FILTER_OFFSETS, ExposureGeometry

MAS_PER_DEG = 3.6e6


def _separation_mas(ra1, dec1, ra2, dec2):
    return np.hypot((ra1 - ra2) * np.cos(np.radians(dec2)), dec1 - dec2) * MAS_PER_DEG


def _reference(observation, reftype):
    return str(next(p for p in observation.reference_files if f"_{reftype}_" in p.name))


@pytest.fixture
def rate(imaging_crds):
    return datamodels.open(imaging_crds.truth_rates[1])


def test_every_star_maps_to_its_true_position(rate, imaging_crds):
    model = AssignWcsStep.call(rate)
    assert model.meta.cal_step.assign_wcs == "COMPLETE"
    catalog = Table.read(imaging_crds.truth_catalog)
    truth = ExposureGeometry.from_model(rate)
    x, y = truth.pixel(catalog["ra"], catalog["dec"])
    inside = (x > -0.5) & (x < 159.5) & (y > -0.5) & (y < 159.5)
    assert inside.sum() >= 10
    ra, dec = model.meta.wcs(x[inside], y[inside])
    assert _separation_mas(ra, dec, catalog["ra"][inside], catalog["dec"][inside]).max() < 1.0
    back_x, back_y = model.meta.wcs.invert(catalog["ra"][inside], catalog["dec"][inside])
    np.testing.assert_allclose(back_x, x[inside], atol=1e-3)  # 1e-3 pixel = 0.03 mas
    np.testing.assert_allclose(back_y, y[inside], atol=1e-3)
    assert rate.meta.wcs is None  # the input is not modified


def test_frames_and_stored_wcs_round_trip(rate, tmp_path):
    model = AssignWcsStep.call(rate)
    assert model.meta.wcs.available_frames == ["detector", "v2v3", "v2v3vacorr", "world"]
    column, row = FILTER_OFFSETS[rate.meta.instrument.filter]
    # the reference pixel is 1-based full frame (the subarray starts at 1, 1); the filter
    # offset moves where it falls on the detector
    v2, v3 = model.meta.wcs.get_transform("detector", "v2v3")(
        rate.meta.wcsinfo.siaf_xref_sci - 1 - column, rate.meta.wcsinfo.siaf_yref_sci - 1 - row)
    np.testing.assert_allclose([v2, v3], [rate.meta.wcsinfo.v2_ref, rate.meta.wcsinfo.v3_ref],
                               atol=1e-6)
    path = model.save(tmp_path / "x_cal.fits")
    again = datamodels.open(path)
    y, x = np.mgrid[0:160:31, 0:160:29]
    np.testing.assert_allclose(again.meta.wcs(x, y), model.meta.wcs(x, y), rtol=0, atol=1e-12)


def test_sip_header_approximates_the_wcs_and_footprint_is_written(rate, tmp_path):
    model = AssignWcsStep.call(rate)
    path = model.save(tmp_path / "x_cal.fits")
    header = fits.getheader(path, "SCI")
    assert header["CTYPE1"] == "RA---TAN-SIP" and header["A_ORDER"] >= 2
    y, x = np.mgrid[0:160:9, 0:160:11].astype(float)
    ra, dec = WCS(header).all_pix2world(x, y, 0)
    ra_true, dec_true = ExposureGeometry.from_model(rate).sky(x, y)
    assert _separation_mas(ra, dec, ra_true, dec_true).max() < 0.01 * 31  # 0.01 pixel
    region = header["S_REGION"].split()
    assert region[:2] == ["POLYGON", "ICRS"] and len(region) == 10
    corners = np.array(region[2:], float).reshape(4, 2)
    ra_corner, dec_corner = ExposureGeometry.from_model(rate).sky(-0.5, -0.5)
    assert _separation_mas(corners[:, 0], corners[:, 1], ra_corner, dec_corner).min() < 1


def test_subarray_offset_and_filter_offset_compose():
    distortion = __import__("astropy.modeling.models", fromlist=["Shift"])
    shift = distortion.Shift(0.0) & distortion.Shift(0.0)
    shift.bounding_box = ((-0.5, 2047.5), (-0.5, 2047.5))
    model = imaging.detector_to_v2v3(shift, (64, 64), 101, 201, (0.25, -0.5), "test")
    np.testing.assert_allclose(model(0.0, 0.0), (100.25, 199.5))


def test_non_square_detectors_keep_x_and_y_apart():
    """MIRI's 1032 columns by 1024 rows: the simulated distortion reference and the WCS bound
    x by the columns and y by the rows (astropy models take bounding boxes in reverse input
    order unless told otherwise)."""
    from calwebb.simulate.instruments import detector
    from calwebb.simulate.optics import Distortion, Pointing

    distortion = Distortion.of(detector("MIRIMAGE")).astropy_model()
    full = ((-0.5, 1031.5), (-0.5, 1023.5))
    assert distortion.bounding_box.bounding_box(order="F") == full
    to_v2v3 = imaging.detector_to_v2v3(distortion, (1024, 1032), 1, 1, (0.0, 0.0), "miri")
    wcs = imaging.imaging_wcs(to_v2v3, Pointing(10.0, 20.0, 0.0, -453.4, -373.8),
                              (1024, 1032))
    assert wcs.get_transform("detector", "v2v3").bounding_box.bounding_box(order="F") == full
    assert wcs.bounding_box.bounding_box(order="F") == full
    assert np.isfinite(wcs(1031.0, 1023.0)).all()


def test_missing_pointing_keywords_are_named(rate):
    rate.meta.wcsinfo.ra_ref = None
    rate.meta.wcsinfo.roll_ref = None
    with pytest.raises(DataModelError, match="RA_REF, ROLL_REF"):
        AssignWcsStep.call(rate)


def test_distortion_that_does_not_cover_the_data_is_refused(rate, imaging_crds, tmp_path):
    distortion = datamodels.DistortionModel(_reference(imaging_crds, "distortion"))
    distortion.transform.bounding_box = ((-0.5, 99.5), (-0.5, 99.5))
    path = distortion.save(tmp_path / "small_distortion.asdf")
    with pytest.raises(ReferenceFileError, match="covers detector pixels"):
        AssignWcsStep.call(rate, override_distortion=str(path))


def test_non_imaging_modes_are_skipped(rate):
    rate.meta.exposure.type = "NRS_FIXEDSLIT"
    assert AssignWcsStep.call(rate).meta.cal_step.assign_wcs == "SKIPPED"


@pytest.mark.compare
def test_official_assign_wcs_agrees_and_reads_our_product(rate, imaging_crds, tmp_path):
    pytest.importorskip("jwst")
    from jwst.assign_wcs import AssignWcsStep as OfficialAssignWcs
    from stdatamodels.jwst import datamodels as official_models

    rate_path = rate.save(tmp_path / "jw_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialAssignWcs.call(
            str(rate_path), override_distortion=_reference(imaging_crds, "distortion"),
            override_filteroffset=_reference(imaging_crds, "filteroffset"))
    ours = AssignWcsStep.call(rate)
    y, x = np.mgrid[0:160:13, 0:160:17].astype(float)
    ra_official, dec_official = official.meta.wcs(x, y)
    ra, dec = ours.meta.wcs(x, y)
    assert _separation_mas(ra, dec, ra_official, dec_official).max() < 1e-3
    opened = official_models.open(ours.save(tmp_path / "jw_cal.fits"))
    assert _separation_mas(*opened.meta.wcs(x, y), ra, dec).max() < 1e-6


@pytest.mark.compare
def test_full_frame_sip_header_equals_the_official_one(rate, imaging_crds, tmp_path):
    """The same SIP orders, CRPIX and coefficients. (On a subarray at the detector's origin
    the official pipeline keeps the distortion reference's full-frame bounding box, so its
    SIP is fitted over 2048 x 2048 pixels, with higher orders; calwebb fits the subarray.)"""
    pytest.importorskip("jwst")
    from jwst.assign_wcs import AssignWcsStep as OfficialAssignWcs

    full = rate.metadata_copy()
    full.data = np.zeros((2048, 2048), np.float32)
    subarray = full.meta.subarray
    subarray.name, subarray.xsize, subarray.ysize = "FULL", 2048, 2048
    overrides = {"override_distortion": _reference(imaging_crds, "distortion"),
                 "override_filteroffset": _reference(imaging_crds, "filteroffset")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialAssignWcs.call(str(full.save(tmp_path / "jw_full_rate.fits")),
                                          **overrides)
    ours = AssignWcsStep.call(full, **overrides)
    theirs = {key: value for key, value in official.meta.wcsinfo.instance.items()
              if key.startswith(("a_", "b_", "ap_", "bp_", "crpix", "cd", "pc"))}
    assert theirs["a_order"] > 2
    for key, value in theirs.items():
        np.testing.assert_allclose(getattr(ours.meta.wcsinfo, key), value, rtol=1e-6,
                                   atol=1e-14, err_msg=key)
