"""DN/s → MJy/sr for imaging: the PHOTOM row, its time dependence, the scaling (stage2.md §4.19)."""

from __future__ import annotations

import numpy as np

#: µJy/arcsec² per MJy/sr
MICROJANSKY_ARCSEC2_PER_MJY_SR = 23.50443


def _text(value) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).strip().upper()


def selection(instrument: str, filter_name: str | None, pupil: str | None,
              subarray: str | None) -> dict[str, str]:
    """The table columns and values that pick this exposure's row."""
    instrument = instrument.upper()
    if instrument == "FGS":
        return {}
    if instrument == "MIRI":
        return {"filter": filter_name or "", "subarray": subarray or ""}
    chosen = {"filter": filter_name or "", "pupil": pupil or ""}
    if instrument == "NIRCAM":
        chosen["subarray"] = subarray or ""
    return chosen


def find_row(table: np.ndarray, chosen: dict[str, str]) -> int | None:
    """Index of the row matching ``chosen`` (columns absent from the table are ignored; a
    SUBARRAY of GENERIC matches any subarray when no exact row exists)."""
    if table is None or len(table) == 0:
        return None
    names = {name.lower(): name for name in table.dtype.names}
    rows = np.ones(len(table), bool)
    subarray_rows = None
    for column, value in chosen.items():
        if column not in names:
            continue
        values = np.array([_text(item) for item in table[names[column]]])
        if column == "subarray":
            subarray_rows = values
            continue
        rows &= values == value.upper()
    if subarray_rows is not None:
        exact = rows & (subarray_rows == chosen["subarray"].upper())
        rows = exact if exact.any() else rows & (subarray_rows == "GENERIC")
    found = np.flatnonzero(rows)
    return int(found[0]) if found.size else None


def time_factor(tables: dict[str, np.ndarray], chosen: dict[str, str], mjd: float) -> float:
    """Product of the linear, exponential and power-law throughput changes at ``mjd``."""
    factor = 1.0
    for kind, table in tables.items():
        index = find_row(table, chosen)
        if index is None:
            continue
        row = table[index]
        days = mjd - float(row["t0"])
        if kind == "linear":
            factor *= 1.0 - float(row["lossperyear"]) * days / 365.0
        elif kind == "exponential":
            factor *= float(row["amplitude"]) * np.exp(-days / float(row["tau"])) + float(
                row["const"])
        else:
            tsoft, alpha = float(row["tsoft"]), float(row["alpha"])
            factor *= (days + tsoft) ** alpha / ((365.0 + tsoft) ** alpha / float(
                row["year1value"]))
    return factor


def convert(arrays: dict[str, np.ndarray], conversion: float) -> None:
    """Scale data and err by ``conversion`` and the variances by its square, in place."""
    for name, array in arrays.items():
        array *= conversion * conversion if name.startswith("var_") else conversion
