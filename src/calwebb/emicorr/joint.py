"""The 'joint' EMI algorithm: fit straight ramps and a phased, scaled reference waveform
together.

Quiet pixels (group-to-group scatter below twice the median scatter, PIXELDQ clear) are
summed per integration, group and phase bin of the reference waveform (the phase their
first-group read has). For a trial phase offset φ of the waveform, and amplitude a, the
summed ramps minus ``a · waveform`` are fitted with straight lines; the χ² of those fits is
quadratic in ``a``, so the best amplitude and its χ² follow in closed form. χ² is sampled
at 500 phases, refined with a parabola through the best three, and the waveform at that
phase and amplitude is subtracted from every pixel of every group.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit, prange

from calwebb.emicorr import clocking

log = logging.getLogger(__name__)

#: trial phase offsets of the waveform
N_TRIAL_PHASES = 500
#: first and last column group (of 4 columns) of the bad reference column, left out of the fit
BAD_COLUMN_GROUPS = (1, 2)
_BAD_FIRST, _BAD_LAST = BAD_COLUMN_GROUPS
#: elements of the trial-phase × waveform × group block evaluated at once
_BLOCK_ELEMENTS = 4_000_000


class Waveform:
    """A periodic cubic interpolant of one period of a waveform on phase [0, 1).

    Sample ``m`` of ``n`` sits at phase ``(m + 0.5) / n``; one wrapped sample is added at
    each end and a not-a-knot cubic spline put through them. The spline is held as
    piecewise polynomials and evaluated by numba kernels.
    """

    def __init__(self, samples: np.ndarray):
        from scipy.interpolate import PPoly, make_interp_spline  # here: a slow import

        samples = np.asarray(samples, dtype=np.float64)
        n = samples.shape[0]
        values = np.concatenate([samples[-1:], samples, samples[:1]])
        phases = (np.arange(n + 2) - 0.5) / n
        pieces = PPoly.from_spline(make_interp_spline(phases, values, k=3, check_finite=False))
        self.breaks = np.ascontiguousarray(pieces.x)
        self.coefficients = np.ascontiguousarray(pieces.c)
        # where to start looking for a phase's piece: a uniform grid over [0, 1)
        cells = 4 * self.breaks.shape[0]
        self.first_piece = np.searchsorted(self.breaks, np.arange(cells) / cells,
                                           side="right") - 1

    @property
    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.breaks, self.coefficients, self.first_piece

    def __call__(self, phases: np.ndarray) -> np.ndarray:
        phases = np.asarray(phases, dtype=np.float64)
        flat = np.ascontiguousarray(phases).ravel()
        values = np.empty_like(flat)
        _evaluate(*self.tables, flat, values)
        return values.reshape(phases.shape)


@njit(cache=True, inline="always")
def _piece(breaks, coefficients, first_piece, phase):
    """The spline at ``phase``: the last piece starting at or before it, by Horner's rule."""
    cells = first_piece.shape[0]
    cell = min(max(int(phase * cells), 0), cells - 1)
    index = max(first_piece[cell], 0)
    while index + 1 < breaks.shape[0] and breaks[index + 1] <= phase:
        index += 1
    index = min(index, coefficients.shape[1] - 1)
    dx = phase - breaks[index]
    return ((coefficients[0, index] * dx + coefficients[1, index]) * dx
            + coefficients[2, index]) * dx + coefficients[3, index]


@njit(cache=True)
def _evaluate(breaks, coefficients, first_piece, phases, out):
    for position in range(phases.shape[0]):
        out[position] = _piece(breaks, coefficients, first_piece, phases[position])


@njit(cache=True, parallel=True)
def _subtract_waveform(frame, phase, group_shift, integration_shift, amplitude, breaks,
                       coefficients, first_piece):
    """frame[row, 4c + l] -= amplitude · waveform((phase[row, c] + shifts) mod 1)."""
    ny, nx4 = phase.shape
    for row in prange(ny):
        for group4 in range(nx4):
            value = amplitude * _piece(
                breaks, coefficients, first_piece,
                (phase[row, group4] + group_shift + integration_shift) % 1.0)
            for channel in range(4):
                frame[row, 4 * group4 + channel] -= value


def sample_phases(n_samples: int) -> np.ndarray:
    """Phases (sample midpoints) of a waveform of ``n_samples`` samples."""
    return (np.arange(n_samples + 2) - 0.5)[1:-1] / n_samples


def quiet_pixels(data: np.ndarray, pixeldq: np.ndarray) -> np.ndarray:
    """[nints, ny, nx] True where the group scatter is below twice its median and DQ is 0."""
    scatter = np.stack([np.std(integration, axis=0) for integration in data])
    return (scatter < 2 * np.median(scatter)) & (pixeldq == 0)


@njit(cache=True)
def _sum_by_phase(data, quiet, bins, nbins, sums, counts):
    nints, ngroups, ny, nx = data.shape
    for integration in range(nints):
        for row in range(ny):
            for column in range(nx):
                group4 = column // 4
                if _BAD_FIRST <= group4 <= _BAD_LAST:
                    continue
                if not quiet[integration, row, column]:
                    continue
                index = bins[row, group4]
                counts[integration, index] += 1.0
                for group in range(ngroups):
                    sums[integration, index, group] += data[integration, group, row, column]


def sum_by_phase(data: np.ndarray, quiet: np.ndarray, frame_phase: np.ndarray,
                 nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """(sums [nints, nbins, ngroups], counts [nints, nbins]) of quiet pixels' ramps by the
    waveform bin of their first-group phase (bad reference column groups left out)."""
    nints, ngroups = data.shape[:2]
    bins = np.minimum((frame_phase * nbins).astype(np.int64), nbins - 1)
    sums = np.zeros((nints, nbins, ngroups))
    counts = np.zeros((nints, nbins))
    _sum_by_phase(np.ascontiguousarray(data), np.ascontiguousarray(quiet), bins, nbins, sums,
                  counts)
    return sums, counts


class PhaseFit:
    """The sums χ²(phase, amplitude) needs, for every trial phase and integration.

    With ``t`` the group index, ``z`` the waveform at a trial phase for each bin and group,
    ``y`` the summed ramps and ``n`` the pixel counts, χ² = A a² + B a where for one
    integration ``A = Σ_bins n/Δ · (Δ·Σz² − Σt²·(Σz)² + 2Σt·Σz·Σtz − N·(Σtz)²)`` and
    ``B = 2/Δ · Σ_bins (Σt²·Σz·Σy − Σt·Σtz·Σy − Σt·Σz·Σty + N·Σtz·Σty) − 2 Σ z·y``,
    ``Δ = N·Σt² − (Σt)²``, N groups.
    """

    def __init__(self, sums: np.ndarray, counts: np.ndarray, waveform, template: np.ndarray,
                 trial_phases: np.ndarray, integration_step: float):
        nints, nbins, ngroups = sums.shape
        self.trial_phases = trial_phases
        self.integration_step = integration_step
        self.nints = nints
        times = np.arange(ngroups)
        s_tt, s_t = np.sum(times**2), np.sum(times)
        delta = ngroups * s_tt - s_t**2
        sum_y = np.sum(sums, axis=2)  # [nints, nbins]
        sum_ty = np.sum(sums * times, axis=2)
        ntrial = trial_phases.shape[0]
        self.quadratic = np.empty((ntrial, nints))
        self.linear = np.empty((ntrial, nints))
        block = max(1, _BLOCK_ELEMENTS // max(1, nbins * ngroups))
        for start in range(0, ntrial, block):
            chunk = trial_phases[start:start + block]
            z = waveform((template[None] + chunk[:, None, None]) % 1)  # [k, nbins, ngroups]
            s_z = np.sum(z, axis=2)
            s_tz = np.sum(times * z, axis=2)
            s_zz = np.sum(z**2, axis=2)
            s_yz = np.einsum("kpg,ipg->ki", z, sums)
            weight = -s_tt * s_z**2 + 2 * s_t * s_z * s_tz - ngroups * s_tz**2 + s_zz * delta
            self.quadratic[start:start + block] = weight @ (counts / delta).T
            self.linear[start:start + block] = (
                (2 / delta) * ((s_tt * s_z - s_t * s_tz) @ sum_y.T
                               + (ngroups * s_tz - s_t * s_z) @ sum_ty.T)
                - 2 * s_yz)

    def nearest_trials(self, phases: np.ndarray, integration: int) -> np.ndarray:
        """Index of the trial phase used for each phase in one integration: the first trial
        at or after ``phase + integration · step`` (cyclically)."""
        offset = self.integration_step * integration
        return np.argmin(np.abs((self.trial_phases[None, :] - phases[:, None] - offset) % 1),
                         axis=1)

    def chisq_and_amplitude(self, phases: np.ndarray, integrations) -> tuple[np.ndarray,
                                                                             np.ndarray]:
        """(χ², amplitude) at each phase, combining ``integrations``; χ² NaN and amplitude 0
        where the fit is degenerate."""
        quadratic = np.zeros(phases.shape[0])
        linear = np.zeros(phases.shape[0])
        for integration in integrations:
            trials = self.nearest_trials(phases, integration)
            quadratic += self.quadratic[trials, integration]
            linear += self.linear[trials, integration]
        bad = np.isclose(quadratic, 0, atol=1e-8) | ~np.isfinite(quadratic) | ~np.isfinite(linear)
        with np.errstate(invalid="ignore", divide="ignore"):
            amplitude = np.where(bad, 0.0, -linear / (2 * quadratic))
            chisq = np.where(bad, np.nan, quadratic * amplitude**2 + linear * amplitude)
        return chisq, amplitude


def best_phase(phases: np.ndarray, chisq: np.ndarray) -> float:
    """Vertex of the parabola through the lowest χ² and its two (cyclic) neighbours."""
    if not np.isfinite(chisq).any():
        log.warning("Chi squared values are all NaN")
        return float(phases[0])
    best = int(np.nanargmin(chisq))
    before, after = best - 1, (best + 1) % len(chisq)
    values = np.array([chisq[before], chisq[best], chisq[after]])
    if not np.isfinite(values).all():
        log.warning("Chi squared values in final optimization are unexpectedly NaN")
        return float(phases[best])
    if np.std(values) == 0:
        log.warning("Chi squared values as a function of phase offset are unexpectedly equal")
        return float(phases[best])
    x = np.array([phases[before], phases[best], phases[after]])
    a, b, _ = np.polyfit(x, values, 2)
    return float(-b / (2 * a))


def correct_frequency(data: np.ndarray, pixeldq: np.ndarray, waveform_samples: np.ndarray,
                      frequency: float, nsamples: int, rowclocks: int, frameclocks_between: int,
                      fit_ints_separately: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Fit and subtract one frequency from ``data`` [nints, ngroups, ny, nx] in place.

    ``frameclocks_between`` is the reset-frame time between integrations (0 unless R1).
    Returns (phase, amplitude) applied to each integration.
    """
    nints, ngroups, ny, nx = data.shape
    nx4 = nx // 4
    period = clocking.period_in_clocks(frequency)
    phase = clocking.frame_phase(ny, nx4, nsamples, rowclocks, period)
    group_step = clocking.group_phase_step(ny, rowclocks, period)
    integration_step = group_step * ngroups + frameclocks_between / period
    waveform = Waveform(waveform_samples)
    nbins = np.asarray(waveform_samples).shape[0]
    template = (sample_phases(nbins)[:, None] + np.arange(ngroups) * group_step) % 1

    sums, counts = sum_by_phase(data, quiet_pixels(data, pixeldq), phase, nbins)
    trial_phases = np.arange(N_TRIAL_PHASES) * 1.0 / N_TRIAL_PHASES
    fit = PhaseFit(sums, counts, waveform, template, trial_phases, integration_step)

    if fit_ints_separately:
        phases, amplitudes = np.empty(nints), np.empty(nints)
        for integration in range(nints):
            chisq, _ = fit.chisq_and_amplitude(trial_phases, [integration])
            found = best_phase(trial_phases, chisq)
            phases[integration] = found + integration * integration_step
            amplitudes[integration] = fit.chisq_and_amplitude(np.array([found]),
                                                              [integration])[1][0]
    else:
        everything = range(nints)
        chisq, _ = fit.chisq_and_amplitude(trial_phases, everything)
        found = best_phase(trial_phases, chisq)
        phases = (found + np.arange(nints) * integration_step) % 1
        amplitudes = np.full(nints, fit.chisq_and_amplitude(np.array([found]), everything)[1][0])

    for integration in range(nints):
        for group in range(ngroups):
            _subtract_waveform(data[integration, group], phase, group_step * group,
                               phases[integration], amplitudes[integration],
                               *waveform.tables)
    return phases, amplitudes
