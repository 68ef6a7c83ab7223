"""NIRSpec IRS2: outlier interleaved reference pixels, and the optional mean subtraction.

Before the IRS2 correction (stage1.md §2.7) the interleaved reference rows are examined in
pairs: a pair whose mean absolute difference, mean or spread stands out from the other
pairs of its output is flagged BAD_REF_PIXEL | DO_NOT_USE on whole DMS rows; later every
flagged row is replaced by good reference rows one interleave period above and below. With
``irs2_mean_subtraction`` the traditional top/bottom reference-pixel means are subtracted
first, per output and IRS2 column parity, without side pixels.

All functions take DMS-orientation arrays: ramps [nints, ngroups, rows, columns] with the
interleaved axis on the rows (3200), PIXELDQ [rows, columns].
"""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clipped_stats

from calwebb import dqflags
from calwebb.irs2 import OUTPUTS, IRS2Layout
from calwebb.refpix.clipping import average_ignoring_nan, clipped_mean
from calwebb.refpix.nir import N_REF, to_detector_frame, usable

#: flags set on every row of a bad interleaved reference pair
BAD_PAIR_FLAGS = dqflags.BAD_REF_PIXEL | dqflags.DO_NOT_USE


def pair_first_rows(layout: IRS2Layout) -> np.ndarray:
    """[outputs, pairs] DMS rows of the first row of every interleaved reference pair.

    In each of the five DMS row sections, from NRS_NORM/2 every NRS_NORM + NRS_REF rows,
    NRS_REF reference rows taken two at a time. The official flagging counts these rows in
    DMS order for every section, the reference output included; the interleave pattern is
    symmetric, so for NRS2 they are the same detector pairs read backwards.
    """
    block_starts = np.arange(layout.normal // 2, layout.section,
                             layout.normal + layout.reference)
    within = (block_starts[:, None] + np.arange(0, layout.reference, 2)).ravel()
    return np.arange(OUTPUTS)[:, None] * layout.section + within


def interleaved_reference_rows(layout: IRS2Layout) -> np.ndarray:
    """True at the DMS rows of the interleaved reference pairs (all five sections)."""
    rows = np.zeros(layout.length, bool)
    first = pair_first_rows(layout).ravel()
    rows[first] = rows[first + 1] = True
    return rows


def flagged_rows(pixeldq: np.ndarray) -> np.ndarray:
    """True at the DMS rows with BAD_REF_PIXEL set in any column."""
    return ((pixeldq & dqflags.BAD_REF_PIXEL) != 0).any(axis=1)


def pair_statistics(ramp: np.ndarray, first_rows: np.ndarray) -> np.ndarray:
    """[3, pairs] float32 statistics of the row pairs (``first_rows``, ``first_rows`` + 1)
    of one integration [ngroups, rows, columns], over groups and columns: mean |second -
    first|, mean and standard deviation. Each is the numpy float32 reduction of that pair
    alone, so it rounds exactly as the official one; one pair at a time keeps the
    temporaries small."""
    statistics = np.empty((3, first_rows.size), ramp.dtype)
    for index, row in enumerate(first_rows):
        pair = ramp[:, row:row + 2]
        statistics[:, index] = np.abs(pair[:, 1] - pair[:, 0]).mean(), pair.mean(), pair.std()
    return statistics


def high_outliers(values: np.ndarray, n_sigma: float) -> np.ndarray:
    """True where a value exceeds the sigma-clipped mean by more than ``n_sigma`` clipped
    standard deviations (astropy ``sigma_clipped_stats``, clipping at ``n_sigma``)."""
    mean, _, std = sigma_clipped_stats(values, sigma=n_sigma)
    return (values - mean) > (n_sigma * std)


def flag_bad_reference_pairs(data: np.ndarray, pixeldq: np.ndarray, layout: IRS2Layout,
                             n_sigma: float = 3.0) -> np.ndarray:
    """Flag outlier interleaved reference pairs; PIXELDQ is updated in place.

    For each integration and DMS row section, the pairs not already flagged are tested on
    three statistics (``pair_statistics``); a pair high in any is marked. Every row marked
    in some integration, and every row that already had BAD_REF_PIXEL in some column, gets
    BAD_REF_PIXEL | DO_NOT_USE across all columns. Returns those rows (bool [rows]).
    """
    n_sigma = float(n_sigma)
    first_rows = pair_first_rows(layout)
    already = flagged_rows(pixeldq)
    flagged = already.copy()
    candidates = ~(already[first_rows] | already[first_rows + 1])  # [outputs, pairs]
    for ramp in data:
        statistics = pair_statistics(ramp, first_rows.ravel()).reshape(3, *first_rows.shape)
        for output in range(OUTPUTS):
            tested = candidates[output]
            if not tested.any():
                continue
            outliers = np.zeros(tested.sum(), bool)
            for values in statistics:
                outliers |= high_outliers(values[output, tested], n_sigma)
            bad = first_rows[output, tested][outliers]
            flagged[bad] = flagged[bad + 1] = True
    pixeldq[flagged] |= np.asarray(BAD_PAIR_FLAGS, pixeldq.dtype)
    return flagged


def replace_bad_reference_pairs(data: np.ndarray, pixeldq: np.ndarray,
                                layout: IRS2Layout) -> None:
    """Replace every row flagged BAD_REF_PIXEL (in any column) in place in ``data``.

    Within the row's section, the unflagged rows one interleave period (NRS_NORM + NRS_REF)
    below and above give their mean, or the one of them that exists; failing both, an
    unflagged interleaved reference row two rows below (else above); failing all, zero
    (``replacement_sources``). Sources are never flagged rows, so the order of replacement
    does not matter. PIXELDQ is only read (the flagging pass already marked these rows
    across all columns).
    """
    flagged = flagged_rows(pixeldq)
    rows = np.flatnonzero(flagged)
    if rows.size == 0:
        return
    section_start = rows - rows % layout.section
    sources = replacement_sources(rows, flagged, interleaved_reference_rows(layout),
                                  section_start, section_start + layout.section,
                                  layout.normal + layout.reference)
    for ramp in data:  # one integration at a time bounds the temporaries
        replace_rows(ramp, rows, *sources)


def replacement_sources(rows: np.ndarray, flagged: np.ndarray, is_reference: np.ndarray,
                        start, stop, period: int) -> tuple[np.ndarray, ...]:
    """Where bad reference ``rows`` take their values from, within [``start``, ``stop``)
    (per row or for all): (the rows one ``period`` before, after, whether both are unflagged
    — their mean is taken —, and otherwise the single source: the one of them that is
    unflagged, else an unflagged reference row two before, else two after, else -1: zero).
    ``flagged`` and ``is_reference`` are indexed by row."""

    def usable(candidates: np.ndarray, reference_only: bool = False) -> np.ndarray:
        inside = (candidates >= start) & (candidates < stop)
        candidates = np.clip(candidates, 0, flagged.size - 1)
        good = inside & ~flagged[candidates]
        return good & is_reference[candidates] if reference_only else good

    before, after = rows - period, rows + period
    has_before, has_after = usable(before), usable(after)
    single = np.select([has_before, has_after, usable(rows - 2, True), usable(rows + 2, True)],
                       [before, after, rows - 2, rows + 2], -1)
    return before, after, has_before & has_after, single


def replace_rows(data: np.ndarray, rows: np.ndarray, before: np.ndarray, after: np.ndarray,
                 both: np.ndarray, single: np.ndarray) -> None:
    """In place along the row axis (-2) of ``data``: ``rows`` become the mean of their rows
    ``before`` and ``after`` where ``both``, else their ``single`` source row, or 0 where
    that is -1 (``replacement_sources``)."""
    copied, zeroed = ~both & (single >= 0), ~both & (single < 0)
    data[..., rows[both], :] = (data[..., before[both], :] + data[..., after[both], :]) / 2
    data[..., rows[copied], :] = data[..., single[copied], :]
    data[..., rows[zeroed], :] = 0


def odd_readout_columns(layout: IRS2Layout) -> np.ndarray:
    """True at the "odd" IRS2 columns along the interleaved axis, in readout order.

    Normal pixels alternate odd/even from the first; interleaved reference pixels come in
    pairs, odd then even (readout position modulo 4 below 2 is odd). The reference output
    takes the first amplifier's pattern.
    """
    reference = ~layout.readout_mask()
    reference[:layout.section] = reference[layout.section:2 * layout.section]
    position = np.arange(layout.length)
    return np.where(reference, position % 4 < 2, position % 2 == 0)


def subtract_top_bottom_means(data: np.ndarray, pixeldq: np.ndarray, layout: IRS2Layout,
                              odd_even_columns: bool = True, siglimit: float = 3.0) -> None:
    """The ``irs2_mean_subtraction`` correction, in place on ``data``.

    In the detector frame (2048 rows, the 3200 interleaved columns in readout order), per
    group, per output (the reference output and four amplifiers, ``section`` columns each)
    and IRS2 column parity (``odd_readout_columns``, or all columns together), the
    sigma-clipped means of the usable pixels of the 4 bottom and 4 top reference rows are
    averaged and subtracted from that output's columns. An output with a parity lacking
    usable reference pixels in both strips is left as it is. No side-pixel correction.
    """
    fastaxis, slowaxis = (-2, -1) if layout.flipped else (2, 1)
    parity = (~odd_readout_columns(layout)).astype(int) if odd_even_columns else np.zeros(
        layout.length, int)
    nparity = 2 if odd_even_columns else 1
    # [outputs, parity, section] selection of each output's columns by parity
    by_parity = parity.reshape(OUTPUTS, 1, layout.section) == np.arange(nparity)[:, None]
    good_pixels = to_detector_frame(usable(pixeldq), fastaxis, slowaxis)
    strips = (slice(None, N_REF), slice(-N_REF, None))
    section_of_column = np.arange(layout.length) // layout.section
    for ramp in data:
        detector = to_detector_frame(ramp, fastaxis, slowaxis)  # [ngroups, 2048, length]
        ngroups = detector.shape[0]
        means = []
        for rows in strips:
            values = detector[:, rows].reshape(ngroups, N_REF, OUTPUTS, layout.section)
            values = values.transpose(0, 2, 1, 3)[:, :, None]  # [g, output, 1, row, column]
            good = good_pixels[rows].reshape(N_REF, OUTPUTS, layout.section)
            good = good.transpose(1, 0, 2)[:, None] & by_parity[:, :, None]
            shape = (ngroups, OUTPUTS, nparity, N_REF * layout.section)
            values = np.broadcast_to(values, (*shape[:3], N_REF, layout.section))
            # float32 strip means averaged in float32, as the official rounds them
            means.append(clipped_mean(values.reshape(shape), good.reshape(shape[1:]),
                                      siglimit).astype(ramp.dtype))
        signal = average_ignoring_nan(*means)  # [ngroups, outputs, parity]
        signal[np.isnan(signal).any(axis=-1)] = 0.0  # subtracting 0 changes no value
        offsets = signal[:, section_of_column, parity]
        if layout.flipped:
            offsets = offsets[:, ::-1]
        ramp -= offsets[:, :, None]
