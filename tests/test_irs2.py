"""The IRS2 interleaving layout: counts, symmetry, NRS2 reversal and the official masks;
rows moved to the head of an array's memory."""

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.errors import DataModelError
from calwebb.irs2 import IRS2Layout, is_irs2, move_rows


def irs2_model(detector="NRS1", normal=None, reference=None, rows=3200):
    model = datamodels.RampModel((1, 1, rows, 8))
    model.meta.instrument.detector = detector
    model.meta.exposure.nrs_normal, model.meta.exposure.nrs_reference = normal, reference
    return model


def test_shapes_longer_than_the_detector_are_irs2():
    assert is_irs2((2, 3, 3200, 2048))
    assert not is_irs2((2, 3, 2048, 2048))
    assert not is_irs2((2048,))


def test_a_standard_frame_has_2048_normal_rows_none_in_the_reference_output():
    layout = IRS2Layout.of(irs2_model())
    mask = layout.normal_mask()
    assert mask.shape == (3200,) and mask.sum() == 2048
    assert not mask[:640].any()
    # every amplifier: 32 groups of 16 normal rows, half a group at each end
    for amplifier in range(4):
        output = mask[640 * (amplifier + 1):640 * (amplifier + 2)]
        assert output.sum() == 512
        assert output[:8].all() and output[-8:].all()
    np.testing.assert_array_equal(layout.normal_rows(), np.flatnonzero(mask))


def test_nrs2_rows_run_against_the_readout():
    nrs1, nrs2 = IRS2Layout.of(irs2_model("NRS1")), IRS2Layout.of(irs2_model("NRS2"))
    np.testing.assert_array_equal(nrs2.normal_mask(), nrs1.normal_mask()[::-1])
    assert not nrs2.normal_mask()[-640:].any()


def test_layout_keywords_and_bad_input():
    layout = IRS2Layout.of(irs2_model(normal=8, reference=2))
    assert (layout.normal, layout.reference) == (8, 2)
    assert layout.output_pattern().sum() == 640 - 2 * (640 // 10)
    with pytest.raises(DataModelError, match="NRS1/NRS2"):
        IRS2Layout.of(irs2_model("NRCA1"))
    with pytest.raises(DataModelError, match="cannot be split"):
        IRS2Layout.of(irs2_model(rows=3201))


@pytest.mark.compare
@pytest.mark.parametrize("normal, reference", [(16, 4), (16, 8), (8, 2), (32, 4)])
def test_masks_match_the_official_ones(normal, reference):
    pytest.importorskip("jwst")
    from jwst.refpix.irs2_subtract_reference import make_irs2_mask

    layout = IRS2Layout.of(irs2_model(normal=normal, reference=reference))
    official = make_irs2_mask(2048, 3200, normal, reference)
    np.testing.assert_array_equal(layout.readout_mask(), official)


@pytest.mark.compare
def test_readout_mask_matches_the_official_extraction_mask():
    pytest.importorskip("jwst")
    from jwst.ipc import x_irs2
    from stdatamodels.jwst.datamodels import RampModel

    official_model = RampModel((1, 1, 3200, 8))
    official_model.meta.exposure.nrs_normal, official_model.meta.exposure.nrs_reference = 16, 4
    official = x_irs2.make_mask(official_model)
    ours = IRS2Layout.of(irs2_model()).readout_mask()
    np.testing.assert_array_equal(ours, official)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint32])
def test_rows_moved_to_the_head_lie_as_the_cut_array_would(dtype):
    array = np.random.default_rng(1).integers(0, 200, (2, 3, 40, 1024)).astype(dtype)
    rows = np.array([0, 3, 4, 5, 17, 38])
    expected = array[..., rows, :].copy()
    move_rows(array, rows)
    np.testing.assert_array_equal(array.reshape(-1)[:expected.size].reshape(expected.shape),
                                  expected)
