"""RefPixStep on NIRSpec IRS2 ramps: the model bookkeeping, skips, and the official step."""

import logging

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.irs2 import IRS2Layout
from calwebb.references.cache import write_local_cache
from calwebb.refpix.step import RefPixStep
from calwebb.simulate.references import irs2_table
from detector1_exposure import label_reference
from offline_crds import offline_crds


@pytest.fixture(scope="module")
def coefficient_table():
    return irs2_table()


def irs2_ramp(detector="NRS1", ngroups=2, seed=5, zeroframe=False):
    rng = np.random.default_rng(seed)
    model = datamodels.RampModel((1, ngroups, 3200, 2048))
    model.meta.instrument.name, model.meta.instrument.detector = "NIRSPEC", detector
    model.meta.exposure.readpatt, model.meta.exposure.type = "NRSIRS2RAPID", "NRS_FIXEDSLIT"
    model.meta.observation.date, model.meta.observation.time = "2024-03-01", "12:00:00.000"
    model.meta.telescope = "JWST"
    model.meta.exposure.nrs_normal, model.meta.exposure.nrs_reference = 16, 4
    sub = model.meta.subarray
    sub.name, sub.xstart, sub.ystart, sub.xsize, sub.ysize = "FULL", 1, 1, 2048, 2048
    sub.fastaxis, sub.slowaxis = (2, 1) if detector == "NRS1" else (-2, -1)
    ramp = 1000 + 300 * np.arange(ngroups)[:, None, None] + rng.normal(0, 5, (ngroups, 3200,
                                                                             2048))
    model.data[0] = ramp.astype(np.float32)
    model.data[0, :, 988:990] += 4000  # an interleaved reference pair gone bad
    model.groupdq[0, 1, IRS2Layout.of(model).normal_rows()[7], 9] = dqflags.JUMP_DET
    if zeroframe:
        model.zeroframe = model.data[:, 0].copy()
    return model


def refpix_model(table):
    model = datamodels.IRS2Model(irs2_table=table, dq_table=np.array(
        [(1, 2, 0b11 << 5)], [("OUTPUT", "<u2"), ("ODD_EVEN", "<u2"), ("MASK", "<u4")]))
    model.meta.filename = "irs2_refpix.fits"
    return model


def test_irs2_step_keeps_the_normal_rows_of_every_array(coefficient_table):
    model = irs2_ramp(zeroframe=True)
    layout = IRS2Layout.of(model)
    before = model.data.copy()
    result = RefPixStep.call(model, override_refpix=refpix_model(coefficient_table))
    assert result.meta.cal_step.refpix == "COMPLETE"
    assert result.data.shape == (1, 2, 2048, 2048) and result.pixeldq.shape == (2048, 2048)
    assert result.groupdq.shape == (1, 2, 2048, 2048) and result.zeroframe.shape == (1, 2048,
                                                                                       2048)
    assert result.groupdq[0, 1, 7, 9] == dqflags.JUMP_DET
    np.testing.assert_array_equal(model.data, before)  # the input is not modified
    # the bad pair was flagged in the (dropped) interleaved rows, not in the normal ones
    assert not (result.pixeldq & dqflags.BAD_REF_PIXEL).any()
    np.testing.assert_array_equal(result.zeroframe[0], before[0, 0][layout.normal_rows()])


def test_irs2_step_without_or_with_an_unusable_reference_is_skipped(coefficient_table, caplog):
    skipped = RefPixStep.call(irs2_ramp(), override_refpix="N/A")
    assert skipped.meta.cal_step.refpix == "SKIPPED"
    assert skipped.data.shape == (1, 2, 3200, 2048)
    # the bad pair is flagged and replaced before the reference is needed
    assert (skipped.pixeldq[988:990] & dqflags.BAD_REF_PIXEL).all()
    assert np.abs(skipped.data[0, :, 988:990] - 1150).max() < 200
    with caplog.at_level(logging.ERROR):
        short = RefPixStep.call(irs2_ramp(), override_refpix=refpix_model(coefficient_table[:10]))
    assert short.meta.cal_step.refpix == "SKIPPED"
    assert "IRS2 table has 10 rows" in caplog.text


def test_preserved_reference_rows(coefficient_table):
    result = RefPixStep.call(irs2_ramp(), override_refpix=refpix_model(coefficient_table),
                             preserve_irs2_refpix=True)
    assert result.data.shape == result.groupdq.shape == (1, 2, 3200, 2048)
    assert result.pixeldq.shape == (3200, 2048)


@pytest.mark.parametrize("detector, preserve", [("NRS1", False), ("NRS2", True)])
def test_integrations_corrected_one_by_one(coefficient_table, detector, preserve):
    """Every integration's result written over the ramp's memory (the first before the
    second's input is read) equals that integration corrected alone (no bad pairs are
    flagged, which would tie the integrations through PIXELDQ)."""
    parts = [irs2_ramp(detector, seed=seed) for seed in (1, 2)]
    model = irs2_ramp(detector)
    model.data = np.concatenate([part.data for part in parts])
    model.groupdq = np.concatenate([part.groupdq for part in parts])
    options = dict(override_refpix=refpix_model(coefficient_table), ovr_corr_mitigation_ftr=1e9,
                   preserve_irs2_refpix=preserve)
    result = RefPixStep.call(model, **options)
    assert result.data.shape == (2, 2, 3200 if preserve else 2048, 2048)
    for integration, part in enumerate(parts):
        alone = RefPixStep.call(part, **options)
        np.testing.assert_array_equal(result.data[integration], alone.data[0])
        np.testing.assert_array_equal(result.groupdq[integration], alone.groupdq[0])


@pytest.mark.compare
@pytest.mark.slow
@pytest.mark.parametrize("detector, mean_subtraction",
                         [("NRS1", False), ("NRS2", False), ("NRS1", True)])
def test_irs2_step_matches_the_official_step(coefficient_table, tmp_path, detector,
                                             mean_subtraction):
    """Equal to float32 round-off. With the mean subtraction, whose clipped means differ
    from the official ones by a few ulp, a few pixels in a million differ by up to the
    frame-trend term: the official correction treats exact zeros as unread samples, and
    which mean-subtracted group differences land exactly on zero depends on those ulp."""
    official = pytest.importorskip("jwst.refpix")
    from stdatamodels.jwst import datamodels as official_models

    path = tmp_path / "jwst_nirspec_refpix_9001.fits"
    reference = label_reference(refpix_model(coefficient_table), "refpix", "NIRSPEC",
                                detector, "FULL", (2048, 2048),
                                (2, 1) if detector == "NRS1" else (-2, -1))
    reference.meta.exposure.readpatt = "NRSIRS2RAPID"
    reference.save(path)
    model = irs2_ramp(detector)
    theirs_input = official_models.RampModel(data=model.data.copy(), pixeldq=model.pixeldq,
                                             groupdq=model.groupdq)
    for part, keys in (("instrument", ("name", "detector")),
                       ("exposure", ("readpatt", "type", "nrs_normal", "nrs_reference")),
                       ("observation", ("date", "time")),
                       ("subarray", ("name", "xstart", "ystart", "xsize", "ysize", "fastaxis",
                                     "slowaxis"))):
        for key in keys:
            setattr(getattr(theirs_input.meta, part), key,
                    getattr(getattr(model.meta, part), key))
    with offline_crds(write_local_cache([path], tmp_path / "crds")):
        ours = RefPixStep.call(model, irs2_mean_subtraction=mean_subtraction)
        theirs = official.RefPixStep.call(theirs_input, irs2_mean_subtraction=mean_subtraction)
    assert theirs.meta.cal_step.refpix == ours.meta.cal_step.refpix == "COMPLETE"
    difference = np.abs(ours.data - theirs.data)
    if mean_subtraction:
        assert (difference > 1e-3).mean() < 1e-5 and difference.max() < 0.2
    else:
        np.testing.assert_allclose(ours.data, theirs.data, rtol=0, atol=2.5e-7 * 4000)
    np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)
    np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
