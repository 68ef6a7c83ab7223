"""DQInitStep: start the DQ arrays from the MASK reference."""

import numpy as np
from astropy.io import fits

from calwebb import datamodels
from calwebb.dq_init.mask import apply_mask
from calwebb.errors import ParameterError
from calwebb.stpipe import Step
from calwebb.stripes import stripe_views, superstripe_count


class DQInitStep(Step):
    """OR the bad-pixel mask into PIXELDQ and its DO_NOT_USE bit into every group (for
    superstripes, each stripe's mask into its PIXELDQ plane and its integrations)."""

    class_alias = "dq_init"
    spec = """
        user_supplied_dq = string(default=None)  # FITS file OR-ed into the mask
    """
    reference_file_types = ["mask"]
    input_model_class = datamodels.RampModel
    #: set by a tiled run (calwebb.parallel.tiles) to the tile being processed: the
    #: user-supplied DQ then covers the frame and is cut to the tile's rows and columns
    tile = None

    def process(self, model):
        mask_model = self.open_reference(model, "mask")
        if mask_model is None:
            return self.skip_model(model, "no MASK reference")
        mask = mask_model.dq
        if self.user_supplied_dq:
            user = np.asarray(fits.getdata(self.user_supplied_dq))
            shape = mask.shape if self.tile is None else self.tile.frame_shape
            if user.shape != shape or user.dtype.kind not in "ui":
                raise ParameterError(
                    f"user_supplied_dq {self.user_supplied_dq}: expected an integer array of "
                    f"shape {shape}, got {user.dtype} {user.shape}")
            if self.tile is not None:
                r0, c0 = self.tile.row_offset, self.tile.column_offset
                user = user[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]]
            mask = mask | user.astype(np.uint32)
        for plane, integrations in stripe_views(superstripe_count(model)):
            apply_mask(model.pixeldq[plane], model.groupdq[integrations], mask[plane])
        self.set_status(model, "COMPLETE")
        return model
