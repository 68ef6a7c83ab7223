"""The JWST 32-bit data-quality flags: names, values and bit-expression parsing."""

from __future__ import annotations

import numpy as np

#: Pixel flags (DQ, PIXELDQ): name -> value.
PIXEL: dict[str, int] = {
    "GOOD": 0,
    "DO_NOT_USE": 1 << 0,
    "SATURATED": 1 << 1,
    "JUMP_DET": 1 << 2,
    "DROPOUT": 1 << 3,
    "OUTLIER": 1 << 4,
    "PERSISTENCE": 1 << 5,
    "AD_FLOOR": 1 << 6,
    "CHARGELOSS": 1 << 7,
    "RESERVED": 1 << 8,
    "NON_SCIENCE": 1 << 9,
    "DEAD": 1 << 10,
    "HOT": 1 << 11,
    "WARM": 1 << 12,
    "LOW_QE": 1 << 13,
    "RC": 1 << 14,
    "TELEGRAPH": 1 << 15,
    "NONLINEAR": 1 << 16,
    "BAD_REF_PIXEL": 1 << 17,
    "NO_FLAT_FIELD": 1 << 18,
    "NO_GAIN_VALUE": 1 << 19,
    "NO_LIN_CORR": 1 << 20,
    "NO_SAT_CHECK": 1 << 21,
    "UNRELIABLE_BIAS": 1 << 22,
    "UNRELIABLE_DARK": 1 << 23,
    "UNRELIABLE_SLOPE": 1 << 24,
    "UNRELIABLE_FLAT": 1 << 25,
    "OPEN": 1 << 26,
    "ADJ_OPEN": 1 << 27,
    "FLUX_ESTIMATED": 1 << 28,
    "MSA_FAILED_OPEN": 1 << 29,
    "OTHER_BAD_PIXEL": 1 << 30,
    "REFERENCE_PIXEL": 1 << 31,
}

#: Group flags (8-bit GROUPDQ): the subset of the pixel flags that fits in a byte.
GROUP: dict[str, int] = {
    name: PIXEL[name]
    for name in (
        "GOOD",
        "DO_NOT_USE",
        "SATURATED",
        "JUMP_DET",
        "DROPOUT",
        "PERSISTENCE",
        "AD_FLOOR",
        "CHARGELOSS",
    )
}

# Module-level constants for the common flags, e.g. ``dqflags.SATURATED``.
GOOD = PIXEL["GOOD"]
DO_NOT_USE = PIXEL["DO_NOT_USE"]
SATURATED = PIXEL["SATURATED"]
JUMP_DET = PIXEL["JUMP_DET"]
DROPOUT = PIXEL["DROPOUT"]
OUTLIER = PIXEL["OUTLIER"]
PERSISTENCE = PIXEL["PERSISTENCE"]
AD_FLOOR = PIXEL["AD_FLOOR"]
CHARGELOSS = PIXEL["CHARGELOSS"]
NON_SCIENCE = PIXEL["NON_SCIENCE"]
DEAD = PIXEL["DEAD"]
HOT = PIXEL["HOT"]
WARM = PIXEL["WARM"]
LOW_QE = PIXEL["LOW_QE"]
NONLINEAR = PIXEL["NONLINEAR"]
BAD_REF_PIXEL = PIXEL["BAD_REF_PIXEL"]
NO_FLAT_FIELD = PIXEL["NO_FLAT_FIELD"]
NO_GAIN_VALUE = PIXEL["NO_GAIN_VALUE"]
NO_LIN_CORR = PIXEL["NO_LIN_CORR"]
NO_SAT_CHECK = PIXEL["NO_SAT_CHECK"]
UNRELIABLE_BIAS = PIXEL["UNRELIABLE_BIAS"]
UNRELIABLE_DARK = PIXEL["UNRELIABLE_DARK"]
UNRELIABLE_SLOPE = PIXEL["UNRELIABLE_SLOPE"]
UNRELIABLE_FLAT = PIXEL["UNRELIABLE_FLAT"]
FLUX_ESTIMATED = PIXEL["FLUX_ESTIMATED"]
OTHER_BAD_PIXEL = PIXEL["OTHER_BAD_PIXEL"]
REFERENCE_PIXEL = PIXEL["REFERENCE_PIXEL"]

_ALL_BITS = 0xFFFFFFFF


def flag_names(value: int) -> list[str]:
    """Names of the pixel flags set in ``value`` (``["GOOD"]`` for 0), lowest bit first."""
    value = int(value)
    if value == 0:
        return ["GOOD"]
    return [name for name, bit in PIXEL.items() if bit and value & bit]


def combine(*names: str) -> int:
    """The value with every named flag set: ``combine("DO_NOT_USE", "SATURATED") == 3``."""
    value = 0
    for name in names:
        try:
            value |= PIXEL[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown DQ flag name {name!r}; known: {', '.join(PIXEL)}") from None
    return value


def interpret_bit_flags(expression: str | int | None) -> int | None:
    """Turn a bit-flag expression such as ``"JUMP_DET,DROPOUT"`` or ``"~DO_NOT_USE+4"`` into an int.

    Accepts integers, sums/lists of integers or flag names joined by ``+`` or ``,``,
    and a leading ``~`` that inverts the whole set. ``None`` gives ``None``.
    """
    if expression is None:
        return None
    if isinstance(expression, (int, np.integer)):
        return int(expression)
    text = str(expression).strip()
    if text.upper() in ("", "NONE"):
        return None
    invert = text.startswith("~")
    if invert:
        text = text[1:].strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    value = 0
    for token in text.replace(",", "+").split("+"):
        token = token.strip()
        if not token:
            raise ValueError(f"empty term in bit-flag expression {expression!r}")
        if token.isdigit():
            value |= int(token)
        else:
            value |= combine(token)
    return (~value & _ALL_BITS) if invert else value


def is_set(dq: np.ndarray, flags: int) -> np.ndarray:
    """Boolean array: True where any of ``flags`` is set in ``dq``."""
    return (np.asarray(dq) & np.uint32(flags)) != 0


def group_to_pixel(groupdq: np.ndarray) -> np.ndarray:
    """OR a GROUPDQ array over its group axis (axis -3) into uint32 pixel flags."""
    return np.bitwise_or.reduce(groupdq, axis=-3).astype(np.uint32)


def unusable_groups(groupdq: np.ndarray) -> np.ndarray:
    """[nints, ngroups] booleans: the groups DO_NOT_USE on every pixel of a ramp's GROUPDQ
    [nints, ngroups, ny, nx] (one AND over each plane, no temporary of the ramp's size)."""
    return (np.bitwise_and.reduce(groupdq, axis=(2, 3)) & DO_NOT_USE) != 0


def invalid_pixels(dq: np.ndarray | None, flags: int,
                   *arrays: np.ndarray | None) -> np.ndarray:
    """Booleans: True where ``dq`` has any of ``flags`` or any of ``arrays`` is not finite
    (a None ``dq`` or array is left out; all of one shape; one work array, no temporary per
    array)."""
    present = [array for array in arrays if array is not None]
    shape = np.shape(dq if dq is not None else present[0])
    invalid = np.zeros(shape, bool) if dq is None else is_set(dq, flags)
    not_finite = np.empty(shape, bool)
    for array in present:
        invalid |= np.logical_not(np.isfinite(array, out=not_finite), out=not_finite)
    return invalid


def harmonize_invalid(dq: np.ndarray, *arrays: np.ndarray) -> None:
    """Make NaN and DO_NOT_USE agree, in place: a pixel that is non-finite in any of
    ``arrays`` (each of ``dq``'s shape) or DO_NOT_USE in ``dq`` becomes NaN in all of them
    and DO_NOT_USE in ``dq``."""
    invalid = invalid_pixels(dq, DO_NOT_USE, *arrays)
    np.bitwise_or(dq, np.asarray(DO_NOT_USE, dq.dtype), out=dq, where=invalid)
    for array in arrays:
        np.copyto(array, np.nan, where=invalid)
