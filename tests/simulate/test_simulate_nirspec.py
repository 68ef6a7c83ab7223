"""The simulator's NIRSpec exposures: spectra, traditional and IRS2 readouts, their references,
and Stage 1 (calwebb's and the official) recovering the truth from them."""

import numpy as np
import pytest
from astropy.table import Table

from calwebb import datamodels, dqflags
from calwebb.irs2 import IRS2Layout
from calwebb.pipeline.detector1 import Detector1Pipeline
from calwebb.simulate import ObservationConfig, simulate_observation
from calwebb.simulate.detector import _readout_offsets, make_detector
from calwebb.simulate.instruments import detector, frame_time
from calwebb.simulate.sky import make_spectra, render_spectra
from detector1_exposure import assert_official_detector1_agrees
from offline_crds import offline_crds

NIRSPEC = dict(instrument="NIRSPEC", filter="CLEAR", grating="PRISM", subarray="FULL",
               ngroups=4, n_dithers=1, n_stars=12, n_galaxies=4, cosmic_ray_rate=2e-4)
CLEAN_BITS = (dqflags.DO_NOT_USE | dqflags.SATURATED | dqflags.JUMP_DET | dqflags.HOT
              | dqflags.REFERENCE_PIXEL)


@pytest.fixture(scope="module")
def irs2_observation(tmp_path_factory):
    """A full-frame NRS2 IRS2 exposure (the 180-degree rotated detector)."""
    return simulate_observation(
        ObservationConfig(**NIRSPEC, detectors=("NRS2",), readpatt="NRSIRS2RAPID", seed=4),
        tmp_path_factory.mktemp("irs2"))


@pytest.fixture(scope="module")
def irs2_rate(irs2_observation):
    with offline_crds(irs2_observation.crds_path):
        return Detector1Pipeline.call(str(irs2_observation.uncal_files[0]))


def pulls(rate, truth_path):
    truth = datamodels.open(truth_path).data
    clean = (rate.dq & CLEAN_BITS) == 0
    return ((rate.data - truth) / rate.err)[clean]


def test_irs2_exposure_files_and_headers(irs2_observation):
    uncal = datamodels.open(irs2_observation.uncal_files[0])
    assert uncal.data.shape == (1, 4, 3200, 2048)
    meta = uncal.meta
    assert (meta.instrument.name, meta.instrument.detector) == ("NIRSPEC", "NRS2")
    assert (meta.instrument.filter, meta.instrument.grating) == ("CLEAR", "PRISM")
    assert (meta.exposure.type, meta.exposure.readpatt) == ("NRS_MSASPEC", "NRSIRS2RAPID")
    assert (meta.exposure.nrs_normal, meta.exposure.nrs_reference) == (16, 4)
    assert (meta.subarray.fastaxis, meta.subarray.slowaxis) == (-2, -1)
    assert meta.exposure.noutputs == 4
    assert meta.exposure.frame_time == pytest.approx(2049 * 712 * 10e-6)  # 14.58889 s
    references = {path.name.split("_")[2]: path for path in irs2_observation.reference_files}
    assert set(references) == {"mask", "saturation", "superbias", "linearity", "gain",
                               "readnoise", "refpix", "dark"}  # no optics: Stage 1 only
    assert datamodels.open(references["mask"]).dq.shape == (3200, 2048)
    assert datamodels.open(references["superbias"]).data.shape == (3200, 2048)
    assert datamodels.open(references["saturation"]).data.shape == (2048, 2048)
    refpix = datamodels.open(references["refpix"])
    assert refpix.meta.exposure.readpatt == "NRSIRS2RAPID"
    assert len(refpix.irs2_table) == 2 * 712 * 2048
    assert irs2_observation.level2_asn is None and irs2_observation.level3_asn is None


def test_interleaved_reference_pixels_see_no_light(irs2_observation):
    """Group differences: the normal pixels collect the truth rate (at least 220 DN where
    it is above 5 DN/s), the interleaved reference pixels and the reference output only
    the outputs' offsets (4 DN each group) and noise."""
    uncal = datamodels.open(irs2_observation.uncal_files[0])
    truth = datamodels.open(irs2_observation.truth_rates[0]).data
    layout = IRS2Layout.of(uncal)
    difference = uncal.data[0, -1].astype(float) - uncal.data[0, 0]
    elapsed = 3 * uncal.meta.exposure.group_time
    normal = difference[layout.normal_rows()]
    lit = truth > 5
    assert np.median(normal[lit] / (truth[lit] * elapsed)) == pytest.approx(1.0, abs=0.05)
    reference = difference[~layout.normal_mask()]
    assert abs(np.median(reference)) < 15 and np.std(reference) < 30


def test_readout_offsets_follow_the_fast_axis():
    """NIRCam reads along DMS rows: the amplifier offsets (one per amplifier and pixel parity)
    change along x, the readout-row drift along y. NIRSpec reads along DMS columns: the other
    way round."""
    rng = np.random.default_rng(1)
    nircam = _readout_offsets(make_detector(detector("NRCA1"), 1), (2048, 2048), rng)
    nirspec = _readout_offsets(make_detector(detector("NRS1"), 1), (2048, 2048), rng)
    for along_readout, across in ((nircam[7], nircam[:, 7]), (nirspec[:, 7], nirspec[7])):
        for parity in (0, 1):
            assert np.ptp(along_readout[parity:512:2]) < 1e-9  # one amplifier, one parity
            assert np.ptp(across[parity:512:2]) > 0.1  # the drift
        assert abs(along_readout[512] - along_readout[510]) > 1e-3  # the next amplifier


def test_frame_times_of_nirspec_readouts():
    assert frame_time("NIRSPEC", 2048, 2048, 4, "NRSRAPID") == pytest.approx(10.73676)
    assert frame_time("NIRSPEC", 2048, 2048, 4, "NRSIRS2") == pytest.approx(14.58888)


def test_rendered_spectra_carry_their_flux_across_the_dispersion():
    """Each column of a trace holds peak·√(2π)·σ times its spectral shape, wherever the
    trace's centre falls within the pixel."""
    spectra = Table({"y": [100.3], "x_start": [10.0], "x_end": [110.0], "sigma": [1.2],
                     "tilt": [0.01], "curvature": [1e-5], "peak_dn_s": [50.0], "slope": [0.0],
                     "line_x": [60.0], "line_dn_s": [0.0]})
    rate = render_spectra(spectra, (200, 200), row_offset=2.5)
    columns = rate.sum(axis=0)
    np.testing.assert_allclose(columns[10:110], 50.0 * np.sqrt(2 * np.pi) * 1.2, rtol=1e-9)
    assert not columns[:10].any() and not columns[110:].any()
    centre = 100.3 + 2.5 + 0.01 * (60 - 100) + 1e-5 * (60 - 100) ** 2
    assert np.argmax(rate[:, 60]) == round(centre)


def test_spectra_are_drawn_within_the_detector():
    spectra = make_spectra(30, 10, (2048, 2048), np.random.default_rng(2))
    assert len(spectra) == 40 and list(spectra["kind"]).count("galaxy") == 10
    assert (spectra["x_start"] >= 4).all() and (spectra["x_end"] <= 2044).all()
    assert ((spectra["y"] > 12) & (spectra["y"] < 2036)).all()


@pytest.mark.slow
def test_detector1_recovers_the_truth_of_an_irs2_exposure(irs2_observation, irs2_rate):
    assert irs2_rate.data.shape == (2048, 2048)
    for step in ("dq_init", "saturation", "superbias", "refpix", "linearity", "dark_sub",
                 "jump", "ramp_fit"):
        assert getattr(irs2_rate.meta.cal_step, step) == "COMPLETE", step
    assert irs2_rate.meta.ref_file.refpix.name.startswith("crds://jwst_nirspec_refpix_")
    pull = pulls(irs2_rate, irs2_observation.truth_rates[0])
    assert pull.size > 0.9 * 2040 ** 2
    assert abs(np.median(pull)) < 0.05
    assert abs(np.std(pull) - 1) < 0.05


@pytest.mark.slow
@pytest.mark.compare
def test_official_detector1_agrees_on_an_irs2_exposure(irs2_observation, irs2_rate):
    assert_official_detector1_agrees(irs2_observation.uncal_files[0], irs2_observation.crds_path,
                                     irs2_rate)


@pytest.mark.slow
def test_detector1_recovers_the_truth_of_a_traditional_readout(tmp_path):
    """NRS1 read with NRS (4 frames a group, 1 dropped): the reference pixels take out the
    amplifier offsets along the DMS rows and the drift along the columns; without refpix
    the rates scatter well beyond their errors."""
    observation = simulate_observation(
        ObservationConfig(**NIRSPEC, detectors=("NRS1",), readpatt="NRS", seed=6), tmp_path)
    with offline_crds(observation.crds_path):
        rate = Detector1Pipeline.call(str(observation.uncal_files[0]))
        uncorrected = Detector1Pipeline.call(str(observation.uncal_files[0]),
                                             steps={"refpix": {"skip": True}})
    pull = pulls(rate, observation.truth_rates[0])
    assert abs(np.median(pull)) < 0.05 and abs(np.std(pull) - 1) < 0.05
    assert np.std(pulls(uncorrected, observation.truth_rates[0])) > np.std(pull) + 0.1
