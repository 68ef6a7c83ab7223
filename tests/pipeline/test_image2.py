"""calwebb_image2 on simulated imaging: surface brightness, star fluxes and flux conservation
against the simulator's truth, and agreement with the official pipeline."""

import json
import logging
import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from calwebb import datamodels
from calwebb.pipeline.image2 import Image2Pipeline
from calwebb.simulate.optics import ExposureGeometry

MJY_TO_UJY = 1e12


@pytest.fixture
def products(imaging_crds, tmp_path):
    """cal (returned) and i2d (saved) of the noiseless truth rate of the second dither."""
    cal = Image2Pipeline.call(str(imaging_crds.truth_rates[1]), save_results=True,
                              output_dir=str(tmp_path))
    i2d = datamodels.open(next(tmp_path.glob("*_i2d.fits")))
    return cal, i2d


def _isolated_bright_stars(catalog, x, y, shape, margin=10, isolation=14, min_flux=20):
    stars = []
    for index, row in enumerate(catalog):
        if row["kind"] != "star" or row["flux_ujy"] < min_flux:
            continue
        if not (margin < x[index] < shape[1] - margin and margin < y[index] < shape[0] - margin):
            continue
        others = np.hypot(x - x[index], y - y[index])
        others[index] = np.inf
        if others.min() > isolation:
            stars.append(index)
    return stars


def _aperture_sum(image, weight, x, y, radius=5.0, annulus=(8.0, 11.0)):
    """Σ (image − local background)·weight inside ``radius`` around (x, y)."""
    yy, xx = np.indices(image.shape)
    distance = np.hypot(xx - x, yy - y)
    inside = distance <= radius
    ring = (distance >= annulus[0]) & (distance <= annulus[1]) & np.isfinite(image)
    background = np.median(image[ring])
    values = (image - background) * weight
    assert np.isfinite(values[inside]).all()
    return float(values[inside].sum())


def test_cal_is_the_true_surface_brightness_and_star_fluxes(products, imaging_crds):
    cal, _ = products
    assert cal.meta.bunit_data == "MJy/sr"
    assert {cal.meta.cal_step.assign_wcs, cal.meta.cal_step.flat_field,
            cal.meta.cal_step.photom} == {"COMPLETE"}
    catalog = Table.read(imaging_crds.truth_catalog)
    x, y = ExposureGeometry.from_model(cal).pixel(catalog["ra"], catalog["dec"])
    stars = _isolated_bright_stars(catalog, x, y, cal.data.shape)
    assert len(stars) >= 3
    pixel_sr = cal.meta.photometry.pixelarea_steradians * cal.area
    for index in stars:
        flux = _aperture_sum(cal.data, pixel_sr, x[index], y[index]) * MJY_TO_UJY
        assert flux == pytest.approx(catalog["flux_ujy"][index], rel=0.01)


@pytest.mark.parametrize("instrument, detector, filter_name, readpatt, subarray, science", [
    ("NIRCAM", "NRCA1", "F200W", "RAPID", "SUB64P", np.s_[4:, 4:]),
    ("MIRI", "MIRIMAGE", "F770W", "FASTR1", "SUB64", np.s_[:, 4:-4]),
    ("NIRISS", "NIS", "F150W", "NISRAPID", "SUB64", np.s_[4:, 4:]),  # CLEAR + F150W
    ("NIRISS", "NIS", "F277W", "NISRAPID", "SUB64", np.s_[4:, 4:]),  # F277W + CLEARP
])
def test_a_uniform_sky_is_uniform_in_cal(tmp_path, monkeypatch, instrument, detector,
                                         filter_name, readpatt, subarray, science):
    """Flat (response × pixel area), area and photom together return the true 0.15 MJy/sr."""
    from calwebb import references
    from calwebb.simulate import ObservationConfig, simulate_observation

    observation = simulate_observation(ObservationConfig(
        instrument=instrument, detectors=(detector,), filter=filter_name, readpatt=readpatt,
        subarray=subarray, ngroups=3, n_dithers=1, n_stars=0, n_galaxies=0,
        cosmic_ray_rate=0.0, background_mjy_sr=0.15), tmp_path / "sky")
    monkeypatch.setenv("CRDS_PATH", str(observation.crds_path))
    references.forget_crds_state()
    cal = Image2Pipeline.call(str(observation.truth_rates[0]),
                              steps={"resample": {"skip": True}})
    science = cal.data[science]  # reference pixels excluded
    finite = np.isfinite(science)
    assert finite.mean() > 0.99
    np.testing.assert_allclose(science[finite], 0.15, rtol=1e-5)
    references.forget_crds_state()


def test_i2d_star_fluxes_and_total_flux(products, imaging_crds):
    cal, i2d = products
    assert i2d.meta.cal_step.resample == "COMPLETE" and i2d.con.ndim == 3
    catalog = Table.read(imaging_crds.truth_catalog)
    x, y = i2d.meta.wcs.invert(catalog["ra"], catalog["dec"])
    x, y = np.nan_to_num(x, nan=-99), np.nan_to_num(y, nan=-99)
    stars = _isolated_bright_stars(catalog, x, y, i2d.data.shape, margin=14)
    assert len(stars) >= 3
    pixel_sr = i2d.meta.photometry.pixelarea_steradians
    for index in stars:
        flux = _aperture_sum(i2d.data, pixel_sr, x[index], y[index]) * MJY_TO_UJY
        assert flux == pytest.approx(catalog["flux_ujy"][index], rel=0.01)
    # the truth rate has no VAR_RNOISE, so every input pixel weighs 1 and WHT is the fraction
    # of each output pixel the inputs cover (edge pixels are partly covered)
    flux_in = np.nansum(cal.data * cal.meta.photometry.pixelarea_steradians * cal.area)
    flux_out = np.nansum(i2d.data * pixel_sr * i2d.wht)
    assert flux_out == pytest.approx(flux_in, rel=0.005)


def test_association_products_are_named_after_the_product(imaging_crds, tmp_path):
    rate = tmp_path / "jw_a_rate.fits"
    datamodels.open(imaging_crds.truth_rates[0]).save(rate)
    asn = {"asn_id": "o001", "asn_pool": "pool", "asn_type": "image2", "asn_rule": "x",
           "products": [{"name": "jw_product", "members": [
               {"expname": rate.name, "exptype": "science"}]}]}
    path = tmp_path / "image2_asn.json"
    path.write_text(json.dumps(asn))
    result = Image2Pipeline.call(str(path), save_results=True, output_dir=str(tmp_path),
                                 steps={"resample": {"skip": True}})
    assert (tmp_path / "jw_product_cal.fits").exists()
    assert result.meta.asn.table_name == "image2_asn.json"


def test_rateints_give_calints_without_i2d(imaging_crds, tmp_path):
    rate = datamodels.open(imaging_crds.truth_rates[0])
    cube = datamodels.CubeModel(data=np.stack([rate.data, rate.data]))
    cube.tree["meta"].update(rate.tree["meta"])
    cube.meta.filename = "jw_cube_rateints.fits"
    result = Image2Pipeline.call(cube, save_results=True, output_dir=str(tmp_path))
    assert result.data.ndim == 3 and (tmp_path / "jw_cube_calints.fits").exists()
    assert not list(tmp_path.glob("*_i2d.fits"))


@pytest.mark.compare
def test_cal_matches_the_official_pipeline_and_official_reads_our_products(
        imaging_crds, tmp_path):
    pytest.importorskip("jwst")
    from jwst.pipeline import Image2Pipeline as OfficialImage2
    from stdatamodels.jwst import datamodels as official_models

    def ref(kind):
        return str(next(p for p in imaging_crds.reference_files if f"_{kind}_" in p.name))

    steps = {"assign_wcs": {"override_distortion": ref("distortion"),
                            "override_filteroffset": ref("filteroffset")},
             "flat_field": {"override_flat": ref("flat")},
             "photom": {"override_photom": ref("photom"), "override_area": ref("area")},
             "resample": {"skip": True}}
    rate = datamodels.open(imaging_crds.truth_rates[1])  # + the arrays a real rate carries
    rate.var_poisson = np.abs(rate.data) * 0.02
    rate.var_rnoise = np.full(rate.data.shape, 0.003, np.float32)
    rate.err = np.sqrt(rate.var_poisson + rate.var_rnoise)
    rate.dq = np.zeros(rate.data.shape, np.uint32)
    rate_path = rate.save(tmp_path / "jw01234001001_03101_00002_nrca1_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialImage2.call(str(rate_path), steps=steps)[0]
    cal = Image2Pipeline.call(str(rate_path), save_results=True, output_dir=str(tmp_path))
    i2d = datamodels.open(tmp_path / "jw01234001001_03101_00002_nrca1_i2d.fits")
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat", "area"):
        ours, theirs = getattr(cal, name), getattr(official, name)
        finite = np.isfinite(theirs)
        np.testing.assert_array_equal(np.isfinite(ours), finite, err_msg=name)
        np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-5, atol=0,
                                   err_msg=name)
    np.testing.assert_array_equal(cal.dq, official.dq)
    for key in ("pool_name", "table_name"):  # a lone exposure: 'singleton'
        assert getattr(cal.meta.asn, key) == getattr(official.meta.asn, key) == "singleton"
    for reftype in ("camera", "specwcs", "wavelengthrange", "ifuslicer", "dflat", "sflat"):
        # every type the official steps declare is recorded (N/A for imaging)
        ours_name = getattr(cal.meta.ref_file, reftype).name
        assert ours_name == getattr(official.meta.ref_file, reftype).name == "N/A", reftype
    official_path = tmp_path / "official_cal.fits"
    official.save(official_path)
    with fits.open(official_path) as theirs, \
            fits.open(tmp_path / "jw01234001001_03101_00002_nrca1_cal.fits") as ours:
        assert [hdu.name for hdu in ours] == [hdu.name for hdu in theirs]  # AREA before VAR_*
    for model in (cal, i2d):
        path = model.save(tmp_path / f"ours_{model.meta.model_type}_{id(model)}.fits")
        opened = official_models.open(path)
        ra, dec = opened.meta.wcs(10.0, 20.0)
        np.testing.assert_allclose((ra, dec), model.meta.wcs(10.0, 20.0), atol=1e-10)


@pytest.mark.compare
def test_i2d_has_the_official_hdus_and_header_keywords(imaging_crds, tmp_path):
    """Apart from CAL_VCS (the official pipeline's own revision; calwebb sets none) and the
    blank separator cards stdatamodels adds."""
    pytest.importorskip("jwst")
    from jwst.pipeline import Image2Pipeline as OfficialImage2

    rate = datamodels.open(imaging_crds.truth_rates[0])
    rate.err = np.ones_like(rate.data)
    rate.var_poisson = rate.var_rnoise = np.full(rate.data.shape, 0.01, np.float32)
    rate.dq = np.zeros(rate.data.shape, np.uint32)
    rate_path = rate.save(tmp_path / "jw01234001001_03101_00001_nrca1_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        OfficialImage2.call(str(rate_path), save_results=True, output_dir=str(tmp_path / "o"))
    Image2Pipeline.call(str(rate_path), save_results=True, output_dir=str(tmp_path / "c"))
    name = "jw01234001001_03101_00001_nrca1_i2d.fits"
    with fits.open(tmp_path / "o" / name) as theirs, fits.open(tmp_path / "c" / name) as ours:
        assert [hdu.name for hdu in ours] == [hdu.name for hdu in theirs]
        for hdu in ("PRIMARY", "SCI"):
            assert set(ours[hdu].header) - {""} == set(theirs[hdu].header) - {"CAL_VCS", ""}, \
                hdu


def test_background_subtracted_image_is_saved_and_named_as_officially(imaging_crds, tmp_path,
                                                                         caplog):
    """The background step's result is saved with suffix bsub (save_bsub, deprecated but
    still in parameter files, warns and does the same), named as the official pipeline names
    it: after the association file alone, after the product when the pipeline saves too. A
    skipped resample writes no i2d."""
    science, background = tmp_path / "jw_sci_rate.fits", tmp_path / "jw_bkg_rate.fits"
    datamodels.open(imaging_crds.truth_rates[0]).save(science)
    datamodels.open(imaging_crds.truth_rates[1]).save(background)
    asn = {"asn_id": "o001", "asn_pool": "pool", "asn_type": "image2", "asn_rule": "x",
           "products": [{"name": "jw_sci", "members": [
               {"expname": science.name, "exptype": "science"},
               {"expname": background.name, "exptype": "background"}]}]}
    path = tmp_path / "image2_asn.json"
    path.write_text(json.dumps(asn))
    runs = {"bsub": ({"save_bsub": True}, {}),
            "step": ({}, {"save_results": True}),
            "both": ({"save_results": True}, {"save_results": True})}
    saved = {}
    for name, (pipeline, step) in runs.items():
        out = tmp_path / name
        with caplog.at_level(logging.WARNING):
            Image2Pipeline.call(str(path), output_dir=str(out), **pipeline,
                                steps={"resample": {"skip": True}, "bkg_subtract": step})
        saved[name] = sorted(item.name for item in out.iterdir())
    assert "save_bsub is deprecated" in caplog.text
    assert saved == {"bsub": ["image2_asn_bsub.fits"], "step": ["image2_asn_bsub.fits"],
                     "both": ["jw_sci_bsub.fits", "jw_sci_cal.fits"]}
    cal = datamodels.open(tmp_path / "both" / "jw_sci_cal.fits")
    assert cal.meta.cal_step.resample == "SKIPPED"  # as the official cal says
    assert cal.meta.asn.pool_name == "pool" and cal.meta.asn.table_name == "image2_asn.json"
