"""RefPixStep: remove bias drifts measured by the reference pixels."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, partial

import numpy as np

from calwebb import datamodels, memory, stripes
from calwebb.errors import ReferenceFileError
from calwebb.irs2 import IRS2Layout, is_irs2, move_rows
from calwebb.refpix import irs2_badref, irs2_correct, miri, nir, sirs, superstripes
from calwebb.refpix.reference_pixels import ReferencePixels, correctable_ramps, is_miri
from calwebb.stpipe import Step

NIR_FULL = (2048, 2048)
MIRI_FULL = (1024, 1032)


class RefPixStep(Step):
    """Reference-pixel correction for NIR detectors (top/bottom + side) and MIRI columns.

    The correction is measured from the reference pixels of the whole frame
    (``ReferencePixels``) and then applied. A tiled run (``calwebb.parallel.tiles``)
    measures it once over all tiles and sets ``tile``: ``tile.refpix`` is the measured
    correction and ``tile.row_offset`` the frame row of the model's first row.
    """

    class_alias = "refpix"
    spec = """
        odd_even_columns = boolean(default=True)  # NIR: separate statistics by column parity
        use_side_ref_pixels = boolean(default=True)  # NIR full frame: side-column correction
        side_smoothing_length = integer(default=11)  # NIR: running-median window height
        side_gain = float(default=1.0)  # NIR: multiplier of the side signal
        odd_even_rows = boolean(default=True)  # MIRI: separate statistics by row parity
        ovr_corr_mitigation_ftr = float(default=3.0)  # IRS2: bad interleaved pixel sigma factor
        preserve_irs2_refpix = boolean(default=False)  # IRS2: keep reference pixels
        irs2_mean_subtraction = boolean(default=False)  # IRS2: apply mean correction first
        refpix_algorithm = option('median', 'sirs', default='median')  # side-pixel method
        sigreject = float(default=4.0)  # SIRS outlier rejection
        gaussmooth = float(default=1.0)  # SIRS smoothing width
        halfwidth = integer(default=30)  # SIRS kernel half width
        siglimit = float(default=3.0)  # sigma-clip limit of every clipped mean
    """
    reference_file_types = ["refpix", "sirskernel"]
    input_model_class = datamodels.RampModel
    #: set by a tiled run: the tile being processed (see the class docstring)
    tile = None

    def not_applicable(self, model, frame_shape: tuple[int, int]) -> str | None:
        """Why the step does not apply to this exposure (None if it does)."""
        if is_miri(model) and tuple(frame_shape) != MIRI_FULL:
            return "MIRI subarrays have no reference columns to use"
        return None

    def reference_pixels(self, model, frame_shape: tuple[int, int]) -> ReferencePixels:
        """An empty collection of the reference pixels of a frame like ``model``'s."""
        if is_miri(model):
            mode = "miri"
        else:
            mode = "nir_full" if tuple(frame_shape) == NIR_FULL else "nir_subarray"
        sub = model.meta.subarray
        pixels = ReferencePixels(mode, tuple(frame_shape), sub.fastaxis or 1, sub.slowaxis or 2)
        if self.refpix_algorithm == "sirs":
            pixels.sirs_kernels = self.sirs_kernels(model, mode)
        return pixels

    def sirs_kernels(self, model, mode: str) -> np.ndarray | None:
        """The SIRS convolution kernels of the model's detector, or None (with the reason
        logged) when the running median is used instead."""
        if mode == "miri":
            self.log.info("SIRS is not applied to MIRI data")
            return None
        if mode != "nir_full" or "FULL" not in (model.meta.subarray.name or "FULL").upper():
            self.log.info("SIRS is not applied to subarray data")
            return None
        reference = self.open_reference(model, "sirskernel")
        if reference is None:
            self.log.warning("No SIRSKERNEL reference; using the running median for the side "
                             "reference pixels")
            return None
        detector = model.meta.instrument.detector
        kernels = sirs.detector_kernels(reference.coefficients(detector), self.gaussmooth,
                                        self.halfwidth)
        if kernels is None:
            self.log.info("The SIRSKERNEL reference has no kernel for %s; using the running "
                          "median", detector)
        return kernels

    def measure(self, pixels: ReferencePixels) -> list:
        """One correction per ramp collected in ``pixels`` (integrations, then ZEROFRAME
        planes for NIR); None marks a ramp that cannot be corrected."""
        if pixels.mode == "miri":
            corrections = []
            for left, right in zip(pixels.strips["left"], pixels.strips["right"], strict=True):
                signal = miri.measure_miri(left, right, pixels.good["left"],
                                           pixels.good["right"], self.odd_even_rows,
                                           self.siglimit)
                corrections.append(signal)
                if signal is None:  # later integrations are not corrected either
                    corrections += [None] * (len(pixels.strips["left"]) - len(corrections))
                    break
            return corrections
        if pixels.mode == "nir_full":
            good = nir.detector_strips(pixels.good, pixels.fastaxis, pixels.slowaxis)
            return [nir.measure_full_frame(
                nir.detector_strips({name: pixels.strips[name][index] for name in nir.STRIPS},
                                    pixels.fastaxis, pixels.slowaxis),
                good, self.odd_even_columns, self.use_side_ref_pixels,
                self.side_smoothing_length, self.side_gain, self.siglimit,
                pixels.sirs_kernels, self.sigreject)
                for index in range(pixels.nramps)]
        samples, columns = pixels.samples_in_reading_order()
        return [nir.measure_subarray(ramp_samples, columns, self.odd_even_columns,
                                     self.siglimit) for ramp_samples in samples]

    def process(self, model):
        frame_shape = self.tile.frame_shape if self.tile is not None else model.data.shape[-2:]
        reason = self.not_applicable(model, frame_shape)
        if reason:
            return self.skip_model(model, reason)
        if not is_miri(model) and is_irs2(model.data.shape):
            return self._correct_irs2(model)
        readout = stripes.StripeReadout.of(model)
        if readout is not None and tuple(frame_shape) != NIR_FULL:
            return self._correct_striped(model, readout)
        ramps = correctable_ramps(model)
        if self.tile is None:
            pixels = self.reference_pixels(model, frame_shape)
            pixels.add(ramps, model.pixeldq, 0)
            corrections, first_row = self.measure(pixels), 0
        else:
            corrections, first_row = self.tile.refpix, self.tile.row_offset
        if is_miri(model):
            for ramp, signal in zip(ramps, corrections, strict=True):
                if signal is not None:
                    miri.apply_miri(ramp, signal, first_row, self.odd_even_rows)
        else:
            self._apply_nir(model, ramps, corrections, frame_shape, first_row)
        if any(_failed(correction) for correction in corrections):
            return self.skip_model(model, "no usable reference pixels")
        self.set_status(model, "COMPLETE")
        return model

    def _correct_irs2(self, model):
        """NIRSpec IRS2: bad interleaved reference pairs flagged and replaced (after the
        optional mean subtraction), then the REFPIX-coefficient correction, which removes
        the interleaved reference rows unless ``preserve_irs2_refpix``."""
        layout = IRS2Layout.of(model)
        irs2_badref.flag_bad_reference_pairs(model.data, model.pixeldq, layout,
                                             self.ovr_corr_mitigation_ftr)
        if self.irs2_mean_subtraction:
            self.log.info("IRS2 mean subtraction: top/bottom reference rows only")
            irs2_badref.subtract_top_bottom_means(model.data, model.pixeldq, layout,
                                                  self.odd_even_columns, self.siglimit)
            if model.has_array("zeroframe"):
                with _zeroframe_zeros_kept(model):
                    irs2_badref.subtract_top_bottom_means(model.zeroframe[:, None],
                                                          model.pixeldq, layout,
                                                          self.odd_even_columns, self.siglimit)
        irs2_badref.replace_bad_reference_pairs(model.data, model.pixeldq, layout)
        reference = self.open_reference(model, "refpix")
        if reference is None:
            return self.skip_model(model, "no REFPIX reference for the IRS2 correction")
        source = reference.meta.filename or "refpix reference"
        try:  # (the 93 MB table is read in bands later, one amplifier's columns at a time)
            irs2_correct.check_table(reference.array_part("irs2_table", rows=(0, 0)),
                                     reference.array_shape("irs2_table")[0], source)
        except ReferenceFileError as error:  # officially logged and the step skipped
            self.log.error("%s", error)
            return self.skip_model(model, "the REFPIX reference cannot be used")
        dq_table = reference.dq_table if reference.has_array("dq_table") else None
        if dq_table is not None and len(dq_table):
            irs2_correct.clobber_bad_reference(model.data, layout, dq_table, model.pixeldq,
                                               source)
        else:
            self.log.warning("%s has no DQ table of bad interleaved reference pixels", source)
        if not self.preserve_irs2_refpix:  # ZEROFRAME too, so that every array stays aligned
            for name in ("pixeldq", "groupdq", "zeroframe"):  # (the ramp's own rows later)
                if model.has_array(name):
                    _cut_to_rows(model, name, layout.normal_rows())
        memory.release_freed_memory()  # before the correction
        coefficients_of = partial(irs2_correct.amplifier_coefficients,
                                  partial(_table_rows, reference), source=source)
        if model.data.shape[0] > 1:  # read from the table once, not once per integration
            coefficients_of = cache(coefficients_of)  # (44.5 MiB kept meanwhile)
        with memory.thread_heaps_trimmed():  # (what its threads freed does not stay)
            for integration in range(model.data.shape[0]):
                irs2_correct.correct_in_place(model.data[integration], layout,
                                              coefficients_of, self.preserve_irs2_refpix)
        if not self.preserve_irs2_refpix:
            _cut_to_rows(model, "data", layout.normal_rows())
        self.set_status(model, "COMPLETE")
        return model

    def _correct_striped(self, model, readout: stripes.StripeReadout):
        """Multistripe and superstripe subarrays: per amplifier and column parity, the
        flagged reference pixels of the striped frame (for superstripes, as each stripe's
        PIXELDQ plane flags them) correct each group; superstripes are then collated."""
        sub = model.meta.subarray
        fast, slow = readout.fastaxis, readout.slowaxis
        first_column = int((sub.xstart if abs(fast) == 1 else sub.ystart) or 1) - 1
        with _zeroframe_zeros_kept(model):
            for plane, integrations in stripes.stripe_views(stripes.superstripe_count(model)):
                pixeldq = nir.to_detector_frame(model.pixeldq[plane], fast, slow)
                ramps = list(model.data[integrations])
                if model.has_array("zeroframe"):
                    ramps += [frame[None] for frame in model.zeroframe[integrations]]
                for ramp in ramps:
                    nir.subtract_striped_reference(nir.to_detector_frame(ramp, fast, slow),
                                                   pixeldq, first_column,
                                                   self.odd_even_columns, self.siglimit)
        self.set_status(model, "COMPLETE")
        if not readout.superstripe:
            return model
        self.log.info("Collating %d superstripes into contiguous integrations",
                      readout.nstripes)
        return superstripes.collate(model, readout)

    def _apply_nir(self, model, ramps, corrections, frame_shape, first_row) -> None:
        sub = model.meta.subarray
        fast, slow = sub.fastaxis or 1, sub.slowaxis or 2
        rows, columns = nir.detector_window((first_row, first_row + model.data.shape[-2]),
                                            frame_shape, fast, slow)
        with _zeroframe_zeros_kept(model):
            for ramp, correction in zip(ramps, corrections, strict=True):
                view = nir.to_detector_frame(ramp, fast, slow)
                if isinstance(correction, nir.FullFrameCorrection):
                    nir.apply_full_frame(view, correction, rows, columns)
                elif isinstance(correction, tuple):
                    nir.apply_subarray(view, correction[0], columns, self.odd_even_columns)


@contextmanager
def _zeroframe_zeros_kept(model) -> Iterator[None]:
    """ZEROFRAME values of 0 (unusable) are 0 again after the block has corrected ZEROFRAME
    in place."""
    if not model.has_array("zeroframe"):
        yield
        return
    unusable = model.zeroframe == 0
    yield
    model.zeroframe[unusable] = 0


def _table_rows(reference, start: int, stop: int) -> np.ndarray:
    """Rows ``start`` to ``stop`` of the IRS2 table of ``reference`` (read from its file, if
    not loaded)."""
    return reference.array_part("irs2_table", rows=(start, stop))


def _cut_to_rows(model, name: str, rows: np.ndarray) -> None:
    """Model array ``name`` cut to ``rows`` (increasing) of its row axis within its own
    memory: the rows moved to its head, then the array shortened in place (a copy of the
    cut if something else refers to it)."""
    array = np.ascontiguousarray(getattr(model, name))
    setattr(model, name, None)
    shape = (*array.shape[:-2], len(rows), array.shape[-1])
    move_rows(array, rows)
    try:
        array.resize(shape)  # refused while anything else refers to it
    except ValueError:
        array = array.reshape(-1)[:math.prod(shape)].reshape(shape).copy()
    setattr(model, name, array)


def _failed(correction) -> bool:
    return correction is None or (isinstance(correction, tuple) and not correction[1])
