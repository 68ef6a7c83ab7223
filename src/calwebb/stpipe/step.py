"""``Step``: parameters, input preparation, skipping, hooks, references, saving, logging.

Subclasses declare ``spec`` (their own parameters), ``class_alias``, ``reference_file_types``
and ``input_model_class``, and implement ``process(model)``; ``run`` does the bookkeeping
of framework.md §6.1 around it.
"""

from __future__ import annotations

import copy
import functools
import importlib
import logging
import os
import resource
import shlex
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import calwebb
from calwebb import datamodels, memory
from calwebb.datamodels import DataModel
from calwebb.errors import DataModelError, ParameterError, ReferenceFileError
from calwebb.stpipe import config as configs
from calwebb.stpipe import naming
from calwebb.stpipe.spec import Param, parse_spec

BASE_SPEC = """
    pre_hooks = list(default=list())  # steps, functions or shell commands run before processing
    post_hooks = list(default=list())  # steps, functions or shell commands run on the result
    output_file = output_file(default=None)  # base name of the saved output (implies save_results)
    output_dir = string(default=None)  # directory for saved outputs
    output_ext = string(default='.fits')  # extension of saved outputs ('.asdf' for ASDF)
    output_use_model = boolean(default=False)  # name outputs after the model's own filename
    output_use_index = boolean(default=True)  # kept for compatibility; not used
    save_results = boolean(default=False)  # save this step's result
    skip = boolean(default=False)  # skip this step (only inside a pipeline)
    suffix = string(default=None)  # suffix of the output file name
    search_output_file = boolean(default=True)  # take output_file from the enclosing pipeline
    input_dir = string(default=None)  # directory for bare input file names
"""

#: option names the command line reserves; a spec may not declare them
RESERVED = ("help", "debug", "save_parameters", "disable_crds_steppars", "verbose",
            "log_level", "log_file", "log_stream", "logcfg", "version", "quiet")


class Step:
    """A unit of processing with typed parameters (see the module docstring)."""

    spec = ""
    class_alias: str | None = None
    #: the ``meta.cal_step`` attribute this step sets, where it differs from ``class_alias``
    cal_step_attr: str | None = None
    reference_file_types: tuple[str, ...] | list[str] = ()
    #: model class that file inputs are opened as (None: whatever the file holds)
    input_model_class: type[DataModel] | None = None

    # -- construction and parameters --------------------------------------------------------
    def __init__(self, name: str | None = None, parent: Step | None = None,
                 config_file: str | os.PathLike | None = None, **params: Any):
        self.parent = parent
        self.log = logging.getLogger(f"calwebb.step.{type(self).__name__}")
        self._references_used: dict[str, str] = {}
        self._crds_context: str | None = None
        self._input_filename: str | None = None
        self._saved_early: set[int] = set()  # ids of results saved before process returned
        for param in self.parameters().values():
            setattr(self, param.name, copy.deepcopy(param.default))
        loaded = configs.read(config_file) if config_file else configs.empty()
        self.name = name or loaded.get("name") or (
            Path(config_file).stem if config_file else type(self).__name__)
        self.apply_config(configs.merge(loaded, configs.from_kwargs(params)))

    @classmethod
    def parameters(cls) -> dict[str, Param]:
        """The merged parameter spec: base, then each class along the MRO, then overrides
        (parsed once per class; a new dict each call)."""
        return dict(cls._merged_spec())

    @classmethod
    @functools.cache
    def _merged_spec(cls) -> dict[str, Param]:
        merged = parse_spec(BASE_SPEC, "Step")
        for klass in reversed(cls.__mro__):
            own = klass.__dict__.get("spec")
            if own and klass is not Step:
                declared = parse_spec(own, klass.__name__)
                clash = set(declared) & set(RESERVED)
                if clash:
                    raise ParameterError(f"{klass.__name__} declares reserved names {clash}")
                merged.update(declared)
        for reftype in cls.reference_file_types:
            merged[f"override_{reftype}"] = Param(
                f"override_{reftype}", "is_string_or_datamodel", None,
                description=f"use this {reftype.upper()} reference file instead of CRDS's choice "
                "('N/A' for none)",
            )
        return merged

    def apply_config(self, config: dict) -> None:
        """Set parameters from a configuration (see ``calwebb.stpipe.config``)."""
        spec = self.parameters()
        for key, value in config["parameters"].items():
            if key in ("class", "name", "config_file"):
                continue
            if key not in spec:
                raise ParameterError(
                    f"{self.qualified_name}: unknown parameter {key!r}; "
                    f"known: {', '.join(sorted(spec))}"
                )
            setattr(self, key, spec[key].convert(value, f"{self.qualified_name}.",
                                                 config.get("base_dir")))
        if config["steps"]:
            raise ParameterError(f"{self.qualified_name} is a step, not a pipeline: it has no "
                                 f"sub-steps {sorted(config['steps'])}")

    def update_pars(self, parameters: dict) -> None:
        """Set parameters from a dict (``steps`` entries go to a pipeline's children)."""
        parameters = dict(parameters)
        steps = parameters.pop("steps", None)
        self.apply_config(configs.from_kwargs(parameters, steps))

    def get_pars(self) -> dict[str, Any]:
        """Current parameter values by name."""
        return {name: getattr(self, name) for name in self.parameters()}

    def parameter_tree(self) -> dict:
        """This step's parameters in the official parameter-file layout."""
        return {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "name": self.name,
            "parameters": {
                name: (None if isinstance(value, DataModel) else value)
                for name, value in self.get_pars().items()
            },
        }

    def export_config(self, path: str | os.PathLike, include_metadata: bool = False) -> Path:
        """Write the current parameters as a parameter file that reproduces this run."""
        tree = self.parameter_tree()
        if include_metadata:
            tree["meta"] = {
                "author": "<SPECIFY>", "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "description": "<SPECIFY>", "instrument": {"name": "<SPECIFY>"},
                "origin": "<SPECIFY>", "pedigree": "<SPECIFY>",
                "reftype": f"pars-{type(self).__name__.lower()}", "telescope": "JWST",
                "useafter": "<SPECIFY>",
            }
        return configs.write(tree, path)

    @property
    def qualified_name(self) -> str:
        return f"{self.parent.qualified_name}.{self.name}" if self.parent else self.name

    def search_up(self, attribute: str) -> Any:
        """The first non-None value of ``attribute`` on this step or its ancestors."""
        step: Step | None = self
        while step is not None:
            value = getattr(step, attribute, None)
            if value is not None:
                return value
            step = step.parent
        return None

    def primary_input_name(self) -> str | None:
        """File name of the top-level step's primary input."""
        return self.search_up("_input_filename")

    # -- running ------------------------------------------------------------------------------
    @classmethod
    def call(cls, input: Any, config_file: str | os.PathLike | None = None,
             steps: dict | None = None, disable_crds_steppars: bool | None = None,
             **params: Any) -> Any:
        """Run a new instance configured from CRDS pars < ``config_file`` < keywords."""
        return cls.configured(input, config_file, steps, disable_crds_steppars, **params).run(input)

    @classmethod
    def configured(cls, input: Any = None, config_file: str | os.PathLike | None = None,
                   steps: dict | None = None, disable_crds_steppars: bool | None = None,
                   **params: Any) -> Step:
        """A new instance with every parameter source applied in precedence order (§3)."""
        from calwebb.stpipe.crds_pars import parameter_config

        merged = configs.empty()
        if input is not None and not _steppars_disabled(disable_crds_steppars):
            merged = configs.merge(merged, parameter_config(cls, input))
        name = None
        if config_file:
            loaded = configs.read(config_file)
            name = loaded.get("name")
            merged = configs.merge(merged, loaded)
        merged = configs.merge(merged, configs.from_kwargs(params, steps))
        instance = cls(name=name)
        instance.apply_config(merged)
        return instance

    def run(self, *inputs: Any) -> Any:
        """Prepare inputs, skip or process, run hooks, finalise, save; returns the result."""
        if self.parent is None:
            with memory.normal_pages(), memory.old_objects_frozen():
                return self._run(*inputs)
        return self._run(*inputs)

    def _run(self, *inputs: Any) -> Any:
        started, rss_before = time.perf_counter(), _peak_rss_mib()
        self._saved_early.clear()  # (ids from a run that failed must not skip a save)
        self.log.info("Step %s running with args %s", self.qualified_name,
                      tuple(_describe(value) for value in inputs))
        if self.parent is None:
            self.log.info("Step %s parameters: %s", self.name, _loggable(self.get_pars()))
            self._record_primary_input(inputs[0] if inputs else None)
        if self.output_file is not None:
            self.save_results = True
        if self.output_dir is not None:
            Path(os.path.expanduser(os.path.expandvars(self.output_dir))).mkdir(
                parents=True, exist_ok=True)
        if self.suffix is None:
            self.suffix = self.name.lower()
        if self.parent is None and self.skip:
            self.log.info("Step %s: skip ignored for a step run on its own", self.name)
            self.skip = False
        if self.skip:
            self.log.info("Step %s skipped", self.qualified_name)
            _mark_skipped(inputs[0] if inputs else None,
                          self.class_alias or self.name.lower())
            return inputs[0] if len(inputs) == 1 else inputs
        prepared = tuple(self._run_hooks(self.pre_hooks, self.prepare_input(value))
                         for value in inputs)
        self.prefetch_references(prepared)
        result = self.process(*prepared)
        result = self._run_hooks(self.post_hooks, result)
        models = _models_in(result)
        for model in models:
            self.finalize_result(model)
        if self.save_results:
            many = isinstance(result, list | tuple) and len(models) > 1
            for index, model in enumerate(models):
                if id(model) not in self._saved_early:
                    self.save_model(model, idx=index if many else None)
        memory.release_freed_memory()
        self.log.info(
            "Step %s done in %.2f s (peak RSS %.0f MiB, +%.0f MiB)", self.qualified_name,
            time.perf_counter() - started, _peak_rss_mib(), _peak_rss_mib() - rss_before,
        )
        if self.parent is not None:
            self.parent.step_finished(self)
        return result

    __call__ = run

    def prefetch_references(self, inputs: tuple) -> None:
        """Before ``process``: pipelines ask CRDS for all their steps' references at once."""

    def process(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement process()")

    def prepare_input(self, value: Any) -> Any:
        """Open a file as ``input_model_class``; copy a model given to a standalone step.
        Either is then made its specific class (a superstripe ramp model)."""
        if isinstance(value, list | tuple):
            return type(value)(self.prepare_input(item) for item in value)
        if isinstance(value, str | os.PathLike):
            path = self._resolve_input_path(value)
            if path.suffix.lower() == ".json":
                return str(path)
            opener = self.input_model_class or datamodels.open
            return opener(path).as_specific_class()
        if isinstance(value, DataModel):
            if self.parent is None:
                value = value.copy()
            cls = self.input_model_class
            if cls is not None and not isinstance(value, cls):
                value = cls(value)
            value = value.as_specific_class()
        return value

    def members_as_given(self, value: Any, kinds: tuple[type, ...], expected: str) -> Any:
        """Input of a step that opens its members itself (through a library): values of
        ``kinds`` are used as given, a list item by item, a file name becomes the path of an
        existing file; anything else is a DataModelError that names what was ``expected``."""
        if isinstance(value, kinds):
            return value
        if isinstance(value, list | tuple):
            return [self.members_as_given(item, kinds, expected) for item in value]
        if isinstance(value, str | os.PathLike):
            path = self._resolve_input_path(value)
            if not path.exists():
                raise DataModelError(f"{path}: no such file")
            return str(path)
        raise DataModelError(f"{self.class_alias or self.name} cannot use a "
                             f"{type(value).__name__}: give {expected}")

    def _resolve_input_path(self, value: str | os.PathLike) -> Path:
        path = Path(value)
        input_dir = self.search_up("input_dir")
        if not path.is_absolute() and not path.exists() and input_dir:
            path = Path(input_dir) / path
        return path

    def _record_primary_input(self, value: Any) -> None:
        if isinstance(value, str | os.PathLike):
            self._input_filename = str(value)
            if self.input_dir is None and Path(value).parent != Path("."):
                self.input_dir = str(Path(value).parent)
        elif isinstance(value, DataModel):
            self._input_filename = value.meta.filename

    def step_finished(self, child: Step) -> None:
        """Called by a child when it finishes (pipelines advance their progress display)."""

    # -- status and results --------------------------------------------------------------------
    @property
    def status_name(self) -> str:
        """This step's entry in ``meta.cal_step``."""
        return self.cal_step_attr or self.class_alias or self.name.lower()

    def set_status(self, model: DataModel, status: str) -> None:
        """Set this step's ``meta.cal_step`` entry (``S_*`` keyword): COMPLETE/SKIPPED/FAILED."""
        setattr(model.meta.cal_step, self.status_name, status)

    def skip_model(self, model: DataModel, reason: str) -> DataModel:
        """Log why the step does not apply, mark it SKIPPED and return the model unchanged."""
        self.log.warning("%s: %s; step skipped", self.qualified_name, reason)
        self.set_status(model, "SKIPPED")
        return model

    def finalize_result(self, model: DataModel) -> None:
        """Record the software version and the reference files this step used."""
        model.meta.calibration_software_version = calwebb.__version__
        for reftype, name in self._references_used.items():
            getattr(model.meta.ref_file, reftype).name = name
        if self._crds_context:
            from calwebb.references import crds_version

            model.meta.ref_file.crds.context_used = self._crds_context
            model.meta.ref_file.crds.sw_version = crds_version()

    def save_result_early(self, model: DataModel, idx: int | None = None) -> None:
        """From ``process``: finalise and save ``model``, a result that will not change any
        more, now (in the background inside ``writes_in_background``) rather than when
        ``process`` returns; ``idx`` as ``run`` would give it. Nothing is done when the
        step does not save its results or has post-hooks (they may still change it)."""
        if not self.save_results or self.post_hooks:
            return
        self.finalize_result(model)
        self.save_model(model, idx=idx)
        self._saved_early.add(id(model))

    def save_model(self, model: DataModel, suffix: str | bool | None = None,
                   idx: int | None = None, output_file: str | None = None,
                   force: bool = False) -> Path | None:
        """Save ``model`` under the framework's naming; a no-op unless this step is saving."""
        if not (force or self.save_results or output_file):
            return None
        path = naming.output_path(self, model, suffix=suffix, idx=idx, output_file=output_file)
        model.save(path, background=True)  # (inside writes_in_background: by its thread)
        self.log.info("Saved model in %s", path)
        return path

    # -- reference files ------------------------------------------------------------------------
    def get_reference_file(self, model: DataModel, reftype: str) -> str:
        """Path of the ``reftype`` reference for ``model`` ("N/A" when none applies)."""
        override = getattr(self, f"override_{reftype}", None)
        if isinstance(override, DataModel):
            self._references_used[reftype] = override.meta.filename or "user-supplied model"
            return override.meta.filename or ""
        if override == "":
            return ""
        if override is not None:
            if override.upper() == "N/A":
                self._references_used[reftype] = "N/A"
                return "N/A"
            path = Path(override).expanduser().absolute()
            if not path.is_file():
                raise ReferenceFileError(
                    f"{self.qualified_name}: override_{reftype} {path} does not exist")
            from calwebb import references

            references.check_reference_matches(path, model, reftype)
            self._references_used[reftype] = str(path)
            self.log.info("Using %s reference file %s (override)", reftype.upper(), path)
            return str(path)
        from calwebb import references

        path = references.get_reference_file(model, reftype)
        self._record_crds_choices(model, {reftype: path})
        self.log.info("Using %s reference file %s", reftype.upper(), path)
        return path

    def _record_crds_choices(self, model: DataModel, chosen: dict[str, str]) -> None:
        """Note CRDS's ``chosen`` paths (or N/A) by reference type, and its context."""
        from calwebb import references

        self._crds_context = references.crds_context(model)
        for reftype, path in chosen.items():
            self._references_used[reftype] = "N/A" if path == "N/A" else \
                f"crds://{Path(path).name}"

    def record_other_references(self, model: DataModel) -> None:
        """Record (R_* keywords) the step's reference types it has not asked for, as the
        official steps record every type they declare: an override as given, the others as
        CRDS answers them, in one question (N/A for most of them)."""
        unasked = [reftype for reftype in self.reference_file_types
                   if reftype not in self._references_used]
        overridden = [reftype for reftype in unasked
                      if getattr(self, f"override_{reftype}", None) is not None]
        for reftype in overridden:
            self.get_reference_file(model, reftype)
        rest = [reftype for reftype in unasked if reftype not in overridden]
        if not rest:
            return
        from calwebb import references

        try:
            chosen = references.best_references(model, rest)
        except ReferenceFileError as exc:  # no reference source, or no answer: not recorded
            self.log.debug("%s not recorded: %s", ", ".join(rest), exc)
            return
        self._record_crds_choices(model, chosen)

    def open_reference(self, model: DataModel, reftype: str):
        """The ``reftype`` reference as a model cut to the science subarray, or None if N/A."""
        override = getattr(self, f"override_{reftype}", None)
        if isinstance(override, DataModel):
            self.get_reference_file(model, reftype)
            return datamodels.cutout_reference(override, model)
        path = self.get_reference_file(model, reftype)
        if path in ("N/A", ""):
            return None
        cls = datamodels.reference_model_class(reftype, model.meta.instrument.name)
        return datamodels.cutout_reference(cls(path), model)

    # -- hooks ------------------------------------------------------------------------------------
    def _run_hooks(self, hooks: list, value: Any) -> Any:
        for hook in hooks or ():
            returned = self._run_hook(hook, value)
            if returned is not None:
                value = returned
        return value

    def _run_hook(self, hook: Any, value: Any) -> Any:
        if isinstance(hook, Step):
            return hook.run(value)
        if isinstance(hook, type) and issubclass(hook, Step):
            return hook(parent=self).run(value)
        if callable(hook):
            return hook(value)
        target = _import_dotted(hook)
        if target is not None:
            return self._run_hook(target, value)
        filename = value if isinstance(value, str) else getattr(
            getattr(value, "meta", None), "filename", "")
        command = hook.format(filename)
        self.log.info("Running hook command: %s", command)
        completed = subprocess.run(shlex.split(command), check=False)
        if completed.returncode:
            raise ParameterError(f"hook command {command!r} exited with {completed.returncode}")
        return None


def _import_dotted(text: str) -> Any:
    module_name, _, attribute = str(text).rpartition(".")
    if not module_name or " " in text:
        return None
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError):
        return None


def _models_in(value: Any) -> list[DataModel]:
    if isinstance(value, DataModel):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, DataModel)]
    return []


def _mark_skipped(value: Any, attribute: str) -> None:
    """Set S_* = SKIPPED on the models of ``value`` (a model, a list or a model library)."""
    from calwebb.associations.library import ModelLibrary

    if isinstance(value, ModelLibrary):
        value.map_function(lambda model, index: setattr(model.meta.cal_step, attribute,
                                                        "SKIPPED"), modify=True)
        return
    for model in _models_in(value):
        setattr(model.meta.cal_step, attribute, "SKIPPED")


def _describe(value: Any) -> str:
    return repr(value) if not isinstance(value, str | os.PathLike) else str(value)


def _loggable(parameters: dict) -> dict:
    return {key: (_describe(value) if isinstance(value, DataModel) else value)
            for key, value in parameters.items()}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _steppars_disabled(explicit: bool | None) -> bool:
    if explicit is not None:
        return explicit
    return os.environ.get("STPIPE_DISABLE_CRDS_STEPPARS", "") in ("true", "True", "t", "yes", "y")
