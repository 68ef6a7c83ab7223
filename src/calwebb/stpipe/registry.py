"""Finding steps and pipelines by class name, alias, dotted path or parameter file.

Discovery needs no list: every ``calwebb/<folder>/step.py`` module and every module of
``calwebb/pipeline/`` is a step module. Their classes and aliases are read from the source
text, so names resolve (and output names split their suffix) without importing every
step's dependencies; a class is imported only when it is asked for.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

import calwebb
from calwebb.errors import ParameterError
from calwebb.stpipe.step import Step

#: module-path prefixes of the official packages, accepted for familiarity
_OFFICIAL_PREFIXES = ("jwst.", "calwebb.")
#: a top-level class statement with its bases, and its body up to the next top-level line
_CLASS = re.compile(r"^class\s+(\w+)\s*\(([^)]*)\)\s*:(.*?)(?=^\S|\Z)", re.M | re.S)
_ALIAS = re.compile(r"^\s+class_alias\s*(?::[^=\n]*)?=\s*([\"'])(.*?)\1", re.M)
#: classes added with ``register`` (tests, plug-ins), by class name
_registered: dict[str, type[Step]] = {}


def _step_modules() -> dict[str, Path]:
    """Module name → source file of every step module."""
    package_dir = Path(calwebb.__file__).parent
    modules = {f"calwebb.{path.parent.name}.step": path
               for path in sorted(package_dir.glob("*/step.py")) if path.parent.name != "stpipe"}
    modules.update({f"calwebb.pipeline.{path.stem}": path
                    for path in sorted((package_dir / "pipeline").glob("*.py"))
                    if path.stem != "__init__"})
    return modules


@cache
def _index() -> dict[str, tuple[str, str | None]]:
    """Class name → (module, own ``class_alias``) of every Step subclass of the step modules,
    read from their source: a class whose base is ``Step``, ``Pipeline`` or such a class."""
    defined: dict[str, tuple[str, set[str], str | None]] = {}
    for module, path in _step_modules().items():
        for match in _CLASS.finditer(path.read_text(encoding="utf-8")):
            bases = {base.strip().rsplit(".", 1)[-1] for base in match[2].split(",")}
            alias = _ALIAS.search(match[3])
            defined[match[1]] = (module, bases, alias[2] if alias else None)
    steps: dict[str, tuple[str, str | None]] = {}
    known = {"Step", "Pipeline"}
    while True:
        new = {name: (module, alias) for name, (module, bases, alias) in defined.items()
               if name not in steps and bases & known}
        if not new:
            return steps
        steps.update(new)
        known.update(new)


@cache
def _discovered() -> dict[str, type[Step]]:
    """Every step class of the step modules, imported."""
    return {name: _import_class(module, name) for name, (module, _) in _index().items()}


def _import_class(module: str, name: str) -> type[Step]:
    return getattr(importlib.import_module(module), name)


def register(cls: type[Step]) -> type[Step]:
    """Add a class defined elsewhere (tests, plug-ins); usable as a decorator."""
    _registered[cls.__name__] = cls
    step_names.cache_clear()
    return cls


def classes() -> dict[str, type[Step]]:
    """Every known step and pipeline class by class name (imports every step module)."""
    return {**_discovered(), **_registered}


def _aliases() -> set[str]:
    """The aliases of every known step and pipeline."""
    aliases = {alias for _, alias in _index().values() if alias}
    return aliases | {cls.class_alias for cls in _registered.values() if cls.class_alias}


@cache
def step_names() -> frozenset[str]:
    """Aliases and class names of every known step and pipeline (nothing is imported)."""
    return frozenset(set(_index()) | set(_registered) | _aliases())


def _by_alias(alias: str) -> type[Step] | None:
    for cls in _registered.values():
        if cls.class_alias == alias:
            return cls
    for name, (module, own_alias) in _index().items():
        if own_alias == alias:
            return _import_class(module, name)
    return None


def _by_class_name(name: str) -> type[Step] | None:
    if name in _registered:
        return _registered[name]
    if name in _index():
        return _import_class(_index()[name][0], name)
    return None


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
    found = _by_alias(key)
    if found is not None:
        return found, None
    class_name = key.rsplit(".", 1)[-1]
    if "." not in key or key.startswith(_OFFICIAL_PREFIXES):
        found = _by_class_name(class_name)
        if found is not None:
            return found, None
    if "." in key:
        module_name, _, attribute = key.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            value = None
        if isinstance(value, type) and issubclass(value, Step):
            return value, None
    known = sorted(_aliases()) + sorted(set(_index()) | set(_registered))
    raise ParameterError(f"unknown step or pipeline {name!r}; known: {', '.join(known)}")
