"""A detector up the ramp: charge, IPC, non-linearity, saturation, bias, reference pixels,
odd/even amplifier offsets, MIRI reset anomaly, first-group transient and last-frame
effect, noise; NIRSpec IRS2 readouts with their interleaved reference pixels.

The same ``DetectorTruth`` produces the raw ramps and the reference files, so that a
perfect Stage 1 recovers the count rate the sky put on the detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calwebb import dqflags
from calwebb.irs2 import IRS2Layout
from calwebb.simulate.instruments import IRS2_NORMAL, IRS2_REFERENCE, Detector

N_REF = 4
#: MIRI reset anomaly: A·exp(−group / RESET_TAU_GROUPS) in the first RESET_GROUPS groups
RESET_TAU_GROUPS = 2.0
RESET_GROUPS = 12
#: MIRI first-group transient (reset switch charge decay): groups it disturbs in the first
#: integration and in later ones, halving from group to group (what the RSCD reference skips)
RSCD_GROUPS = (1, 3)


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
    reset_amplitude: np.ndarray | None = None  # MIRI reset anomaly at group 0, DN
    last_frame_offset: np.ndarray | None = None  # MIRI last-group offset, DN
    first_group_transient: np.ndarray | None = None  # MIRI RSCD transient at group 0, DN
    ipc_alpha: float = 0.0  # coupling to each of the 4 nearest neighbours
    irs2_bias: np.ndarray | None = None  # NIRSpec IRS2: bias of the 3200-row frame, DN

    @property
    def full_well(self) -> np.ndarray:
        return self.saturation + 300.0

    @property
    def irs2_layout(self) -> IRS2Layout | None:
        """Where the normal pixels sit in an IRS2 frame (None: no IRS2 readout)."""
        return None if self.irs2_bias is None else _irs2_layout(self.detector)

    @property
    def transposed(self) -> bool:
        """Whether the detector reads along the DMS columns (FASTAXIS ±2: NIRSpec), so that
        its amplifiers split the rows and its readout rows are DMS columns."""
        return abs(self.detector.fastaxis) == 2


def make_detector(detector: Detector, seed: int, ipc_alpha: float = 0.0,
                  irs2: bool = False) -> DetectorTruth:
    """Draw a detector: gains, noise, bias, dark, non-linearity, bad pixels, MIRI reset
    anomaly, first-group transient and last-frame offset; with ``irs2``, the bias of the
    interleaved reference pixels too (deterministic)."""
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
    read_noise = rng.normal(10.0 if not miri else 6.0, 0.5, shape).astype(np.float32)
    nonlinearity = rng.normal(1.5e-6, 1e-7, shape).astype(np.float32)
    reset_amplitude = last_frame_offset = first_group_transient = None
    if miri:
        reset_amplitude = np.where(reference, 0.0, rng.normal(40.0, 8.0, shape)).astype(
            np.float32)
        last_frame_offset = np.where(reference, 0.0, rng.normal(-15.0, 4.0, shape)).astype(
            np.float32)
        first_group_transient = np.where(reference, 0.0, rng.normal(30.0, 8.0, shape)).astype(
            np.float32)
    irs2_bias = None
    if irs2:
        layout = _irs2_layout(detector)
        irs2_bias = rng.normal(12000, 400, (layout.length, shape[1])).astype(np.float32)
        irs2_bias[layout.normal_rows()] = bias
    return DetectorTruth(
        detector=detector, gain=gain, read_noise=read_noise, bias=bias, dark_rate=dark_rate,
        nonlinearity=nonlinearity, saturation=saturation, mask=mask, reference=reference,
        reset_amplitude=reset_amplitude, last_frame_offset=last_frame_offset,
        first_group_transient=first_group_transient,
        ipc_alpha=ipc_alpha, irs2_bias=irs2_bias,
    )


def _irs2_layout(detector: Detector) -> IRS2Layout:
    return IRS2Layout(3200, IRS2_NORMAL, IRS2_REFERENCE, flipped=detector.name == "NRS2")


def irs2_mask(truth: DetectorTruth) -> np.ndarray:
    """The MASK of the 3200-row IRS2 frame: the interleaved reference pixels and the normal
    frame's reference border flagged REFERENCE_PIXEL, the normal pixels' flags kept."""
    layout = truth.irs2_layout
    mask = np.full(truth.irs2_bias.shape, dqflags.REFERENCE_PIXEL, np.uint32)
    mask[layout.normal_rows()] = truth.mask
    return mask


def reset_anomaly(amplitude: np.ndarray, ngroups: int) -> np.ndarray:
    """The MIRI reset anomaly of the first ``ngroups`` groups, [ngroups, ny, nx] DN."""
    groups = np.arange(min(ngroups, RESET_GROUPS), dtype=np.float32)
    return amplitude[None] * np.exp(-groups / RESET_TAU_GROUPS)[:, None, None]


def ipc_kernel(alpha: float) -> np.ndarray:
    """The 3×3 coupling kernel: ``alpha`` to each nearest neighbour, the rest kept."""
    kernel = np.zeros((3, 3))
    kernel[0, 1] = kernel[2, 1] = kernel[1, 0] = kernel[1, 2] = alpha
    kernel[1, 1] = 1.0 - 4.0 * alpha
    return kernel


def ipc_deconvolution_kernel(alpha: float, size: int = 5) -> np.ndarray:
    """The ``size``×``size`` kernel undoing :func:`ipc_kernel` (what the IPC reference holds):
    the exact inverse computed in Fourier space, truncated (errors of order alpha³) and
    renormalised to sum 1."""
    n = 64
    padded = np.zeros((n, n))
    padded[:3, :3] = ipc_kernel(alpha)
    padded = np.roll(padded, (-1, -1), axis=(0, 1))
    inverse = np.real(np.fft.ifft2(1.0 / np.fft.fft2(padded)))
    half = size // 2
    kernel = np.roll(inverse, (half, half), axis=(0, 1))[:size, :size]
    return (kernel / kernel.sum()).astype(np.float32)


def _couple(signal: np.ndarray, reference: np.ndarray, alpha: float) -> np.ndarray:
    """IPC among science pixels (reference pixels neither give nor take charge)."""
    from scipy import ndimage

    science = np.where(reference, 0.0, signal)
    coupled = ndimage.convolve(science, ipc_kernel(alpha), mode="constant", cval=0.0)
    return np.where(reference, signal, coupled)


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
    well, bias, IPC coupling of the read level, MIRI reset anomaly, first-group transient
    and last-frame offset, per-amplifier offsets differing between odd and even pixels
    along the readout (NIR) or rows (MIRI) and per-readout-row (1/f-like) drifts that the
    reference pixels see, and read noise per frame. With an IRS2 truth the frames have the
    3200 rows of the interleaved readout (``_interleave``).
    """
    gain, a = cut(truth.gain, window), cut(truth.nonlinearity, window)
    bias, full_well = cut(truth.bias, window), cut(truth.full_well, window)
    reference = cut(truth.reference, window)
    read_noise_frame = cut(truth.read_noise, window) / np.sqrt(2.0)
    electrons_per_frame = np.where(reference, 0.0, (rate + cut(truth.dark_rate, window))
                                   * frame_time * gain)
    ny, nx = rate.shape
    miri = truth.detector.instrument == "MIRI"
    layout = truth.irs2_layout
    # MIRI has no superbias step: its non-linearity acts on the bias-included level
    offset = bias if miri else 0.0
    anomaly = (cut(truth.reset_amplitude, window) if truth.reset_amplitude is not None
               else None)
    last_offset = (cut(truth.last_frame_offset, window) if truth.last_frame_offset is not None
                   else None)
    transient = (cut(truth.first_group_transient, window)
                 if truth.first_group_transient is not None else None)
    raw_rows = ny if layout is None else layout.length
    if layout is not None:  # the interleaved pixels' read noise, averaged over a group
        normal_rows = layout.normal_rows()
        reference_noise = float(np.median(truth.read_noise)) / np.sqrt(2.0 * nframes)
    data = np.empty((nints, ngroups, raw_rows, nx), np.uint16)
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
            read = bias + np.minimum(accumulated / nframes, full_well - bias)
            if truth.ipc_alpha:
                read = _couple(read, reference, truth.ipc_alpha)
            if anomaly is not None and group < RESET_GROUPS:
                read = read + anomaly * np.exp(-group / RESET_TAU_GROUPS)
            if last_offset is not None and group == ngroups - 1:
                read = read + last_offset
            if transient is not None and group < RSCD_GROUPS[min(integration, 1)]:
                read = read + transient * 0.5 ** group
            if layout is not None:
                read = _interleave(read, truth.irs2_bias, normal_rows, reference_noise, rng)
            data[integration, group] = np.clip(
                np.round(read + _readout_offsets(truth, read.shape, rng)), 0, 65535)
    return RampResult(data, hits)


def _interleave(read: np.ndarray, irs2_bias: np.ndarray, normal_rows: np.ndarray,
                noise: float, rng: np.random.Generator) -> np.ndarray:
    """An IRS2 group: the normal pixels' ``read`` at ``normal_rows`` among the interleaved
    reference pixels and the reference output, which see their bias and read ``noise`` and
    no light."""
    frame = irs2_bias + rng.normal(0, noise, irs2_bias.shape)
    frame[normal_rows] = read
    return frame


def _readout_offsets(truth: DetectorTruth, shape: tuple[int, int],
                     rng: np.random.Generator) -> np.ndarray:
    """One group's offsets of the raw frame ``shape`` (DMS orientation), which the reference
    pixels see too: per amplifier, differing between odd and even pixels along the readout
    (NIR) or rows (MIRI; smaller, as its subarrays have no usable reference columns), or per
    IRS2 output; and a slow drift from readout row to readout row."""
    n_slow, n_fast = shape[::-1] if truth.transposed else shape
    layout = truth.irs2_layout
    if layout is not None:
        offsets = rng.normal(0, 4.0, 5)[np.arange(n_fast) // layout.section][None, :]
    elif truth.detector.instrument == "MIRI":
        offsets = rng.normal(0, 0.3, (4, 2))[(np.arange(n_fast) % 4)[None, :],
                                             (np.arange(n_slow) % 2)[:, None]]
    else:
        amplifier = np.minimum(np.arange(n_fast) // 512, 3)
        offsets = rng.normal(0, 4.0, (4, 2))[amplifier, np.arange(n_fast) % 2][None, :]
    drift = offsets + _slow_drift(n_slow, rng)[:, None]
    return drift.T if truth.transposed else drift


def _slow_drift(n_rows: int, rng: np.random.Generator, amplitude: float = 1.0) -> np.ndarray:
    """A smooth, 1/f-like bias wander along the rows (what the side reference pixels track)."""
    walk = np.cumsum(rng.normal(0, 1, n_rows + 64))
    smooth = np.convolve(walk, np.ones(32) / 32, mode="same")[32:32 + n_rows]
    smooth -= smooth.mean()
    return amplitude * smooth / max(np.std(smooth), 1e-9)
