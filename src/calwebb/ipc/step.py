"""IPCStep: undo inter-pixel capacitance."""

from calwebb import datamodels
from calwebb.ipc.convolve import convolve_plane, convolve_rows, reference_border
from calwebb.irs2 import IRS2Layout, is_irs2
from calwebb.stpipe import Step


class IPCStep(Step):
    """Convolve every group with the IPC deconvolution kernel (reference pixels untouched;
    on NIRSpec IRS2 ramps the image of normal rows is convolved)."""

    class_alias = "ipc"
    reference_file_types = ["ipc"]
    input_model_class = datamodels.RampModel

    def process(self, model):
        reference = self.open_reference(model, "ipc")
        if reference is None:
            return self.skip_model(model, "no IPC reference")
        ny, nx = model.data.shape[-2:]
        rows = IRS2Layout.of(model).normal_rows() if is_irs2(model.data.shape) else None
        if rows is not None:
            ny = len(rows)
        sub = model.meta.subarray
        border = reference_border((model.meta.instrument.name or "").upper(), sub.xstart or 1,
                                  sub.ystart or 1, sub.xsize or nx, sub.ysize or ny)
        kernel = reference.data.astype(model.data.dtype)
        for integration in model.data:
            for plane in integration:
                if rows is None:
                    convolve_plane(plane, kernel, border)
                else:
                    convolve_rows(plane, rows, kernel, border)
        self.set_status(model, "COMPLETE")
        return model
