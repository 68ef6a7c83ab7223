"""Striped readout geometry (calwebb.stripes): hand-computed rows, errors, and agreement
with the official range, read-time and INT_TIMES functions."""

import itertools
import warnings

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.errors import DataModelError
from calwebb.stripes import StripeReadout, read_times, split_int_times
from stripe_exposure import SETUPS, science_rows


def striped_model(model, fastaxis=1, slowaxis=2, start=1, size=64, name="SUB64P", **keywords):
    """``model`` (calwebb or official) with the subarray keywords of a striped readout."""
    sub = model.meta.subarray
    sub.fastaxis, sub.slowaxis, sub.name = fastaxis, slowaxis, name
    slow, fast = ("y", "x") if abs(fastaxis) == 1 else ("x", "y")
    setattr(sub, f"{slow}start", start)
    setattr(sub, f"{slow}size", size)
    setattr(sub, f"{fast}start", 1)
    setattr(sub, f"{fast}size", 32)
    for key, value in keywords.items():
        setattr(sub, key, value)
    return model


def readout(**keywords):
    return StripeReadout.of(striped_model(datamodels.RampModel(), **keywords))


@pytest.mark.parametrize("mode", sorted(SETUPS))
def test_rows_of_the_test_exposures(mode):
    setup = SETUPS[mode]
    geometry = readout(fastaxis=setup.fastaxis, slowaxis=setup.slowaxis, start=setup.ystart,
                       size=len(setup.rows[0]), name=setup.subarray, **setup.keywords)
    assert geometry.nstripes == setup.nstripes
    for stripe in range(setup.nstripes):
        np.testing.assert_array_equal(geometry.detector_rows(stripe),
                                      science_rows(setup, stripe))


def test_multistripe_pieces_by_hand():
    # 2 reference rows, skip 5, 3 rows; then skip 4, 3 rows (read from detector row 9)
    geometry = readout(start=10, size=8, multistripe_reads1=2, multistripe_skips1=5,
                       multistripe_reads2=3, multistripe_skips2=4)
    assert geometry.pieces(0) == [(slice(0, 2), slice(9, 11), True),
                                  (slice(2, 5), slice(16, 19), False),
                                  (slice(5, 8), slice(23, 26), False)]
    assert geometry.collated_window() == (16, 10)
    # the same read against SLOWAXIS -2: the readout starts at science row 2048 - 10
    flipped = readout(slowaxis=-2, start=2048 - 9, size=8, multistripe_reads1=2,
                      multistripe_skips1=5, multistripe_reads2=3, multistripe_skips2=4)
    assert flipped.pieces(0)[0] == (slice(6, 8), slice(2048 - 11, 2048 - 9), True)


def test_repeated_and_interleaved_stripes():
    repeated = readout(size=12, multistripe_reads1=2, multistripe_skips1=3,
                       multistripe_reads2=2, multistripe_skips2=1, repeat_stripe=1)
    assert [piece.detector for piece in repeated.science_pieces(0)] == [slice(5, 7)] * 3
    assert repeated.pieces_per_stripe == 3
    interleaved = readout(size=12, multistripe_reads1=2, multistripe_skips1=3,
                          multistripe_reads2=2, multistripe_skips2=1, repeat_stripe=1,
                          interleave_reads1=1)
    assert [piece.detector for piece in interleaved.science_pieces(0)] == [
        slice(5, 7), slice(8, 10), slice(11, 13)]


def test_invalid_stripe_keywords():
    with pytest.raises(DataModelError, match="MSTR_RD2"):
        readout(size=8, multistripe_reads1=2, multistripe_reads2=0)
    with pytest.raises(DataModelError, match="slow axis"):
        readout(size=9, multistripe_reads1=2, multistripe_reads2=3)
    with pytest.raises(DataModelError, match="beyond the detector"):
        readout(start=2040, size=8, multistripe_reads1=2, multistripe_skips1=5,
                multistripe_reads2=3, multistripe_skips2=4)
    assert StripeReadout.of(datamodels.RampModel()) is None


def test_split_int_times():
    table = np.zeros(6, datamodels.INT_TIMES_DTYPE)
    table["integration_number"] = np.arange(1, 7)
    for scale in ("MJD_UTC", "BJD_TDB"):
        table[f"int_start_{scale}"] = np.arange(6) * 10.0
        table[f"int_end_{scale}"] = np.arange(6) * 10.0 + 4
    per_stripe, per_integration = split_int_times(table, 3, 5,
                                                  datamodels.INT_TIMES_STRIPE_DTYPE)
    np.testing.assert_array_equal(per_stripe["integration_number"], [5, 5, 5, 6, 6, 6])
    np.testing.assert_array_equal(per_stripe["stripe_number"], [1, 2, 3, 1, 2, 3])
    np.testing.assert_array_equal(per_stripe["int_end_BJD_TDB"], table["int_end_BJD_TDB"])
    np.testing.assert_array_equal(per_integration["integration_number"], [5, 6])
    np.testing.assert_array_equal(per_integration["int_start_MJD_UTC"], [0, 30])
    np.testing.assert_array_equal(per_integration["int_end_MJD_UTC"], [24, 54])
    np.testing.assert_array_equal(per_integration["int_mid_MJD_UTC"], [12, 42])
    with pytest.raises(DataModelError, match="whole integrations"):
        split_int_times(table[:5], 3, 1, datamodels.INT_TIMES_STRIPE_DTYPE)


def _official_model(**keywords):
    from stdatamodels.jwst import datamodels as official

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (test subarray names outside the schema's list)
        return striped_model(official.RampModel(), **keywords)


def _ranges(pieces):
    return [(piece.subarray.start, piece.subarray.stop, piece.detector.start,
             piece.detector.stop) for piece in pieces]


@pytest.mark.compare
def test_pieces_match_the_official_ranges():
    stripe_utils = pytest.importorskip("jwst.lib.stripe_utils")
    grid = itertools.product(((-1, 2), (-2, -1)), [0, 4], [10], [0, 8], [5], [0, 1], [0, 1],
                             [0, 16], [0, 3])
    checked = 0
    for (fast, slow), *values in grid:
        reads1, skips1, reads2, skips2, repeat, interleave, step, nstripes = values
        if reads2 == 0 and (nstripes == 0 or step == 0):
            continue
        size = reads1 * (3 if repeat else 1) + 3 * (reads2 or step)
        keywords = dict(fastaxis=fast, slowaxis=slow, start=2000 if slow < 0 else 51,
                        size=size, multistripe_reads1=reads1, multistripe_skips1=skips1,
                        multistripe_reads2=reads2, multistripe_skips2=skips2,
                        repeat_stripe=repeat, interleave_reads1=interleave,
                        superstripe_step=step, num_superstripe=nstripes)
        ours = readout(**keywords)
        theirs_model = _official_model(**keywords)
        if nstripes:
            theirs = stripe_utils.generate_superstripe_ranges(theirs_model, science_frame=True)
            stripes = range(nstripes)
        else:
            theirs = stripe_utils.generate_substripe_ranges(theirs_model, science_frame=True)
            theirs = {key: {0: list(value.values())} for key, value in theirs.items()}
            stripes = [0]
        for stripe in stripes:
            for reference, kind in ((False, ""), (True, "reference_")):
                expected = [(int(s[0]), int(s[1]), int(f[0]), int(f[1])) for s, f in zip(
                    theirs[f"{kind}subarray"][stripe], theirs[f"{kind}full"][stripe],
                    strict=True)]
                mine = [piece for piece in ours.pieces(stripe) if piece.reference == reference]
                assert _ranges(mine) == expected, keywords
        checked += 1
    assert checked == 80


@pytest.mark.compare
@pytest.mark.parametrize("noutputs, nframes, groupgap", [(1, 1, 0), (4, 2, 1)])
def test_read_times_match_the_official_ones(noutputs, nframes, groupgap):
    stripe_utils = pytest.importorskip("jwst.lib.stripe_utils")
    keywords = dict(fastaxis=1, slowaxis=-2, start=2048, size=24, multistripe_reads1=4,
                    multistripe_skips1=60, multistripe_reads2=4, repeat_stripe=1,
                    superstripe_step=4, num_superstripe=3)
    theirs_model = _official_model(**keywords)
    exposure = theirs_model.meta.exposure
    exposure.nframes, exposure.groupgap, exposure.ngroups = nframes, groupgap, 5
    exposure.noutputs = noutputs
    theirs = stripe_utils.stripe_read_times(theirs_model)
    ours = read_times(readout(**keywords), 5, nframes, groupgap, noutputs, 32)
    assert len(ours) == len(theirs) == 15
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
