"""JumpStep: flag cosmic rays and other jumps in the ramps (two-point difference)."""

from __future__ import annotations

import numpy as np

from calwebb import datamodels, dqflags
from calwebb.errors import ReferenceFileError
from calwebb.jump.large_events import (
    ShowerParameters,
    SnowballParameters,
    flag_shower_ellipses,
    flag_showers,
    flag_snowballs,
    masked_electrons,
    revert_showers,
    shower_differences,
    shower_ellipses,
    shower_noise,
    shower_working_flags,
    showers_possible,
)
from calwebb.jump.twopoint import find_jumps, flag_after_jumps, flag_jump_groups
from calwebb.kernels import limited_threads, sorting_network
from calwebb.stpipe import Step

SAT_OR_DNU = dqflags.SATURATED | dqflags.DO_NOT_USE
#: the official step does not forward max_shower_amplitude: its library default (DN/s) rules
SHOWER_AMPLITUDE = 6.0


class JumpStep(Step):
    """Two-point-difference jump detection with neighbour and after-jump flagging."""

    class_alias = "jump"
    spec = """
        rejection_threshold = float(default=4.0, min=0)  # sigma for 4 or more usable differences
        three_group_rejection_threshold = float(default=6.0, min=0)  # sigma for 2 differences
        four_group_rejection_threshold = float(default=5.0, min=0)  # sigma for 3 differences
        maximum_cores = string(default='1')  # 'none', 'quarter', 'half', 'all' or a number
        flag_4_neighbors = boolean(default=True)  # flag the 4 neighbours of a jump
        max_jump_to_flag_neighbors = float(default=1000)  # upper sigma for neighbour flagging
        min_jump_to_flag_neighbors = float(default=10)  # lower sigma for neighbour flagging
        after_jump_flag_dn1 = float(default=0)  # DN: flag groups after jumps this large
        after_jump_flag_time1 = float(default=0)  # seconds flagged after such jumps
        after_jump_flag_dn2 = float(default=0)  # DN: second tier
        after_jump_flag_time2 = float(default=0)  # seconds: second tier
        expand_large_events = boolean(default=False)  # snowball flagging (NIR)
        min_sat_area = float(default=1.0)  # snowballs: minimum saturated core area
        min_jump_area = float(default=5.0)  # snowballs: minimum jump region area
        expand_factor = float(default=2.0)  # snowballs: ellipse growth
        use_ellipses = boolean(default=False)  # deprecated
        sat_required_snowball = boolean(default=True)  # snowballs need a saturated core
        min_sat_radius_extend = float(default=2.5)  # snowballs: core size to enlarge
        sat_expand = integer(default=2)  # snowballs: core enlargement
        edge_size = integer(default=25)  # snowballs: edge distance without core requirement
        mask_snowball_core_next_int = boolean(default=True)  # flag cores in the next integration
        snowball_time_masked_next_int = integer(default=4000)  # seconds masked next integration
        find_showers = boolean(default=False)  # shower flagging (MIRI)
        max_shower_amplitude = float(default=4)  # showers: DN/s amplitude limit
        extend_snr_threshold = float(default=1.2)  # showers: detection S/N
        extend_min_area = integer(default=90)  # showers: minimum area
        extend_inner_radius = float(default=1)  # showers: ring inner radius
        extend_outer_radius = float(default=2.6)  # showers: ring outer radius
        extend_ellipse_expand_ratio = float(default=1.1)  # showers: ellipse growth
        time_masked_after_shower = float(default=15)  # showers: seconds flagged after
        min_diffs_single_pass = integer(default=10)  # differences needed for single-pass mode
        max_extended_radius = integer(default=200)  # snowball/shower size cap
        minimum_groups = integer(default=3)  # usable groups needed for two-point detection
        minimum_sigclip_groups = integer(default=100)  # switch to sigma clipping from here
        only_use_ints = boolean(default=True)  # sigma clip across integrations only
    """
    reference_file_types = ["gain", "readnoise"]
    input_model_class = datamodels.RampModel
    #: set by a tiled run (calwebb.parallel.tiles) to the tile being processed: then only the
    #: per-pixel work is done, with the frame's fully-bad groups ``tile.all_do_not_use``;
    #: primary jumps in the tile's own rows ``tile.rows`` are summed in ``tile.counts`` (the
    #: rates recorded are those of the tiles so far), and ``finish_tiles`` does the large
    #: events on the whole frame
    tile = None

    def process(self, model):
        nints, ngroups = model.data.shape[:2]
        if ngroups <= 2:
            return self.skip_model(model, "two groups or fewer")
        gain, readnoise = self._references(model)
        if self.tile is None:
            # groups DO_NOT_USE on every pixel; jump detection never changes DO_NOT_USE
            fully_bad = dqflags.unusable_groups(model.groupdq)
        else:
            fully_bad = self.tile.all_do_not_use
        jumps = self.flag_jumps(model, gain, readnoise, fully_bad)
        if self.tile is not None:  # rates so far; large events follow on the whole frame
            self.tile.counts["jump.primary"] += np.count_nonzero(jumps[..., self.tile.rows, :])
            self._record_rates(model, self.tile.counts["jump.primary"], 0,
                               int(fully_bad.sum()))
            self.set_status(model, "COMPLETE")
            return model
        events = self.flag_large_events(model, gain, readnoise)
        self._record_rates(model, np.count_nonzero(jumps), events, int(fully_bad.sum()))
        self.set_status(model, "COMPLETE")
        return model

    def _references(self, model):
        """(gain as float32, CDS read noise) cut to the model."""
        gain = self.open_reference(model, "gain")
        readnoise = self.open_reference(model, "readnoise")
        if gain is None or readnoise is None:
            raise ReferenceFileError("jump needs GAIN and READNOISE references; got N/A")
        return gain.data.astype(np.float32), readnoise.data

    def flag_jumps(self, model, gain, readnoise, fully_bad) -> np.ndarray:
        """Two-point detection, neighbour and after-jump flags, in place (everything but the
        large events); returns the primary jumps [nints, ngroups - 1, ny, nx].

        ``fully_bad`` [nints, ngroups] marks the groups DO_NOT_USE on every pixel of the frame.
        Each pixel's result depends only on it and its 4 neighbours.
        """
        bad_gain = ~(gain > 0)
        model.pixeldq[bad_gain] |= dqflags.NO_GAIN_VALUE | dqflags.DO_NOT_USE
        nframes = model.meta.exposure.nframes or 1
        read_noise_2 = ((readnoise * gain) ** 2 / nframes).astype(np.float64)
        jumps, sources, amplitude = self._detect(model, gain, read_noise_2, fully_bad)
        with limited_threads(self.maximum_cores):
            flag_jump_groups(model.groupdq, jumps, sources, self.flag_4_neighbors)
        if amplitude is not None:  # only groups without SATURATED or DO_NOT_USE are flagged
            self._flag_after_jumps(model, amplitude, jumps, self._median_gain(gain))
        return jumps

    def _median_gain(self, gain) -> float:
        """The median gain of the frame (of the whole frame's reference in a tiled run)."""
        if self.tile is None:
            return float(np.nanmedian(gain))
        return self.tile.memo("jump.median_gain", lambda: float(np.nanmedian(
            self.tile.frame_reference(self, "gain").data.astype(np.float32))))

    def flag_large_events(self, model, gain=None, readnoise=None, frame=None) -> int:
        """Snowballs and showers over the whole frame, in place; returns how many.

        Snowballs need only the group DQ; showers also the data (``model.data``, or read
        through ``frame``, see ``finish_tiles``), gain and read noise (read from the
        references when not given)."""
        events = 0
        if self.expand_large_events:
            events = flag_snowballs(model.groupdq, self._snowball_parameters(model))
            self.log.info("Snowballs found: %d", events)
        if self.find_showers:
            if gain is None:
                gain, readnoise = self._references(model)
            nframes = model.meta.exposure.nframes or 1
            parameters = self._shower_parameters(model)
            if frame is None:
                events = flag_showers(model.data * gain, model.groupdq, model.pixeldq,
                                      readnoise * gain, nframes, parameters)
            else:
                events = self._flag_showers_by_bands(model, frame, gain, readnoise * gain,
                                                     nframes, parameters)
            self.log.info("Showers found: %d", events)
        return events

    @staticmethod
    def _flag_showers_by_bands(model, frame, gain, read_noise, nframes, parameters) -> int:
        """``flag_showers`` with the data read band by band and plane by plane."""
        groupdq, pixeldq = model.groupdq, model.pixeldq
        if not showers_possible(groupdq, parameters):
            return 0
        ny, nx = groupdq.shape[-2:]
        median = sigma = None
        for first, data in frame.bands():
            rows = slice(first, first + data.shape[-2])
            diffs = shower_differences(data * gain[rows], groupdq[..., rows, :])
            band_median, band_sigma = shower_noise(diffs, read_noise[rows], nframes, parameters)
            if median is None:
                median = np.empty((*band_median.shape[:-2], ny, nx), band_median.dtype)
                sigma = np.empty((*band_sigma.shape[:-2], ny, nx), band_sigma.dtype)
            median[..., rows, :], sigma[..., rows, :] = band_median, band_sigma

        def difference(i, g):
            first, last = (masked_electrons(frame.plane(i, k) * gain, groupdq[i, k])
                           for k in (g - 1, g))
            return last - first

        working = shower_working_flags(groupdq, pixeldq)
        found = shower_ellipses(working, pixeldq, difference, median, sigma, parameters)
        flag_shower_ellipses(working, found, parameters)
        for first, data in frame.bands():
            rows = slice(first, first + data.shape[-2])
            revert_showers(data * gain[rows], groupdq[..., rows, :], working[..., rows, :],
                           parameters)
        groupdq[...] = working
        return sum(len(ellipses) for _, _, ellipses in found)

    def finish_tiles(self, model, primary: int, fully_bad: np.ndarray, frame=None) -> None:
        """After a tiled run of ``process``: the large events over the whole frame, then
        PRIMECRS/EXTNCRS from ``primary`` jumps and the ``fully_bad`` groups.

        ``model`` holds the frame's group DQ and PIXELDQ, its data only in shape; showers
        read the data through ``frame``: ``frame.bands()`` yields (first row, data [nints,
        ngroups, rows, nx]) over the frame, ``frame.plane(i, g)`` gives one group [ny, nx].
        """
        events = self.flag_large_events(model, frame=frame)
        self._record_rates(model, primary, events, int(fully_bad.sum()))
        self.set_status(model, "COMPLETE")

    def _wants_after_jump_flags(self) -> bool:
        return self.after_jump_flag_time1 > 0 or self.after_jump_flag_time2 > 0

    def _detect(self, model, gain, read_noise_2, fully_bad):
        """(jumps, neighbour sources, amplitudes or None), each [nints, ngroups - 1, ny, nx]."""
        groupdq = model.groupdq
        nints, ngroups, ny, nx = groupdq.shape
        shape = (nints, ngroups - 1, ny, nx)
        usable_groups = ngroups - fully_bad.sum(axis=1)
        if (self.only_use_ints and nints >= self.minimum_sigclip_groups) or (
                not self.only_use_ints and usable_groups.sum() >= self.minimum_sigclip_groups):
            return self._sigma_clip(model, gain)
        jumps, sources = np.zeros(shape, bool), np.zeros(shape, bool)
        keep = self._wants_after_jump_flags()
        amplitude = np.full(shape if keep else (1, 1, 1, 1), np.nan, np.float32)
        single_pass = bool(usable_groups.min() - 1 >= self.min_diffs_single_pass)
        if not single_pass and usable_groups.min() < self.minimum_groups:
            self.log.info("Fewer than %d usable groups: no jump detection", self.minimum_groups)
            return jumps, sources, None
        thresholds = np.array([self.rejection_threshold, self.four_group_rejection_threshold,
                               self.three_group_rejection_threshold])
        limits = np.array([self.min_jump_to_flag_neighbors, self.max_jump_to_flag_neighbors],
                          np.float64)
        with limited_threads(self.maximum_cores):
            find_jumps(model.data, groupdq, gain, read_noise_2, thresholds, single_pass,
                       limits, sorting_network(nints * (ngroups - 1)), jumps, sources,
                       amplitude, keep)
        return jumps, sources, (amplitude if keep else None)

    def _sigma_clip(self, model, gain):
        """Many integrations: clip differences across integrations (stage1.md §3.2 step 6)."""
        from astropy.stats import sigma_clip

        electrons = model.data * gain
        electrons[(model.groupdq & SAT_OR_DNU) != 0] = np.nan
        diffs = np.diff(electrons, axis=1)
        axis = 0 if self.only_use_ints else (0, 1)
        clipped = sigma_clip(diffs, sigma=self.rejection_threshold, axis=axis, masked=True).mask
        usable = (model.groupdq[:, 1:] & SAT_OR_DNU) == 0
        jumps = clipped & np.isfinite(diffs) & usable
        return jumps, np.zeros_like(jumps), None

    def _flag_after_jumps(self, model, amplitude, jumps, median_gain) -> None:
        tgroup = model.meta.exposure.group_time
        for dn, seconds in ((self.after_jump_flag_dn1, self.after_jump_flag_time1),
                            (self.after_jump_flag_dn2, self.after_jump_flag_time2)):
            if seconds > 0 and tgroup:
                flag_after_jumps(model.groupdq, amplitude, jumps, dn * median_gain,
                                 int(seconds // tgroup))

    def _snowball_parameters(self, model) -> SnowballParameters:
        tgroup = model.meta.exposure.group_time
        masked = int(self.snowball_time_masked_next_int // tgroup) if tgroup else 0
        return SnowballParameters(
            min_sat_area=self.min_sat_area, min_jump_area=self.min_jump_area,
            expand_factor=self.expand_factor, sat_required_snowball=self.sat_required_snowball,
            min_sat_radius_extend=self.min_sat_radius_extend, sat_expand=2 * self.sat_expand,
            edge_size=self.edge_size, max_extended_width=2 * self.max_extended_radius,
            groups_masked_next_int=masked if self.mask_snowball_core_next_int else 0)

    def _shower_parameters(self, model) -> ShowerParameters:
        tgroup = model.meta.exposure.group_time or 0.0
        return ShowerParameters(
            snr_threshold=self.extend_snr_threshold, min_area=self.extend_min_area,
            inner_radius=self.extend_inner_radius, outer_radius=self.extend_outer_radius,
            expand_ratio=self.extend_ellipse_expand_ratio,
            groups_masked_after=int(self.time_masked_after_shower // tgroup) if tgroup else 0,
            max_extended_width=2 * self.max_extended_radius,
            max_amplitude=SHOWER_AMPLITUDE * tgroup,
            minimum_sigclip_groups=self.minimum_sigclip_groups)

    def _record_rates(self, model, primary: int, events: int, fully_bad: int) -> None:
        """PRIMECRS and EXTNCRS (stage1.md §3.2 step 12)."""
        nints, ngroups, ny, nx = model.groupdq.shape
        if self.tile is not None:
            ny, nx = self.tile.frame_shape
        tgroup = model.meta.exposure.group_time
        if not tgroup:
            return
        exposure_time = tgroup * (nints * ngroups - fully_bad - nints)
        if exposure_time > 0:
            model.meta.exposure.primary_cosmic_rays = 1000.0 * primary / (exposure_time * ny * nx)
            model.meta.exposure.extended_emission_events = 1e6 * events / (
                exposure_time * ny * nx)
