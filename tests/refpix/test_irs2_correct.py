"""NIRSpec IRS2 reference correction: injected drifts removed, bad reference pairs replaced,
the IRS2 reference model, and agreement with the official ``correct_model``."""

import warnings

import numpy as np
import pytest

from calwebb import datamodels, dqflags
from calwebb.datamodels.reference import IRS2Model
from calwebb.errors import DataModelError, ReferenceFileError
from calwebb.irs2 import IRS2Layout, move_rows
from calwebb.refpix.irs2_correct import (
    COEFFICIENT_ROWS,
    ReadoutTiming,
    SpectrumOrder,
    amplifier_coefficients,
    check_table,
    clobber_bad_reference,
    correct_in_place,
    hermitian_part,
)

#: frequencies of a frame's readout: 2048 rows of 712 samples
SAMPLES = 712 * 2048
#: how the correction orders a frame's spectrum, and the shape of its coefficients
ORDER = SpectrumOrder.of(2048, 712)
COEFFICIENTS = (4, 1025, 712)
COLUMNS = [f"alpha_{k}" for k in range(4)] + [f"beta_{k}" for k in range(4)]
DQ_DTYPE = [("OUTPUT", "<u2"), ("ODD_EVEN", "<u2"), ("MASK", "<u4")]


def table_of(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """An IRS2 table holding complex ``alpha``, ``beta`` [4, frequencies]."""
    table = np.zeros(2 * alpha.shape[1], dtype=[(name, "<f4") for name in COLUMNS])
    for name, values in zip(COLUMNS, [*alpha, *beta], strict=True):
        table[name][0::2], table[name][1::2] = values.real, values.imag
    return table


def coefficients(table: np.ndarray, band_rows: int | None = None) -> tuple:
    """(alpha, beta) [4, 1025, 712] of an IRS2 table in memory, read ``band_rows`` rows
    at a time (default: the module's bands)."""
    bands = {} if band_rows is None else {"band_rows": band_rows}
    pairs = [amplifier_coefficients(lambda start, stop: table[start:stop], amplifier, **bands)
             for amplifier in range(1, 5)]
    return np.stack([alpha for alpha, _ in pairs]), np.stack([beta for _, beta in pairs])


def subtract_reference(ramp, layout, alpha, beta, preserve_refpix=False, threads=None):
    """One integration corrected (``correct_in_place`` on a copy) by ``alpha``, ``beta``
    [4, 1025, 712]: its normal rows, or every row with ``preserve_refpix``."""
    result = ramp.copy()
    correct_in_place(result, layout, lambda amplifier: (alpha[amplifier - 1],
                                                        beta[amplifier - 1]),
                     preserve_refpix, threads)
    return result if preserve_refpix else result[:, layout.normal_rows()]


@pytest.fixture(scope="module")
def realistic_table():
    """An IRS2 table of the official length: coefficients smooth in frequency (falling off
    from low frequencies, with a phase slope) plus noise; not Hermitian, so taking the real
    part of the result matters."""
    rng = np.random.default_rng(11)
    frequency = np.abs(np.fft.fftfreq(SAMPLES)).astype(np.float32)
    falloff = np.exp(-frequency / np.float32(0.01))
    phase = np.exp(1j * np.float32(20) * frequency)

    def noise():
        return 0.01 * (rng.standard_normal(SAMPLES, np.float32)
                       + 1j * rng.standard_normal(SAMPLES, np.float32))

    alpha = np.stack([(0.3 + 0.05 * k) * falloff * phase + noise() for k in range(4)])
    beta = np.stack([2.78 * falloff * phase.conj() + 2 * noise() for _ in range(4)])
    return table_of(alpha, beta)


def dms_sample_times(layout: IRS2Layout) -> np.ndarray:
    """[3200, 2048] when each DMS pixel is read: readout row (DMS column, reversed for
    NRS2) times 712 samples, plus the pixel's slot in the readout row, where each block of 4
    reference pixels (starting 8 pixels into an output, every 20) has an idle sample before
    and after it; outputs 0, 2, 4 are read towards lower detector rows."""
    position = np.arange(640)
    in_block = (position >= 8) & ((position - 8) % 20 < 4)
    slot = np.where(in_block, position + 2 * ((position - 8) // 20) + 1,
                    position + 2 * ((position + 8) // 20))
    times = np.empty((3200, 2048))
    readout_row = np.arange(2048)
    for output in range(5):
        readout = 640 * output + (639 - position if output % 2 == 0 else position)
        rows = 3199 - readout if layout.flipped else readout
        columns = 2047 - readout_row if layout.flipped else readout_row
        times[rows[:, None], columns] = 712 * readout_row + slot[:, None]
    return times


def ramp_scene(layout: IRS2Layout, ngroups: int = 2, seed: int = 3) -> np.ndarray:
    """A bias of 1000 DN, and ramps of 300-400 DN/group on the normal pixels away from the
    detector's reference rows and columns (nothing for the trend fit to see)."""
    rng = np.random.default_rng(seed)
    normal = layout.normal_mask()
    rate = np.zeros((3200, 2048), np.float32)
    rate[normal, 4:-4] = rng.uniform(300, 400, (normal.sum(), 2040))
    return (1000 + rate * np.arange(ngroups, dtype=np.float32)[:, None, None]).astype(np.float32)


# -- coefficients and the readout's time order ---------------------------------------------
def test_coefficients_pair_real_and_imaginary_rows():
    alpha = (np.arange(4)[:, None] + 1j * np.arange(SAMPLES)).astype(np.complex64)
    beta = (1j * np.arange(4)[:, None] - np.arange(SAMPLES) / 7).astype(np.complex64)
    table = table_of(alpha, beta)
    assert len(table) == COEFFICIENT_ROWS == 2 * 712 * 2048
    check_table(table[:3], len(table))
    ours_alpha, ours_beta = coefficients(table)
    assert ours_alpha.dtype == np.complex64 and ours_alpha.shape == COEFFICIENTS
    # (s[k] + conj(s[n - k])) / 2: alpha = a + i k gives a + i (k - n/2), a alone at 0
    frequency = ORDER.frequencies()  # every one, or its conjugate n - k
    assert np.array_equal(np.unique(np.minimum(frequency, SAMPLES - frequency)),
                          np.arange(SAMPLES // 2 + 1))
    expected = (np.arange(4)[:, None, None]
                + 1j * np.where(frequency > 0, frequency - SAMPLES / 2, 0))
    np.testing.assert_array_equal(ours_alpha, expected)
    np.testing.assert_array_equal(ours_beta[2], hermitian_part(beta[2].real, beta[2].imag,
                                                               ORDER))
    with pytest.raises(ReferenceFileError, match="IRS2 table has 2000 rows"):
        check_table(table[:2000], 2000, "irs2.fits")
    with pytest.raises(ReferenceFileError, match="IRS2 table has no beta_3 column"):
        check_table(table[["alpha_0", "alpha_1", "alpha_2", "alpha_3", "beta_0", "beta_1",
                           "beta_2"]], len(table))


def test_coefficients_read_in_bands_of_any_size_are_the_same(realistic_table):
    """A frequency and its mirror meet in one element whichever band each comes in."""
    whole = coefficients(realistic_table, band_rows=COEFFICIENT_ROWS)
    for band_rows in (2, 2 * 12345, 2 * 712 * 1000):
        for ours, expected in zip(coefficients(realistic_table, band_rows), whole,
                                  strict=True):
            np.testing.assert_array_equal(ours, expected)
    table = realistic_table.astype([(name, ">f4") for name in COLUMNS])  # as a file holds it
    np.testing.assert_array_equal(coefficients(table)[1], whole[1])
    alpha = realistic_table["alpha_2"]
    np.testing.assert_array_equal(whole[0][2], hermitian_part(alpha[0::2], alpha[1::2],
                                                              ORDER))


def test_spectrum_order_filters_to_the_real_part_of_the_full_product():
    """A series transformed in SpectrumOrder (8 rows of 6 samples), times the Hermitian
    part of a spectrum, transformed back (all columns, or some) is the real part of the
    series filtered by the full spectrum."""
    rng = np.random.default_rng(2)
    order = SpectrumOrder.of(8, 6)
    spectrum = rng.standard_normal(48) + 1j * rng.standard_normal(48)
    series = rng.standard_normal((8, 6)).astype(np.float32)
    expected = np.fft.ifft(np.fft.fft(series.ravel()) * spectrum).real.reshape(8, 6)
    product = order.forward(series) * hermitian_part(spectrum.real, spectrum.imag, order)
    np.testing.assert_allclose(order.inverse(product.copy(), np.arange(6)), expected,
                               atol=1e-5)
    columns = np.array([1, 4, 5])
    np.testing.assert_allclose(order.inverse(product.copy(), columns), expected[:, columns],
                               atol=1e-5)
    sparse = np.zeros_like(series)
    sparse[:, columns] = series[:, columns]
    np.testing.assert_allclose(order.forward_columns(series[:, columns], columns),
                               order.forward(sparse), atol=1e-5)


@pytest.mark.parametrize("flipped", [False, True])
def test_readout_timing_of_the_standard_layout(flipped):
    layout = IRS2Layout(flipped=flipped)
    timing = ReadoutTiming.of(layout)
    assert timing.row_length == 712 and timing.block_period == 22
    assert (np.diff(timing.position_slots) > 0).all() and timing.position_slots[-1] == 703
    normal_rows = np.sort(timing.dms_rows[1:, timing.normal_positions].ravel())
    np.testing.assert_array_equal(normal_rows, layout.normal_rows())
    times = dms_sample_times(layout)
    for rows in timing.dms_rows:
        np.testing.assert_array_equal(times[rows, 2047 if flipped else 0],
                                      timing.position_slots)
    # the windows: 2 samples either side of each block of 4, filled from its pairs in turn
    np.testing.assert_array_equal(timing.window_slots[:8], np.arange(7, 15))
    np.testing.assert_array_equal(timing.window_sources[:8], [9, 11, 9, 11, 10, 12, 10, 12])


# -- the correction, analytically ---------------------------------------------------------
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_zero_coefficients_give_back_the_normal_rows(detector):
    """Without coefficients nothing is subtracted (the scene has no trend in the detector's
    reference rows): the normal rows come back; preserved, the reference output too, and
    the interleaved reference rows lose their mean over groups."""
    layout = IRS2Layout(flipped=detector == "NRS2")
    ramp = ramp_scene(layout)
    refout = slice(2560, 3200) if layout.flipped else slice(0, 640)
    interleaved = ~layout.normal_mask()
    interleaved[refout] = False
    ramp[1, interleaved, 4:-4] += 5
    before = ramp.copy()
    zero = np.zeros(COEFFICIENTS, np.complex64)
    result = subtract_reference(ramp, layout, zero, zero)
    np.testing.assert_array_equal(ramp, before)  # the input is not modified
    assert result.shape == (2, 2048, 2048) and result.dtype == np.float32
    np.testing.assert_array_equal(result, ramp[:, layout.normal_rows()])

    kept = subtract_reference(ramp, layout, zero, zero, preserve_refpix=True)
    assert kept.shape == (2, 3200, 2048)
    np.testing.assert_array_equal(kept[:, layout.normal_rows()], result)
    np.testing.assert_array_equal(kept[:, refout], ramp[:, refout])
    expected = ramp[:, interleaved] - ramp[:, interleaved].mean(axis=0)
    np.testing.assert_allclose(kept[:, interleaved], expected, atol=1e-4)


@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_drift_common_to_all_outputs_removed_by_the_reference_output(detector):
    """alpha = 1, beta = 0: the reference output's own samples are subtracted; a drift
    read by every output at the same instants (opposite in the two groups) is removed to
    float32 round-off of the FFTs."""
    layout = IRS2Layout(flipped=detector == "NRS2")
    scene = ramp_scene(layout)
    time = dms_sample_times(layout)
    drift = 40 * np.sin(2 * np.pi * time / 3e5) + 10 * np.cos(2 * np.pi * time / 7.1e3)
    ramp = (scene + np.array([-1.0, 1.0])[:, None, None] * drift).astype(np.float32)
    result = subtract_reference(ramp, layout, np.ones(COEFFICIENTS, np.complex64),
                                np.zeros(COEFFICIENTS, np.complex64))
    residual = result - scene[:, layout.normal_rows()]
    assert np.abs(ramp[:, layout.normal_rows()] - scene[:, layout.normal_rows()]).max() > 45
    assert np.abs(residual).max() < 5e-4


def test_amplifier_drift_removed_by_its_interleaved_reference_pixels():
    """beta = 712/256 below 500 cycles per frame (the reference windows cover 256 of the
    712 samples of a row, so their average spectrum is 256/712 of the drift's), 0 above,
    plus an imaginary constant that the real part of the result cancels: a slow drift of
    the amplifiers alone, seen by their reference pixels, is removed."""
    layout = IRS2Layout()
    scene = ramp_scene(layout)
    time = dms_sample_times(layout)
    drift = 100 * np.sin(np.pi * time / SAMPLES) ** 2 * np.cos(2 * np.pi * 20 * time / SAMPLES)
    drift[:640] = 0  # not in the reference output
    ramp = (scene + np.array([-1.0, 1.0])[:, None, None] * drift).astype(np.float32)
    frequency = np.abs(np.fft.fftfreq(SAMPLES, 1 / SAMPLES))
    beta = 712 / 256 * (frequency < 500) + 0.7j
    result = subtract_reference(ramp, layout, np.zeros(COEFFICIENTS, np.complex64),
                                np.broadcast_to(hermitian_part(beta.real, beta.imag, ORDER),
                                                COEFFICIENTS))
    residual = result - scene[:, layout.normal_rows()]
    assert np.abs(drift[layout.normal_rows()]).max() > 95
    assert np.abs(residual).max() < 2e-3


@pytest.mark.parametrize("detector, preserve", [("NRS1", False), ("NRS2", True)])
def test_the_steps_way_equals_one_thread_on_a_copy(detector, preserve, realistic_table):
    """The step's way: the ramp corrected in place by two threads, each amplifier's
    coefficients read from the table when asked for (once, in order), the normal rows then
    moved to the head of its memory, is the result of one thread on a copy."""
    layout = IRS2Layout(flipped=detector == "NRS2")
    ramp = realistic_ramp(layout, ngroups=3)
    expected = subtract_reference(ramp, layout, *coefficients(realistic_table), preserve,
                                  threads=1)
    asked = []

    def coefficients_of(amplifier):
        asked.append(amplifier)
        return amplifier_coefficients(lambda start, stop: realistic_table[start:stop],
                                      amplifier)

    correct_in_place(ramp, layout, coefficients_of, preserve, threads=2)
    if not preserve:
        move_rows(ramp, layout.normal_rows())
    assert asked == [1, 2, 3, 4]
    np.testing.assert_array_equal(ramp.reshape(-1)[:expected.size].reshape(expected.shape),
                                  expected)


def test_correct_in_place_checks_shapes():
    coefficient = np.zeros(COEFFICIENTS[1:], np.complex64)
    with pytest.raises(DataModelError, match="must be"):
        correct_in_place(np.zeros((2, 2048, 2048), np.float32), IRS2Layout(),
                         lambda amplifier: (coefficient, coefficient))
    with pytest.raises(ReferenceFileError, match="readout rows of 712 samples"):
        correct_in_place(np.zeros((2, 3200, 2048), np.float32), IRS2Layout(normal=8),
                         lambda amplifier: (coefficient, coefficient))


# -- bad pairs named by the reference file ------------------------------------------------
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_clobber_replaces_the_pairs_the_dq_table_names(detector):
    """Pixels (readout order) of amplifier 1 are 640 + 8 + 20 * block + (0, 1) for the first
    pair of a block and + (2, 3) for the second; amplifiers 2 and 4 are read backwards, so
    their ODD_EVEN counts the pairs the other way."""
    layout = IRS2Layout(flipped=detector == "NRS2")

    def dms(readout):
        return 3199 - np.asarray(readout) if layout.flipped else np.asarray(readout)

    ramp = np.empty((1, 2, 3200, 3), np.float32)
    ramp[...] = (np.arange(3200, dtype=np.float32) ** 2 / 100)[:, None]
    ramp[0, 1] += 7
    before = ramp.copy()
    pixeldq = np.zeros((3200, 3), np.uint32)
    pixeldq[dms(1250), 1] = dqflags.BAD_REF_PIXEL
    dq_table = np.array([
        (1, 1, 1 << 5),
        (1, 2, 1 << 0 | 1 << 10 | 1 << 11 | 1 << 30 | 1 << 31),
        (2, 1, 1 << 3),
        (4, 1, 0xFFFFFFFF), (4, 2, 0xFFFFFFFF),
    ], dtype=DQ_DTYPE)
    replaced = clobber_bad_reference(ramp, layout, dq_table, pixeldq)

    def row(readout):
        return before[..., dms(readout), :]

    expected = before.copy()
    sources = {
        650: 670, 651: 671,  # block 0: nothing before
        850: 830, 851: 831, 870: 890, 871: 891,  # blocks 10, 11: not each other
        1251: 1231,  # 1250 was flagged already: kept, and not a source
        1270: 1268, 1271: 1269,  # last block: the other pair of the block
    }
    for pixel, source in sources.items():
        expected[..., dms(pixel), :] = row(source)
    for pixel in (748, 749, 1350, 1351):  # the mean of the pixels a block before and after
        expected[..., dms(pixel), :] = (row(pixel - 20) + row(pixel + 20)) / 2
    # amplifier 4, first its second pairs (copies of the first), then its first (nothing)
    first_pairs = 2560 + 8 + 20 * np.arange(32)[:, None] + np.arange(2)
    expected[..., dms(first_pairs + 2), :] = row(first_pairs)
    expected[..., dms(first_pairs), :] = 0
    np.testing.assert_array_equal(ramp, expected)
    assert replaced.sum() == 2 + 9 + 2 + 128
    assert replaced[dms(1251)] and not replaced[dms(1250)]


def test_clobber_refuses_unknown_outputs():
    dq_table = np.array([(7, 1, 1)], dtype=DQ_DTYPE)
    with pytest.raises(ReferenceFileError, match="OUTPUT must be"):
        clobber_bad_reference(np.zeros((1, 3200, 2), np.float32), IRS2Layout(), dq_table)


# -- the reference model ------------------------------------------------------------------
def small_irs2_model(cls=IRS2Model):
    table = table_of(np.full((4, 8), 1 + 2j), np.arange(32).reshape(4, 8) * 1j)
    dq_table = np.array([(1, 2, 5), (4, 1, 1 << 31)], dtype=DQ_DTYPE)
    return cls(irs2_table=table, dq_table=dq_table)


def test_irs2_model_round_trip_and_no_cutout(tmp_path):
    assert datamodels.reference_model_class("refpix") is IRS2Model
    model = small_irs2_model()
    model.meta.instrument.name = "NIRSPEC"
    model.save(tmp_path / "irs2.fits")
    loaded = datamodels.open(tmp_path / "irs2.fits")
    assert type(loaded) is IRS2Model and loaded.meta.reftype == "REFPIX"
    np.testing.assert_array_equal(loaded.irs2_table["beta_3"], model.irs2_table["beta_3"])
    assert loaded.dq_table["MASK"].tolist() == [5, 1 << 31]
    ramp = datamodels.RampModel((1, 2, 3200, 2048))
    ramp.meta.subarray.name = "FULL"
    assert datamodels.cutout_reference(loaded, ramp) is loaded
    reread = datamodels.open(tmp_path / "irs2.fits")  # the table is read in bands of rows
    np.testing.assert_array_equal(reread.array_part("irs2_table", rows=(3, 7)),
                                  model.irs2_table[3:7])
    assert reread.pending_loader("irs2_table") is not None
    np.testing.assert_array_equal(small_irs2_model().array_part("irs2_table", rows=(3, 7)),
                                  model.irs2_table[3:7])


@pytest.mark.compare
def test_irs2_model_files_are_read_both_ways(tmp_path):
    official = pytest.importorskip("stdatamodels.jwst.datamodels")
    theirs = small_irs2_model(lambda **tables: official.IRS2Model(**tables))
    theirs.meta.instrument.name = "NIRSPEC"
    theirs.save(tmp_path / "theirs.fits")
    loaded = datamodels.open(tmp_path / "theirs.fits")
    assert type(loaded) is IRS2Model
    for name in ("irs2_table", "dq_table"):
        for column in getattr(theirs, name).dtype.names:
            np.testing.assert_array_equal(getattr(loaded, name)[column],
                                          getattr(theirs, name)[column])
    ours = small_irs2_model()
    ours.meta.instrument.name = "NIRSPEC"
    ours.save(tmp_path / "ours.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reread = official.IRS2Model(str(tmp_path / "ours.fits"))
    assert reread.dq_table["MASK"].tolist() == [5, 1 << 31]
    np.testing.assert_array_equal(reread.irs2_table["alpha_2"], ours.irs2_table["alpha_2"])


# -- agreement with the official pipeline -------------------------------------------------
def official_layout(detector):
    return IRS2Layout(flipped=detector == "NRS2")


def realistic_ramp(layout: IRS2Layout, ngroups: int = 2, seed: int = 5) -> np.ndarray:
    """Bias with fixed pattern, light on the normal pixels, a slow drift and a faster
    oscillation shared by all outputs, per-group row (1/f-like) offsets, and read noise."""
    rng = np.random.default_rng(seed)
    time = dms_sample_times(layout).astype(np.float32)
    bias = 12000 + rng.normal(0, 50, (3200, 2048)).astype(np.float32)
    light = np.zeros((3200, 2048), np.float32)
    light[layout.normal_mask(), 4:-4] = rng.gamma(2, 20, (2048, 2040))
    ramp = np.empty((ngroups, 3200, 2048), np.float32)
    for group in range(ngroups):
        drift = 30 * np.sin(time / np.float32(3e4) + group) + 3 * np.sin(time / 7 + 2 * group)
        rows = rng.normal(0, 3, 2048).astype(np.float32)
        ramp[group] = bias + light * group + drift + rows + rng.normal(0, 8, (3200, 2048))
    return ramp


def bad_pairs_table():
    return np.array([(1, 1, 1 << 4 | 1 << 5), (2, 2, 1 << 0), (3, 1, 1 << 31 | 1 << 12),
                     (3, 2, 1 << 12), (4, 2, 1 << 20)], dtype=DQ_DTYPE)


@pytest.mark.compare
@pytest.mark.parametrize("detector", ["NRS1", "NRS2"])
def test_clobber_matches_official_clobber_ref(detector):
    official = pytest.importorskip("jwst.refpix.irs2_subtract_reference")
    layout = official_layout(detector)
    rng = np.random.default_rng(9)
    ramp = rng.normal(100, 10, (2, 2, 3200, 8)).astype(np.float32)
    pixeldq = np.zeros((3200, 8), np.uint32)
    flagged_readout = [640 + 8 + 20 * 5 + 20, 640 + 8 + 20 * 12 + 2, 2 * 1280 + 28 + 20 * 12]
    dms_rows = [3199 - pixel if layout.flipped else pixel for pixel in flagged_readout]
    pixeldq[dms_rows, 3] = dqflags.BAD_REF_PIXEL
    dq_table = bad_pairs_table()

    readout = np.swapaxes(ramp, 2, 3)
    if layout.flipped:
        readout = readout[:, :, ::-1, ::-1]
    readout = readout.copy()
    flags = np.zeros(3200, bool)
    flags[flagged_readout] = True
    is_reference = ~layout.readout_mask()
    is_reference[:640] = is_reference[1280:1920]
    official.clobber_ref(readout, dq_table["OUTPUT"], dq_table["ODD_EVEN"], dq_table["MASK"],
                         flags, is_reference)
    expected = readout[:, :, ::-1, ::-1] if layout.flipped else readout
    clobber_bad_reference(ramp, layout, dq_table, pixeldq)
    np.testing.assert_array_equal(ramp, np.swapaxes(expected, 2, 3))


@pytest.fixture(scope="module")
def official_reference(realistic_table):
    official = pytest.importorskip("stdatamodels.jwst.datamodels")
    return official.IRS2Model(irs2_table=realistic_table, dq_table=bad_pairs_table())


@pytest.mark.compare
@pytest.mark.slow
@pytest.mark.parametrize("detector, preserve", [("NRS1", False), ("NRS2", False),
                                                ("NRS2", True)])
def test_correction_matches_official_correct_model(detector, preserve, realistic_table,
                                                   official_reference):
    """Bad pairs from the DQ table and from PIXELDQ, then the correction of 2 groups: equal
    to the official result to float32 round-off (1-2 units in the last place of ~12000)."""
    official = pytest.importorskip("jwst.refpix.irs2_subtract_reference")
    from stdatamodels.jwst import datamodels as official_models

    layout = official_layout(detector)
    ramp = realistic_ramp(layout)
    pixeldq = np.zeros((3200, 2048), np.uint32)
    # the pixel after a bad pair of the DQ table: that pair is taken from its neighbour
    pixeldq[3199 - 1308 if layout.flipped else 1308, 7] = dqflags.BAD_REF_PIXEL
    model = official_models.RampModel(data=ramp[None].copy(), pixeldq=pixeldq.copy(),
                                      groupdq=np.zeros((1, *ramp.shape), np.uint8))
    model.meta.instrument.name = "NIRSPEC"
    model.meta.instrument.detector = detector
    model.meta.exposure.nrs_normal, model.meta.exposure.nrs_reference = 16, 4
    theirs = official.correct_model(model, official_reference, preserve_refpix=preserve).data[0]

    clobber_bad_reference(ramp, layout, official_reference.dq_table, pixeldq)
    ours = subtract_reference(ramp, layout, *coefficients(realistic_table),
                              preserve_refpix=preserve)
    assert ours.shape == theirs.shape
    scale = np.abs(theirs).max()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=2.5e-7 * scale)
