"""Striped readouts in the data models: references cut to the rows each stripe reads, the
superstripe ramp model, and INT_TIMES_STRIPE."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.errors import ReferenceFileError
from calwebb.stpipe import Step

FULL = 2048
FAST_START, FAST_SIZE = 5, 12
#: (fastaxis, slowaxis, slow start) of a NIRCam-like and a NIRISS-like detector
AXES = [(-1, 2, 1), (1, -2, 2048), (-2, -1, 2048)]
MULTISTRIPE = dict(multistripe_reads1=4, multistripe_skips1=40, multistripe_reads2=6,
                   multistripe_skips2=3, repeat_stripe=0, interleave_reads1=0,
                   superstripe_step=0, num_superstripe=0)
SUPERSTRIPE = dict(multistripe_reads1=4, multistripe_skips1=10, multistripe_reads2=3,
                   multistripe_skips2=0, repeat_stripe=1, interleave_reads1=0,
                   superstripe_step=5, num_superstripe=3)


def _window(model, fastaxis, slowaxis, slow_start, slow_size, fast_start, fast_size):
    sub = model.meta.subarray
    sub.name, sub.fastaxis, sub.slowaxis = "SUB64P", fastaxis, slowaxis
    if abs(fastaxis) == 1:
        sub.xstart, sub.xsize, sub.ystart, sub.ysize = fast_start, fast_size, slow_start, \
            slow_size
    else:
        sub.ystart, sub.ysize, sub.xstart, sub.xsize = fast_start, fast_size, slow_start, \
            slow_size
    return model


def science(module, axes, keywords, slow_size):
    """A striped ramp model of calwebb or the official ``module``."""
    fastaxis, slowaxis, start = axes
    image = (slow_size, FAST_SIZE) if abs(fastaxis) == 1 else (FAST_SIZE, slow_size)
    nints = 2 * max(keywords["num_superstripe"], 1)
    model = module.RampModel(data=np.zeros((nints, 2, *image), np.float32))
    _window(model, fastaxis, slowaxis, start, slow_size, FAST_START, FAST_SIZE)
    for key, value in keywords.items():
        setattr(model.meta.subarray, key, value)
    return model


def reference_arrays(axes, seed=0):
    """Images covering the whole slow axis and 20 pixels from 3 along the fast axis."""
    fastaxis = axes[0]
    shape = (FULL, 20) if abs(fastaxis) == 1 else (20, FULL)
    rng = np.random.default_rng(seed)
    return (rng.normal(100, 10, shape).astype(np.float32),
            rng.integers(0, 2**20, shape).astype(np.uint32))


def references(module, axes):
    data, dq = reference_arrays(axes)
    mask = module.MaskModel(dq=dq)
    bias = module.SuperBiasModel(data=data, err=data / 10, dq=dq)
    coeffs = np.stack([data, data * 2, data * 3])
    linearity = module.LinearityModel(coeffs=coeffs, dq=dq)
    for model in (mask, bias, linearity):
        _window(model, axes[0], axes[1], 1, FULL, 3, 20)
        model.meta.instrument.name = "NIRCAM"
    return {"mask": mask, "superbias": bias, "linearity": linearity}


@pytest.mark.compare
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("keywords, size", [(MULTISTRIPE, 22), (SUPERSTRIPE, 21)])
def test_cutouts_match_the_official_ones(axes, keywords, size):
    official = pytest.importorskip("stdatamodels.jwst.datamodels")
    reffile_utils = pytest.importorskip("jwst.lib.reffile_utils")
    ours_science = science(datamodels, axes, keywords, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_science = science(official, axes, keywords, size)
        theirs_refs = references(official, axes)
    for reftype, reference in references(datamodels, axes).items():
        if keywords["num_superstripe"] and reftype == "linearity":
            with pytest.raises(ReferenceFileError, match="cannot be cut for superstripes"):
                datamodels.cutout_reference(reference, ours_science)
            continue
        ours = datamodels.cutout_reference(reference, ours_science)
        theirs = reffile_utils.get_subarray_model(theirs_science, theirs_refs[reftype])
        primary = type(reference).primary_array
        for name in {primary, "err", "dq"}:
            if reference.has_array(name):
                np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
        shape = getattr(ours, primary).shape
        stripes = keywords["num_superstripe"]
        assert shape[-2:] == ours_science.data.shape[-2:] and (
            not stripes or shape[0] == stripes)


def test_multistripe_cut_by_hand():
    model = science(datamodels, (1, 2, 1), MULTISTRIPE, 22)
    rows = np.arange(FULL, dtype=np.float32)[:, None] * np.ones(20, np.float32)
    bias = datamodels.SuperBiasModel(data=rows + np.arange(20, dtype=np.float32))
    _window(bias, 1, 2, 1, FULL, 3, 20)
    cut = datamodels.cutout_reference(bias, model)
    expected_rows = [0, 1, 2, 3, *range(44, 50), *range(53, 59), *range(62, 68)]
    np.testing.assert_array_equal(cut.data[:, 0] - 2, expected_rows)
    np.testing.assert_array_equal(cut.data[0], np.arange(2, 14))  # from fast position 5
    assert cut.meta.subarray.ysize == 22 and cut.meta.subarray.xstart == FAST_START


def test_striped_references_must_cover_the_slow_axis():
    model = science(datamodels, (-1, 2, 1), MULTISTRIPE, 22)
    short = datamodels.SuperBiasModel(data=np.zeros((1000, 20), np.float32))
    _window(short, -1, 2, 1, 1000, 3, 20)
    with pytest.raises(ReferenceFileError, match="all 2048 detector rows"):
        datamodels.cutout_reference(short, model)
    narrow = datamodels.SuperBiasModel(data=np.zeros((FULL, 20), np.float32))
    _window(narrow, -1, 2, 1, FULL, 9, 20)
    with pytest.raises(ReferenceFileError, match="does not cover"):
        datamodels.cutout_reference(narrow, model)


def test_a_reference_of_the_striped_subarray_is_used_whole():
    model = science(datamodels, (-1, 2, 1), MULTISTRIPE, 22)
    own = datamodels.SuperBiasModel(data=np.zeros((22, FAST_SIZE), np.float32))
    _window(own, -1, 2, 1, 22, FAST_START, FAST_SIZE)
    assert datamodels.cutout_reference(own, model) is own
    striped = science(datamodels, (-1, 2, 1), SUPERSTRIPE, 21)
    own.data = np.zeros((21, FAST_SIZE), np.float32)
    own.meta.subarray.ysize = 21
    with pytest.raises(ReferenceFileError, match="all 2048"):  # superstripes: always cut
        datamodels.cutout_reference(own, striped)


class _RampInput(Step):
    input_model_class = datamodels.RampModel

    def process(self, model):
        return model


def test_superstripe_ramps_open_as_their_own_model(tmp_path):
    uncal = datamodels.Level1bModel(data=np.ones((6, 2, 21, FAST_SIZE), np.uint16))
    _window(uncal, -1, 2, 1, 21, FAST_START, FAST_SIZE)
    uncal.meta.subarray.update(SUPERSTRIPE)
    path = tmp_path / "striped_uncal.fits"
    uncal.save(path)
    for given in (path, uncal):
        model = _RampInput.call(given)
        assert type(model) is datamodels.SuperstripeRampModel
        assert model.pixeldq.shape == (3, 21, FAST_SIZE) and model.pixeldq.dtype == np.uint32
        assert model.groupdq.shape == model.data.shape
    model.pixeldq[1, 2, 3] = dqflags.DEAD
    model.int_times_stripe = np.zeros(6, datamodels.INT_TIMES_STRIPE_DTYPE)
    model.int_times_stripe["stripe_number"] = [1, 2, 3, 1, 2, 3]
    saved = tmp_path / "striped_ramp.fits"
    model.save(saved)
    again = datamodels.open(saved)
    assert type(again) is datamodels.SuperstripeRampModel
    np.testing.assert_array_equal(again.pixeldq, model.pixeldq)
    np.testing.assert_array_equal(again.int_times_stripe["stripe_number"], [1, 2, 3, 1, 2, 3])
    plain = datamodels.RampModel((1, 2, 4, 4))
    assert plain.as_specific_class() is plain
