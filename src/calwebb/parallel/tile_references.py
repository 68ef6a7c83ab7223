"""Reference files cut to the tiles of a tiled Stage 1 run: only a tile's rows are read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from calwebb import datamodels
from calwebb.datamodels import DataModel
from calwebb.errors import ReferenceFileError
from calwebb.parallel.frame_store import is_fits


def window_of(model: DataModel, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(xstart, ystart, xsize, ysize) of the model's subarray; the array ``shape`` (and 1)
    where the keywords are absent."""
    sub = model.meta.subarray
    defaults = (1, 1, shape[1], shape[0])
    values = (sub.xstart, sub.ystart, sub.xsize, sub.ysize)
    return tuple(d if v is None else v for v, d in zip(values, defaults, strict=True))


class TileReferences:
    """Reference files cut to tiles: only the tile's rows are read from the file.

    Installed as the steps' ``open_reference`` for a tiled run. CRDS (or the override) is
    asked once per step and reference type, about the whole frame, so the references chosen
    and recorded are the whole-frame run's.
    """

    def __init__(self, frame: DataModel, frame_shape: tuple[int, int], shared=()):
        """``shared``: the reference types several steps open for a tile; their cut is made
        once a tile and shared."""
        self.frame, self.frame_shape = frame, frame_shape
        self._paths: dict[tuple[str, str], str] = {}
        self._models: dict[tuple[str, str], Any] = {}
        self._tile_cuts: dict[tuple[str, str], tuple] = {}
        self.shared = set(shared)

    @contextmanager
    def installed(self, steps) -> Iterator[None]:
        """``steps`` open their references through this object meanwhile."""
        try:
            for step in steps:
                step.open_reference = bound_open(self, step)
            yield
        finally:
            for step in steps:
                step.__dict__.pop("open_reference", None)

    @contextmanager
    def uninstalled(self, step) -> Iterator[None]:
        """``step`` opens its references as usual meanwhile (a whole-frame run)."""
        installed = step.__dict__.pop("open_reference", None)
        try:
            yield
        finally:
            if installed is not None:
                step.open_reference = installed

    def open(self, step, model: DataModel, reftype: str):
        """``step``'s ``reftype`` reference cut to ``model`` (a tile or the frame)."""
        override = getattr(step, f"override_{reftype}", None)
        if isinstance(override, DataModel):
            step.get_reference_file(self.frame, reftype)
            return self.cut_model(override, model)
        key = (step.name, reftype)
        if key not in self._paths:
            self._paths[key] = step.get_reference_file(self.frame, reftype)
        path = self._paths[key]
        if path in ("N/A", ""):
            return None
        if reftype not in self.shared:
            return self.cut(path, reftype, model)
        # steps of a tile that use the same reference (jump and ramp_fit: GAIN, READNOISE)
        # share its cut, read once (until ``forget_cuts``)
        window = window_of(model, model.data.shape[-2:])
        last = self._tile_cuts.get((path, reftype))
        if last is None or last[0] != window:
            last = self._tile_cuts[(path, reftype)] = (window, self.cut(path, reftype, model))
        return last[1]

    def forget_cuts(self) -> None:
        """Let the cuts made so far go (a new tile starts: they are not kept beside its own)."""
        self._tile_cuts.clear()

    def reference(self, path: str, reftype: str):
        """The reference model of ``path`` (opened once: its metadata; arrays and tables load
        lazily)."""
        key = (path, reftype)
        if key not in self._models:
            cls = datamodels.reference_model_class(reftype, self.frame.meta.instrument.name)
            self._models[key] = cls(path)  # metadata only: arrays and tables load lazily
        return self._models[key]

    def stored_images(self, path: str, reftype: str) -> dict[str, Any]:
        """The image arrays of the FITS reference at ``path`` not read yet, by EXTNAME: their
        loaders (``ImageLoader``, or a DQ translated on load) tell their ``shape`` and
        ``disk_itemsize``."""
        reference = self.reference(path, reftype)
        loaders = {}
        for name, spec in type(reference).arrays.items():
            loader = reference.pending_loader(name)
            if not spec.is_table and getattr(loader, "disk_itemsize", None) is not None:
                loaders[spec.extname] = loader
        return loaders

    def cut(self, path: str, reftype: str, model: DataModel):
        """The reference of ``path`` cut to ``model``'s window (arrays read on access)."""
        reference = self.reference(path, reftype)
        cls = type(reference)
        if cls.primary_array is None or not is_fits(path):
            return datamodels.cutout_reference(reference, model)
        primary = reference.array_shape(cls.primary_array)
        if primary is None or len(primary) < reference.image_min_ndim:
            return reference  # not a detector image (a single IPC kernel, a table)
        ref_shape = tuple(primary[-2:])
        rows, columns = self._window(reference, ref_shape, model)
        cut = self._empty_cut(reference, model)
        for name, spec in cls.arrays.items():
            if not reference.has_array(name):
                continue
            if spec.is_table:
                setattr(cut, name, getattr(reference, name))
                continue
            shape = reference.array_shape(name)
            if len(shape) >= 2 and tuple(shape[-2:]) == ref_shape:
                cut.set_loader(name, CutLoader(reference, name, rows, columns))
            else:
                cut.set_loader(name, CutLoader(reference, name, None, None))
        return cut

    def cut_model(self, reference, model: DataModel):
        """An in-memory reference (an override model) cut to ``model``'s window."""
        cls = type(reference)
        if cls.primary_array is None:
            return reference
        primary = getattr(reference, cls.primary_array)
        if primary.ndim < reference.image_min_ndim:
            return reference
        ref_shape = tuple(primary.shape[-2:])
        (r0, r1), (c0, c1) = self._window(reference, ref_shape, model)
        cut = self._empty_cut(reference, model)
        for name in cls.arrays:
            if reference.has_array(name):
                array = getattr(reference, name)
                if array.ndim >= 2 and tuple(array.shape[-2:]) == ref_shape:
                    array = array[..., r0:r1, c0:c1]
                setattr(cut, name, np.array(array))
        return cut

    def _window(self, reference, ref_shape, model) -> tuple[tuple[int, int], tuple[int, int]]:
        """Rows and columns of the reference under ``model``'s window; the checks of
        ``calwebb.datamodels.cutout_reference`` are made for the whole frame."""
        rx, ry, rnx, rny = window_of(reference, ref_shape)
        fx, fy, fnx, fny = window_of(self.frame, self.frame_shape)
        name = reference.meta.filename or type(reference).__name__
        if not ((rx, ry, rnx, rny) == (fx, fy, fnx, fny) and ref_shape == self.frame_shape):
            if not reference.can_cut_out:
                raise ReferenceFileError(
                    f"{name}: {reference.reftype.upper()} covers subarray "
                    f"{reference.meta.subarray.name or 'FULL'} ({rnx}x{rny} at {rx},{ry}) but "
                    f"the science data are {fnx}x{fny} at {fx},{fy}; this reference type must "
                    "match exactly")
            if (fx < rx or fy < ry or fx - rx + fnx > ref_shape[1]
                    or fy - ry + fny > ref_shape[0]):
                raise ReferenceFileError(
                    f"{name}: the {reference.reftype.upper()} reference ({rnx}x{rny} at "
                    f"{rx},{ry}) does not cover the science subarray ({fnx}x{fny} at {fx},{fy})")
        sx, sy, snx, sny = window_of(model, model.data.shape[-2:])
        return (sy - ry, sy - ry + sny), (sx - rx, sx - rx + snx)

    @staticmethod
    def _empty_cut(reference, model: DataModel):
        """A reference model with ``reference``'s metadata and ``model``'s window."""
        cut = reference.metadata_copy()
        sx, sy, snx, sny = window_of(model, model.data.shape[-2:])
        cut.meta.subarray.update({"name": model.meta.subarray.name, "xstart": sx, "ystart": sy,
                                  "xsize": snx, "ysize": sny})
        return cut


def bound_open(references: TileReferences, step) -> Callable:
    def open_reference(model, reftype):
        return references.open(step, model, reftype)

    return open_reference


class CutLoader:
    """An array of a reference (opened lazily from its file) cut to a tile's ``rows`` and
    ``columns`` (None: all), read on first access (called) or in part (``read``, as
    ``DataModel.leading_planes`` asks): only those rows, columns and planes are read, through
    the reference's own loader (which also translates a private DQ layout)."""

    def __init__(self, reference, name: str, rows: tuple[int, int] | None,
                 columns: tuple[int, int] | None):
        self.reference, self.name, self.rows, self.columns = reference, name, rows, columns
        shape = reference.array_shape(name)
        if rows is not None:
            shape = (*shape[:-2], rows[1] - rows[0], columns[1] - columns[0])
        self.shape = tuple(shape)

    def __call__(self) -> np.ndarray:
        return self.read()

    def read(self, rows: tuple[int, int] | None = None, planes: int | None = None
             ) -> np.ndarray:
        """The cut, or its first ``planes`` along the third-from-last axis and its ``rows``
        (counted within the cut)."""
        from_file = self.reference.pending_loader(self.name) is not None
        part = self.reference.array_part(self.name, *self._window(rows), planes=planes)
        return part if from_file else np.array(part)  # a loaded array's part is a view

    def mapped(self, rows: tuple[int, int] | None = None, planes: int | None = None
               ) -> np.ndarray | None:
        """The same part, not read: the reference's ``stored_part`` of it."""
        return self.reference.stored_part(self.name, *self._window(rows), planes=planes)

    def _window(self, rows: tuple[int, int] | None) -> tuple:
        """(rows, columns) of the reference for ``rows`` of the cut (None: all of it)."""
        cut_rows = self.rows
        if rows is not None:
            first = 0 if cut_rows is None else cut_rows[0]
            cut_rows = (first + rows[0], first + rows[1])
        return cut_rows, self.columns


#: reference types each step opens for a tile (the planning estimates their size)
TILE_REFERENCES = {
    "dq_init": ("mask",), "saturation": ("saturation", "superbias"), "ipc": ("ipc",),
    "superbias": ("superbias",), "linearity": ("linearity",), "dark_current": ("dark",),
    "reset": ("reset",), "jump": ("gain", "readnoise"), "ramp_fit": ("readnoise", "gain"),
}


def shared_reference_types(steps) -> set[str]:
    """The reference types that more than one of ``steps`` opens for a tile."""
    counts = Counter(reftype for step in steps for reftype in TILE_REFERENCES.get(step.name, ()))
    return {reftype for reftype, count in counts.items() if count > 1}
