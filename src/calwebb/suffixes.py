"""Product suffixes, and stripping one known suffix from a file name (framework.md §8.1)."""

from __future__ import annotations

import re
from functools import lru_cache

#: Suffixes of products that are not step names.
PRODUCT_SUFFIXES = (
    "ami", "ami-oi", "aminorm", "aminorm-oi", "blot", "bsub", "bsubints", "c1d", "cal",
    "calints", "cat", "crf", "crfints", "dark", "i2d", "mbsub", "median", "phot", "psfalign",
    "psfstack", "psfsub", "ramp", "rate", "rateints", "s2d", "s3d", "snr", "uncal", "wfscmb",
    "whtlt", "x1d", "x1dints", "fitopt", "segm", "esec", "gain_scaleints",
)

#: Names that are never treated as suffixes even though a class is called so.
NOT_SUFFIXES = ("engdblogstep", "functionwrapper", "pipeline", "rscd_step", "step", "systemcall")


@lru_cache(maxsize=1)
def known_suffixes() -> frozenset[str]:
    """Every product suffix plus every registered step's alias and class name, lower-cased."""
    from calwebb.stpipe.registry import step_names

    names = set(PRODUCT_SUFFIXES) | {name.lower() for name in step_names()}
    return frozenset(names - set(NOT_SUFFIXES))


def split_suffix(name: str) -> tuple[str, str | None, str]:
    """Split ``root_suffix`` into (root, suffix, separator) when the suffix is known.

    Only one trailing known suffix is removed: ``foo_bar_rate`` → ``("foo_bar", "rate", "_")``;
    an unknown trailing token is kept: ``foo_bar`` → ``("foo_bar", None, "")``.
    """
    alternatives = "|".join(sorted(map(re.escape, known_suffixes()), key=len, reverse=True))
    match = re.match(rf"^(?P<root>.+?)(?:(?P<sep>[_-])(?P<suffix>{alternatives}))?$", name)
    if match is None:  # empty name
        return name, None, ""
    return match["root"], match["suffix"], match["sep"] or ""
