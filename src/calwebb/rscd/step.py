"""RscdStep: exclude the MIRI groups disturbed by the previous reset."""

from calwebb import datamodels, dqflags
from calwebb.rscd.flag import flag_skipped_groups, groups_to_skip, limit_skip
from calwebb.stpipe import Step


class RscdStep(Step):
    """Flag the first groups of each integration DO_NOT_USE, fewer where pixels saturate."""

    class_alias = "rscd"
    reference_file_types = ["rscd"]
    input_model_class = datamodels.RampModel
    #: set by a tiled run (calwebb.parallel.tiles) to the tile being processed: pixels are
    #: then counted in the tile's own rows ``tile.rows`` and summed over tiles
    tile = None

    def process(self, model):
        if (model.meta.instrument.name or "").upper() != "MIRI":
            return self.skip_model(model, "not a MIRI exposure")
        ngroups = model.data.shape[1]
        if ngroups < 3:
            return self.skip_model(model, "fewer than three groups")
        reference = self.open_reference(model, "rscd")
        if reference is None:
            return self.skip_model(model, "no RSCD reference")
        skips = groups_to_skip(reference.rscd_group_skip_table, model.meta.exposure.readpatt or "",
                               model.meta.subarray.name or "")
        if skips is None:
            return self.skip_model(model, "READPATT/SUBARRAY not in the RSCD table")
        first_in_file = (model.meta.exposure.integration_start or 1) == 1
        record = model.meta.rscd
        for label, integrations, skip in (("int1", slice(0, 1), skips[0]),
                                          ("int2p", slice(1, None), skips[1])):
            if not first_in_file:
                if label == "int1":
                    continue
                integrations = slice(0, None)
            dq = model.groupdq[integrations]
            if dq.shape[0] == 0:
                continue
            skip = limit_skip(skip, ngroups)
            per_pixel = flag_skipped_groups(dq, skip)
            lowered = (per_pixel < skip).any(axis=0)
            model.pixeldq[lowered] |= dqflags.FLUX_ESTIMATED
            own = slice(None) if self.tile is None else self.tile.rows
            setattr(record, f"ngroups_skip_{label}", skip)
            setattr(record, f"keep_groups_saturation_{label}", self._total(
                f"keep_groups_saturation_{label}", int(lowered[own].sum())))
            setattr(record, f"keep_bright_firstgroup_{label}", self._total(
                f"keep_bright_firstgroup_{label}",
                int((per_pixel == 0).any(axis=0)[own].sum())))
        self.set_status(model, "COMPLETE")
        return model

    def _total(self, name: str, count: int) -> int:
        """``count``, or in a tiled run the running total over the tiles so far."""
        if self.tile is None:
            return count
        self.tile.counts[f"rscd.{name}"] += count
        return self.tile.counts[f"rscd.{name}"]
