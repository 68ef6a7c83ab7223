"""Output file names, as the official framework builds them (framework.md §8.1)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from calwebb.suffixes import split_suffix

if TYPE_CHECKING:
    from calwebb.datamodels import DataModel
    from calwebb.stpipe.step import Step


def output_path(
    step: Step,
    model: DataModel,
    suffix: str | bool | None = None,
    idx: int | None = None,
    output_file: str | None = None,
) -> Path:
    """``<output_dir>/<root>[_<idx>]_<suffix><ext>`` for ``model`` saved by ``step``."""
    base = output_file
    if base is None:
        base = step.search_up("output_file") if step.search_output_file else step.output_file
    if step.output_use_model or (base is None and not step.search_output_file):
        base, idx = model.meta.filename, None
    if base is None:
        base = step.primary_input_name() or f"step_{step.name}{step.output_ext or '.fits'}"
    root, own_ext = os.path.splitext(Path(str(base)).name)
    ext = step.output_ext or own_ext or ".fits"
    ext = ext if ext.startswith(".") else f".{ext}"
    if suffix is None:
        suffix = step.search_up("suffix") or step.name.lower()
    components = [str(idx)] if idx is not None else []
    if suffix is False:
        name = "_".join([root, *components])
    else:
        root, _, separator = split_suffix(root)
        name = "_".join([root, *components]) + (separator or "_") + str(suffix)
    directory = Path(os.path.expanduser(os.path.expandvars(step.search_up("output_dir") or ".")))
    return directory / f"{name}{ext}"
