"""Divide by the flat field and propagate its uncertainty (stage2.md §4.12)."""

from __future__ import annotations

import numpy as np

from calwebb import dqflags


def usable_flat(flat: np.ndarray, flat_dq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(flat with 1.0 at unusable pixels, flat DQ): NaN or 0 → NO_FLAT_FIELD | DO_NOT_USE,
    NO_FLAT_FIELD → DO_NOT_USE."""
    dq = flat_dq.astype(np.uint32, copy=True)
    dq[~np.isfinite(flat) | (flat == 0)] |= dqflags.NO_FLAT_FIELD | dqflags.DO_NOT_USE
    dq[(dq & dqflags.NO_FLAT_FIELD) != 0] |= dqflags.DO_NOT_USE
    values = np.where((dq & dqflags.DO_NOT_USE) != 0, 1.0, flat).astype(np.float32)
    return values, dq


def apply_flat(arrays: dict[str, np.ndarray], flat: np.ndarray, flat_err: np.ndarray | None,
               flat_dq: np.ndarray, inverse: bool = False) -> None:
    """Flat-field ``arrays`` (data, dq, err, var_poisson, var_rnoise; var_flat is added) in
    place. Images may be 2-D or a stack of integrations; the flat is 2-D."""
    values, dq = usable_flat(flat, flat_dq)
    relative_err = np.zeros_like(values) if flat_err is None else np.nan_to_num(
        np.where((dq & dqflags.DO_NOT_USE) != 0, 0.0, flat_err / values)).astype(np.float32)
    data = arrays["data"]
    factor = values if inverse else 1.0 / values
    data *= factor
    for name in ("var_poisson", "var_rnoise"):
        if name in arrays:
            arrays[name] *= factor * factor
    var_flat = (data * data * relative_err * relative_err).astype(np.float32)
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
