"""SourceCatalogStep on synthetic i2d mosaics with known truth (stage3.md §2.7)."""

import io
import logging
import math
import warnings

import asdf
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import QTable
from catalog_scenes import (
    ABVEGA_OFFSET,
    JY_PER_MJYSR,
    NOISE,
    PSF_SIGMA,
    SKY,
    SKY_IN,
    SKY_OUT,
    gaussian_pixels,
    mosaic,
    optimal_snr,
    radius_for,
    reference_files,
    star_field,
    star_positions,
)
from scipy.spatial import cKDTree

from calwebb import references
from calwebb.errors import ParameterError, ReferenceFileError
from calwebb.source_catalog import catalog as catalogs
from calwebb.source_catalog.step import SourceCatalogStep

PRODUCT = "jw01234-o001_t001_nircam_clear-f200w"
SEGMENT_ONLY = ("isophotal_flux", "isophotal_flux_err", "isophotal_abmag",
                "isophotal_abmag_err", "isophotal_vegamag", "isophotal_vegamag_err",
                "isophotal_area", "semimajor_sigma", "semiminor_sigma", "ellipticity",
                "orientation", "sky_orientation")
EXPECTED_COLUMNS = (
    "label, xcentroid, ycentroid, sky_centroid, aper_bkg_flux, aper_bkg_flux_err, aper30_flux, "
    "aper30_flux_err, aper50_flux, aper50_flux_err, aper70_flux, aper70_flux_err, "
    "aper_total_flux, aper_total_flux_err, aper30_abmag, aper30_abmag_err, aper50_abmag, "
    "aper50_abmag_err, aper70_abmag, aper70_abmag_err, aper_total_abmag, aper_total_abmag_err, "
    "aper30_vegamag, aper30_vegamag_err, aper50_vegamag, aper50_vegamag_err, aper70_vegamag, "
    "aper70_vegamag_err, aper_total_vegamag, aper_total_vegamag_err, CI_50_30, CI_70_50, "
    "CI_70_30, is_extended, sharpness, roundness, nn_label, nn_dist, isophotal_flux, "
    "isophotal_flux_err, isophotal_abmag, isophotal_abmag_err, isophotal_vegamag, "
    "isophotal_vegamag_err, isophotal_area, semimajor_sigma, semiminor_sigma, ellipticity, "
    "orientation, sky_orientation, sky_bbox_ll, sky_bbox_ul, sky_bbox_lr, sky_bbox_ur"
).split(", ")


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return reference_files(tmp_path_factory.mktemp("refs"))


@pytest.fixture(scope="module")
def stars():
    return star_field()


@pytest.fixture(scope="module")
def star_run(stars, refs, tmp_path_factory):
    """The step run on the star field with products saved; the input model is kept."""
    model, truth = stars
    model = model.copy()
    output = tmp_path_factory.mktemp("products")
    step = SourceCatalogStep(output_dir=str(output), output_file=PRODUCT, **refs)
    step.save_results = True
    table = step.process(model)
    return model, truth, table, output


def _match(table, truth):
    """For each true star: (index of the nearest catalog source, distance in px)."""
    tree = cKDTree(np.column_stack([table["xcentroid"], table["ycentroid"]]))
    distance, index = tree.query(np.column_stack([truth["x"], truth["y"]]))
    return index, distance


# -- photometry and astrometry against the truth -------------------------------------------------
def test_every_star_found_at_its_position(star_run):
    _, truth, table, _ = star_run
    index, distance = _match(table, truth)
    assert len(table) == len(truth)
    assert len(set(index.tolist())) == len(truth)
    assert distance.max() < 0.1
    bright = optimal_snr(truth["flux"]) >= 1000
    assert bright.sum() >= 5
    assert distance[bright].max() < 0.02
    np.testing.assert_array_equal(table["label"], np.arange(1, len(table) + 1))


def test_total_flux_magnitudes_and_background(star_run):
    _, truth, table, _ = star_run
    index, _ = _match(table, truth)
    rows = table[index]
    bright = optimal_snr(truth["flux"]) >= 250
    ratio = rows["aper_total_flux"].to_value("Jy") / truth["flux"]
    np.testing.assert_allclose(ratio[bright], 1.0, atol=0.02)
    # total = APCORR(70 %) × the 70 % aperture flux, same factor on the error
    np.testing.assert_allclose(rows["aper_total_flux"], rows["aper70_flux"] / 0.7, rtol=1e-6)
    np.testing.assert_allclose(rows["aper_total_flux_err"], rows["aper70_flux_err"] / 0.7,
                               rtol=1e-6)
    for prefix in ("aper30", "aper50", "aper70", "aper_total", "isophotal"):
        flux = table[f"{prefix}_flux"].to_value("Jy")
        err = table[f"{prefix}_flux_err"].to_value("Jy")
        np.testing.assert_allclose(table[f"{prefix}_abmag"], -2.5 * np.log10(flux) + 8.9,
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(table[f"{prefix}_abmag_err"],
                                   2.5 * np.log10(1.0 + err / flux), rtol=1e-12)
        np.testing.assert_allclose(table[f"{prefix}_vegamag"],
                                   table[f"{prefix}_abmag"] - ABVEGA_OFFSET, atol=1e-12)
        np.testing.assert_array_equal(table[f"{prefix}_vegamag_err"],
                                      table[f"{prefix}_abmag_err"])
    # the constant sky is measured in the annulus and removed
    sky_jy = SKY * JY_PER_MJYSR
    np.testing.assert_allclose(table["aper_bkg_flux"].to_value("Jy"), sky_jy, rtol=0.01)
    n_annulus = math.pi * (SKY_OUT**2 - SKY_IN**2)
    expected_err = math.sqrt(math.pi / (2 * n_annulus)) * NOISE * JY_PER_MJYSR
    np.testing.assert_allclose(table["aper_bkg_flux_err"].to_value("Jy"), expected_err,
                               rtol=0.2)
    # CI of a Gaussian with the APCORR radii: EE ratios 5/3, 7/5, 7/3
    np.testing.assert_allclose(table["CI_50_30"][bright[np.argsort(index)]], 5 / 3, atol=0.03)
    assert not table["is_extended"].any()


def test_isophotal_and_shape_columns_of_stars(star_run):
    model, truth, table, _ = star_run
    index, _ = _match(table, truth)
    rows = table[index]
    bright = optimal_snr(truth["flux"]) >= 1000
    # the segment holds nearly all of a bright star's light
    np.testing.assert_allclose(rows["isophotal_flux"].to_value("Jy")[bright],
                               truth["flux"][bright], rtol=0.01)
    assert (table["isophotal_area"].to_value("pix2") >= 25).all()
    # moments are measured on the smoothed image: σ² = psf² + pixel + kernel
    kernel_sigma = 2.0 / (2 * math.sqrt(2 * math.log(2)))
    sigma = math.sqrt(PSF_SIGMA**2 + 1 / 12 + kernel_sigma**2)
    np.testing.assert_allclose(rows["semimajor_sigma"].to_value("pix")[bright], sigma,
                               rtol=0.1)
    assert (table["semiminor_sigma"] <= table["semimajor_sigma"]).all()
    assert (table["ellipticity"][bright[np.argsort(index)]] < 0.05).all()
    orientation = table["orientation"].to_value("deg")
    assert ((orientation > -90) & (orientation <= 90)).all()
    assert ((table["sky_orientation"].to_value("deg") >= 0)
            & (table["sky_orientation"].to_value("deg") < 360)).all()
    assert (np.abs(table["roundness"]) < 0.3).all()
    assert ((table["sharpness"] > 0.3) & (table["sharpness"] < 0.8)).all()


def test_sky_positions_and_neighbours(star_run):
    model, _, table, _ = star_run
    wcs = model.meta.wcs
    expected = wcs.pixel_to_world(np.asarray(table["xcentroid"]), np.asarray(table["ycentroid"]))
    assert isinstance(table["sky_centroid"], SkyCoord)
    assert table["sky_centroid"].separation(expected).max().to_value("arcsec") < 1e-6
    positions = np.column_stack([table["xcentroid"], table["ycentroid"]])
    for row, (x, y) in zip(table, positions, strict=True):
        distance = np.hypot(positions[:, 0] - x, positions[:, 1] - y)
        distance[row["label"] - 1] = np.inf
        assert row["nn_label"] == table["label"][np.argmin(distance)]
        assert row["nn_dist"].to_value("pix") == pytest.approx(distance.min())


def test_sky_bounding_box_corners_match_the_segments(star_run):
    model, _, table, output = star_run
    labels = fits.getdata(output / f"{PRODUCT}_segm.fits", "SCI")
    wcs = model.meta.wcs
    for row in table[:5]:
        # photutils (and so the official catalog) puts the upper/right corners at the
        # exclusive slice stop + 0.5, one pixel beyond the outer edge of the last pixel
        ys, xs = np.nonzero(labels == row["label"])
        x0, y0, x1, y1 = xs.min() - 0.5, ys.min() - 0.5, xs.max() + 1.5, ys.max() + 1.5
        corners = {"ll": (x0, y0), "ul": (x0, y1), "lr": (x1, y0), "ur": (x1, y1)}
        for name, (x, y) in corners.items():
            separation = row[f"sky_bbox_{name}"].separation(wcs.pixel_to_world(x, y))
            assert separation.to_value("arcsec") < 1e-6


# -- table layout --------------------------------------------------------------------------------
def test_columns_formats_units_and_metadata(star_run, refs):
    _, _, table, _ = star_run
    assert isinstance(table, QTable)
    assert table.colnames == EXPECTED_COLUMNS
    assert table.colnames == catalogs.column_names((30, 50, 70))
    formats = {name: table[name].info.format for name in table.colnames}
    assert formats["xcentroid"] == formats["CI_70_30"] == ".4f"
    assert formats["aper30_flux"] == formats["aper_bkg_flux_err"] == ".6e"
    assert formats["isophotal_flux"] == ".6e"
    for name in ("aper50_abmag", "aper_total_vegamag_err", "nn_dist", "sharpness", "roundness",
                 "semimajor_sigma", "ellipticity", "orientation", "sky_orientation"):
        assert formats[name] == ".6f", name
    assert formats["label"] is None and formats["is_extended"] is None
    assert all(table[name].info.description for name in table.colnames)
    assert table["aper50_flux"].unit == "Jy" and table["nn_dist"].unit == "pix"
    assert table["orientation"].unit == "deg" and table["isophotal_area"].unit == "pix2"
    assert table["is_extended"].dtype == bool and table["nn_label"].dtype.kind == "i"
    meta = table.meta
    assert list(meta) == ["date", "version", "local_bkg_width", "aperture_mask_method",
                          "kron_params", "aperture_params", "abvega_offset"]
    assert set(meta["version"]) == {"Python", "numpy", "scipy", "astropy", "photutils", "gwcs",
                                    "calwebb"}
    params = meta["aperture_params"]
    np.testing.assert_allclose(params["aperture_radii"], [radius_for(ee) for ee in
                                                          (0.3, 0.5, 0.7)], rtol=1e-6)
    np.testing.assert_allclose(params["aperture_corrections"], [1 / 0.3, 2.0, 1 / 0.7],
                               rtol=1e-6)
    np.testing.assert_array_equal(params["aperture_ee"], [30, 50, 70])
    assert params["bkg_aperture_inner_radius"] == SKY_IN
    assert params["bkg_aperture_outer_radius"] == SKY_OUT
    assert meta["abvega_offset"] == pytest.approx(ABVEGA_OFFSET)


# -- products ------------------------------------------------------------------------------------
def test_products_are_written_and_recorded(star_run):
    model, _, table, output = star_run
    assert model.meta.source_catalog == f"{PRODUCT}_cat.ecsv"
    assert model.meta.segmentation_map == f"{PRODUCT}_segm.fits"
    assert sorted(path.name for path in output.iterdir()) == [f"{PRODUCT}_cat.ecsv",
                                                              f"{PRODUCT}_segm.fits"]
    back = QTable.read(output / f"{PRODUCT}_cat.ecsv", format="ascii.ecsv")
    assert back.colnames == table.colnames
    np.testing.assert_allclose(back["aper_total_flux"], table["aper_total_flux"], rtol=1e-12)
    assert isinstance(back["sky_bbox_ur"], SkyCoord)
    assert back.meta["abvega_offset"] == pytest.approx(ABVEGA_OFFSET)
    np.testing.assert_array_equal(back.meta["aperture_params"]["aperture_ee"], [30, 50, 70])

    with fits.open(output / f"{PRODUCT}_segm.fits") as hdul:
        assert [hdu.name for hdu in hdul] == ["PRIMARY", "SCI", "ASDF"]
        header = hdul[0].header
        assert header["DATAMODL"] == "SegmentationMapModel"
        assert header["FILENAME"] == f"{PRODUCT}_segm.fits"
        assert (header["INSTRUME"], header["FILTER"], header["PUPIL"]) == ("NIRCAM", "F200W",
                                                                          "CLEAR")
        labels = hdul["SCI"].data
        assert labels.dtype.kind == "u" and labels.shape == model.data.shape
        assert labels.min() == 0 and set(np.unique(labels)) == set(range(len(table) + 1))
        payload = hdul["ASDF"].data["ASDF_METADATA"][0].tobytes()
    with asdf.open(io.BytesIO(payload)) as af:
        wcs = af.tree["meta"]["wcs"]
        assert af.tree["meta"]["model_type"] == "SegmentationMapModel"
        np.testing.assert_allclose(wcs(10.0, 20.0), model.meta.wcs(10.0, 20.0), rtol=0,
                                   atol=1e-12)
    # each segment contains its source centroid
    for row in table:
        x, y = int(round(row["xcentroid"])), int(round(row["ycentroid"]))
        assert labels[y, x] == row["label"]


def test_file_input_names_products_after_the_mosaic(tmp_path, refs):
    model = mosaic((80, 80), gaussian_pixels((80, 80), 40.3, 39.8, PSF_SIGMA, flux=2e-5))
    path = model.save(tmp_path / f"{PRODUCT}_i2d.fits")
    output = tmp_path / "out"
    table = SourceCatalogStep.call(str(path), output_dir=str(output), save_results=True, **refs)
    assert len(table) == 1
    assert table["nn_label"][0] == -1 and np.isnan(table["nn_dist"][0])
    assert sorted(p.name for p in output.iterdir()) == [f"{PRODUCT}_cat.ecsv",
                                                        f"{PRODUCT}_segm.fits"]


def test_nothing_is_written_without_save_results(tmp_path, refs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = mosaic((80, 80), gaussian_pixels((80, 80), 40.3, 39.8, PSF_SIGMA, flux=2e-5))
    SourceCatalogStep.call(model, **refs)
    assert list(tmp_path.iterdir()) == []


# -- detection -----------------------------------------------------------------------------------
def test_stars_with_snr_of_10_or_more_are_recovered(refs):
    shape = (240, 240)
    positions = star_positions(40, shape, min_separation=24.0, seed=3)
    rng = np.random.default_rng(3)
    snr = rng.uniform(10.0, 40.0, len(positions))
    flux = snr / optimal_snr(1.0)
    image = sum(gaussian_pixels(shape, x, y, PSF_SIGMA, flux=f)
                for (x, y), f in zip(positions, flux, strict=True))
    table = SourceCatalogStep.call(mosaic(shape, image, seed=4), snr_threshold=1.5, npixels=10,
                                   **refs)
    distance, index = cKDTree(positions).query(
        np.column_stack([table["xcentroid"], table["ycentroid"]]))
    recovered = set(index[distance < 1.0].tolist())
    assert len(recovered) >= 0.95 * len(positions)
    assert np.count_nonzero(distance >= 1.0) <= 1  # spurious detections


def test_coverage_mask_excludes_pixels_without_weight_or_error(refs):
    shape = (100, 100)
    image = (gaussian_pixels(shape, 30.2, 50.1, PSF_SIGMA, flux=3e-5)
             + gaussian_pixels(shape, 75.0, 25.0, PSF_SIGMA, flux=3e-5)
             + gaussian_pixels(shape, 75.0, 75.0, PSF_SIGMA, flux=3e-5))
    model = mosaic(shape, image)
    model.wht[15:35, 65:85] = 0.0  # star at (75, 25) has no weight
    model.err[65:85, 65:85] = np.nan  # star at (75, 75) has no error
    table = SourceCatalogStep.call(model, **refs)
    assert len(table) == 1
    assert table["xcentroid"][0] == pytest.approx(30.2, abs=0.05)


def test_no_sources_gives_a_warning_and_none(refs, caplog):
    model = mosaic((80, 80), np.zeros((80, 80)))
    with caplog.at_level(logging.WARNING):
        result = SourceCatalogStep.call(model, snr_threshold=50.0, **refs)
    assert result is None
    assert "No sources found" in caplog.text


@pytest.mark.parametrize("finder", ["dao", "iraf"])
def test_star_finders_leave_segment_columns_nan(finder, stars, refs, tmp_path):
    model, truth = stars
    # windows wide enough for Gaussian stars of FWHM 3.5 px (DAO roundness can be negative)
    step = SourceCatalogStep(starfinder=finder, kernel_fwhm=3.5, snr_threshold=10.0,
                             sharplo=0.2, roundlo=-1.0, roundhi=1.0,
                             output_dir=str(tmp_path), output_file=PRODUCT, **refs)
    step.save_results = True
    model = model.copy()
    table = step.process(model)
    assert table.colnames == EXPECTED_COLUMNS
    assert len(table) == len(truth)
    _, distance = _match(table, truth)
    assert distance.max() < 0.3
    for name in SEGMENT_ONLY:
        assert np.isnan(np.asarray(table[name].value if hasattr(table[name], "value")
                                   else table[name], float)).all(), name
    for name in ("sky_bbox_ll", "sky_bbox_ul", "sky_bbox_lr", "sky_bbox_ur"):
        assert np.isnan(table[name].ra.deg).all()
    assert np.isfinite(table["aper_total_flux"]).all()
    assert np.isfinite(table["sharpness"]).all()
    # the catalog is written; a star finder gives no segmentation map
    assert [path.name for path in tmp_path.iterdir()] == [f"{PRODUCT}_cat.ecsv"]
    assert model.meta.segmentation_map is None


# -- extended sources ----------------------------------------------------------------------------
def test_galaxy_is_extended_and_its_orientation_is_measured(refs):
    """With EE 20/50/80 a Gaussian star has CI_50_20 = 2.5 and CI_80_50 = 1.6 (not extended);
    a galaxy much wider than the apertures has CI ≈ (r50/r20)² ≈ 3.1 and (r80/r50)² ≈ 2.3."""
    shape, pa_of_y = (160, 160), 20.0
    image = (gaussian_pixels(shape, 40.0, 40.0, PSF_SIGMA, flux=5e-5)
             + gaussian_pixels(shape, 105.0, 100.0, 7.0, 3.5, angle_deg=30.0, flux=1e-3)
             + gaussian_pixels(shape, 40.0, 115.0, 6.0, 3.0, angle_deg=120.0, flux=1e-3))
    model = mosaic(shape, image, angle=pa_of_y)
    table = SourceCatalogStep.call(model, aperture_ee1=20, aperture_ee2=50, aperture_ee3=80,
                                   **refs)
    assert table.colnames == catalogs.column_names((20, 50, 80))
    assert "aper80_vegamag_err" in table.colnames and "CI_80_20" in table.colnames
    assert len(table) == 3
    star, galaxy, tilted = (table[np.argmin(np.hypot(table["xcentroid"] - x,
                                                     table["ycentroid"] - y))]
                            for x, y in ((40, 40), (105, 100), (40, 115)))
    assert star["CI_50_20"] == pytest.approx(2.5, abs=0.1)  # r20 ≈ 1 px: pixelisation
    assert star["CI_80_50"] == pytest.approx(1.6, abs=0.05)
    assert not star["is_extended"]
    assert galaxy["is_extended"] and tilted["is_extended"]
    assert galaxy["orientation"].to_value("deg") == pytest.approx(30.0, abs=1.5)
    assert tilted["orientation"].to_value("deg") == pytest.approx(-60.0, abs=1.5)
    assert galaxy["ellipticity"] > 0.3 and star["ellipticity"] < 0.05
    # position angle of the major axis, East of North: +y is at PA 20°, +x at PA 20° − 90°,
    # so an axis at 30° from +x has PA 20 − 90 + 30 = −40 ≡ 140 (mod 180)
    sky = galaxy["sky_orientation"].to_value("deg")
    assert math.remainder(sky - (pa_of_y - 90.0 + 30.0), 180.0) == pytest.approx(0.0, abs=1.5)


# -- references and parameters -------------------------------------------------------------------
def test_without_references_the_default_apertures_are_used(stars):
    model, _ = stars
    table = SourceCatalogStep.call(model, override_apcorr="N/A", override_abvegaoffset="N/A")
    assert table.colnames == catalogs.column_names((1, 2, 3))
    params = table.meta["aperture_params"]
    np.testing.assert_array_equal(params["aperture_radii"], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(params["aperture_corrections"], [1.0, 1.0, 1.0])
    assert (params["bkg_aperture_inner_radius"], params["bkg_aperture_outer_radius"]) == (5, 10)
    assert table.meta["abvega_offset"] == 0.0
    np.testing.assert_array_equal(table["aper_total_flux"], table["aper3_flux"])
    np.testing.assert_array_equal(table["aper_total_vegamag"], table["aper_total_abmag"])
    # a uniform pixel grid: the 1-px aperture of a bright star holds π × its peak pixel
    assert (table["aper1_flux"] < table["aper2_flux"]).all()


def test_pixel_scale_ratio_scales_the_radii(stars, refs):
    model, _ = stars
    model = model.copy()
    model.meta.resample.pixel_scale_ratio = 0.5
    table = SourceCatalogStep.call(model, **refs)
    params = table.meta["aperture_params"]
    np.testing.assert_allclose(params["aperture_radii"],
                               [2 * radius_for(ee) for ee in (0.3, 0.5, 0.7)], rtol=1e-6)
    assert params["bkg_aperture_outer_radius"] == 2 * SKY_OUT


@pytest.mark.parametrize("ee", [(50, 30, 70), (30, 50, 50), (30, 35, 70)])
def test_bad_aperture_ee_parameters(stars, refs, ee):
    model, _ = stars
    with pytest.raises(ParameterError):
        SourceCatalogStep.call(model, aperture_ee1=ee[0], aperture_ee2=ee[1],
                               aperture_ee3=ee[2], **refs)


def test_no_apcorr_rows_for_the_filter_gives_no_catalog(stars, refs, caplog):
    model, _ = stars
    model = model.copy()
    model.meta.instrument.filter = "F444W"
    with caplog.at_level(logging.WARNING):
        assert SourceCatalogStep.call(model, **refs) is None
    assert "F444W" in caplog.text and "will not be created" in caplog.text


def test_units_other_than_mjy_per_sr_are_refused(stars, refs):
    model, _ = stars
    model = model.copy()
    model.meta.bunit_data = "DN/s"
    with pytest.raises(ValueError, match="BUNIT"):
        SourceCatalogStep.call(model, **refs)


def test_crds_lookup_failure_gives_no_catalog(stars, monkeypatch, caplog):
    def fail(model, reftype):
        raise ReferenceFileError(f"CRDS could not choose {reftype.upper()}")

    monkeypatch.setattr(references, "get_reference_file", fail)
    monkeypatch.setattr(references, "crds_context", lambda model=None: None)
    model, _ = stars
    with caplog.at_level(logging.WARNING):
        assert SourceCatalogStep.call(model) is None
    assert "APCORR" in caplog.text


def test_a_missing_override_file_is_an_error(stars, tmp_path):
    model, _ = stars
    with pytest.raises(ReferenceFileError, match="does not exist"):
        SourceCatalogStep.call(model, override_apcorr=str(tmp_path / "nope.fits"))


# -- the official implementation ------------------------------------------------------------------
@pytest.mark.compare
def test_matches_the_official_source_catalog(stars, refs, tmp_path, monkeypatch):
    pytest.importorskip("jwst.source_catalog")
    from jwst.source_catalog import SourceCatalogStep as OfficialStep

    monkeypatch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    model, _ = stars
    path = model.save(tmp_path / f"{PRODUCT}_i2d.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialStep.call(str(path), **refs)
    ours = SourceCatalogStep.call(str(path), **refs)
    assert ours.colnames == official.colnames
    for name in ours.colnames:
        mine, theirs = ours[name], official[name]
        assert mine.info.format == theirs.info.format, name
        if isinstance(mine, SkyCoord):
            assert mine.separation(theirs).max().to_value("arcsec") < 1e-5, name
            continue
        assert getattr(mine, "unit", None) == getattr(theirs, "unit", None) or name in (
            "ellipticity",), name
        mine = np.asarray(getattr(mine, "value", mine), float)
        theirs = np.asarray(getattr(theirs, "value", theirs), float)
        if name == "orientation":  # the official values are in [0, 360)
            theirs = 90.0 - np.mod(90.0 - theirs, 180.0)
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6 if "flux" not in name
                                   else 1e-15, err_msg=name)
    for key in ("aperture_radii", "aperture_corrections", "aperture_ee"):
        np.testing.assert_allclose(ours.meta["aperture_params"][key],
                                   official.meta["aperture_params"][key], rtol=1e-6)
    assert ours.meta["abvega_offset"] == pytest.approx(official.meta["abvega_offset"])
    assert set(official.meta) - set(ours.meta) == set()
