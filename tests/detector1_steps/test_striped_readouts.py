"""dq_init, saturation, superbias and refpix on striped readouts: per-stripe references by
hand, and step by step agreement with the official steps (tests/stripe_exposure.py)."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.dq_init.step import DQInitStep
from calwebb.refpix.step import RefPixStep
from calwebb.saturation.step import SaturationStep
from calwebb.superbias.step import SuperBiasStep

NSTRIPES, NY, NX = 3, 5, 4


def superstripe_ramp(nints=2, ngroups=3):
    """A ramp whose integrations cycle over 3 stripes (geometry irrelevant here)."""
    model = datamodels.RampModel((nints * NSTRIPES, ngroups, NY, NX))
    sub = model.meta.subarray
    sub.update(dict(name="SUB64P_SUPSTP008", xstart=1, xsize=NX, ystart=1, ysize=NY,
                    fastaxis=1, slowaxis=2, multistripe_reads1=1, multistripe_skips1=0,
                    multistripe_reads2=0, superstripe_step=NY - 1, num_superstripe=NSTRIPES))
    model.meta.instrument.name = "NIRCAM"
    model.meta.exposure.nframes = 1
    return model


class _Cut:
    """A per-stripe reference model as ``cutout_reference`` would give (patched in)."""

    def __init__(self, reference):
        self.reference = reference

    def __call__(self, reference, science):
        return self.reference


def test_dq_init_superbias_and_saturation_use_each_stripe_plane(monkeypatch):
    stripes = np.arange(NSTRIPES)[:, None, None]
    mask = np.zeros((NSTRIPES, NY, NX), np.uint32)
    mask[1, 2, 3] = dqflags.DO_NOT_USE | dqflags.DEAD
    mask[2, 0, 0] = dqflags.HOT
    monkeypatch.setattr(datamodels, "cutout_reference", _Cut(datamodels.MaskModel(dq=mask)))
    result = DQInitStep.call(superstripe_ramp(), override_mask=datamodels.MaskModel(
        dq=np.zeros((NY, NX), np.uint32)))
    assert type(result) is datamodels.SuperstripeRampModel
    np.testing.assert_array_equal(result.pixeldq, mask)
    flagged = (result.groupdq & dqflags.DO_NOT_USE) != 0
    assert flagged[[1, 4], :, 2, 3].all() and flagged.sum() == 2 * 3

    bias = (1000.0 * (stripes + 1) * np.ones((NY, NX))).astype(np.float32)
    bias_dq = np.zeros_like(mask)
    bias_dq[0, 1, 1] = dqflags.UNRELIABLE_BIAS
    monkeypatch.setattr(datamodels, "cutout_reference",
                        _Cut(datamodels.SuperBiasModel(data=bias, dq=bias_dq)))
    model = superstripe_ramp()
    model.data[...] = 5000.0
    result = SuperBiasStep.call(model, override_superbias=datamodels.SuperBiasModel(
        data=np.zeros((NY, NX), np.float32)))
    np.testing.assert_array_equal(result.data[:, 0, 0, 0], 5000 - 1000 * np.array(
        [1, 2, 3, 1, 2, 3]))
    assert result.pixeldq[0, 1, 1] == dqflags.UNRELIABLE_BIAS and result.pixeldq.sum() == \
        dqflags.UNRELIABLE_BIAS

    thresholds = (np.array([100.0, 200.0, 300.0])[:, None, None] * np.ones((NY, NX)))
    monkeypatch.setattr(datamodels, "cutout_reference", _Cut(datamodels.SaturationModel(
        data=thresholds.astype(np.float32), dq=np.zeros_like(mask))))
    model = superstripe_ramp()
    model.data[...] = 250.0
    result = SaturationStep.call(model, use_readpatt=False, override_saturation=(
        datamodels.SaturationModel(data=np.zeros((NY, NX), np.float32))))
    saturated = (result.groupdq[:, 0] & dqflags.SATURATED) != 0
    np.testing.assert_array_equal(saturated.all(axis=(1, 2)), [1, 1, 0, 1, 1, 0])


@pytest.mark.compare
@pytest.mark.parametrize("mode", ["multistripe", "superstripe", "soss"])
def test_steps_agree_with_the_official_ones(striped_exposure, mode):
    pytest.importorskip("jwst")
    from jwst.dq_init import DQInitStep as OfficialDQInit
    from jwst.refpix import RefPixStep as OfficialRefPix
    from jwst.saturation import SaturationStep as OfficialSaturation
    from jwst.superbias import SuperBiasStep as OfficialSuperBias

    uncal, _ = striped_exposure(mode)
    ours, theirs = str(uncal), str(uncal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the official schema's warnings)
        for step, official in ((DQInitStep, OfficialDQInit),
                               (SaturationStep, OfficialSaturation),
                               (SuperBiasStep, OfficialSuperBias)):
            ours, theirs = step.call(ours), official.call(theirs)
            assert type(ours).__name__ == type(theirs).__name__
            np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)
            np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
            np.testing.assert_array_equal(ours.data, theirs.data)
        before = ours.data.copy()
        ours, theirs = RefPixStep.call(ours), OfficialRefPix.call(theirs)
    assert type(ours) is datamodels.RampModel and ours.meta.cal_step.refpix == "COMPLETE"
    assert ours.data.shape == theirs.data.shape
    if mode == "multistripe":
        assert np.abs(ours.data - before).max() > 10  # the amplifier offsets were removed
    np.testing.assert_allclose(ours.data, theirs.data, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)
    np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
    assert ours.meta.subarray.to_dict() == {
        key: value for key, value in theirs.meta.subarray.instance.items() if value is not None}
    for key in ("nints", "ngroups", "integration_start", "integration_end"):
        assert getattr(ours.meta.exposure, key) == getattr(theirs.meta.exposure, key), key
    if mode != "multistripe":
        for table in ("int_times", "int_times_stripe"):
            for column in getattr(theirs, table).dtype.names:
                np.testing.assert_array_equal(getattr(ours, table)[column],
                                              getattr(theirs, table)[column])
