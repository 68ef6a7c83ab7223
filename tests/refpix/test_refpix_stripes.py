"""Reference-pixel correction of striped readouts and the collation of superstripes:
analytic offsets and row placement, and agreement with the official step."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.refpix.step import RefPixStep

REF = dqflags.REFERENCE_PIXEL
NGROUPS = 3


def striped_ramp(module, nints, ny, nx, subarray, model_class="RampModel", **meta):
    """A NIRCam/NIRISS ramp of calwebb or the official ``module`` with ``subarray``
    keywords; ``meta`` holds exposure keywords."""
    model = getattr(module, model_class)(data=np.zeros((nints, NGROUPS, ny, nx), np.float32))
    model.meta.instrument.name = meta.pop("instrument", "NIRCAM")
    model.meta.instrument.detector = meta.pop("detector", "NRCA1")
    exposure = model.meta.exposure
    exposure.noutputs, exposure.nframes, exposure.groupgap = 1, 1, 0
    exposure.ngroups, exposure.nints = NGROUPS, nints
    for key, value in meta.items():
        setattr(exposure, key, value)
    for key, value in subarray.items():
        setattr(model.meta.subarray, key, value)
    return model


MULTISTRIPE = dict(name="SUB164STRIPE4_DHS", fastaxis=-1, slowaxis=2, xstart=497, xsize=32,
                   ystart=1, ysize=16, multistripe_reads1=4, multistripe_skips1=20,
                   multistripe_reads2=4, multistripe_skips2=2, repeat_stripe=0,
                   interleave_reads1=0, superstripe_step=0, num_superstripe=0)


def amplifier_and_parity(fastaxis, xstart, nx):
    """(amplifier, parity) of each science column as the striped correction sees them."""
    x = np.arange(nx) if fastaxis > 0 else nx - 1 - np.arange(nx)
    return (xstart - 1 + x) // 512, x % 2


def test_multistripe_amplifier_offsets_are_removed():
    rng = np.random.default_rng(3)
    model = striped_ramp(datamodels, 2, 16, 32, MULTISTRIPE)
    scene = rng.normal(500, 5, (2, NGROUPS, 16, 32)).astype(np.float32)
    scene[..., :4, :] = 0  # the reference rows see no light
    amplifier, parity = amplifier_and_parity(-1, 497, 32)
    assert set(amplifier) == {0, 1}
    offsets = rng.normal(0, 50, (2, NGROUPS, 2, 2)).astype(np.float32)
    model.data[...] = scene + offsets[:, :, amplifier, parity][:, :, None, :]
    model.pixeldq[:4] = REF
    model.pixeldq[1, 6] = REF | dqflags.DO_NOT_USE
    model.data[:, :, 1, 6] = 1e6  # a bad reference pixel is not used
    result = RefPixStep.call(model)
    assert result.meta.cal_step.refpix == "COMPLETE"
    good = np.ones((16, 32), bool)
    good[1, 6] = False
    np.testing.assert_allclose(result.data[..., good], scene[..., good], atol=1e-3)
    odd_even_off = RefPixStep.call(model, odd_even_columns=False)
    residual = odd_even_off.data - scene  # one mean per amplifier: parities share it
    used = np.zeros((16, 32), bool)
    used[:4] = good[:4]
    for amp in (0, 1):
        columns = amplifier == amp
        column_offsets = offsets[:, :, amp, parity[columns]]
        weights = used[:, columns].sum(axis=0)
        mean = (column_offsets * weights).sum(axis=-1) / weights.sum()
        np.testing.assert_allclose(residual[..., 4:, columns],
                                   np.broadcast_to((column_offsets - mean[..., None])[
                                       :, :, None, :], residual[..., 4:, columns].shape),
                                   atol=1e-3)


#: 2 reference rows, skip 3, then 4 rows; 3 stripes 6 rows apart (2-row gaps), SLOWAXIS 2
SUPERSTRIPE = dict(name="SUB64P_SUPSTP008", fastaxis=1, slowaxis=2, xstart=1, xsize=8,
                   ystart=1, ysize=6, multistripe_reads1=2, multistripe_skips1=3,
                   multistripe_reads2=4, multistripe_skips2=0, repeat_stripe=0,
                   interleave_reads1=0, superstripe_step=6, num_superstripe=3)


def test_superstripes_are_corrected_by_stripe_and_collated_in_place():
    nints, nstripes = 2, 3
    model = striped_ramp(datamodels, nints * nstripes, 6, 8, SUPERSTRIPE,
                         model_class="SuperstripeRampModel", integration_start=4,
                         integration_end=9)
    assert model.pixeldq.shape == (3, 6, 8)
    model.pixeldq[:, :2] = REF
    detector_row = np.empty((nstripes, 6))
    for stripe in range(nstripes):
        detector_row[stripe] = [0, 1, *range(5 + 6 * stripe, 9 + 6 * stripe)]
    offsets = np.arange(nints * nstripes * NGROUPS, dtype=np.float32).reshape(
        nints * nstripes, NGROUPS) * 7
    for integration in range(nints * nstripes):
        rows = detector_row[integration % nstripes]
        signal = np.where(rows >= 5, rows * 100 + integration, 0)
        model.data[integration] = signal[None, :, None] + offsets[integration][:, None, None]
    model.pixeldq[1, 2, 3] = dqflags.DEAD
    # stripe 2 marks one reference pixel unusable; it holds a wild value in stripe 2 only
    model.pixeldq[2, 0, 5] |= dqflags.DO_NOT_USE
    model.data[2::3, :, 0, 5] = 1e5
    model.int_times = np.zeros(6, datamodels.INT_TIMES_DTYPE)
    model.int_times["int_start_MJD_UTC"] = np.arange(6)
    result = RefPixStep.call(model)
    assert type(result) is datamodels.RampModel
    # detector rows 5-20 read, stripes 2 rows apart: rows 9-10 and 15-16 are read by none
    assert result.data.shape == (nints, NGROUPS, 16, 8)
    read = np.isin(np.arange(5, 21), [*range(5, 9), *range(11, 15), *range(17, 21)])
    assert np.isnan(result.data[:, :, ~read]).all()
    assert (result.pixeldq[~read] == REF).all() and (result.groupdq[:, :, ~read] == 0).all()
    for integration in range(nints):
        for stripe in range(nstripes):
            rows = slice(6 * stripe, 6 * stripe + 4)  # collated rows of the stripe
            expected = (np.arange(5, 9)[:, None] + 6 * stripe) * 100 + 3 * integration + stripe
            np.testing.assert_allclose(result.data[integration, :, rows],
                                       np.broadcast_to(expected, (NGROUPS, 4, 8)), atol=1e-3)
    assert result.pixeldq[6, 3] == dqflags.DEAD  # stripe 1, its first science row
    assert result.meta.subarray.ystart == 6 and result.meta.subarray.ysize == 16
    assert result.meta.subarray.num_superstripe is None
    assert result.meta.subarray.multistripe_reads1 is None
    exposure = result.meta.exposure
    assert (exposure.nints, exposure.ngroups) == (2, NGROUPS)
    assert (exposure.integration_start, exposure.integration_end) == (2, 3)
    np.testing.assert_array_equal(result.int_times["integration_number"], [2, 3])
    np.testing.assert_array_equal(result.int_times_stripe["stripe_number"], [1, 2, 3] * 2)
    assert exposure.read_times is None  # one piece per stripe: evenly sampled


#: NIRISS SOSS-like: SLOWAXIS -1 (stripes along x), collated onto the whole detector width;
#: each stripe's reference and science rows read twice per group
SOSS = dict(name="SUB204STRIPE_SOSS", fastaxis=-2, slowaxis=-1, xstart=2048, xsize=16,
            ystart=1, ysize=8, multistripe_reads1=4, multistripe_skips1=6,
            multistripe_reads2=4, multistripe_skips2=0, repeat_stripe=1,
            interleave_reads1=0, superstripe_step=4, num_superstripe=2)
#: NIRCam-like superstripes read three times per group, with a ZEROFRAME
REPEATED = dict(name="SUB64P_SUPSTP002", fastaxis=1, slowaxis=-2, xstart=481, xsize=8,
                ystart=2048, ysize=24, multistripe_reads1=4, multistripe_skips1=60,
                multistripe_reads2=4, multistripe_skips2=0, repeat_stripe=1,
                interleave_reads1=0, superstripe_step=4, num_superstripe=3)


def _pair(subarray, shape, detector, instrument, seed):
    """The same superstripe ramp as a calwebb and an official model."""
    from stdatamodels.jwst import datamodels as official

    nints, ny, nx = shape
    rng = np.random.default_rng(seed)
    data = rng.normal(1000, 30, (nints, NGROUPS, ny, nx)).astype(np.float32)
    nstripes = subarray["num_superstripe"]
    pixeldq = np.zeros((nstripes, ny, nx), np.uint32)
    reference = [0, 1, 2, 3] if subarray["slowaxis"] > 0 else [-4, -3, -2, -1]
    image_axis = 0 if abs(subarray["fastaxis"]) == 1 else 1
    np.moveaxis(pixeldq, image_axis + 1, 1)[:, reference] = REF
    np.moveaxis(pixeldq, image_axis + 1, 1)[:, 12 % (ny if image_axis == 0 else nx)] |= (
        dqflags.DEAD)
    zeroframe = rng.normal(900, 30, (nints, ny, nx)).astype(np.float32)
    zeroframe[0, 0, :2] = 0  # unusable values stay 0
    int_times = np.zeros(nints, datamodels.INT_TIMES_DTYPE)
    int_times["integration_number"] = np.arange(1, nints + 1)
    int_times["int_start_MJD_UTC"] = 60000 + np.arange(nints)
    int_times["int_end_MJD_UTC"] = 60000.5 + np.arange(nints)
    models = []
    for module, cls in ((datamodels, "SuperstripeRampModel"),
                        (official, "SuperstripeRampModel")):
        model = striped_ramp(module, nints, ny, nx, subarray, model_class=cls,
                             detector=detector, instrument=instrument,
                             integration_start=1, integration_end=nints, zero_frame=True,
                             readpatt="NISRAPID" if instrument == "NIRISS" else "RAPID")
        model.data = data.copy()
        model.pixeldq = pixeldq.copy()
        model.zeroframe = zeroframe.copy()
        model.int_times = int_times.copy()
        models.append(model)
    return models


@pytest.mark.compare
@pytest.mark.parametrize("subarray, shape, detector, instrument", [
    (SOSS, (4, 8, 16), "NIS", "NIRISS"), (REPEATED, (6, 24, 8), "NRCA2", "NIRCAM")])
def test_superstripe_collation_matches_the_official_step(subarray, shape, detector,
                                                         instrument):
    pytest.importorskip("jwst")
    from jwst.refpix import RefPixStep as OfficialRefPix

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the official schema's warnings)
        ours, theirs = _pair(subarray, shape, detector, instrument, seed=5)
        ours, theirs = RefPixStep.call(ours), OfficialRefPix().run(theirs)
    assert ours.data.shape == theirs.data.shape
    np.testing.assert_allclose(ours.data, theirs.data, rtol=0, atol=1e-3)
    assert np.isnan(ours.data).any() == (subarray is SOSS)  # SOSS is padded to 2048
    np.testing.assert_allclose(ours.zeroframe, theirs.zeroframe, rtol=0, atol=1e-3)
    np.testing.assert_array_equal(ours.pixeldq, theirs.pixeldq)
    np.testing.assert_array_equal(ours.groupdq, theirs.groupdq)
    np.testing.assert_allclose(ours.meta.exposure.read_times, theirs.meta.exposure.read_times,
                               rtol=1e-12)
    assert ours.meta.subarray.to_dict() == {
        key: value for key, value in theirs.meta.subarray.instance.items() if value is not None}
    for key in ("nints", "ngroups", "integration_start", "integration_end"):
        assert getattr(ours.meta.exposure, key) == getattr(theirs.meta.exposure, key), key
    for table in ("int_times", "int_times_stripe"):
        for column in getattr(theirs, table).dtype.names:
            np.testing.assert_array_equal(getattr(ours, table)[column],
                                          getattr(theirs, table)[column])
