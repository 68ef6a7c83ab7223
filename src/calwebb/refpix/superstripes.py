"""Superstripe ramps after refpix: the stripes collated into contiguous integrations."""

from __future__ import annotations

import numpy as np

from calwebb import datamodels, dqflags, stripes


def collate(model, readout: stripes.StripeReadout):
    """A superstripe ramp as a RampModel of contiguous integrations (``calwebb.stripes``):
    NaN data, no group flags and REFERENCE_PIXEL where no stripe reads; INT_TIMES per
    collated integration with the rows per stripe kept as INT_TIMES_STRIPE; the subarray
    keywords of the collated window and no stripe keywords; explicit read times when
    repeated pieces became groups."""
    nstripes = readout.nstripes
    collated = datamodels.RampModel(model)
    collated.data = stripes.collate_ramp(model.data, readout, np.nan)
    collated.groupdq = stripes.collate_ramp(model.groupdq, readout, 0)
    collated.pixeldq = stripes.collate_planes(model.pixeldq, readout, dqflags.REFERENCE_PIXEL,
                                              per_integration=False)
    if model.has_array("zeroframe"):
        collated.zeroframe = stripes.collate_planes(model.zeroframe, readout, np.nan,
                                                    per_integration=True)
    collated.refout = collated.group = None
    exposure, sub = collated.meta.exposure, collated.meta.subarray
    first = exposure.integration_start or 1
    last = exposure.integration_end or exposure.nints or model.data.shape[0]
    if model.has_array("int_times") and len(model.int_times):
        collated.int_times_stripe, collated.int_times = stripes.split_int_times(
            model.int_times, nstripes, int(np.ceil(first / nstripes)),
            datamodels.INT_TIMES_STRIPE_DTYPE)
    if readout.pieces_per_stripe > 1:
        fast_size = model.data.shape[-1 if readout.slow_axis == -2 else -2]
        exposure.read_times = stripes.read_times(
            readout, int(exposure.ngroups or model.data.shape[1]), int(exposure.nframes or 1),
            int(exposure.groupgap or 0), int(exposure.noutputs or 1), fast_size)
    exposure.integration_start = int(np.ceil(first / nstripes))
    exposure.integration_end = int(np.ceil(last / nstripes))
    exposure.nints = int(np.ceil((exposure.nints or model.data.shape[0]) / nstripes))
    exposure.ngroups = collated.data.shape[1]
    for keyword in ("multistripe_reads1", "multistripe_reads2", "multistripe_skips1",
                    "multistripe_skips2", "repeat_stripe", "interleave_reads1",
                    "num_superstripe", "superstripe_step"):
        setattr(sub, keyword, None)
    sub.ysize, sub.xsize = collated.data.shape[-2:]
    first_row, _ = readout.collated_window()
    if abs(readout.slowaxis) == 1:
        sub.xstart = first_row + 1
    else:
        sub.ystart = first_row + 1
    return collated
