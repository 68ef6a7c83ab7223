"""``Pipeline``: a step made of named child steps, with their parameters under ``steps``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from calwebb.datamodels import DataModel
from calwebb.errors import ParameterError, ReferenceFileError
from calwebb.stpipe.progress import progress_bar
from calwebb.stpipe.step import Step


class Pipeline(Step):
    """Subclasses list ``step_defs = {"name": StepClass, ...}`` and write ``process``
    calling ``self.<name>.run(model)`` in the order the pipeline needs."""

    step_defs: dict[str, type[Step]] = {}

    def __init__(self, name: str | None = None, parent: Step | None = None,
                 config_file: Any = None, **params: Any):
        self._progress = None
        self.step_names = list(type(self).step_defs)
        for child_name, child_class in type(self).step_defs.items():
            setattr(self, child_name, child_class(name=child_name, parent=self))
        super().__init__(name=name, parent=parent, config_file=config_file, **params)

    def children(self) -> list[Step]:
        return [getattr(self, name) for name in self.step_names]

    def apply_config(self, config: dict) -> None:
        own = dict(config, steps={})
        super().apply_config(own)
        for child_name, child_config in config["steps"].items():
            if child_name not in self.step_names:
                raise ParameterError(
                    f"{self.qualified_name}: no step {child_name!r}; steps are "
                    f"{', '.join(self.step_names)}"
                )
            if not child_config.get("base_dir"):
                child_config = dict(child_config, base_dir=config.get("base_dir"))
            getattr(self, child_name).apply_config(child_config)

    def get_pars(self) -> dict[str, Any]:
        pars = super().get_pars()
        pars["steps"] = {child.name: child.get_pars() for child in self.children()}
        return pars

    def parameter_tree(self) -> dict:
        tree = super().parameter_tree()
        tree["parameters"].pop("steps", None)
        tree["steps"] = [child.parameter_tree() for child in self.children()]
        return tree

    def run(self, *inputs: Any) -> Any:
        self._check_overrides()
        active = [child for child in self.children() if not child.skip]
        with progress_bar(len(active), self.name) as bar:
            self._progress = bar
            try:
                return super().run(*inputs)
            finally:
                self._progress = None

    def prefetch_references(self, inputs: tuple) -> None:
        """Ask CRDS once, up front, for every reference type of the steps that will run
        (overridden types aside; see ``calwebb.references.prefetch`` and ``.helper``): a
        type CRDS cannot choose stops the run before any processing, and the steps' own
        questions are answered from these. Associations and lists are asked member by member
        as they are processed; with no reference source at all (no CRDS configuration, no
        local reference set) nothing is asked: a step that needs a reference says so."""
        if len(inputs) != 1 or not isinstance(inputs[0], DataModel):
            return
        reftypes = sorted({reftype for child in self.children() if not child.skip
                           for reftype in child.reference_file_types
                           if getattr(child, f"override_{reftype}", None) is None})
        if not reftypes:
            return
        from calwebb import references

        paths = references.prefetch_references(inputs[0], reftypes)
        if paths is None:
            self.log.info("No references prefetched: no CRDS configuration or local "
                          "reference set")
            return
        for reftype, path in paths.items():
            self.log.info("Prefetch for %s reference file is '%s'.", reftype.upper(), path)

    def step_finished(self, child: Step) -> None:
        if self._progress is not None:
            self._progress.set_postfix_str(child.name, refresh=False)
            self._progress.update(1)

    def _check_overrides(self) -> None:
        """Fail before any processing when a child's reference override cannot be read."""
        for child in self.children():
            if child.skip:
                continue
            for reftype in child.reference_file_types:
                override = getattr(child, f"override_{reftype}", None)
                if isinstance(override, str) and override not in ("", "N/A", "n/a"):
                    if not Path(override).expanduser().is_file():
                        raise ReferenceFileError(
                            f"{child.qualified_name}: override_{reftype} {override} does not exist"
                        )

