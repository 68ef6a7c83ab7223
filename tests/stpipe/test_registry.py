"""The step index read from source matches what importing the step modules defines."""

import importlib
import sys

from calwebb.stpipe import Step, registry


def test_index_matches_the_imported_step_modules():
    imported = {}
    for module_name in registry._step_modules():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Step) and \
                    value.__module__ == module_name:
                imported[value.__name__] = (module_name, value.__dict__.get("class_alias"))
    assert registry._index() == imported
    assert {"calwebb_image2", "Image2Pipeline", "flat_field", "FlatFieldStep"} <= \
        registry.step_names()


def test_names_and_resolution_import_only_the_asked_module(monkeypatch):
    for name in [name for name in sys.modules if name.startswith("calwebb.jump")]:
        monkeypatch.delitem(sys.modules, name)
    registry.step_names.cache_clear()
    assert "jump" in registry.step_names()
    cls, config_file = registry.resolve("flat_field")
    assert cls.__name__ == "FlatFieldStep" and config_file is None
    assert registry.resolve("jwst.flat_field.FlatFieldStep")[0] is cls
    assert "calwebb.jump.step" not in sys.modules
