"""Finding steps and pipelines by class name, alias, dotted path or parameter file.

Discovery needs no list: every ``calwebb/<folder>/step.py`` module and every module of
``calwebb/pipeline/`` is imported and the ``Step`` subclasses defined there registered.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

import calwebb
from calwebb.errors import ParameterError
from calwebb.stpipe.step import Step

#: module-path prefixes of the official packages, accepted for familiarity
_OFFICIAL_PREFIXES = ("jwst.", "calwebb.")


@cache
def _discovered() -> dict[str, type[Step]]:
    classes: dict[str, type[Step]] = {}
    package_dir = Path(calwebb.__file__).parent
    modules = [
        f"calwebb.{info.name}.step"
        for info in pkgutil.iter_modules([str(package_dir)])
        if info.ispkg and info.name != "stpipe" and (package_dir / info.name / "step.py").is_file()
    ]
    modules += [
        f"calwebb.pipeline.{info.name}"
        for info in pkgutil.iter_modules([str(package_dir / "pipeline")])
    ]
    for module_name in modules:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Step) and (
                value.__module__ == module_name
            ):
                classes[value.__name__] = value
    return classes


def register(cls: type[Step]) -> type[Step]:
    """Add a class defined elsewhere (tests, plug-ins); usable as a decorator."""
    _discovered()[cls.__name__] = cls
    step_names.cache_clear()
    return cls


def classes() -> dict[str, type[Step]]:
    """Every known step and pipeline class by class name."""
    return dict(_discovered())


@cache
def step_names() -> frozenset[str]:
    """Aliases and class names of every known step and pipeline."""
    names = set()
    for cls in _discovered().values():
        names.add(cls.__name__)
        if cls.class_alias:
            names.add(cls.class_alias)
    return frozenset(names)


def resolve(name: str) -> tuple[type[Step], str | None]:
    """(class, parameter file or None) for an alias, class name, dotted path or parameter file.

    ``calwebb_detector1``, ``Detector1Pipeline``, ``jwst.pipeline.Detector1Pipeline``,
    ``jwst::jump`` and ``my_pars.asdf`` (whose ``class`` names the step) all resolve.
    """
    from calwebb.stpipe import config as configs

    if Path(name).suffix.lower() in (".asdf", ".yaml", ".yml", ".cfg") or Path(name).is_file():
        if Path(name).suffix.lower() == ".cfg":
            raise ParameterError(f"{name}: legacy .cfg parameter files are not supported; "
                                 "use the ASDF parameter-file format")
        loaded = configs.read(name)
        if not loaded.get("class"):
            raise ParameterError(f"parameter file {name} does not say which class it configures")
        return resolve(loaded["class"])[0], name
    key = name.split("::", 1)[-1]
    by_alias = {cls.class_alias: cls for cls in _discovered().values() if cls.class_alias}
    if key in by_alias:
        return by_alias[key], None
    class_name = key.rsplit(".", 1)[-1]
    if class_name in _discovered() and ("." not in key or key.startswith(_OFFICIAL_PREFIXES)):
        return _discovered()[class_name], None
    if "." in key:
        module_name, _, attribute = key.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            value = None
        if isinstance(value, type) and issubclass(value, Step):
            return value, None
    known = sorted(by_alias) + sorted(_discovered())
    raise ParameterError(f"unknown step or pipeline {name!r}; known: {', '.join(known)}")
