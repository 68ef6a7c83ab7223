"""Arrays of a FITS file read when needed: images (and their parts) and plain tables.

``ImageLoader`` and ``TableLoader`` stand in a model for an array not read yet; they read
straight from the file into the result, a band of rows at a time (no second full-size copy),
applying BSCALE/BZERO (``scaled``). ``ImageLayout`` says where an image's data sit in the
file; it can also map the stored values unread (``mapped``) for kernels that convert them
on the fly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from calwebb.datamodels.base import array_cut
from calwebb.errors import DataModelError

log = logging.getLogger(__name__)


class TableLoader:
    """A table of stored values alone (``dtype``, ``length`` rows at byte ``offset`` of
    ``path``), read as it is on first access; ``read`` gives a band of its rows."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, length: int):
        self.path, self.offset, self.dtype, self.length = path, offset, dtype, length

    @property
    def shape(self) -> tuple[int]:
        return (self.length,)

    def __call__(self) -> np.ndarray:
        return self.read()

    def read(self, rows: tuple[int, int] | None = None) -> np.ndarray:
        """Rows ``rows`` (start, stop, clipped to the table) of the table, or all of it."""
        start, stop = (min(max(row, 0), self.length) for row in (rows or (0, self.length)))
        return np.fromfile(self.path, dtype=self.dtype, count=max(stop - start, 0),
                           offset=self.offset + start * self.dtype.itemsize)


_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}
_CHUNK_BYTES = 1 << 23  # rows are read this much at a time


def scaled(raw: np.ndarray, bscale: float, bzero: float, target: np.dtype,
           out: np.ndarray | None = None) -> np.ndarray:
    """Stored FITS values as ``target`` with BSCALE/BZERO applied: one copy into the target
    type, then the scaling in it (integer offsets such as unsigned ints stored signed with
    BZERO wrap correctly); a true scaling into integers is computed in float and rounded."""
    target = np.dtype(target)
    out = np.empty(raw.shape, dtype=target) if out is None else out
    if target.kind in "ui" and (bscale != 1 or bzero != int(bzero)):
        out[...] = np.rint(raw * np.float64(bscale) + np.float64(bzero))
        return out
    np.copyto(out, raw, casting="unsafe")
    _scale_in_place(out, bscale, bzero)
    return out


def _scale_in_place(out: np.ndarray, bscale: float, bzero: float) -> None:
    if bscale != 1:
        out *= out.dtype.type(bscale)
    if bzero:
        out += out.dtype.type(bzero)


@dataclass(frozen=True)
class ImageLayout:
    """Where an uncompressed image HDU's data sit in its file, and how they are scaled."""

    path: Path
    offset: int
    shape: tuple[int, ...]
    disk: np.dtype
    bscale: float
    bzero: float

    @classmethod
    def of(cls, path: Path, hdul: fits.HDUList, index: int) -> ImageLayout | None:
        """The layout of image HDU ``index`` (None for a compressed image)."""
        hdu = hdul[index]
        if isinstance(hdu, fits.CompImageHDU):
            return None
        header = hdu.header
        naxis = header.get("NAXIS", 0)
        shape = tuple(header[f"NAXIS{axis}"] for axis in range(naxis, 0, -1)) if naxis else (0,)
        return cls(Path(path), hdul.fileinfo(index)["datLoc"], shape,
                   np.dtype(_BITPIX[header["BITPIX"]]), header.get("BSCALE", 1),
                   header.get("BZERO", 0))

    def read(self, dtype: Any, rows: tuple[int, int] | None = None,
             columns: tuple[int, int] | None = None, planes: int | None = None) -> np.ndarray:
        """The image as ``dtype``: ``rows`` and ``columns`` ranges of the last two axes, the
        first ``planes`` of the third-from-last; read a band of rows at a time straight into
        the result (no memory map, no second full-size array)."""
        target = np.dtype(dtype)
        grid = self.shape if len(self.shape) >= 2 else (1, math.prod(self.shape))
        ny, nx = grid[-2:]
        r0, r1 = rows if rows is not None else (0, ny)
        c0, c1 = columns if columns is not None else (0, nx)
        lead = list(grid[:-2])
        if planes is not None and lead:
            lead[-1] = min(planes, lead[-1])
        out = np.empty((*lead, r1 - r0, c1 - c0), target)
        if out.size:
            numbers = np.arange(math.prod(grid[:-2]), dtype=np.int64).reshape(grid[:-2])
            numbers = numbers[tuple(slice(0, n) for n in lead)].ravel()
            self._read_planes(out.reshape(-1, r1 - r0, c1 - c0), numbers, (r0, r1), (c0, c1))
        return out if len(self.shape) >= 2 else out.reshape(self.shape)

    def mapped(self, rows: tuple[int, int] | None = None,
               columns: tuple[int, int] | None = None,
               planes: int | None = None) -> np.ndarray | None:
        """The stored values of the same parts as ``read``, memory-mapped read-only in their
        stored byte order (nothing is read until used); None when they are scaled (BSCALE or
        BZERO), as the stored values are then not the array's, when the image is not at least
        2-D, when the columns are under half of each row (nearly every page of the rows would
        be mapped in, and count as this process's memory, for a few bytes of each: reading
        costs less), or when the file system cannot map the file (it is then read instead)."""
        if self.bscale != 1 or self.bzero != 0 or len(self.shape) < 2 or not math.prod(
                self.shape):
            return None
        if columns is not None and 2 * (columns[1] - columns[0]) < self.shape[-1]:
            return None
        try:
            stored = np.memmap(self.path, dtype=self.disk, mode="r", offset=self.offset,
                               shape=self.shape)
        except (OSError, ValueError) as exc:
            log.debug("%s: not memory-mapped (%s); read instead", self.path, exc)
            return None
        return array_cut(stored, rows, columns, planes)

    def _read_planes(self, planes: np.ndarray, numbers: np.ndarray, rows: tuple[int, int],
                     columns: tuple[int, int]) -> None:
        ny, nx = (self.shape[-2:] if len(self.shape) >= 2 else (1, math.prod(self.shape)))
        target, row_bytes = planes.dtype, nx * self.disk.itemsize
        true_scaling = target.kind in "ui" and (self.bscale != 1 or self.bzero != int(self.bzero))
        in_place = columns == (0, nx) and target.itemsize == self.disk.itemsize and not \
            true_scaling and (target.kind == self.disk.kind or
                              {target.kind, self.disk.kind} <= {"u", "i"})
        band = max(1, _CHUNK_BYTES // row_bytes)
        buffer = None if in_place else np.empty((min(band, rows[1] - rows[0]), nx), self.disk)
        with open(self.path, "rb", buffering=0) as handle:
            for plane, number in zip(planes, numbers, strict=True):
                for start in range(rows[0], rows[1], band):
                    stop = min(start + band, rows[1])
                    handle.seek(self.offset + (int(number) * ny + start) * row_bytes)
                    part = plane[start - rows[0]:stop - rows[0]]
                    if in_place:  # the stored bytes into the result, then swapped and scaled
                        self._fill(handle, part)
                        if not self.disk.isnative:
                            part.byteswap(inplace=True)
                        _scale_in_place(part, self.bscale, self.bzero)
                    else:
                        raw = buffer[:stop - start]
                        self._fill(handle, raw)
                        scaled(raw[:, columns[0]:columns[1]], self.bscale, self.bzero, target,
                               out=part)

    def _fill(self, handle: Any, array: np.ndarray) -> None:
        view = memoryview(array.reshape(-1).view(np.uint8))
        while view.nbytes:
            count = handle.readinto(view)
            if not count:
                raise DataModelError(f"{self.path}: image data at byte {self.offset} are "
                                     "truncated")
            view = view[count:]


class ImageLoader:
    """Loads image HDU ``index`` of ``hdul`` (open now, read later from ``path``) as a native
    array of ``dtype`` on first access; its ``shape`` is known before, and ``read`` gives
    parts (see ``ImageLayout.read``)."""

    def __init__(self, path: Path, hdul: fits.HDUList, index: int, dtype: Any):
        self.path, self.index, self.dtype = path, index, dtype
        self.layout = ImageLayout.of(path, hdul, index)
        if self.layout is None:  # compressed: what the header says, kept for later
            header = hdul[index].header
            self._shape = tuple(header[f"NAXIS{axis}"] for axis in range(header["NAXIS"], 0, -1))
            self._itemsize = abs(header.get("ZBITPIX", header["BITPIX"])) // 8

    @property
    def shape(self) -> tuple[int, ...]:
        return self.layout.shape if self.layout is not None else self._shape

    @property
    def disk_itemsize(self) -> int:
        """Bytes per stored value."""
        return self.layout.disk.itemsize if self.layout is not None else self._itemsize

    def __call__(self) -> np.ndarray:
        return self.read()

    def mapped(self, **parts: Any) -> np.ndarray | None:
        """``ImageLayout.mapped`` of the image (None when it is compressed)."""
        return None if self.layout is None else self.layout.mapped(**parts)

    def read(self, dtype: Any = None, **parts: Any) -> np.ndarray:
        """The array as ``dtype`` (the loader's own by default), or the part that
        ``ImageLayout.read`` keywords select."""
        dtype = np.dtype(self.dtype if dtype is None else dtype)
        parts = {key: value for key, value in parts.items() if value is not None}
        if self.layout is not None:
            return self.layout.read(dtype, **parts)
        with fits.open(self.path, do_not_scale_image_data=True) as hdul:  # compressed
            hdu = hdul[self.index]
            raw = array_cut(hdu.data, **parts)  # cut before converting
            return scaled(raw, hdu.header.get("BSCALE", 1), hdu.header.get("BZERO", 0), dtype)
