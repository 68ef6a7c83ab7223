"""Parameter files (ASDF in the official layout, or the same tree as YAML) and merging them.

A configuration is ``{"class", "name", "parameters": {...}, "steps": {child: config}}``;
files store ``steps`` as a list of ``{class, name, parameters}`` (framework.md §4.1), the
legacy layout nests everything under ``parameters`` with ``steps`` as a mapping.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from calwebb.datamodels.asdf_library import open_asdf, write_asdf
from calwebb.errors import ParameterError

#: framework plumbing that is never put in CRDS parameter references (framework.md §4.1)
NOT_IN_CRDS_PARS = (
    "input_dir", "output_ext", "output_use_index", "output_use_model", "post_hooks",
    "pre_hooks", "save_results", "search_output_file",
)


def empty() -> dict:
    return {"class": None, "name": None, "parameters": {}, "steps": {}, "base_dir": None}


def from_kwargs(params: dict | None = None, steps: dict | None = None) -> dict:
    """A configuration from Python keywords: ``steps={"jump": {"rejection_threshold": 5}}``."""
    config = empty()
    config["parameters"] = dict(params or {})
    for name, values in (steps or {}).items():
        if not isinstance(values, dict):
            raise ParameterError(f"steps.{name} must be a mapping of parameters, got {values!r}")
        child = dict(values)
        nested = child.pop("steps", None)
        child_config = from_kwargs(child, nested)
        config_file = child_config["parameters"].pop("config_file", None)
        if config_file:
            child_config = merge(read(config_file), child_config)
        config["steps"][name] = child_config
    return config


def merge(low: dict, high: dict) -> dict:
    """``high`` on top of ``low`` (a new configuration; neither input changes)."""
    result = copy.copy(low)
    result["parameters"] = {**low["parameters"], **high["parameters"]}
    result["steps"] = dict(low["steps"])
    for name, child in high["steps"].items():
        result["steps"][name] = merge(low["steps"].get(name, empty()), child)
    for key in ("class", "name", "base_dir"):
        if high.get(key):
            result[key] = high[key]
    return result


def read(path: str | Path) -> dict:
    """Load a parameter file (ASDF or YAML); ParameterError naming the file if unusable."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file {path} does not exist")
    try:
        if path.suffix.lower() == ".asdf":
            with open_asdf(path, lazy_load=False) as af:
                tree = _plain(af.tree)
        else:
            with open(path) as stream:
                tree = yaml.safe_load(stream)
    except ParameterError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise ParameterError(f"parameter file {path} cannot be read ({exc})") from exc
    if not isinstance(tree, dict):
        raise ParameterError(f"parameter file {path}: expected a mapping with class and parameters")
    return _from_tree(tree, path)


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _plain(value) for key, value in node.items()
                if key not in ("asdf_library", "history")}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    return node


def _from_tree(tree: dict, path: Path) -> dict:
    config = empty()
    config["base_dir"] = path.parent.resolve()
    parameters = dict(tree.get("parameters") or {})
    config["class"] = tree.get("class") or parameters.pop("class", None)
    config["name"] = tree.get("name") or parameters.pop("name", None)
    steps = tree.get("steps", parameters.pop("steps", None)) or []
    if isinstance(steps, dict):  # legacy layout: mapping of name -> parameters
        steps = [{"name": name, "parameters": values} for name, values in steps.items()]
    if not isinstance(steps, list):
        raise ParameterError(f"parameter file {path}: 'steps' must be a list of step entries")
    config["parameters"] = parameters
    for entry in steps:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ParameterError(f"parameter file {path}: each 'steps' entry needs a 'name'")
        child = _from_tree(entry, path)
        nested_file = child["parameters"].pop("config_file", None)
        if nested_file:
            child = merge(read(path.parent / nested_file), child)
        config["steps"][entry["name"]] = child
    return config


def write(tree: dict, path: str | Path) -> Path:
    """Write a parameter tree (as made by ``Step.parameter_tree``) to ASDF or YAML."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".asdf":
        write_asdf(tree, path)
    else:
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path
