"""A detector up the ramp: charge, non-linearity, saturation, bias, reference pixels, noise.

The same ``DetectorTruth`` produces the raw ramps and the reference files, so that a
perfect Stage 1 recovers the count rate the sky put on the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calwebb import dqflags
from calwebb.simulate.instruments import Detector

N_REF = 4


@dataclass
class DetectorTruth:
    """Per-pixel properties of one full-frame detector (science orientation)."""

    detector: Detector
    gain: np.ndarray  # e-/DN
    read_noise: np.ndarray  # CDS read noise, DN
    bias: np.ndarray  # DN
    dark_rate: np.ndarray  # DN/s
    nonlinearity: np.ndarray  # a in  linear = raw + a·raw²
    saturation: np.ndarray  # DN, bias included
    mask: np.ndarray  # DQ flags (dead, hot, reference pixels)
    reference: np.ndarray  # bool: reference pixel

    @property
    def full_well(self) -> np.ndarray:
        return self.saturation + 300.0


def make_detector(detector: Detector, seed: int) -> DetectorTruth:
    """Draw a detector: gains, noise, bias, dark, non-linearity, bad pixels (deterministic)."""
    rng = np.random.default_rng(seed)
    shape = detector.full_shape
    miri = detector.instrument == "MIRI"
    reference = np.zeros(shape, bool)
    reference[:, :N_REF] = reference[:, -N_REF:] = True
    if not miri:
        reference[:N_REF, :] = reference[-N_REF:, :] = True
    mask = np.where(reference, dqflags.REFERENCE_PIXEL, 0).astype(np.uint32)
    dark_rate = np.abs(rng.normal(0.2 if miri else 0.003, 0.001, shape)).astype(np.float32)
    science = np.flatnonzero(~reference.ravel())
    dead = rng.choice(science, size=max(1, science.size // 4000), replace=False)
    hot = rng.choice(science, size=max(1, science.size // 4000), replace=False)
    mask.ravel()[dead] |= dqflags.DEAD | dqflags.DO_NOT_USE
    mask.ravel()[hot] |= dqflags.HOT
    dark_rate.ravel()[hot] = rng.uniform(2, 20, hot.size)
    dark_rate[reference] = 0
    gain = rng.normal(2.0 if not miri else 4.0, 0.05, shape).astype(np.float32)
    bias = rng.normal(12000 if not miri else 10000, 400, shape).astype(np.float32)
    saturation = (bias + rng.normal(50000, 1500, shape)).astype(np.float32)
    return DetectorTruth(
        detector=detector, gain=gain,
        read_noise=rng.normal(10.0 if not miri else 6.0, 0.5, shape).astype(np.float32),
        bias=bias, dark_rate=dark_rate,
        nonlinearity=rng.normal(1.5e-6, 1e-7, shape).astype(np.float32),
        saturation=saturation, mask=mask, reference=reference,
    )


def cut(array: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """The (xstart, ystart, xsize, ysize) 1-based window of a full-frame array."""
    x0, y0, nx, ny = window
    return array[..., y0 - 1:y0 - 1 + ny, x0 - 1:x0 - 1 + nx]


def observed_from_linear(linear: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Invert linear = raw + a·raw² exactly (the LINEARITY reference's polynomial)."""
    return (np.sqrt(1.0 + 4.0 * a * linear) - 1.0) / (2.0 * a)


@dataclass
class RampResult:
    data: np.ndarray  # uint16 [nints, ngroups, ny, nx]
    cosmic_rays: list[tuple[int, int, int, int, float]]  # (int, group, y, x, electrons)


def simulate_ramps(rate: np.ndarray, truth: DetectorTruth, window, nframes: int, groupgap: int,
                   ngroups: int, nints: int, frame_time: float, cosmic_ray_rate: float,
                   rng: np.random.Generator) -> RampResult:
    """Read a detector exposed to ``rate`` (DN/s, subarray shape) up the ramp.

    Per frame: Poisson charge from sky and dark, cosmic rays; per group: the average of
    NFRAMES frames, non-linearity (inverse of the reference polynomial), clipping at full
    well, bias, per-amplifier and per-row (1/f-like) drifts that the reference pixels see,
    and read noise per frame.
    """
    gain, a = cut(truth.gain, window), cut(truth.nonlinearity, window)
    bias, full_well = cut(truth.bias, window), cut(truth.full_well, window)
    reference = cut(truth.reference, window)
    read_noise_frame = cut(truth.read_noise, window) / np.sqrt(2.0)
    electrons_per_frame = np.where(reference, 0.0, (rate + cut(truth.dark_rate, window))
                                   * frame_time * gain)
    ny, nx = rate.shape
    miri = truth.detector.instrument == "MIRI"
    amplifier = (np.arange(nx) % 4) if miri else np.minimum(np.arange(nx) // 512, 3)
    # MIRI has no superbias step: its non-linearity acts on the bias-included level
    offset = bias if miri else 0.0
    # per-group amplifier offsets (DN): NIR reference pixels remove them; MIRI subarrays have
    # no usable reference columns, and MIRI's offsets are smaller
    amplifier_drift = 0.3 if miri else 4.0
    data = np.empty((nints, ngroups, ny, nx), np.uint16)
    hits: list[tuple[int, int, int, int, float]] = []
    expected_hits = cosmic_ray_rate * frame_time * ny * nx
    for integration in range(nints):
        charge = np.zeros((ny, nx))
        frame = 0
        for group in range(ngroups):
            accumulated = np.zeros((ny, nx))
            for _ in range(nframes):
                frame += 1
                charge += rng.poisson(electrons_per_frame)
                for _hit in range(rng.poisson(expected_hits)):
                    y, x = rng.integers(0, ny), rng.integers(0, nx)
                    if reference[y, x]:
                        continue
                    energy = float(rng.uniform(200, 5000))
                    charge[y, x] += energy
                    hits.append((integration, group, int(y), int(x), energy))
                accumulated += observed_from_linear(offset + charge / gain, a) - offset + (
                    rng.normal(0, read_noise_frame))
            for _ in range(groupgap if group < ngroups - 1 else 0):
                frame += 1
                charge += rng.poisson(electrons_per_frame)
            level = np.minimum(accumulated / nframes, full_well - bias)
            drift = rng.normal(0, amplifier_drift, 4)[amplifier][None, :] + _slow_drift(
                ny, rng)[:, None]
            data[integration, group] = np.clip(np.round(bias + level + drift), 0, 65535)
    return RampResult(data, hits)


def _slow_drift(n_rows: int, rng: np.random.Generator, amplitude: float = 1.0) -> np.ndarray:
    """A smooth, 1/f-like bias wander along the rows (what the side reference pixels track)."""
    walk = np.cumsum(rng.normal(0, 1, n_rows + 64))
    smooth = np.convolve(walk, np.ones(32) / 32, mode="same")[32:32 + n_rows]
    smooth -= smooth.mean()
    return amplitude * smooth / max(np.std(smooth), 1e-9)
