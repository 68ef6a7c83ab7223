"""Parameter reference files (``pars-<class>``) chosen by CRDS for an input (framework.md §3.1)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from calwebb.stpipe import config as configs

log = logging.getLogger(__name__)


def parameter_config(step_class: type, dataset: Any) -> dict:
    """Configuration from the ``pars-*`` references that apply to ``dataset``.

    For a pipeline, each child's own file comes first and the pipeline's file on top.
    Nothing is returned when there is no dataset, no reference source, or CRDS says N/A.
    """
    try:
        from calwebb import references
    except ImportError:
        return configs.empty()
    model = _dataset_model(dataset)
    if model is None:
        return configs.empty()
    references.start_helper()  # the run's first CRDS questions: see references.helper
    config = configs.empty()
    for name, child_class in getattr(step_class, "step_defs", {}).items():
        path = references.get_parameter_reference(model, child_class.__name__)
        if path:
            config["steps"][name] = _without_plumbing(configs.read(path))
    path = references.get_parameter_reference(model, step_class.__name__)
    if path:
        log.info("Using parameter reference %s", path)
        config = configs.merge(config, _without_plumbing(configs.read(path)))
    return config


def _without_plumbing(config: dict) -> dict:
    for name in configs.NOT_IN_CRDS_PARS:
        config["parameters"].pop(name, None)
    return config


def _dataset_model(dataset: Any):
    from calwebb import datamodels
    from calwebb.associations.library import ModelLibrary

    if isinstance(dataset, datamodels.DataModel):
        return dataset
    if isinstance(dataset, ModelLibrary):
        return _dataset_model(dataset.source(0))
    if isinstance(dataset, list | tuple) and dataset:
        return _dataset_model(dataset[0])
    if not isinstance(dataset, str | os.PathLike) or not Path(dataset).is_file():
        return None
    path = Path(dataset)
    if path.suffix.lower() == ".json":
        from calwebb.associations import load_association

        members = load_association(path).member_paths("science")
        return _dataset_model(members[0]) if members else None
    return datamodels.open(path)
