"""flat_field: SCI ÷ flat, the variance terms of stage2.md §4.12, bad flat pixels, subarrays."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.errors import ReferenceFileError
from calwebb.flat_field.step import FlatFieldStep
from image2_models import describe_reference, rate_model


def _flat(tmp_path, shape=(40, 50), filter_name="F200W", seed=1):
    rng = np.random.default_rng(seed)
    flat = datamodels.FlatModel(data=rng.uniform(0.8, 1.2, shape).astype(np.float32),
                                err=rng.uniform(0.001, 0.02, shape).astype(np.float32),
                                dq=np.zeros(shape, np.uint32))
    flat.data[3, 4] = np.nan
    flat.data[5, 6] = 0.0
    flat.dq[7, 8] = dqflags.NO_FLAT_FIELD
    flat.dq[9, 10] = dqflags.UNRELIABLE_FLAT
    describe_reference(flat, "flat", filter_name, shape)
    return flat, flat.save(tmp_path / f"flat_{filter_name}_{shape[0]}.fits")


@np.errstate(divide="ignore", invalid="ignore")
def test_division_and_variances_follow_the_spec(tmp_path):
    rate = rate_model()
    flat, path = _flat(tmp_path)
    result = FlatFieldStep.call(rate, override_flat=str(path))
    assert result.meta.cal_step.flat_field == "COMPLETE"
    good = np.ones(rate.data.shape, bool)
    good[[3, 5, 7], [4, 6, 8]] = False
    expected = rate.data / flat.data
    np.testing.assert_allclose(result.data[good], expected[good], rtol=1e-6)
    np.testing.assert_allclose(result.var_poisson[good],
                               (rate.var_poisson / flat.data**2)[good], rtol=1e-6)
    np.testing.assert_allclose(result.var_rnoise[good],
                               (rate.var_rnoise / flat.data**2)[good], rtol=1e-6)
    var_flat = expected**2 * (flat.err / flat.data) ** 2
    np.testing.assert_allclose(result.var_flat[good], var_flat[good], rtol=1e-5)
    np.testing.assert_allclose(
        result.err[good], np.sqrt(result.var_poisson + result.var_rnoise + result.var_flat)[good],
        rtol=1e-6)
    assert result.dq[9, 10] & dqflags.UNRELIABLE_FLAT
    np.testing.assert_array_equal(rate.data, rate_model().data)  # input untouched


def test_bad_flat_pixels_become_nan_and_do_not_use(tmp_path):
    _, path = _flat(tmp_path)
    result = FlatFieldStep.call(rate_model(), override_flat=str(path))
    for y, x in ((3, 4), (5, 6), (7, 8)):
        assert result.dq[y, x] & dqflags.DO_NOT_USE
        assert np.isnan(result.data[y, x]) and np.isnan(result.err[y, x])
        assert np.isnan(result.var_flat[y, x])
    assert result.dq[3, 4] & dqflags.NO_FLAT_FIELD and result.dq[5, 6] & dqflags.NO_FLAT_FIELD


def test_inverse_multiplies(tmp_path):
    rate = rate_model()
    flat, path = _flat(tmp_path)
    result = FlatFieldStep.call(rate, override_flat=str(path), inverse=True)
    np.testing.assert_allclose(result.data[0, 0], rate.data[0, 0] * flat.data[0, 0], rtol=1e-6)


def test_subarray_is_cut_from_a_full_frame_flat(tmp_path):
    flat, path = _flat(tmp_path, shape=(100, 120))
    rate = rate_model(shape=(20, 30), xstart=41, ystart=31)
    result = FlatFieldStep.call(rate, override_flat=str(path))
    np.testing.assert_allclose(result.data, rate.data / flat.data[30:50, 40:70], rtol=1e-6)


def test_flat_smaller_than_the_data_skips(tmp_path):
    _, path = _flat(tmp_path, shape=(20, 20))
    result = FlatFieldStep.call(rate_model(), override_flat=str(path))
    assert result.meta.cal_step.flat_field == "SKIPPED"


def test_a_flat_for_another_filter_is_refused(tmp_path):
    _, path = _flat(tmp_path, filter_name="F150W")
    with pytest.raises(ReferenceFileError, match="FILTER is F150W but the data are F200W"):
        FlatFieldStep.call(rate_model(), override_flat=str(path))
    with pytest.raises(ReferenceFileError, match="FILTER"):
        FlatFieldStep.call(rate_model(), user_supplied_flat=str(path))


def test_rateints_cube(tmp_path):
    flat, path = _flat(tmp_path)
    rate = rate_model()
    cube = datamodels.CubeModel(data=np.stack([rate.data, 2 * rate.data]),
                                dq=np.zeros((2, 40, 50), np.uint32),
                                var_poisson=np.stack([rate.var_poisson] * 2),
                                var_rnoise=np.stack([rate.var_rnoise] * 2))
    cube.tree["meta"].update(rate.tree["meta"])
    result = FlatFieldStep.call(cube, override_flat=str(path))
    np.testing.assert_allclose(result.data[1, 0, 0], 2 * rate.data[0, 0] / flat.data[0, 0],
                               rtol=1e-6)


@pytest.mark.compare
def test_matches_the_official_flat_field(tmp_path, imaging_crds):
    pytest.importorskip("jwst")
    from jwst.flatfield import FlatFieldStep as OfficialFlatField

    _, path = _flat(tmp_path)
    rate = rate_model()
    rate_path = rate.save(tmp_path / "jw_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        official = OfficialFlatField.call(str(rate_path), override_flat=str(path))
    ours = FlatFieldStep.call(rate, override_flat=str(path))
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        np.testing.assert_allclose(getattr(ours, name), getattr(official, name), rtol=1e-5,
                                   equal_nan=True, err_msg=name)
    np.testing.assert_array_equal(ours.dq, official.dq)


def _flat_by_whole_arrays(arrays, flat, flat_err, flat_dq, inverse):
    """The flat-field formulas of stage2.md §4.12 written as whole-array numpy operations."""
    dq = flat_dq.astype(np.uint32)
    dq[~np.isfinite(flat) | (flat == 0)] |= dqflags.NO_FLAT_FIELD | dqflags.DO_NOT_USE
    dq[(dq & dqflags.NO_FLAT_FIELD) != 0] |= dqflags.DO_NOT_USE
    unusable = (dq & dqflags.DO_NOT_USE) != 0
    values = np.where(unusable, np.float32(1), flat).astype(np.float32)
    relative = np.nan_to_num(np.where(unusable, np.float32(0), flat_err / values))
    factor = values if inverse else np.float32(1) / values
    out = {"data": arrays["data"] * factor, "dq": arrays["dq"] | dq}
    for name in ("var_poisson", "var_rnoise"):
        out[name] = arrays[name] * (factor * factor)
    out["var_flat"] = out["data"] * out["data"] * relative * relative
    out["err"] = np.sqrt(out["var_flat"] + out["var_poisson"] + out["var_rnoise"])
    invalid = (out["dq"] & dqflags.DO_NOT_USE) != 0
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        invalid |= ~np.isfinite(out[name])
    out["dq"][invalid] |= dqflags.DO_NOT_USE
    for name in ("data", "err", "var_poisson", "var_rnoise", "var_flat"):
        out[name][invalid] = np.nan
    return out


@pytest.mark.parametrize("inverse", [False, True])
@np.errstate(divide="ignore", invalid="ignore", over="ignore")
def test_one_pass_equals_the_whole_array_formulas_bit_for_bit(inverse):
    from calwebb.flat_field.apply import apply_flat

    rng = np.random.default_rng(4)
    shape = (2, 30, 40)
    arrays = {"data": rng.normal(10, 5, shape).astype(np.float32),
              "dq": (rng.random(shape) < 0.02).astype(np.uint32),
              "var_poisson": rng.uniform(0, 2, shape).astype(np.float32),
              "var_rnoise": rng.uniform(0, 2, shape).astype(np.float32)}
    arrays["data"][0, 5, 5] = np.nan
    arrays["var_poisson"][1, 7, 7] = np.inf
    flat = rng.uniform(0.5, 1.5, shape[1:]).astype(np.float32)
    flat[3, 3], flat[4, 4] = 0, np.nan
    flat_err = rng.uniform(0, 0.1, shape[1:]).astype(np.float32)
    flat_err[6, 6], flat_err[8, 8] = np.inf, np.nan
    flat_dq = np.zeros(shape[1:], np.uint32)
    flat_dq[9, 9] = dqflags.NO_FLAT_FIELD
    expected = _flat_by_whole_arrays(arrays, flat, flat_err, flat_dq, inverse)
    result = {name: array.copy() for name, array in arrays.items()}
    apply_flat(result, flat, flat_err, flat_dq, inverse=inverse)
    for name, array in expected.items():
        np.testing.assert_array_equal(result[name], array, err_msg=name)
