"""The ramp of a tiled run between its stages, and the input ramp read band by band.

``FrameStore`` keeps the partly corrected frame (ramp-shaped arrays in temporary files, the
others in memory); ``InputRows`` reads bands of the input model's arrays straight from its
file. Both give a band of rows as a dict of the ``TILE_ARRAYS``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from calwebb.datamodels import DataModel
from calwebb.datamodels.fits_arrays import ImageLoader

#: the ramp arrays a tile carries (all have the frame's rows on their last-but-one axis)
TILE_ARRAYS = {"data": np.float32, "groupdq": np.uint8, "pixeldq": np.uint32,
               "zeroframe": np.float32, "average_dark_current": np.float32}


class FrameStore:
    """The frame's ramp arrays between stages, readable and writable by bands of rows.

    Ramp-shaped (4-D) arrays live in files in ``directory`` (raw native bytes, C order) so
    that they never occupy memory as a whole; the others (PIXELDQ, ZEROFRAME, AVDRKCUR) are
    kept in memory. Without a directory everything is kept in memory.
    """

    def __init__(self, nrows: int, directory: Path | None = None):
        self.nrows = nrows
        self.directory = directory
        self.arrays: dict[str, np.ndarray] = {}
        self.files: dict[str, tuple[Any, tuple[int, ...], np.dtype]] = {}

    @classmethod
    def of_model(cls, model: DataModel) -> FrameStore:
        """A store holding the model's own (in-memory) arrays, corrected in place."""
        store = cls(model.data.shape[-2])
        for name in TILE_ARRAYS:
            if name in ("pixeldq", "groupdq") or model.has_array(name):
                store.arrays[name] = getattr(model, name)
        return store

    @property
    def names(self) -> list[str]:
        return [*self.arrays, *self.files]

    def read(self, rows: tuple[int, int], names=None) -> dict[str, np.ndarray]:
        """A copy of every array's (or of the ``names``') rows [r0, r1)."""
        r0, r1 = rows
        window = {name: np.array(array[..., r0:r1, :]) for name, array in self.arrays.items()
                  if names is None or name in names}
        for name, (handle, shape, dtype) in self.files.items():
            if names is not None and name not in names:
                continue
            out = np.empty((*shape[:-2], r1 - r0, shape[-1]), dtype)
            planes = out.reshape(-1, r1 - r0, shape[-1])
            row_bytes = shape[-1] * dtype.itemsize
            for index in range(planes.shape[0]):
                handle.seek((index * shape[-2] + r0) * row_bytes)
                handle.readinto(memoryview(planes[index]).cast("B"))
            window[name] = out
        return window

    def write(self, rows: tuple[int, int], arrays: dict[str, np.ndarray]) -> None:
        """Store frame rows [r0, r1) of each array (created on first write)."""
        r0, r1 = rows
        if r1 <= r0:
            return
        for name, values in arrays.items():
            if name not in self.arrays and name not in self.files:
                self._create(name, (*values.shape[:-2], self.nrows, values.shape[-1]),
                             values.dtype)
            if name in self.arrays:
                self.arrays[name][..., r0:r1, :] = values
                continue
            handle, shape, dtype = self.files[name]
            # plane by plane: a band of a plane's rows is contiguous, so it is written as
            # it is (no copy of the band unless its type differs)
            planes = values.reshape(-1, r1 - r0, shape[-1])
            row_bytes = shape[-1] * dtype.itemsize
            for index in range(planes.shape[0]):
                handle.seek((index * shape[-2] + r0) * row_bytes)
                plane = np.ascontiguousarray(planes[index], dtype)
                handle.write(memoryview(plane).cast("B"))

    def _create(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        if self.directory is None or len(shape) < 4:
            self.arrays[name] = np.zeros(shape, dtype)
            return
        path = self.directory / f"{name}.raw"
        handle = open(path, "w+b")  # closed by close()
        handle.truncate(int(np.prod(shape)) * np.dtype(dtype).itemsize)
        self.files[name] = (handle, shape, np.dtype(dtype))

    def plane(self, name: str, index: tuple[int, ...]) -> np.ndarray:
        """A copy of one image plane [ny, nx] of an array (``index`` on its leading axes)."""
        if name in self.arrays:
            return np.array(self.arrays[name][index])
        handle, shape, dtype = self.files[name]
        out = np.empty(shape[-2:], dtype)
        handle.seek(int(np.ravel_multi_index(index, shape[:-2])) * out.nbytes)
        handle.readinto(memoryview(out).cast("B"))
        return out

    def whole(self, name: str) -> np.ndarray:
        """The whole array: in memory, or mapped from its file."""
        if name in self.arrays:
            return self.arrays[name]
        handle, shape, dtype = self.files[name]
        handle.flush()
        return np.memmap(handle.name, dtype=dtype, mode="r+", shape=shape)

    def load(self, name: str) -> np.ndarray:
        """The whole array in memory (a copy for arrays kept in files)."""
        return self.arrays[name] if name in self.arrays else self.read((0, self.nrows))[name]

    def close(self) -> None:
        for handle, _, _ in self.files.values():
            handle.close()


class InputRows:
    """The input ramp read band by band: arrays not loaded yet straight from their file
    (through the model's own loaders), the others from the model."""

    def __init__(self, model: DataModel):
        self.model = model
        self.shape = model.array_shape("data")

    def read(self, rows: tuple[int, int],
             columns: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        """The arrays of frame rows ``rows`` (and ``columns``; None: all of them)."""
        (r0, r1), (c0, c1) = rows, columns or (0, self.shape[-1])
        nints, ngroups = self.shape[:2]
        window = {}
        for name, dtype in TILE_ARRAYS.items():
            if self.model.has_array(name):
                loader = self.model.pending_loader(name)
                if isinstance(loader, ImageLoader):
                    window[name] = loader.read(dtype, rows=rows, columns=(c0, c1))
                else:
                    window[name] = np.array(getattr(self.model, name)[..., r0:r1, c0:c1], dtype)
            elif name == "groupdq":
                window[name] = np.zeros((nints, ngroups, r1 - r0, c1 - c0), dtype)
            elif name == "pixeldq":
                window[name] = np.zeros((r1 - r0, c1 - c0), dtype)
        return window


def lazy_file(model: DataModel, path: str | os.PathLike | None) -> Path | None:
    """The FITS file the model's SCI array is still to be read from (None if loaded)."""
    if path is None or model.pending_loader("data") is None:
        return None
    path = Path(path)
    return path if is_fits(path) and path.is_file() else None



def is_fits(path) -> bool:
    return Path(str(path)).suffix.lower() in (".fits", ".fit", ".fts")
