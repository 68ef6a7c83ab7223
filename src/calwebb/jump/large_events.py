"""Large jump events: NIR snowballs and MIRI showers (stage1.md §3.2 steps 10-11).

Connected regions of a flag plane are described by ellipses with the moment conventions of
the official code: centre (column, row), full axes (minor − 1, major − 1) from the region's
second moments, and the orientation angle in degrees. Ellipses are drawn back into the DQ
planes, enlarged, around their rounded centres. Everything works on whole 2-D planes with
scipy.ndimage; group DQ arrays are modified in place.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from calwebb.dqflags import unusable_groups

DO_NOT_USE, SATURATED, JUMP_DET = 1, 2, 4
REFERENCE_PIXEL = 2147483648
EIGHT_CONNECTED = np.ones((3, 3), bool)
#: with 8-connected background a region needs at least this many pixels to enclose a hole
SMALLEST_RING = 8


@dataclass(frozen=True)
class Ellipses:
    """Regions as ellipses: centres (column, row), full axes (minor, major), angle in degrees."""

    column: np.ndarray
    row: np.ndarray
    minor: np.ndarray
    major: np.ndarray
    angle: np.ndarray

    def __len__(self) -> int:
        return self.column.size

    def subset(self, keep: np.ndarray) -> Ellipses:
        """The ellipses selected by the boolean or index array ``keep``."""
        return Ellipses(self.column[keep], self.row[keep], self.minor[keep], self.major[keep],
                        self.angle[keep])

    def contains(self, column: np.ndarray, row: np.ndarray) -> np.ndarray:
        """[ellipse, point] True where the point lies inside (or on) the ellipse."""
        theta = np.radians(180.0 - self.angle)[:, None]
        dx = column[None, :] - self.column[:, None]
        dy = row[None, :] - self.row[:, None]
        along = dx * np.cos(theta) - dy * np.sin(theta)
        across = dx * np.sin(theta) + dy * np.cos(theta)
        semi_major = 0.5 * np.maximum(self.minor, self.major)[:, None]
        semi_minor = 0.5 * np.minimum(self.minor, self.major)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return along**2 / semi_major**2 + across**2 / semi_minor**2 <= 1


def find_ellipses(mask: np.ndarray, min_area: float) -> Ellipses:
    """Ellipses of the 8-connected regions of ``mask`` whose hole-filled area ≥ ``min_area``."""
    from scipy import ndimage  # here: scipy is slow to import and large events are optional

    labels, count = ndimage.label(mask, structure=EIGHT_CONNECTED)
    empty = np.empty(0)
    if count == 0:
        return Ellipses(empty, empty, empty, empty, empty)
    pixels = np.flatnonzero(labels)
    index = labels.ravel()[pixels]
    rows, columns = np.divmod(pixels, labels.shape[1])
    area = np.bincount(index, minlength=count + 1).astype(float)
    filled = area.copy()
    could_have_holes = np.flatnonzero((area >= SMALLEST_RING) & (area < min_area))
    if could_have_holes.size:
        slices = ndimage.find_objects(labels)
        for label in could_have_holes:
            region = labels[slices[label - 1]] == label
            filled[label] = ndimage.binary_fill_holes(region, EIGHT_CONNECTED).sum()
    keep = np.flatnonzero(filled >= min_area)
    keep = keep[keep > 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_row = np.bincount(index, rows, count + 1) / area
        mean_column = np.bincount(index, columns, count + 1) / area
        dr, dc = rows - mean_row[index], columns - mean_column[index]
        var_row = np.bincount(index, dr * dr, count + 1) / area
        var_column = np.bincount(index, dc * dc, count + 1) / area
        covariance = np.bincount(index, dr * dc, count + 1) / area
    var_row, var_column, covariance = var_row[keep], var_column[keep], covariance[keep]
    half_trace = 0.5 * (var_row + var_column)
    spread = np.sqrt(0.25 * (var_column - var_row) ** 2 + covariance**2)
    major = 4 * np.sqrt(np.clip(half_trace + spread, 0, None))
    minor = 4 * np.sqrt(np.clip(half_trace - spread, 0, None))
    same = (var_column - var_row) == 0
    orientation = np.where(same, np.where(covariance > 0, np.pi / 4, -np.pi / 4),
                           0.5 * np.arctan2(2 * covariance, var_row - var_column))
    return Ellipses(mean_column[keep], mean_row[keep], minor - 1, major - 1,
                    np.degrees(orientation))


def draw_ellipse(shape, column, row, axis1, axis2, angle):
    """Pixels of a filled ellipse around the rounded centre: (row slice, column slice, mask).

    ``axis1``/``axis2`` are full axes along the (unrotated) column/row directions; the angle
    (degrees) turns the ellipse counter-clockwise.
    """
    c_radius, r_radius = round(axis1 / 2), round(axis2 / 2)
    center_column, center_row = round(column), round(row)
    half = max(c_radius, r_radius) + 2
    c0, c1 = max(center_column - half, 0), min(center_column + half + 1, shape[1])
    r0, r1 = max(center_row - half, 0), min(center_row + half + 1, shape[0])
    if c_radius == 0 or r_radius == 0 or c1 <= c0 or r1 <= r0:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), bool)
    rotation = np.radians(angle) % np.pi
    r = np.arange(r1 - r0)[:, None] - (center_row - r0)
    c = np.arange(c1 - c0)[None, :] - (center_column - c0)
    cos, sin = np.cos(rotation), np.sin(rotation)
    distance = ((r * cos + c * sin) / r_radius) ** 2 + ((r * sin - c * cos) / c_radius) ** 2
    return slice(r0, r1), slice(c0, c1), distance < 1


def expanded_axes(minor, major, factor, max_width):
    """Axes grown by ``factor`` along the minor axis, the same pixels added to the major one."""
    if major < minor:
        axis1, axis2 = minor + (factor - 1.0) * major, major * factor
    else:
        axis1, axis2 = minor * factor, major + (factor - 1.0) * minor
    return 2 * round(min(axis1, max_width) / 2), 2 * round(min(axis2, max_width) / 2)


def flag_ellipses(groupdq, integration, group, ellipses: Ellipses, factor, max_width,
                  later_groups=0) -> None:
    """JUMP_DET inside each grown ellipse in ``group`` and ``later_groups`` more, sparing
    pixels already SATURATED (in place)."""
    ngroups = groupdq.shape[1]
    for e in range(len(ellipses)):
        axis1, axis2 = expanded_axes(ellipses.minor[e], ellipses.major[e], factor, max_width)
        rows, columns, inside = draw_ellipse(groupdq.shape[2:], ellipses.column[e],
                                             ellipses.row[e], axis1, axis2, ellipses.angle[e])
        inside = inside.copy()
        for g in range(group, min(group + later_groups + 1, ngroups)):
            window = groupdq[integration, g, rows, columns]
            inside &= (window & SATURATED) == 0
            window[inside] |= np.uint8(JUMP_DET)


def _near_edge(ellipses: Ellipses, edge_size: int, nrows: int) -> np.ndarray:
    high = max(0, nrows - edge_size)
    return ((ellipses.column < edge_size) | (ellipses.row < edge_size)
            | (ellipses.column > high) | (ellipses.row > high))


def _extend_saturated_cores(cube, group, cores: Ellipses, params, persist) -> None:
    """Enlarge big saturated cores: SATURATED in ``group`` and later (replacing the flags),
    and the core itself remembered in ``persist`` for the next integration."""
    for e in range(len(cores)):
        minor, major = cores.minor[e], cores.major[e]
        if min(minor, major) <= params.min_sat_radius_extend:
            continue
        axis1 = min(minor + params.sat_expand, params.max_extended_width)
        axis2 = min(major + params.sat_expand, params.max_extended_width)
        rows, columns, inside = draw_ellipse(cube.shape[1:], cores.column[e], cores.row[e],
                                             axis1, axis2, cores.angle[e])
        cube[group:, rows, columns] = np.where(inside, np.uint8(SATURATED),
                                               cube[group:, rows, columns])
        rows, columns, inside = draw_ellipse(cube.shape[1:], cores.column[e], cores.row[e],
                                             minor, major, cores.angle[e])
        persist[rows, columns] |= inside


@dataclass(frozen=True)
class SnowballParameters:
    """Snowball settings in the units the algorithm uses (sizes already doubled)."""

    min_sat_area: float = 1.0
    min_jump_area: float = 5.0
    expand_factor: float = 2.0
    sat_required_snowball: bool = True
    min_sat_radius_extend: float = 2.5
    sat_expand: float = 4.0
    edge_size: int = 25
    max_extended_width: float = 400.0
    groups_masked_next_int: int = 0


def flag_snowballs(groupdq: np.ndarray, params: SnowballParameters) -> int:
    """Flag snowballs (jump regions around newly saturated cores) in place; returns how many.

    Per integration and group ≥ 1: jump regions of at least ``min_jump_area`` that contain
    the centre of a core newly saturated in this or the next group (or lie near the edge)
    are grown by ``expand_factor`` and flagged JUMP_DET; big cores are grown and flagged
    SATURATED in this and later groups, and flagged JUMP_DET in groups 1 … N−1 of the
    next integration.
    """
    nints, ngroups, nrows, _ = groupdq.shape
    persist = np.zeros((nints, *groupdq.shape[2:]), bool)
    total = 0
    for i in range(nints):
        for g in range(1, ngroups):
            saturated = (groupdq[i, g] & SATURATED) != 0
            jumps = find_ellipses((groupdq[i, g] & JUMP_DET) != 0, params.min_jump_area)
            if params.sat_required_snowball:
                cores = find_ellipses(saturated & ((groupdq[i, g - 1] & SATURATED) == 0),
                                      params.min_sat_area)
                chosen = _near_edge(jumps, params.edge_size, nrows)
                chosen |= jumps.contains(cores.column, cores.row).any(axis=1)
                if g < ngroups - 1:
                    next_cores = find_ellipses(((groupdq[i, g + 1] & SATURATED) != 0)
                                               & ~saturated, params.min_sat_area)
                    chosen |= jumps.contains(next_cores.column, next_cores.row).any(axis=1)
                _extend_saturated_cores(groupdq[i], g, cores, params, persist[i])
                jumps = jumps.subset(chosen)
            total += len(jumps)
            flag_ellipses(groupdq, i, g, jumps, params.expand_factor, params.max_extended_width)
    last = min(params.groups_masked_next_int, ngroups)
    if last >= 2:
        for i in range(1, nints):
            groupdq[i, 1:last][:, persist[i - 1]] |= np.uint8(JUMP_DET)
    return total


@dataclass(frozen=True)
class ShowerParameters:
    """Shower settings in the units the algorithm uses."""

    snr_threshold: float = 1.2
    min_area: float = 90.0
    inner_radius: float = 1.0
    outer_radius: float = 2.6
    expand_ratio: float = 1.1
    groups_masked_after: int = 5
    max_extended_width: float = 400.0
    max_amplitude: float = 0.0  # electrons per group
    minimum_sigclip_groups: int = 100
    min_differences: int = 10


def _convolve_ignoring_nan(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Kernel-weighted mean of the finite neighbours (zero beyond the edge); NaN stays NaN."""
    from scipy import signal  # here: importing scipy.signal takes most of a second

    good = np.isfinite(image)
    convolved = signal.oaconvolve(np.where(good, image, 0.0), kernel, mode="same")
    n = kernel.shape[0] // 2
    padded = np.ones((good.shape[0] + 2 * n, good.shape[1] + 2 * n))
    padded[n:-n, n:-n] = good
    norm = signal.oaconvolve(padded, kernel, mode="valid")
    good &= norm > 1e-3 * kernel.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        convolved /= norm
    convolved[~good] = np.nan
    return convolved


def _mean_difference(data: np.ndarray, groupdq: np.ndarray) -> np.ndarray:
    """Mean group-to-group difference of one integration, flagged groups left out."""
    values = np.where((groupdq & (DO_NOT_USE | SATURATED | JUMP_DET)) != 0, np.nan, data)
    diffs = np.diff(values, axis=0)
    finite = np.isfinite(diffs)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(finite, diffs, 0).sum(axis=0) / finite.sum(axis=0)


def flag_showers(electrons, groupdq, pixeldq, read_noise, nframes,
                 params: ShowerParameters) -> int:
    """Flag MIRI showers (faint extended jump regions) in place; returns how many.

    ``electrons`` is the ramp times the gain, ``read_noise`` the CDS noise in electrons.
    Each difference's deviation from the median difference, in σ, is smoothed with a ring
    kernel; regions above ``snr_threshold`` of at least ``min_area`` pixels become ellipses,
    grown and flagged JUMP_DET in that group and ``groups_masked_after`` more. Pixels whose
    mean difference then changes by more than ``max_amplitude`` keep their old flags.

    The work is split as a tiled run needs it: ``shower_differences`` and ``shower_noise``
    and ``revert_showers`` work pixel by pixel, ``shower_ellipses`` plane by plane.
    """
    if not showers_possible(groupdq, params):
        return 0
    original = groupdq.copy()
    diffs = shower_differences(electrons, groupdq)
    median, sigma = shower_noise(diffs, read_noise, nframes, params)
    working = shower_working_flags(groupdq, pixeldq)
    found = shower_ellipses(working, pixeldq, lambda i, g: diffs[i, g - 1], median, sigma,
                            params)
    flag_shower_ellipses(working, found, params)
    revert_showers(electrons, original, working, params)
    groupdq[...] = working
    return sum(len(e) for _, _, e in found)


def showers_possible(groupdq: np.ndarray, params: ShowerParameters) -> bool:
    """Whether there are enough usable differences (groups DO_NOT_USE everywhere left out)."""
    nints, ngroups = groupdq.shape[:2]
    dnu_groups = int(unusable_groups(groupdq).sum())
    return nints * (ngroups - 1) - dnu_groups >= params.min_differences


def shower_differences(electrons: np.ndarray, groupdq: np.ndarray) -> np.ndarray:
    """Group-to-group differences [nints, ngroups - 1, ...], NaN next to flagged groups."""
    return np.diff(masked_electrons(electrons, groupdq), axis=1)


def masked_electrons(electrons: np.ndarray, groupdq: np.ndarray) -> np.ndarray:
    """``electrons`` with NaN where the group is flagged (any shape, elementwise)."""
    masked = np.isin(groupdq, (JUMP_DET | DO_NOT_USE, SATURATED | DO_NOT_USE, SATURATED,
                               JUMP_DET, DO_NOT_USE))
    return np.where(masked, np.nan, electrons)


def shower_noise(diffs: np.ndarray, read_noise: np.ndarray, nframes: int,
                 params: ShowerParameters) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's median difference and its noise: [ny, nx] each, or [ngroups - 1, ny, nx]
    clipped across integrations when there are many."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if diffs.shape[0] >= params.minimum_sigclip_groups:
            from astropy.stats import sigma_clipped_stats

            _, median, sigma = sigma_clipped_stats(diffs, sigma=5, axis=0)
        else:
            median = np.nanmedian(diffs, axis=(0, 1))
            sigma = np.sqrt(np.abs(median) + read_noise**2 / nframes)
    return median, sigma


def shower_working_flags(groupdq: np.ndarray, pixeldq: np.ndarray) -> np.ndarray:
    """The flags showers are searched and drawn in: reference pixels are DO_NOT_USE."""
    working = groupdq.copy()
    working[:, :, pixeldq == REFERENCE_PIXEL] = DO_NOT_USE
    return working


def shower_ellipses(working: np.ndarray, pixeldq: np.ndarray, difference, median, sigma,
                    params: ShowerParameters) -> list[tuple[int, int, Ellipses]]:
    """(integration, group, ellipses) of the showers in each group plane of the frame.

    ``difference(i, g)`` is the difference plane [ny, nx] ending at group g of integration i
    (as from ``shower_differences``); ``median``/``sigma`` as from ``shower_noise``.
    """
    from astropy.convolution import Ring2DKernel  # here: a slow import, showers are rare

    nints, ngroups = working.shape[:2]
    kernel = Ring2DKernel(params.inner_radius, params.outer_radius).array
    found = []
    usable_groups = ~unusable_groups(working)
    for i in range(nints):
        usable = usable_groups[i]
        first_good = int(np.argmax(usable)) if usable.any() else 0
        for g in range(first_good + 1, ngroups):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if median.ndim == 3:
                    ratio = np.abs(difference(i, g) - median[g - 1]) / sigma[g - 1]
                else:
                    ratio = np.abs(difference(i, g) - median) / sigma
            flagged = ((working[i, g] | pixeldq) & (JUMP_DET | SATURATED | DO_NOT_USE)) != 0
            smoothed = _convolve_ignoring_nan(np.where(flagged, np.nan, ratio), kernel)
            with np.errstate(invalid="ignore"):
                emission = smoothed > params.snr_threshold
            ellipses = find_ellipses(emission, params.min_area)
            if len(ellipses):
                found.append((i, g, ellipses))
    return found


def flag_shower_ellipses(working: np.ndarray, found, params: ShowerParameters) -> None:
    """Draw the grown shower ellipses as JUMP_DET into ``working`` (in place)."""
    for i, g, ellipses in found:
        flag_ellipses(working, i, g, ellipses, params.expand_ratio, params.max_extended_width,
                      params.groups_masked_after)


def revert_showers(electrons: np.ndarray, original: np.ndarray, working: np.ndarray,
                   params: ShowerParameters) -> None:
    """Give back their ``original`` flags to the pixels whose mean difference the shower
    flags change by more than ``max_amplitude`` (or make undefined); in place."""
    for i in range(working.shape[0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            change = np.abs(_mean_difference(electrons[i], original[i])
                            - _mean_difference(electrons[i], working[i]))
        revert = ~np.isfinite(change) | (change > params.max_amplitude)
        working[i][:, revert] = original[i][:, revert]
