"""OutlierDetectionStep: TSO and coronagraphic modes on small cubes with injected outliers,
the mode guess, modes not implemented yet, unknown exposure types and parameter checks."""

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.errors import DataModelError, ParameterError
from calwebb.outlier_detection import OutlierDetectionStep
from calwebb.outlier_detection.cube import coron_median, tso_reference
from calwebb.outlier_detection.step import exposure_file_name, guess_mode

SIGMA = 0.5


def _cube(exp_type, nints=30, shape=(32, 32), seed=0, n_outliers=60, tsovisit=None,
          dip=0.01):
    """A cube of integrations: a star whose flux dips by ``dip`` for a few integrations (a
    transit the rolling median follows), sky, Gaussian noise of SIGMA, DO_NOT_USE (NaN)
    pixels and injected outliers of 15-100 σ."""
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    star = 500.0 * np.exp(-((xx - 15.3) ** 2 + (yy - 16.1) ** 2) / (2 * 1.6**2))
    depth = 1.0 - dip * ((np.arange(nints) > nints // 3) & (np.arange(nints) < nints // 2))
    truth = (2.0 + depth[:, None, None] * star).astype(np.float32)
    data = truth + rng.normal(0.0, SIGMA, truth.shape).astype(np.float32)
    dq = np.zeros(truth.shape, np.uint32)
    dq[:, 3, 4] = dqflags.DO_NOT_USE  # a dead pixel
    data[:, 3, 4] = np.nan
    outliers = np.zeros(truth.shape, bool)
    flat = rng.choice(truth.size, n_outliers, replace=False)
    outliers.flat[flat] = True
    outliers[:, 3, 4] = False
    data[outliers] += SIGMA * rng.uniform(15.0, 100.0, outliers.sum()).astype(np.float32)
    err = np.full(truth.shape, SIGMA, np.float32)
    model = datamodels.CubeModel(data=data, dq=dq, err=err,
                                 var_poisson=np.full(truth.shape, SIGMA**2 * 0.6, np.float32),
                                 var_rnoise=np.full(truth.shape, SIGMA**2 * 0.4, np.float32))
    model.meta.filename = "jw01234001001_01101_00001_nrca3_calints.fits"
    model.meta.exposure.type = exp_type
    model.meta.exposure.nints = nints
    if tsovisit is not None:
        model.meta.visit.tsovisit = tsovisit
    return model, outliers


def test_tso_mode_flags_outliers_against_a_rolling_median(tmp_path):
    model, outliers = _cube("NRC_TSIMAGE")
    before = model.data.copy()
    step = OutlierDetectionStep(rolling_window_width=7, save_results=True,
                                save_intermediate_results=True, output_dir=str(tmp_path))
    step.asn_id = "a3001"  # as Tso3 sets it
    result = step.run(model)
    np.testing.assert_array_equal(model.data, before)  # the input is not modified
    flagged = (result.dq & dqflags.OUTLIER) != 0
    assert flagged[outliers].mean() >= 0.95
    assert flagged[~outliers].mean() < 1e-3
    assert np.isnan(result.data[flagged]).all() and np.isnan(result.err[flagged]).all()
    assert np.isnan(result.var_rnoise[flagged]).all()
    assert result.meta.cal_step.outlier_detection == "COMPLETE"
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["jw01234001001_01101_00001_nrca3_a3001_crfints.fits",
                     "jw01234001001_01101_00001_nrca3_a3001_median.fits"]
    median = datamodels.open(tmp_path / names[1])
    assert median.data.shape == model.data.shape  # one reference per integration
    # a single median over all integrations (window ≤ 1) does not follow the transit: the
    # dimmed star is taken for outliers
    single = OutlierDetectionStep(rolling_window_width=1).run(model)
    assert ((single.dq & dqflags.OUTLIER) != 0)[~outliers].sum() > 10


def test_tso_reference_single_median_when_the_window_is_too_wide():
    model, _ = _cube("NRC_TSIMAGE", nints=6, n_outliers=0)
    good = dqflags.interpret_bit_flags("~DO_NOT_USE")
    reference = tso_reference(model.data, model.dq, good, 0.7, 25)
    with pytest.warns(RuntimeWarning, match="All-NaN"):
        expected = np.nanmedian(model.data, axis=0)
    for plane in reference:
        np.testing.assert_allclose(plane, expected, rtol=1e-6, equal_nan=True)
    rolling = tso_reference(model.data, model.dq, good, 0.7, 3)
    np.testing.assert_allclose(rolling[0], np.median(model.data[:3], axis=0), rtol=1e-6,
                               equal_nan=True)
    assert np.isnan(rolling[:, 3, 4]).all()  # DO_NOT_USE pixels have no reference


def test_coron_mode_flags_outliers_against_the_median_of_integrations():
    model, outliers = _cube("NRC_CORON", nints=8, seed=4, n_outliers=30, dip=0.0)
    median = coron_median(model.data, model.dq, dqflags.interpret_bit_flags("~DO_NOT_USE"),
                          0.7)
    assert median.shape == model.data.shape[1:]
    result = OutlierDetectionStep().run(model)
    flagged = (result.dq & dqflags.OUTLIER) != 0
    assert flagged[outliers].mean() >= 0.95
    assert flagged[~outliers].mean() < 1e-3
    assert result.meta.cal_step.outlier_detection == "COMPLETE"


@pytest.mark.parametrize(("exp_type", "single", "tsovisit", "nints", "mode"), [
    ("NRC_TSIMAGE", True, None, 10, "tso"),
    ("NRC_TSIMAGE", True, None, 1, None),  # one integration: not TSO, no other mode
    ("NRC_TSGRISM", False, None, 10, None),  # TSO is only recognised for one model
    ("NRS_BRIGHTOBJ", True, None, 10, "tso"),
    ("MIR_IMAGE", True, True, 10, "tso"),
    ("MIR_IMAGE", True, True, 1, "imaging"),
    ("NRC_CORON", True, None, 8, "coron"),
    ("MIR_LYOT", False, None, 8, "coron"),
    ("MIR_4QPM", True, None, 8, "coron"),
    ("NRC_IMAGE", False, None, 1, "imaging"),
    ("FGS_IMAGE", False, None, 1, "imaging"),
    ("NIS_WFSS", False, None, 1, "spec"),
    ("MIR_LRS-FIXEDSLIT", False, None, 1, "spec"),
    ("NRS_MSASPEC", False, None, 1, "spec"),
    ("NRS_IFU", False, None, 1, "ifu"),
    ("MIR_MRS", False, None, 1, "ifu"),
    ("NRC_DARK", False, None, 1, None),
])
def test_mode_guess(exp_type, single, tsovisit, nints, mode):
    model = datamodels.ImageModel((4, 4))
    model.meta.exposure.type = exp_type
    model.meta.exposure.nints = nints
    if tsovisit is not None:
        model.meta.visit.tsovisit = tsovisit
    assert guess_mode(model.meta, single) == mode


def _images(exp_type, n=2):
    models = []
    for index in range(n):
        model = datamodels.ImageModel(np.ones((8, 8), np.float32))
        model.meta.exposure.type = exp_type
        model.meta.filename = f"img{index}_cal.fits"
        model.meta.group_id = f"exp{index}"
        models.append(model)
    return models


@pytest.mark.parametrize(("exp_type", "mode"), [("NRC_WFSS", "spec"), ("MIR_MRS", "ifu")])
def test_spec_and_ifu_modes_are_not_implemented_yet(exp_type, mode):
    with pytest.raises(DataModelError, match=f"'{mode}' mode is not implemented yet"):
        OutlierDetectionStep().run(_images(exp_type))
    step = OutlierDetectionStep()
    step.mode = mode  # as Spec3 sets it
    with pytest.raises(DataModelError, match=mode):
        step.run(_images("NRC_IMAGE"))


def test_unknown_exposure_type_fails(caplog):
    library = OutlierDetectionStep().run(_images("NRC_DARK"))
    with library:
        for index in range(len(library)):
            model = library.borrow(index)
            assert model.meta.cal_step.outlier_detection == "FAILED"
            library.shelve(model, index, modify=False)
    assert "NRC_DARK" in caplog.text


def test_cube_modes_need_one_cube():
    step = OutlierDetectionStep()
    step.mode = "tso"
    with pytest.raises(DataModelError, match="cube"):
        step.run(_images("NRC_TSIMAGE")[0])
    with pytest.raises(DataModelError, match="one cube"):
        step.run(_images("NRC_TSIMAGE"))


@pytest.mark.parametrize(("name", "value"), [("snr", "5.0"), ("scale", "a b"),
                                             ("good_bits", "NOT_A_FLAG"),
                                             ("pixmap_order", 2)])
def test_bad_parameters_are_refused(name, value):
    with pytest.raises(ParameterError, match=name):
        OutlierDetectionStep(**{name: value}).run(_images("NRC_IMAGE"))


def test_exposure_file_names():
    name = "jw01234001001_02101_00001_nrca1_cal.fits"
    assert exposure_file_name(name, "o001") == "jw01234001001_02101_00001_nrca1_o001.fits"
    assert exposure_file_name("x_o001_calints.fits", "o001") == "x_o001.fits"  # not repeated
    assert exposure_file_name(name, None) == "jw01234001001_02101_00001_nrca1.fits"
