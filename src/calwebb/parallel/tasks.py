"""Tasks: one step or pipeline run on one input, described by names and parameters only.

``plan`` turns files, globs and associations into tasks (one per Level 2 association
product) and predicts each task's final product; ``run_task`` is what a worker executes.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from calwebb.associations import Association, Member, Product, load_association
from calwebb.datamodels import DataModel
from calwebb.errors import AssociationError, CalwebbError, DataModelError, ParameterError
from calwebb.stpipe import log as logs
from calwebb.stpipe import naming, progress
from calwebb.stpipe.registry import resolve
from calwebb.stpipe.step import Step

log = logging.getLogger(__name__)

DONE, SKIPPED, FAILED = "done", "skipped", "failed"

#: suffixes of the final product of pipelines that choose it while running (framework.md §8.4)
FINAL_SUFFIXES = {
    "Detector1Pipeline": ("rate",),
    "Image2Pipeline": ("cal", "calints"),
}

#: variables that select reference files; workers get the client's values (None: unset)
CRDS_VARIABLES = ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT", "CRDS_MODE", "CALWEBB_REFS",
                  "STPIPE_DISABLE_CRDS_STEPPARS")


@dataclass(frozen=True)
class Task:
    """One run of ``step`` on ``input`` (an exposure, an association, or one of its products)."""

    step: str  # alias, class name, dotted path or absolute parameter-file path
    input: str  # absolute path
    label: str  # the input as the user named it, for progress and reports
    product: int | None = None  # index of the Level 2 association product, None: all of it
    parameters: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    disable_crds_steppars: bool | None = None
    environment: dict[str, str | None] = field(default_factory=dict)
    worker_logging: dict | None = None  # keyword arguments of calwebb.stpipe.log.configure
    expected: tuple[str, ...] = ()  # paths of the final product (any one existing: done)


@dataclass
class TaskResult:
    """What happened to one input: ``status`` is done, skipped or failed."""

    input: str
    outputs: list[str]
    status: str
    error: str | None = None
    seconds: float = 0.0


def plan(step: str | type[Step], inputs: list, parameters: dict, steps: dict | None = None,
         disable_crds_steppars: bool | None = None) -> list[Task]:
    """Tasks for ``step`` over ``inputs`` (files, globs, associations), in input order.

    Relative paths in ``output_dir`` and ``input_dir`` are made absolute, and ``output_dir``
    defaults to the current directory, so that workers elsewhere write where the user expects.
    """
    name = step if isinstance(step, str) else f"{step.__module__}.{step.__qualname__}"
    step_class, config_file = resolve(name)
    if config_file:
        name = str(Path(config_file).absolute())
    parameters = dict(parameters)
    for key in ("output_dir", "input_dir"):
        if parameters.get(key):
            parameters[key] = str(_absolute(parameters[key]))
    if not parameters.get("output_dir"):
        parameters["output_dir"] = str(Path.cwd())
    template = step_class.configured(None, config_file=config_file, steps=steps, **parameters)
    environment = {variable: os.environ.get(variable) for variable in CRDS_VARIABLES}
    sources = list(_sources(inputs, parameters.get("input_dir")))
    if len(sources) > 1 and parameters.get("output_file"):
        raise ParameterError(f"output_file names a single product, but there are "
                             f"{len(sources)} inputs: use output_dir instead")
    tasks = [
        Task(step=name, input=str(path), label=label, product=product,
             parameters=parameters, steps=dict(steps or {}),
             disable_crds_steppars=disable_crds_steppars, environment=environment,
             expected=expected_products(template, str(path), root))
        for path, label, product, root in sources
    ]
    writers: dict[str, str] = {}
    for task in tasks:
        other = writers.setdefault(task.expected[0], task.label)
        if other != task.label:
            raise ParameterError(f"{other} and {task.label} would both write "
                                 f"{task.expected[0]}")
    return tasks


def expected_products(step: Step, source: str, product_root: str | None) -> tuple[str, ...]:
    """Where ``step`` run on ``source`` saves its final product (candidates, in order).

    A Level 2 association product is named after itself (``product_root``).
    """
    suffixes = FINAL_SUFFIXES.get(type(step).__name__) or (step.suffix or step.name.lower(),)
    base = f"{product_root}.fits" if product_root else (step.output_file or source)
    stand_in = SimpleNamespace(meta=SimpleNamespace(filename=base))
    return tuple(str(naming.output_path(step, stand_in, suffix=suffix, output_file=base))
                 for suffix in suffixes)


def _sources(inputs: list, input_dir: str | None) -> Iterator[tuple[Path, str, int | None,
                                                                     str | None]]:
    """(absolute path, label, product index, product root) for every unit of work."""
    seen = set()
    for path, label in _files(inputs, input_dir):
        if path in seen:
            continue
        seen.add(path)
        association = _level2_association(path)
        if association is None:
            yield path, label, None, None
            continue
        for index, product in enumerate(association.products):
            root = product_root(product)
            yield path, f"{label}[{root or index}]", index, root


def _files(inputs: list, input_dir: str | None) -> Iterator[tuple[Path, str]]:
    """Each input, glob patterns expanded (sorted), as (absolute path, name as given)."""
    for item in inputs:
        text = os.fspath(item)
        if is_pattern(text):
            matches = sorted(glob.glob(text))
            if not matches and input_dir and not Path(text).is_absolute():
                matches = sorted(glob.glob(os.path.join(input_dir, text)))
            if not matches:
                raise DataModelError(f"{text}: no file matches")
            yield from ((_absolute(match), match) for match in matches)
            continue
        path = Path(text)
        if not path.exists() and input_dir and not path.is_absolute():
            path = Path(input_dir) / path
        if not path.exists():
            raise DataModelError(f"{text}: no such file")
        yield _absolute(path), text


def _level2_association(path: Path) -> Association | None:
    """The Level 2 association in ``path``; None for anything else (an unreadable
    association becomes a task of its own and fails there, not the whole run)."""
    if path.suffix.lower() != ".json":
        return None
    try:
        association = load_association(path)
    except AssociationError:
        return None
    return association if is_level2(association) else None


def is_pattern(text: str) -> bool:
    """Whether ``text`` is a glob pattern rather than a file name."""
    return any(character in text for character in "*?[")


def is_level2(association: Association) -> bool:
    """Whether the association is Level 2 (one product per exposure), by rule or type."""
    rule = str(association.header.get("asn_rule") or "").lower()
    kind = str(association.asn_type or "").lower()
    return "lv2" in rule or "level2" in rule or kind.endswith("2")


def product_root(product: Product) -> str | None:
    """The root of a Level 2 product's file names: its name, else its science member's."""
    if product.name:
        return Path(product.name).name
    science = product.members_of("science")
    return Path(science[0].expname).stem if science else None


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(os.path.expandvars(os.fspath(path)))).absolute()


# -- in the worker ----------------------------------------------------------------------------
_configured_logging: dict | None = None


def run_task(task: Task) -> TaskResult:
    """Run one task in this process; every error is caught and reported in the result."""
    started = time.perf_counter()
    try:
        _apply_environment(task.environment)
        _apply_logging(task.worker_logging)
        with progress.suppressed(), _task_input(task) as source:
            step_class, config_file = resolve(task.step)
            step = step_class.configured(
                source, config_file=config_file, steps=task.steps,
                disable_crds_steppars=task.disable_crds_steppars, **task.parameters)
            outputs = saved_paths(step, step.run(source))
    except Exception as error:  # noqa: BLE001 - one failed input must not stop the others
        log.debug("%s failed", task.label, exc_info=True)
        message = str(error) if isinstance(error, CalwebbError) else \
            f"{type(error).__name__}: {error}"
        return TaskResult(task.label, [], FAILED, message, time.perf_counter() - started)
    return TaskResult(task.label, outputs, DONE, None, time.perf_counter() - started)


def saved_paths(step: Step, result: Any) -> list[str]:
    """The files ``step.run`` saved for its result, named as ``Step.run`` names them."""
    if not step.save_results:
        return []
    models = [result] if isinstance(result, DataModel) else [
        item for item in result if isinstance(item, DataModel)
    ] if isinstance(result, list | tuple) else []
    many = isinstance(result, list | tuple) and len(models) > 1
    return [str(naming.output_path(step, model, idx=index if many else None))
            for index, model in enumerate(models)]


def _apply_environment(environment: dict[str, str | None]) -> None:
    """Give this process the client's CRDS variables (references re-read them on change)."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _apply_logging(settings: dict | None) -> None:
    """Configure this worker process's logging once (the client's level and destinations)."""
    global _configured_logging
    if settings is not None and settings != _configured_logging:
        logs.configure(**settings)
        _configured_logging = settings


@contextmanager
def _task_input(task: Task) -> Iterator[str]:
    """The path to run on: the input itself, or a one-product copy of its association
    (same file name, members made absolute) in a temporary directory."""
    if task.product is None:
        yield task.input
        return
    association = load_association(task.input)
    product = association.products[task.product]
    members = [Member(str(member.path(association.asn_dir)), member.exptype, member.extra)
               for member in product.members]
    single = Association([Product(product.name, members)], association.header)
    with tempfile.TemporaryDirectory(prefix="calwebb-asn-") as directory:
        yield str(single.save(Path(directory) / Path(task.input).name))
