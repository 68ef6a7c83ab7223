"""The simulator's NIRISS imaging: filters in their wheels, the transposed readout, and the
official and calwebb pipelines calibrating it to the truth."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.pipeline.detector1 import Detector1Pipeline
from calwebb.pipeline.image2 import Image2Pipeline
from calwebb.simulate import ObservationConfig, exposure, simulate_observation
from calwebb.simulate.instruments import frame_time
from detector1_exposure import assert_official_detector1_agrees
from offline_crds import offline_crds

#: full frame, as NIRISS images are taken (on a corner subarray the readout-row drift, which
#: refpix takes out only on full frames, leaves a correlated error of a few tenths of sigma)
NIRISS = dict(instrument="NIRISS", detectors=("NIS",), filter="F200W", readpatt="NISRAPID",
              subarray="FULL", ngroups=4, n_dithers=1, cosmic_ray_rate=2e-4, seed=3)


@pytest.fixture(scope="module")
def niriss_observation(tmp_path_factory):
    return simulate_observation(ObservationConfig(**NIRISS), tmp_path_factory.mktemp("nis"))


@pytest.fixture(scope="module")
def niriss_rate(niriss_observation):
    with offline_crds(niriss_observation.crds_path):
        return Detector1Pipeline.call(str(niriss_observation.uncal_files[0]))


@pytest.mark.parametrize("filter_name, wheels", [("F150W", ("CLEAR", "F150W")),
                                                 ("F277W", ("F277W", "CLEARP"))])
def test_filters_sit_in_their_wheels(filter_name, wheels):
    """Short filters in the pupil wheel behind CLEAR, long ones in the filter wheel."""
    simulated = exposure(instrument="NIRISS", detectors=("NIS",), filter=filter_name,
                         readpatt="NIS", subarray="SUB64", ngroups=2, n_stars=3, n_galaxies=0)
    meta = simulated.uncal.meta
    assert (meta.instrument.filter, meta.instrument.pupil) == wheels
    assert (meta.subarray.fastaxis, meta.subarray.slowaxis) == (-2, -1)
    assert (meta.exposure.nframes, meta.exposure.groupgap) == (4, 1)
    assert meta.exposure.frame_time == pytest.approx(frame_time("NIRISS", 64, 64, 1, "NIS"))


def test_niriss_references_list_filters_by_wheel(niriss_observation):
    kinds = {path.name.split("_")[2]: path for path in niriss_observation.reference_files}
    photom = datamodels.open(kinds["photom"]).phot_table
    rows = set(zip(photom["filter"], photom["pupil"], strict=True))
    assert {(b"CLEAR", b"F150W"), (b"F277W", b"CLEARP")} <= rows
    flat = datamodels.open(kinds["flat"])
    assert (flat.meta.instrument.filter, flat.meta.instrument.pupil) == ("CLEAR", "F200W")
    offsets = datamodels.open(kinds["filteroffset"]).filters
    assert {"filter": "CLEAR", "pupil": "F200W", "column_offset": 0.12,
            "row_offset": -0.08} in offsets
    assert frame_time("NIRISS", 2048, 2048, 4, "NIS") == pytest.approx(10.73676)


def test_assign_wcs_puts_the_stars_where_they_are(niriss_observation):
    """The true positions of the stars (distortion, filter offset by FILTER and PUPIL,
    pointing) within 1 mas through the WCS calwebb builds from the NIRISS references."""
    from astropy.table import Table

    from calwebb.assign_wcs.step import AssignWcsStep
    from calwebb.simulate.optics import ExposureGeometry

    rate = datamodels.open(niriss_observation.truth_rates[0])
    with offline_crds(niriss_observation.crds_path):
        model = AssignWcsStep.call(rate)
    catalog = Table.read(niriss_observation.truth_catalog)
    x, y = ExposureGeometry.from_model(rate).pixel(catalog["ra"], catalog["dec"])
    inside = (x > 0) & (x < 2047) & (y > 0) & (y < 2047)
    assert inside.sum() >= 3
    ra, dec = model.meta.wcs(x[inside], y[inside])
    separation = np.hypot((ra - catalog["ra"][inside]) * np.cos(np.radians(dec)),
                          dec - catalog["dec"][inside]) * 3.6e6
    assert separation.max() < 1.0


@pytest.mark.slow
def test_detector1_recovers_the_truth(niriss_observation, niriss_rate):
    truth = datamodels.open(niriss_observation.truth_rates[0]).data
    clean = (niriss_rate.dq & (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET
                               | dqflags.HOT | dqflags.REFERENCE_PIXEL)) == 0
    pull = ((niriss_rate.data - truth) / niriss_rate.err)[clean]
    assert clean.mean() > 0.9
    assert abs(np.median(pull)) < 0.05 and abs(np.std(pull) - 1) < 0.05
    hits = [(y, x) for _, group, y, x, electrons in
            niriss_observation.cosmic_rays[niriss_observation.uncal_files[0].name]
            if electrons > 1000 and group > 0]
    assert hits and np.mean([bool(niriss_rate.dq[y, x] & (dqflags.JUMP_DET
                                                          | dqflags.DO_NOT_USE))
                             for y, x in hits]) > 0.9


@pytest.mark.slow
@pytest.mark.compare
def test_official_detector1_agrees(niriss_observation, niriss_rate):
    observation = niriss_observation
    assert_official_detector1_agrees(observation.uncal_files[0], observation.crds_path,
                                     niriss_rate)


@pytest.mark.compare
def test_official_image2_selects_the_same_references_and_agrees(niriss_observation,
                                                                 tmp_path):
    """Both pipelines pick the NIRISS flat, photom, area, distortion and filter offset from
    the cache by FILTER and PUPIL, and calibrate the truth rate alike."""
    pipeline = pytest.importorskip("jwst.pipeline")
    rate = datamodels.open(niriss_observation.truth_rates[0])
    rate.var_poisson = np.abs(rate.data) * 0.02
    rate.var_rnoise = np.full(rate.data.shape, 0.003, np.float32)
    rate.err = np.sqrt(rate.var_poisson + rate.var_rnoise)
    rate.dq = np.zeros(rate.data.shape, np.uint32)
    path = rate.save(tmp_path / "jw01234001001_03101_00001_nis_rate.fits")
    steps = {"resample": {"skip": True}}
    with offline_crds(niriss_observation.crds_path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = pipeline.Image2Pipeline.call(str(path), steps=steps)[0]
        ours = Image2Pipeline.call(str(path), steps=steps)
    for reftype in ("flat", "photom", "area", "distortion", "filteroffset"):
        name = getattr(ours.meta.ref_file, reftype).name
        assert name == getattr(theirs.meta.ref_file, reftype).name and "niriss" in name
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        finite = np.isfinite(getattr(theirs, name))
        np.testing.assert_array_equal(np.isfinite(getattr(ours, name)), finite)
        np.testing.assert_allclose(getattr(ours, name)[finite], getattr(theirs, name)[finite],
                                   rtol=1e-5, err_msg=name)
    np.testing.assert_array_equal(ours.dq, theirs.dq)
    np.testing.assert_allclose(ours.meta.wcs(10.0, 20.0), theirs.meta.wcs(10.0, 20.0),
                               atol=1e-10)
