"""JumpStep: flag cosmic rays and other jumps in the ramps (two-point difference)."""

from __future__ import annotations

import numpy as np
from astropy.stats import sigma_clip

from calwebb import datamodels, dqflags
from calwebb.errors import ReferenceFileError
from calwebb.jump.large_events import (
    ShowerParameters,
    SnowballParameters,
    flag_showers,
    flag_snowballs,
)
from calwebb.jump.twopoint import find_jumps, flag_after_jumps, flag_neighbours
from calwebb.kernels import limited_threads
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

    def process(self, model):
        nints, ngroups = model.data.shape[:2]
        if ngroups <= 2:
            return self.skip_model(model, "two groups or fewer")
        gain = self.open_reference(model, "gain")
        readnoise = self.open_reference(model, "readnoise")
        if gain is None or readnoise is None:
            raise ReferenceFileError("jump needs GAIN and READNOISE references; got N/A")
        gain = gain.data.astype(np.float32)
        bad_gain = ~(gain > 0)
        model.pixeldq[bad_gain] |= dqflags.NO_GAIN_VALUE | dqflags.DO_NOT_USE
        nframes = model.meta.exposure.nframes or 1
        read_noise_2 = ((readnoise.data * gain) ** 2 / nframes).astype(np.float64)
        # groups DO_NOT_USE on every pixel; jump detection never changes DO_NOT_USE
        fully_bad = ((model.groupdq & dqflags.DO_NOT_USE) != 0).all(axis=(2, 3))
        jumps, sources, amplitude = self._detect(model, gain, read_noise_2, fully_bad)
        primary = int(jumps.sum())
        model.groupdq[:, 1:][jumps] |= np.uint8(dqflags.JUMP_DET)
        if self.flag_4_neighbors:
            flag_neighbours(model.groupdq, sources)
        if amplitude is not None:
            self._flag_after_jumps(model, amplitude, jumps, float(np.nanmedian(gain)))
        both = (model.groupdq & SAT_OR_DNU) != 0
        model.groupdq[both] &= np.uint8(~np.uint8(dqflags.JUMP_DET))
        events = 0
        if self.expand_large_events:
            events = flag_snowballs(model.groupdq, self._snowball_parameters(model))
            self.log.info("Snowballs found: %d", events)
        if self.find_showers:
            events = flag_showers(model.data * gain, model.groupdq, model.pixeldq,
                                  readnoise.data * gain, nframes, self._shower_parameters(model))
            self.log.info("Showers found: %d", events)
        self._record_rates(model, primary, events, int(fully_bad.sum()))
        self.set_status(model, "COMPLETE")
        return model

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
                       limits, jumps, sources, amplitude, keep)
        return jumps, sources, (amplitude if keep else None)

    def _sigma_clip(self, model, gain):
        """Many integrations: clip differences across integrations (stage1.md §3.2 step 6)."""
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
        nints, ngroups, ny, nx = model.data.shape
        tgroup = model.meta.exposure.group_time
        if not tgroup:
            return
        exposure_time = tgroup * (nints * ngroups - fully_bad - nints)
        if exposure_time > 0:
            model.meta.exposure.primary_cosmic_rays = 1000.0 * primary / (exposure_time * ny * nx)
            model.meta.exposure.extended_emission_events = 1e6 * events / (
                exposure_time * ny * nx)
