"""Parameter specifications in the official spec syntax, and converting values to their types.

A step declares its parameters as lines ``name = type(args, default=value)  # description``
(framework.md §2). Values coming from the command line, parameter files or Python are
converted and checked here, so a bad value stops with a ParameterError naming it.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calwebb.errors import ParameterError

_TRUE = {"true", "t", "yes", "y", "on", "1"}
_FALSE = {"false", "f", "no", "n", "off", "0"}
KNOWN_TYPES = {
    "string", "integer", "float", "boolean", "option", "list", "force_list", "int_list",
    "float_list", "string_list", "input_file", "output_file", "is_string_or_datamodel",
    "is_datamodel", "mixed",
}


@dataclass
class Param:
    """One declared parameter."""

    name: str
    type: str
    default: Any = None
    options: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def describe_type(self) -> str:
        if self.type == "option":
            return "one of " + ", ".join(repr(option) for option in self.options)
        bounds = []
        if self.minimum is not None:
            bounds.append(f"min={self.minimum}")
        if self.maximum is not None:
            bounds.append(f"max={self.maximum}")
        return f"{self.type}({', '.join(bounds)})" if bounds else self.type

    def convert(self, value: Any, where: str = "", base_dir: Path | None = None) -> Any:
        """``value`` as this parameter's type; ParameterError naming ``where`` if impossible."""
        label = f"{where}{self.name}"
        if value is None or (isinstance(value, str) and value == "None" and self.default is None):
            return None
        try:
            return _CONVERTERS[self.type](self, value, base_dir)
        except (TypeError, ValueError) as exc:
            raise ParameterError(
                f"parameter {label}: {value!r} is not a valid {self.describe_type()} ({exc})"
            ) from None


def _check_range(param: Param, number: float) -> float:
    if param.minimum is not None and number < param.minimum:
        raise ValueError(f"below the minimum {param.minimum}")
    if param.maximum is not None and number > param.maximum:
        raise ValueError(f"above the maximum {param.maximum}")
    return number


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("expected true or false")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("not a whole number")
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return float(value)


def _split(value: Any) -> list:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [item.strip().strip("'\"") for item in text.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _typed_list(convert):
    def converter(param: Param, value: Any, base_dir: Path | None) -> list:
        items = [convert(item) for item in _split(value)]
        _check_range(param, len(items))
        return items

    return converter


def _option(param: Param, value: Any, base_dir: Path | None) -> Any:
    for option in param.options:
        if value == option or (isinstance(value, str) and value == str(option)):
            return option
    raise ValueError("not one of the allowed values")


def _path(must_exist: bool):
    def converter(param: Param, value: Any, base_dir: Path | None) -> str:
        if not isinstance(value, str | os.PathLike):
            raise TypeError("expected a file name")
        path = Path(os.path.expandvars(os.path.expanduser(str(value))))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        if must_exist and not path.exists():
            raise ValueError(f"{path} does not exist")
        return str(path)

    return converter


def _string_or_model(param: Param, value: Any, base_dir: Path | None) -> Any:
    from calwebb.datamodels import DataModel

    if isinstance(value, DataModel):
        return value
    if isinstance(value, str | os.PathLike):
        return str(value)
    raise TypeError("expected a file name or a data model")


def _model(param: Param, value: Any, base_dir: Path | None) -> Any:
    from calwebb.datamodels import DataModel

    if not isinstance(value, DataModel):
        raise TypeError("expected a data model")
    return value


_CONVERTERS = {
    "string": lambda p, v, b: v if isinstance(v, str) else str(v),
    "integer": lambda p, v, b: _check_range(p, _to_int(v)),
    "float": lambda p, v, b: _check_range(p, _to_float(v)),
    "boolean": lambda p, v, b: _to_bool(v),
    "option": _option,
    "list": lambda p, v, b: _split(v),
    "force_list": lambda p, v, b: _split(v),
    "int_list": _typed_list(_to_int),
    "float_list": _typed_list(_to_float),
    "string_list": _typed_list(str),
    "input_file": _path(must_exist=True),
    "output_file": _path(must_exist=False),
    "is_string_or_datamodel": _string_or_model,
    "is_datamodel": _model,
    "mixed": lambda p, v, b: v,
}


def parse_spec(text: str, owner: str = "") -> dict[str, Param]:
    """Parse a spec block into parameters, in declaration order."""
    params: dict[str, Param] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line, _, comment = _split_comment(raw_line)
        if not line.strip():
            continue
        name, sep, declaration = line.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ParameterError(f"{owner} spec line {number}: cannot parse {raw_line.strip()!r}")
        params[name] = _parse_declaration(name, declaration.strip(), comment.strip(), owner)
    return params


def _split_comment(line: str) -> tuple[str, str, str]:
    """Split at the first ``#`` outside quotes."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:index], "#", line[index + 1 :]
    return line, "", ""


def _parse_declaration(name: str, declaration: str, comment: str, owner: str) -> Param:
    try:
        call = ast.parse(declaration, mode="eval").body
    except SyntaxError:
        raise ParameterError(f"{owner} parameter {name}: bad declaration {declaration!r}") from None
    if isinstance(call, ast.Name):
        call = ast.Call(func=call, args=[], keywords=[])
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise ParameterError(f"{owner} parameter {name}: bad declaration {declaration!r}")
    kind = call.func.id
    if kind not in KNOWN_TYPES:
        raise ParameterError(f"{owner} parameter {name}: unknown type {kind!r}")
    args = [_literal(arg) for arg in call.args]
    kwargs = {kw.arg: _literal(kw.value) for kw in call.keywords}
    param = Param(name=name, type=kind, description=comment)
    param.default = kwargs.pop("default", None)
    if kind == "option":
        param.options = tuple(args)
    elif kind in ("integer", "float") and args:
        param.minimum, param.maximum = (args + [None, None])[:2]
    param.minimum = kwargs.pop("min", param.minimum)
    param.maximum = kwargs.pop("max", param.maximum)
    param.extra = kwargs
    return param


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
        if node.func.id == "list":
            return []
        if node.func.id == "dict":
            return {}
    return ast.literal_eval(node)
