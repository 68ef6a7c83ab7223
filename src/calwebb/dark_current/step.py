"""DarkCurrentStep: subtract the dark signal accumulated in every group."""

import numpy as np

from calwebb import datamodels
from calwebb.dark_current.subtract import (
    averaged_dark,
    can_represent,
    frames_needed,
    subtract_dark,
    subtract_frames,
)
from calwebb.stpipe import Step, naming

#: dark frames read at once (a band of rows of every frame needed)
BAND_BYTES = 32 * 2**20


class DarkCurrentStep(Step):
    """Subtract the DARK reference, averaged to the science NFRAMES/GROUPGAP pattern."""

    class_alias = "dark_current"
    cal_step_attr = "dark_sub"
    spec = """
        dark_output = output_file(default=None)  # save the dark actually subtracted
        average_dark_current = float(default=None)  # dark rate (e-/s) for ramp-fit Poisson noise
    """
    reference_file_types = ["dark"]
    input_model_class = datamodels.RampModel
    #: set by a tiled run (calwebb.parallel.tiles) to the tile being processed: frame-wide
    #: facts then come from the whole reference, and ``dark_output`` is left to the run
    tile = None

    def process(self, model):
        dark = self.open_reference(model, "dark")
        if dark is None:
            return self.skip_model(model, "no DARK reference")
        exposure = model.meta.exposure
        ngroups, nframes, groupgap = model.data.shape[1], exposure.nframes or 1, (
            exposure.groupgap or 0)
        dark_nframes = dark.meta.exposure.nframes or 1
        dark_groupgap = dark.meta.exposure.groupgap or 0
        if not can_represent(dark_nframes, dark_groupgap, nframes, groupgap):
            return self.skip_model(model, "the dark has more frames per group or a larger gap "
                                          "than the science data")
        pattern, dark_pattern = (nframes, groupgap), (dark_nframes, dark_groupgap)
        stored = _frame_per_group(dark, ngroups, pattern, dark_pattern)
        if stored is not None:
            subtract_frames(model.data, stored)
        else:
            _subtract_in_bands(model.data, dark, pattern, dark_pattern)
        if dark.has_array("dq"):
            dq = dark.dq
            model.pixeldq |= dq if dq.ndim == 2 else np.bitwise_or.reduce(dq[:, 0], axis=0)
        model.average_dark_current = self._average_dark_current(model, dark)
        if self.dark_output and self.tile is None:
            self.save_dark_output(model, ngroups, dark)
        self.set_status(model, "COMPLETE")
        return model

    def save_dark_output(self, model, ngroups: int, dark=None) -> None:
        """Write the dark to ``dark_output`` as the official step does: the DARK reference
        itself (NaN as 0) when it has the science readout pattern, else averaged to the
        science's ``ngroups`` groups (a 4-D MIRI dark per integration, those beyond the
        science's left 0); with the reference's DQ and metadata. ``dark`` is the reference
        cut to ``model`` (opened if None)."""
        dark = self.open_reference(model, "dark") if dark is None else dark
        exposure = model.meta.exposure
        pattern = (exposure.nframes or 1, exposure.groupgap or 0)
        dark_pattern = (dark.meta.exposure.nframes or 1, dark.meta.exposure.groupgap or 0)
        saved = dark.metadata_copy()
        if pattern == dark_pattern:
            data = dark.data
            if np.isnan(data).any():
                data = np.where(np.isnan(data), np.float32(0), data)
            pattern, ngroups = dark_pattern, dark.data.shape[-3]
        else:
            stacks = dark.data if dark.data.ndim == 4 else dark.data[np.newaxis]
            data = np.zeros((len(stacks), ngroups, *stacks.shape[-2:]), np.float32)
            for index in range(min(len(stacks), model.data.shape[0])):
                data[index] = averaged_dark(stacks[index], ngroups, *pattern, *dark_pattern)
            data = data if dark.data.ndim == 4 else data[0]
        saved.data = data
        if dark.has_array("dq"):
            saved.dq = dark.dq
        saved.meta.exposure.nframes, saved.meta.exposure.groupgap = pattern
        saved.meta.exposure.ngroups = ngroups
        # named as a saved result (in output_dir, with output_ext), as the official step does
        path = naming.output_path(self, saved, suffix=False, output_file=self.dark_output)
        saved.save(path)
        self.log.info("Saved the dark subtracted in %s", path)

    def _average_dark_current(self, model, dark) -> np.ndarray:
        """Step parameter > the dark's AVDRKCUR array (non-zero) > its keyword > 0."""
        shape = model.data.shape[-2:]
        if self.average_dark_current is not None:
            return np.full(shape, self.average_dark_current, np.float32)
        if dark.has_array("average_dark_current") and self._any_dark_rate(dark):
            return dark.average_dark_current.astype(np.float32)
        return np.full(shape, dark.meta.exposure.average_dark_current or 0.0, np.float32)

    def _any_dark_rate(self, dark) -> bool:
        """Whether the dark's AVDRKCUR array has a non-zero value (anywhere in the frame)."""
        if self.tile is None:
            return bool(np.any(dark.average_dark_current))
        return self.tile.memo("dark_current.any_rate", lambda: bool(np.any(
            self.tile.frame_reference(self, "dark").average_dark_current)))


def _subtract_in_bands(data: np.ndarray, dark, pattern: tuple[int, int],
                       dark_pattern: tuple[int, int]) -> None:
    """``subtract_dark`` with frames averaged or extrapolated as needed: only the frames the
    science groups reach are read, a band of rows at a time."""
    count = frames_needed(data.shape[1], *pattern)
    ny, nx = data.shape[-2:]
    band = max(1, BAND_BYTES // (4 * count * nx))
    for first in range(0, ny, band):
        rows = (first, min(first + band, ny))
        frames = dark.leading_planes("data", count, rows)
        stacks = list(frames) if frames.ndim == 4 else [frames]
        subtract_dark(data[..., rows[0]:rows[1], :], stacks, *pattern, *dark_pattern)
        del frames, stacks


def _frame_per_group(dark, ngroups: int, pattern: tuple[int, int],
                     dark_pattern: tuple[int, int]) -> np.ndarray | None:
    """The dark's first ``ngroups`` float32 frames, not read (``stored_part``), when they are
    subtracted as they are: the dark has the science readout pattern and a frame for every
    group; None otherwise (frames to average or extrapolate, values to convert)."""
    if pattern != dark_pattern:
        return None
    stored = dark.stored_part("data", planes=ngroups, dtype=np.float32)
    if stored is None or stored.ndim not in (3, 4) or stored.shape[-3] < ngroups:
        return None
    return stored
