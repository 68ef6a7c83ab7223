"""The keyword table: which metadata path lives in which FITS header card, and its type.

The table itself is data (``keywords.yaml``): one section per HDU mapping a dotted
metadata path to ``[KEYWORD, type]``; the ``TREE`` section lists items kept only in
the ASDF tree. Nothing else in calwebb hard-codes header keywords for metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from calwebb.errors import DataModelError


@dataclass(frozen=True)
class Keyword:
    path: str  # dotted metadata path, e.g. "meta.exposure.ngroups"
    keyword: str | None  # FITS keyword, None for tree-only items
    hdu: str | None  # "PRIMARY", "SCI", "ERR", ...; None for tree-only items
    type: str  # "str", "int", "float", "bool" or "any"


@cache
def table() -> dict[str, Keyword]:
    """Every known metadata leaf, by dotted path."""
    raw = yaml.load(resources.files(__package__).joinpath("keywords.yaml").read_text(),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C parser: 10x faster
    entries: dict[str, Keyword] = {}
    for hdu, rows in raw.items():
        for path, (keyword, kind) in rows.items():
            entries[path] = Keyword(path, keyword, None if hdu == "TREE" else hdu, kind)
    return entries


@cache
def _groups() -> frozenset[str]:
    groups = set()
    for path in table():
        parts = path.split(".")
        groups.update(".".join(parts[:n]) for n in range(1, len(parts)))
    return frozenset(groups)


def is_leaf(path: str) -> bool:
    return path in table()


def is_group(path: str) -> bool:
    return path in _groups()


def in_hdu(hdu: str, moved: dict[str, str] | None = None) -> list[Keyword]:
    """Entries written to header ``hdu``; ``moved`` maps a path to the HDU a model uses instead."""
    moved = moved or {}
    return [
        entry
        for entry in table().values()
        if entry.keyword and moved.get(entry.path, entry.hdu) == hdu
    ]


def coerce(path: str, value: Any) -> Any:
    """``value`` as the declared type of ``path`` (numpy scalars become Python scalars).

    Raises DataModelError naming the path when the value cannot be that type.
    """
    if value is None:
        return None
    entry = table().get(path)
    if isinstance(value, np.generic):
        value = value.item()
    if entry is None or entry.type == "any":
        return value
    converters = {"str": _to_str, "int": _to_int, "float": _to_float, "bool": _to_bool}
    try:
        return converters[entry.type](value)
    except (TypeError, ValueError) as exc:
        raise DataModelError(
            f"metadata {path} ({entry.keyword or 'tree only'}) must be {entry.type}, "
            f"got {value!r}"
        ) from exc


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    if hasattr(value, "isoformat"):  # datetime, astropy Time
        return value.isoformat()
    raise TypeError(type(value))


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError(type(value))


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("bool")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise TypeError(type(value))


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in {"T", "TRUE", "F", "FALSE"}:
        return value.strip().upper() in {"T", "TRUE"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise TypeError(type(value))
