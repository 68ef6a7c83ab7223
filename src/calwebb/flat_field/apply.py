"""Divide by the flat field and propagate its uncertainty (stage2.md §4.12)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from calwebb import dqflags

_NO_FLAT = np.uint32(dqflags.NO_FLAT_FIELD)
_DO_NOT_USE = np.uint32(dqflags.DO_NOT_USE)
_FLOAT32_MAX = np.float32(np.finfo(np.float32).max)


def apply_flat(arrays: dict[str, np.ndarray], flat: np.ndarray, flat_err: np.ndarray | None,
               flat_dq: np.ndarray, inverse: bool = False) -> None:
    """Flat-field ``arrays`` (data, dq, var_poisson, var_rnoise) in place and add err and
    var_flat to them, in one pass over the pixels (no image-sized temporaries). Images may
    be 2-D or a stack of integrations; the flat is 2-D.

    Unusable flat pixels (NaN, 0, or NO_FLAT_FIELD in its DQ) get NO_FLAT_FIELD |
    DO_NOT_USE and count as 1.0; SCI ÷ flat (× with ``inverse``), VAR_POISSON and
    VAR_RNOISE scaled by the square of that factor, VAR_FLAT = SCI² (flat ERR / flat)²
    (0 where the flat is unusable or has no ERR), ERR = √(sum of the variances), DQ |= the
    flat's DQ; then every pixel that is DO_NOT_USE or non-finite in any array is NaN in all
    of them and DO_NOT_USE (float32 arithmetic throughout)."""
    for name in ("data", "dq", "var_poisson", "var_rnoise"):  # (flattened views below)
        if name in arrays:
            arrays[name] = np.ascontiguousarray(arrays[name],
                                                np.uint32 if name == "dq" else np.float32)
    data, dq = arrays["data"], arrays["dq"]
    stack = (-1, flat.size)
    absent = np.empty((0, 0), np.float32)
    variances = [arrays[name].reshape(stack) if name in arrays else absent
                 for name in ("var_poisson", "var_rnoise")]
    err = np.empty(data.shape, np.float32)
    var_flat = np.empty(data.shape, np.float32)
    relative = np.empty(0, np.float32) if flat_err is None else \
        np.ascontiguousarray(flat_err, np.float32).ravel()
    _flat_field(data.reshape(stack), dq.reshape(stack), *variances,
                np.ascontiguousarray(flat, np.float32).ravel(), relative,
                np.ascontiguousarray(flat_dq, np.uint32).ravel(), inverse,
                err.reshape(stack), var_flat.reshape(stack))
    arrays["err"], arrays["var_flat"] = err, var_flat


@njit(cache=True, parallel=True)
def _flat_field(data, dq, var_poisson, var_rnoise, flat, flat_err, flat_dq, inverse, err,
                var_flat):
    """``apply_flat`` on [integrations, pixels] arrays (an absent variance or flat ERR has
    no elements)."""
    with_poisson, with_rnoise = var_poisson.size > 0, var_rnoise.size > 0
    with_err = flat_err.size > 0
    for p in prange(flat.size):
        flags, value = flat_dq[p], flat[p]
        if not np.isfinite(value) or value == 0:
            flags |= _NO_FLAT | _DO_NOT_USE
        if flags & _NO_FLAT:
            flags |= _DO_NOT_USE
        unusable = (flags & _DO_NOT_USE) != 0
        if unusable:
            value = np.float32(1.0)
        relative = np.float32(0.0)
        if with_err and not unusable:
            relative = _finite_or_limit(flat_err[p] / value)
        factor = value if inverse else np.float32(1.0) / value
        factor2 = factor * factor
        for k in range(data.shape[0]):
            science = data[k, p] * factor
            flat_variance = science * science * relative * relative
            total = flat_variance
            poisson = rnoise = np.float32(0.0)
            if with_poisson:
                poisson = var_poisson[k, p] * factor2
                total += poisson
            if with_rnoise:
                rnoise = var_rnoise[k, p] * factor2
                total += rnoise
            error = np.float32(math.sqrt(total)) if total >= 0 else np.float32(np.nan)
            pixel_dq = dq[k, p] | flags
            if (pixel_dq & _DO_NOT_USE) or not (
                    np.isfinite(science) and np.isfinite(error) and np.isfinite(poisson)
                    and np.isfinite(rnoise) and np.isfinite(flat_variance)):
                pixel_dq |= _DO_NOT_USE
                science = error = flat_variance = poisson = rnoise = np.float32(np.nan)
            data[k, p], dq[k, p], err[k, p], var_flat[k, p] = science, pixel_dq, error, \
                flat_variance
            if with_poisson:
                var_poisson[k, p] = poisson
            if with_rnoise:
                var_rnoise[k, p] = rnoise


@njit(cache=True, inline="always")
def _finite_or_limit(value):
    """NaN → 0, ±inf → ± the largest float32 (as numpy's nan_to_num)."""
    if np.isnan(value):
        return np.float32(0.0)
    if np.isinf(value):
        return _FLOAT32_MAX if value > 0 else -_FLOAT32_MAX
    return value
