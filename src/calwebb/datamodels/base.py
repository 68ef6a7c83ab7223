"""The data-model base class: a metadata tree plus declared, typed, named arrays."""

from __future__ import annotations

import copy as _copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calwebb.datamodels.tree import Node, flatten
from calwebb.errors import DataModelError


@dataclass(frozen=True)
class ArraySpec:
    """One declared array of a model: where it lives on disk and what it must look like.

    ``allocate`` says how an unset array is created on first access: ``"like_data"``
    (the shape of ``data``), ``"image"`` (the last two axes of ``data``), ``"ints"``
    (integrations × image), ``"stripes"`` (one image per superstripe,
    ``meta.subarray.num_superstripe``), or ``None`` (stays None until set or read).
    """

    extname: str
    dtype: Any  # numpy dtype; None for tables (structured arrays)
    ndim: tuple[int, ...] = ()  # allowed dimensionalities; () = any
    allocate: str | None = "like_data"
    fill: float = 0.0

    @property
    def is_table(self) -> bool:
        return self.dtype is None


Loader = Callable[[], np.ndarray]


def array_cut(array: np.ndarray, rows: tuple[int, int] | None = None,
              columns: tuple[int, int] | None = None, planes: int | None = None) -> np.ndarray:
    """A view of ``array``: the ``rows``/``columns`` ranges of its last two axes and its
    first ``planes`` along the third-from-last (None: all); of a table (1-D), its ``rows``."""
    if array.ndim == 1:
        return array[slice(*rows) if rows else slice(None)]
    if planes is not None and array.ndim >= 3:
        array = array[..., :planes, :, :]
    return array[..., slice(*rows) if rows else slice(None),
                  slice(*columns) if columns else slice(None)]


def _given(**parts: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None), for a loader's ``read``/``mapped``."""
    return {key: part for key, part in parts.items() if part is not None}


def _check_integer_range(model: DataModel, name: str, spec: ArraySpec, array: np.ndarray) -> None:
    """Refuse integer values that the declared integer dtype cannot hold (no silent wrap)."""
    target = np.dtype(spec.dtype)
    if target.kind not in "ui" or array.dtype.kind not in "ui" or array.size == 0:
        return
    if np.can_cast(array.dtype, target, casting="safe"):
        return
    limits = np.iinfo(target)
    low, high = array.min(), array.max()
    if low < limits.min or high > limits.max:
        raise DataModelError(
            f"{type(model).__name__}.{name} ({spec.extname}) is {target.name}: values "
            f"{low}..{high} do not fit in {limits.min}..{limits.max}"
        )


class DataModel:
    """Base of every calwebb model.

    Create one from a file path, a shape tuple (declared arrays allocated), another
    model (converted: metadata and arrays carried over, but for those given as keyword
    arrays), or keyword arrays (``ImageModel(data=arr, dq=dq)``); ``None`` gives an empty
    model.
    """

    arrays: dict[str, ArraySpec] = {}
    #: metadata paths this model writes to a different HDU than the keyword table says
    keyword_hdus: dict[str, str] = {}
    #: whether what parsing its FITS files gives is kept for the next read of the same
    #: version of a file (``remembered``): for files read again and again, unchanged
    remember_headers = False

    def __init__(self, init: Any = None, **arrays: Any):
        object.__setattr__(self, "_tree", {"meta": {}})
        object.__setattr__(self, "_arrays", {})
        if init is None:
            pass
        elif isinstance(init, str | os.PathLike):
            from calwebb.datamodels.io import read_into

            read_into(self, Path(init))
        elif isinstance(init, tuple):
            self._allocate(init)
        elif isinstance(init, DataModel):
            self._convert_from(init, replaced=arrays.keys())
        elif isinstance(init, np.ndarray):
            self.data = init
        else:
            raise DataModelError(
                f"cannot make a {type(self).__name__} from {type(init).__name__}: "
                "expected a file path, a shape tuple, an array or a data model"
            )
        for name, value in arrays.items():
            setattr(self, name, value)
        self.meta.model_type = type(self).__name__

    # -- metadata -------------------------------------------------------------------------
    @property
    def meta(self) -> Node:
        return Node(self._tree, ("meta",))

    @property
    def tree(self) -> dict:
        """The whole metadata tree (plain dicts; arrays not included)."""
        return self._tree

    def to_flat_dict(self) -> dict[str, Any]:
        """Every metadata item as ``{"meta.exposure.ngroups": 10, ...}``."""
        return flatten(self._tree)

    # -- arrays ---------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        spec = type(self).arrays.get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no attribute or array '{name}'")
        value = self._arrays.get(name)
        if callable(value):
            value = self._arrays[name] = value()
        if value is None:
            value = self._allocated(name, spec)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        spec = type(self).arrays.get(name)
        if spec is None:
            if name in type(self).__dict__ or name.startswith("_") or hasattr(type(self), name):
                object.__setattr__(self, name, value)
                return
            raise AttributeError(
                f"{type(self).__name__} has no array '{name}'; metadata goes under model.meta"
            )
        self._arrays[name] = None if value is None else self._checked(name, spec, value)

    def has_array(self, name: str) -> bool:
        """True when the array was read from the file or set (not just default-allocated)."""
        return self._arrays.get(name) is not None

    def array_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of array ``name`` without reading it when its loader knows it (None when
        the array is unset)."""
        value = self._arrays.get(name)
        if value is None:
            return None  # unset (not even a default is made for asking)
        shape = getattr(value, "shape", None)
        return tuple(shape) if shape is not None else getattr(self, name).shape

    def leading_planes(self, name: str, count: int,
                       rows: tuple[int, int] | None = None) -> np.ndarray:
        """Array ``name`` cut to its first ``count`` planes along the third-from-last axis
        (and to the ``rows`` range of the second-from-last, if given); when not loaded yet,
        only those are read (and the model keeps its lazy array)."""
        return self.array_part(name, planes=count, rows=rows)

    def array_part(self, name: str, rows: tuple[int, int] | None = None,
                   columns: tuple[int, int] | None = None,
                   planes: int | None = None) -> np.ndarray:
        """Array ``name`` cut to the ``rows``/``columns`` ranges of its last two axes and its
        first ``planes`` along the third-from-last (None: all); when not loaded yet, only
        that part is read (and the model keeps its lazy array). May be a view of the array."""
        value = self._arrays.get(name)
        read = getattr(value, "read", None)
        if callable(value) and read is not None:
            return read(**_given(rows=rows, columns=columns, planes=planes))
        return array_cut(getattr(self, name), rows, columns, planes)

    def stored_part(self, name: str, rows: tuple[int, int] | None = None,
                    columns: tuple[int, int] | None = None, planes: int | None = None,
                    dtype: Any = None) -> np.ndarray | None:
        """The part of array ``name`` that ``array_part`` gives, without reading it: while the
        array is still in its file, its stored values memory-mapped in their stored byte order
        (None when its loader cannot map them: compressed or scaled); once loaded, a view.
        With ``dtype``, None also when the values are of another type (in either byte
        order)."""
        value = self._arrays.get(name)
        if callable(value):
            mapped = getattr(value, "mapped", None)
            part = None if mapped is None else mapped(
                **_given(rows=rows, columns=columns, planes=planes))
        else:
            part = self.array_part(name, rows, columns, planes)
        if part is None or (dtype is not None and part.dtype.newbyteorder("=") != dtype):
            return None
        return part

    def pending_loader(self, name: str) -> Loader | None:
        """The loader of array ``name`` while it has not been read (None once it has, or when
        the array was set or is unset)."""
        value = self._arrays.get(name)
        return value if callable(value) else None

    def set_loader(self, name: str, loader: Loader) -> None:
        """Make ``name`` load on first access (used by readers for lazy and mapped arrays)."""
        self._arrays[name] = loader

    def _checked(self, name: str, spec: ArraySpec, value: Any) -> np.ndarray:
        array = np.asarray(value)
        if spec.ndim and array.ndim not in spec.ndim:
            raise DataModelError(
                f"{type(self).__name__}.{name} ({spec.extname}) must have "
                f"{' or '.join(map(str, spec.ndim))} dimensions, got shape {array.shape}"
            )
        if spec.is_table:
            if array.dtype.names is None:
                raise DataModelError(
                    f"{type(self).__name__}.{name} ({spec.extname}) must be a table "
                    f"(structured array), got dtype {array.dtype}"
                )
            return array
        if array.dtype != spec.dtype:
            if not np.can_cast(array.dtype, spec.dtype, casting="same_kind") and not (
                array.dtype.kind in "uib" and np.dtype(spec.dtype).kind in "uif"
            ):
                raise DataModelError(
                    f"{type(self).__name__}.{name} ({spec.extname}) must be "
                    f"{np.dtype(spec.dtype).name}, got {array.dtype.name}"
                )
            _check_integer_range(self, name, spec, array)
            array = array.astype(spec.dtype)
        return array

    def _allocated(self, name: str, spec: ArraySpec) -> np.ndarray | None:
        if spec.allocate is None or spec.is_table or name == "data":
            return None
        data = self._arrays.get("data")
        if data is None:
            return None
        shape = self.data.shape
        shapes = {"like_data": shape, "image": shape[-2:], "ints": (shape[0], *shape[-2:]),
                  "stripes": (self.meta.subarray.num_superstripe or 1, *shape[-2:])}
        array = np.full(shapes[spec.allocate], spec.fill, dtype=spec.dtype)
        self._arrays[name] = array
        return array

    def _allocate(self, shape: tuple[int, ...]) -> None:
        data_spec = type(self).arrays.get("data")
        if data_spec is None:
            raise DataModelError(f"{type(self).__name__} has no data array to allocate")
        self.data = np.full(shape, data_spec.fill, dtype=data_spec.dtype)
        for name, spec in type(self).arrays.items():
            if name != "data" and spec.allocate is not None:
                getattr(self, name)

    def _convert_from(self, other: DataModel, replaced=()) -> None:
        self._tree.update(_copy.deepcopy(other._tree))
        for name in type(self).arrays:
            if name in type(other).arrays and other.has_array(name) and name not in replaced:
                setattr(self, name, getattr(other, name))

    def as_specific_class(self) -> DataModel:
        """This model, or its content as the more specific class its metadata calls for
        (a step's input is opened as the step's class, then made specific)."""
        return self

    # -- life cycle -----------------------------------------------------------------------
    def metadata_copy(self) -> DataModel:
        """A model of this class with a deep copy of this one's metadata and no arrays."""
        twin = type(self)()
        twin._tree.clear()
        twin._tree.update(_copy.deepcopy(self._tree))
        return twin

    def copy(self) -> DataModel:
        """A deep copy: new tree, new arrays."""
        twin = self.metadata_copy()
        for name in type(self).arrays:
            if self.has_array(name):
                twin._arrays[name] = np.array(getattr(self, name), copy=True)
        return twin

    def save(self, path: str | os.PathLike, overwrite: bool = True,
             background: bool = False) -> Path:
        """Write FITS (``.fits``) or ASDF (``.asdf``) atomically; returns the path written.
        ``background``: inside ``datamodels.io.writes_in_background()``, a FITS file is
        finished by that block's thread (the arrays must not change until the block ends)."""
        from calwebb.datamodels.io import write

        return write(self, Path(path), overwrite=overwrite, background=background)

    def close(self) -> None:
        """Nothing to release: lazy arrays open their file only while they load."""

    def __enter__(self) -> DataModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        shape = getattr(self._arrays.get("data"), "shape", "")
        return f"<{type(self).__name__} {shape} {self.meta.filename or ''}>"
