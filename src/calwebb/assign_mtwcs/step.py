"""AssignMTWcsStep: re-reference every exposure's WCS so a moving target stays still."""

from __future__ import annotations

from calwebb.assign_mtwcs.moving_target import mean_position, with_moving_target_frame
from calwebb.assign_wcs.imaging import footprint_region
from calwebb.associations.library import ModelLibrary
from calwebb.stpipe import Step

IMAGING_TYPES = {"NRC_IMAGE", "MIR_IMAGE", "NIS_IMAGE", "FGS_IMAGE", "NRC_TSIMAGE"}


class AssignMTWcsStep(Step):
    """Adds a ``moving_target`` frame: world shifted by (mean − own) MT_RA/MT_DEC."""

    class_alias = "assign_mtwcs"
    spec = """
        suffix = string(default='assign_mtwcs')  # suffix of the output file names
        output_use_model = boolean(default=True)  # name outputs after the models
    """

    def prepare_input(self, value):
        return value if isinstance(value, ModelLibrary) else ModelLibrary(value)

    def process(self, library: ModelLibrary):
        positions = library.map_function(
            lambda model, index: (model.meta.wcsinfo.mt_ra, model.meta.wcsinfo.mt_dec))
        if any(ra is None or dec is None for ra, dec in positions):
            self.log.warning("MT_RA/MT_DEC missing from at least one exposure; the moving "
                             "target WCS is not assigned")
            library.map_function(lambda model, index: self.set_status(model, "SKIPPED"),
                                 modify=True)
            return library
        mean_ra, mean_dec = mean_position(positions)
        self.log.info("Moving target mean position: RA %.8f, Dec %.8f", mean_ra, mean_dec)

        def assign(model, index):
            own_ra, own_dec = positions[index]
            model.meta.wcs = with_moving_target_frame(model.meta.wcs, mean_ra - own_ra,
                                                      mean_dec - own_dec)
            model.meta.wcsinfo.mt_avra, model.meta.wcsinfo.mt_avdec = mean_ra, mean_dec
            if (model.meta.exposure.type or "").upper() in IMAGING_TYPES:
                model.meta.wcsinfo.s_region = footprint_region(model.meta.wcs)
            self.set_status(model, "COMPLETE")

        library.map_function(assign, modify=True)
        return library
