"""Divide by the flat field and propagate its uncertainty (stage2.md §4.12)."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags


def usable_flat(flat: np.ndarray, flat_dq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat with 1.0 at unusable pixels, flat DQ): NaN or 0 → NO_FLAT_FIELD | DO_NOT_USE,
    NO_FLAT_FIELD → DO_NOT_USE."""
    dq = flat_dq.astype(np.uint32, copy=True)
    bad = ~np.isfinite(flat)
    bad |= flat == 0
    dq[bad] |= dqflags.NO_FLAT_FIELD | dqflags.DO_NOT_USE
    dq[(dq & dqflags.NO_FLAT_FIELD) != 0] |= dqflags.DO_NOT_USE
    values = flat.astype(np.float32, copy=True)
    values[(dq & dqflags.DO_NOT_USE) != 0] = 1.0
    return values, dq


def apply_flat(arrays: dict[str, np.ndarray], flat: np.ndarray, flat_err: np.ndarray | None,
               flat_dq: np.ndarray, inverse: bool = False) -> None:
    """Flat-field ``arrays`` (data, dq, err, var_poisson, var_rnoise; var_flat is added) in
    place. Images may be 2-D or a stack of integrations; the flat is 2-D."""
    values, dq = usable_flat(flat, flat_dq)
    if flat_err is None:
        relative_err = np.zeros_like(values)
    else:
        relative_err = np.divide(flat_err, values, dtype=np.float32)
        relative_err[(dq & dqflags.DO_NOT_USE) != 0] = 0.0
        np.nan_to_num(relative_err, copy=False)
    data = arrays["data"]
    factor = values if inverse else np.divide(1.0, values, dtype=np.float32)
    data *= factor
    factor *= factor
    for name in ("var_poisson", "var_rnoise"):
        if name in arrays:
            arrays[name] *= factor
    del factor
    var_flat = data * data
    var_flat *= relative_err
    var_flat *= relative_err
    arrays["var_flat"] = var_flat
    arrays["dq"] |= dq
    total = var_flat.copy()
    for name in ("var_poisson", "var_rnoise"):
        if name in arrays:
            total += arrays[name]
    arrays["err"] = np.sqrt(total, out=total)
    dqflags.harmonize_invalid(arrays["dq"], data, arrays["err"],
                              *(arrays[name] for name in ("var_poisson", "var_rnoise",
                                                          "var_flat") if name in arrays))
