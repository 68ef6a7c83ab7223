"""The metadata tree: nested dicts read and written with attribute access.

``model.meta.exposure.ngroups`` walks plain dicts. A name that the keyword table
knows reads as ``None`` while unset (a leaf) or as an empty node (a group, created
on first assignment below it); a name the table does not know and the tree does not
hold raises ``AttributeError``, so typos do not pass silently.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from calwebb.datamodels import keywords


class Node:
    """A view of one dict inside a model's tree, addressed by its dotted path."""

    __slots__ = ("_root", "_path")

    def __init__(self, root: dict, path: tuple[str, ...]):
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_path", path)

    # -- navigation -------------------------------------------------------------------------
    def _dict(self, create: bool = False) -> dict | None:
        node = self._root
        for key in self._path:
            child = node.get(key)
            if not isinstance(child, dict):
                if not create:
                    return None
                child = node[key] = {}
            node = child
        return node

    def _dotted(self, name: str) -> str:
        return ".".join((*self._path, name))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        data = self._dict()
        if data is not None and name in data:
            value = data[name]
            return Node(self._root, (*self._path, name)) if isinstance(value, dict) else value
        dotted = self._dotted(name)
        if keywords.is_group(dotted):
            return Node(self._root, (*self._path, name))
        if keywords.is_leaf(dotted):
            return None
        raise AttributeError(f"'{dotted}' is not a known metadata item and has not been set")

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Node):
            value = value.to_dict()
        value = keywords.coerce(self._dotted(name), value)
        data = self._dict(create=True)
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value

    def __delattr__(self, name: str) -> None:
        data = self._dict()
        if data is not None:
            data.pop(name, None)

    # -- dict-like helpers ------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        data = self._dict()
        return data is not None and name in data

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict() or {})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Node):
            return self.to_dict() == other.to_dict()
        return isinstance(other, Mapping) and self.to_dict() == dict(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Node({'.'.join(self._path)}: {self.to_dict()!r})"

    def to_dict(self) -> dict:
        """A deep copy of this node's contents as plain dicts."""
        return copy_containers(self._dict() or {})

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several items below this node; nested mappings merge recursively."""
        for name, value in values.items():
            if isinstance(value, Mapping):
                Node(self._root, (*self._path, name)).update(value)
            else:
                setattr(self, name, value)


def copy_containers(value: Any) -> Any:
    """``value`` with its dicts and lists copied all the way down (a dict keeps its class,
    an ASDF tag included); everything else is shared."""
    if isinstance(value, dict):
        twin = copy.copy(value)
        for key, item in value.items():
            twin[key] = copy_containers(item)
        return twin
    if isinstance(value, list):
        return [copy_containers(item) for item in value]
    return value


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"meta": {"exposure": {"ngroups": 10}}}`` → ``{"meta.exposure.ngroups": 10}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):  # an empty group holds no item
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``tree['a']['b']['c'] = value`` for ``dotted == 'a.b.c'``, creating dicts on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = keywords.coerce(dotted, value)


def get_path(tree: Mapping, dotted: str) -> Any:
    """The value at ``dotted`` in nested dicts, or None."""
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node
