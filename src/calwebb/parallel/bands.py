"""Memory sizes and bands of rows: how a tiled Stage 1 run cuts the frame.

``parse_memory`` reads a ``max_memory`` value, ``automatic_budget`` is what
``max_memory='auto'`` means for a ramp, and ``plan_tiles``/``tile_height`` cut the frame's
rows into ``Tile`` bands that fit a budget (``calwebb.parallel.tiles`` runs them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from calwebb.errors import ParameterError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_memory(text: str | int | float, name: str = "max_memory") -> int:
    """Bytes in a size such as '4GB', '500MB', '1.5 GiB' or a plain number of bytes.

    KB/MB/GB/TB (or K/M/G/T) are powers of 1000, KiB/MiB/GiB/TiB powers of 1024.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        match = _SIZE.match(str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ParameterError(
                f"parameter {name}: {text!r} is not a memory size; expected a number and a "
                "unit such as '4GB', '500MB' or '2GiB'")
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ParameterError(f"parameter {name}: {text!r} must be more than zero bytes")
    return size


@dataclass(frozen=True)
class Tile:
    """A band of frame rows: ``core_start:core_stop`` are its own, ``start:stop`` are read
    (its own rows and the halo around them)."""

    start: int
    stop: int
    core_start: int
    core_stop: int

    @property
    def rows(self) -> slice:
        """The tile's own rows within the rows read."""
        return slice(self.core_start - self.start, self.core_stop - self.start)

    def with_halo(self, halo: int, nrows: int) -> Tile:
        return Tile(max(0, self.core_start - halo), min(nrows, self.core_stop + halo),
                    self.core_start, self.core_stop)


def plan_tiles(nrows: int, height: int, minimum: int = 1) -> list[Tile]:
    """Bands of at most ``height`` rows covering ``nrows``, as even as possible (no halo),
    and of at least ``minimum`` rows (which wins over ``height``)."""
    count = max(1, math.ceil(nrows / max(1, height)))
    while count > 1 and nrows // count < minimum:
        count -= 1
    edges = [round(index * nrows / count) for index in range(count + 1)]
    return [Tile(a, b, a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def tile_height(budget: int, row_bytes: int, fixed_bytes: int, halo: int, nrows: int) -> int:
    """Rows per tile so that a tile with its halo (``row_bytes`` per row) and the frame-sized
    arrays kept throughout (``fixed_bytes``) fit in ``budget`` bytes; all rows if they fit.

    Tiles are at least twice the halo (so that even tiles are never thinner than their
    halo); ParameterError when not even such a tile fits.
    """
    available = budget - fixed_bytes
    if available // max(1, row_bytes) >= nrows:
        return nrows
    height = available // max(1, row_bytes) - 2 * halo
    smallest = min(nrows, max(2 * halo, 1))
    if height < smallest:
        needed = fixed_bytes + (smallest + 2 * halo) * row_bytes
        raise ParameterError(
            f"max_memory: {format_size(budget)} is too small for this exposure; tiles of "
            f"{smallest} rows need at least {format_size(needed)}")
    return int(height)


def format_size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"



#: ``max_memory='auto'`` tiles a ramp whose float32 samples take more than this ...
AUTO_TILE_ABOVE = 64 * 2**20
#: ... within the larger of this and half the float32 ramp
AUTO_SMALLEST_BUDGET = 100 * 2**20


def automatic_budget(shape: tuple[int, ...]) -> int | None:
    """The ``max_memory='auto'`` budget (bytes) for a ramp of ``shape``, None when it is
    small enough to run whole."""
    ramp_bytes = 4 * math.prod(shape)
    if ramp_bytes <= AUTO_TILE_ABOVE:
        return None
    return max(AUTO_SMALLEST_BUDGET, ramp_bytes // 2)
