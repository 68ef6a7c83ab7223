"""ModelLibrary: the members of a Level 3 product, loaded only when borrowed (associations.md
§6.3), so Stage 3 memory need not grow with the number of exposures."""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.associations.association import (
    Association,
    association_from_dict,
    load_association,
)
from calwebb.errors import AssociationError, DataModelError


def exposure_group_id(meta, fallback: str | None = None) -> str:
    """The exposure a product belongs to: ``meta.group_id``, else
    jw{program}{observation}{visit}_{visit_group}{sequence}{activity}_{exposure} from the
    observation keywords, else ``fallback`` (an error when there is none)."""
    if meta.group_id:
        return str(meta.group_id)
    obs = meta.observation
    parts = (obs.program_number, obs.observation_number, obs.visit_number, obs.visit_group,
             obs.sequence_id, obs.activity_id, obs.exposure_number)
    if all(part is not None for part in parts):
        program, observation, visit, visit_group, sequence, activity, exposure = parts
        return f"jw{program}{observation}{visit}_{visit_group}{sequence}{activity}_{exposure}"
    if fallback is None:
        missing = ("PROGRAM", "OBSERVTN", "VISIT", "VISITGRP", "SEQ_ID", "ACT_ID", "EXPOSURE")
        absent = [key for key, part in zip(missing, parts, strict=True) if part is None]
        raise DataModelError(f"{meta.filename}: cannot tell its exposure group: no group_id "
                             f"and no {', '.join(absent)}")
    return fallback


class ModelLibrary:
    """Members of one product (``science`` by default), opened on demand.

    Build it from an association (.json path, dict or Association), a list of models or file
    paths, or one model or path. Use models inside ``with library:`` by ``borrow(i)`` and
    ``shelve(model, i)``; with ``on_disk=True`` a model shelved as modified is written to a
    temporary file and reloaded from it when borrowed again, so only borrowed models are in
    memory. Input files and models given by the caller are never modified (a model given in
    memory is copied before its first modification)."""

    def __init__(self, init, *, asn_exptypes: tuple[str, ...] = ("science",),
                 on_disk: bool = False, temp_directory: str | os.PathLike | None = None):
        if isinstance(init, ModelLibrary):
            raise AssociationError("a ModelLibrary cannot be built from another library")
        self.on_disk = on_disk
        self._temp_parent = temp_directory
        self._temp_dir: Path | None = None
        self.asn, sources = self._members(init, {role.lower() for role in asn_exptypes})
        if not sources:
            raise AssociationError(f"{self.asn.table_name or 'input'}: no "
                                   f"{'/'.join(asn_exptypes)} members")
        self._sources: list = sources  # path, model or _Shelved per member
        self.names = [_name(source) for source in sources]  # members' own file names
        self._loaded: dict[int, datamodels.DataModel] = {}
        self._owned = [not isinstance(source, datamodels.DataModel) for source in sources]
        self._borrowed: set[int] = set()
        self._open = False
        self.group_ids = [self._group_id(index) for index in range(len(sources))]
        #: {member index: PixelMapper} a step made for the members on its grid (outlier
        #: detection's median grid), for a later step drizzling onto the same grid
        self.pixel_mappers: dict = {}

    # -- construction --------------------------------------------------------------------------
    def _members(self, init, roles) -> tuple[Association, list]:
        if isinstance(init, str | os.PathLike) and str(init).lower().endswith(".json"):
            association = load_association(init)
        elif isinstance(init, dict):
            association = association_from_dict(init)
        elif isinstance(init, Association):
            association = init
        else:
            items = list(init) if isinstance(init, list | tuple) else [init]
            self._extra = [{} for _ in items]
            sources = [item if isinstance(item, datamodels.DataModel) else Path(item)
                       for item in items]
            for source in sources:
                if isinstance(source, Path) and not source.exists():
                    raise DataModelError(f"{source}: no such file")
            return association_from_dict({"products": [{"members": [
                {"expname": _name(source), "exptype": "science"} for source in sources]}]}), \
                sources
        if not association.products:
            raise AssociationError(f"{association.table_name or 'association'}: no products")
        members = [m for m in association.products[0].members if m.exptype.lower() in roles]
        self._extra = [{**m.extra, "exptype": m.exptype} for m in members]
        paths = [m.path(association.asn_dir) for m in members]
        for path in paths:
            if not path.exists():
                source = association.table_name or "the association"
                raise DataModelError(f"{path}: member of {source} not found")
        return association, paths

    def _group_id(self, index: int) -> str:
        given = self._extra[index].get("group_id")
        if given not in (None, ""):
            return str(given)
        source = self._sources[index]
        if isinstance(source, datamodels.DataModel):
            return exposure_group_id(source.meta)
        model = datamodels.open(source)
        group_id = exposure_group_id(model.meta)
        if not self.on_disk:  # kept: it would be read again when first borrowed
            self._loaded[index] = self._prepare(index, model, group_id)
        return group_id

    # -- association facts ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sources)

    @property
    def product_name(self) -> str | None:
        return self.asn.products[0].name

    @property
    def asn_id(self) -> str | None:
        return self.asn.header.get("asn_id")

    @property
    def group_indices(self) -> dict[str, list[int]]:
        """{group_id: member indices}, groups in order of first appearance."""
        groups: dict[str, list[int]] = {}
        for index, group in enumerate(self.group_ids):
            groups.setdefault(group, []).append(index)
        return groups

    def source(self, index: int):
        """What member ``index`` currently is, for readers that stream members without
        borrowing them: a file path or a model (a member changed while on disk comes as a
        new model whose arrays are read when used: hold it only while it is needed)."""
        source = self._loaded.get(index, self._sources[index])
        return source.model(self.names[index]) if isinstance(source, _Shelved) else source

    # -- borrowing -----------------------------------------------------------------------------
    def __enter__(self) -> ModelLibrary:
        self._open = True
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self._open = False
        if self._borrowed and kind is None:
            left = sorted(self._borrowed)
            self._borrowed.clear()
            raise DataModelError(f"models {left} were borrowed and not shelved")
        self._borrowed.clear()

    def borrow(self, index: int) -> datamodels.DataModel:
        """Model ``index`` (loaded now if needed); give it back with ``shelve``."""
        if not self._open:
            raise DataModelError("borrow models only inside 'with library:'")
        if index in self._borrowed:
            raise DataModelError(f"model {index} is already borrowed")
        if not 0 <= index < len(self):
            raise IndexError(f"the library has {len(self)} models, no index {index}")
        model = self._loaded.get(index)
        if model is None:
            source = self._sources[index]
            if isinstance(source, _Shelved):
                model = source.model(self.names[index])
            elif isinstance(source, datamodels.DataModel):
                model = source
            else:
                model = self._read(index, source)
            if not self.on_disk:
                self._loaded[index] = model
        self._borrowed.add(index)
        return model

    def _read(self, index: int, path: Path) -> datamodels.DataModel:
        return self._prepare(index, datamodels.open(path), self.group_ids[index])

    def _prepare(self, index: int, model, group_id: str) -> datamodels.DataModel:
        """``model`` read from member ``index``'s file, with its association facts."""
        model.meta.filename = self.names[index]  # a temporary file keeps the member's name
        model.meta.group_id = group_id
        model.meta.asn.exptype = self._extra[index].get("exptype", "science")
        catalog = self._extra[index].get("tweakreg_catalog")
        if catalog:
            model.meta.tweakreg_catalog = str(self.asn.asn_dir / catalog)
        model.meta.asn.table_name = self.asn.table_name
        model.meta.asn.pool_name = self.asn.pool_name
        return model

    def shelve(self, model: datamodels.DataModel, index: int, modify: bool = True) -> None:
        """Give model ``index`` back; ``modify`` says it changed and must be kept."""
        if index not in self._borrowed:
            raise DataModelError(f"model {index} was not borrowed")
        self._borrowed.discard(index)
        if not modify:
            return
        if not self.on_disk:
            self._loaded[index] = model
            self._sources[index] = model
            return
        self._sources[index] = _Shelved.store(
            model, self._temporary_directory() / f"member{index:05d}")
        self._owned[index] = True

    def writable(self, index: int) -> datamodels.DataModel:
        """Borrow model ``index`` for changing it: a copy when the caller gave it in memory,
        so the caller's model is never modified."""
        model = self.borrow(index)
        if not self._owned[index]:
            model = model.copy()
            self._owned[index] = True
        return model

    def __iter__(self) -> Iterator[datamodels.DataModel]:
        raise TypeError("borrow models with library.borrow(i) inside 'with library:'")

    def map_function(self, function: Callable, modify: bool = False) -> list:
        """``function(model, index)`` for every member, in order; the results as a list."""
        results = []
        with self:
            for index in range(len(self)):
                model = self.writable(index) if modify else self.borrow(index)
                results.append(function(model, index))
                self.shelve(model, index, modify=modify)
        return results

    def _temporary_directory(self) -> Path:
        if self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="calwebb_library_",
                                                   dir=self._temp_parent or Path.cwd()))
        return self._temp_dir

    def close(self) -> None:
        """Drop loaded models and delete the temporary files."""
        self._loaded.clear()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __del__(self):
        self.close()


@dataclass(frozen=True)
class _StoredArray:
    """Loader of one array kept as a ``.npy`` file."""

    path: Path

    def __call__(self) -> np.ndarray:
        return np.load(self.path)


@dataclass(frozen=True)
class _Shelved:
    """A changed member waiting in the library's temporary directory: each array a ``.npy``
    file (raw, as in memory) and the metadata tree pickled here (kilobytes), so keeping a
    member costs no FITS or ASDF serialisation and borrowing it reads only the arrays used.

    Each stored version of an array gets a file of its own and replaced files are deleted,
    so a model that still holds an earlier version's loader fails instead of reading the
    new data; an array never read since it was last stored keeps its file."""

    model_class: type
    tree: bytes
    arrays: tuple[tuple[str, Path], ...]

    @classmethod
    def store(cls, model: datamodels.DataModel, directory: Path) -> _Shelved:
        directory.mkdir(exist_ok=True)
        arrays = []
        for name in type(model).arrays:
            if not model.has_array(name):
                continue
            loader = model.pending_loader(name)
            if isinstance(loader, _StoredArray) and loader.path.parent == directory:
                arrays.append((name, loader.path))  # not read since stored: unchanged
                continue
            handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".npy", dir=directory)
            with os.fdopen(handle, "wb") as stream:
                np.save(stream, getattr(model, name), allow_pickle=False)
            arrays.append((name, Path(path)))
        kept = {path for _, path in arrays}
        for path in directory.glob("*.npy"):
            if path not in kept:
                path.unlink()
        return cls(type(model), pickle.dumps(model.tree, protocol=pickle.HIGHEST_PROTOCOL),
                   tuple(arrays))

    def model(self, name: str) -> datamodels.DataModel:
        """A new model of the stored member, ``name`` its file name (its arrays read when
        first used)."""
        model = self.model_class()
        model.tree.clear()
        model.tree.update(pickle.loads(self.tree))
        model.meta.filename = name
        for array, path in self.arrays:
            model.set_loader(array, _StoredArray(path))
        return model


def _name(source) -> str:
    if isinstance(source, datamodels.DataModel):
        return source.meta.filename or "model.fits"
    return Path(source).name
