"""The asdf library as calwebb uses it: documents read and written with the fewest plugins.

Discovering every installed asdf plugin imports each plugin package (astropy's converters,
gwcs, stdatamodels...: 0.3 s and more). A document whose tags asdf's core converts is read and
written with the core extensions alone, one that calwebb's own packages convert (gwcs WCSs,
astropy models, units, times, tables) with those; only other documents load every plugin.
"""

from __future__ import annotations

import io
import os
import re
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

import asdf
import numpy as np
import yaml
from asdf.tagged import TaggedDict, get_tag


@contextmanager
def _libyaml_manifests() -> Iterator[None]:
    """Let asdf parse extension manifests with libyaml (the same documents as its pure-Python
    loader, many times faster) while the block runs."""
    try:
        from asdf.extension import _manifest
    except ImportError:  # another asdf layout: let it load as it does
        _manifest = None
    if _manifest is None or getattr(_manifest, "yaml", None) is not yaml or \
            not getattr(yaml, "__with_libyaml__", False):
        yield
        return
    _manifest.yaml = types.SimpleNamespace(
        safe_load=lambda stream: yaml.load(stream, Loader=yaml.CSafeLoader))
    try:
        yield
    finally:
        _manifest.yaml = yaml


@cache
def load_asdf_extensions() -> None:
    """Let asdf discover every installed plugin extension now (manifests read with libyaml).

    Discovery imports each plugin package (astropy's converters, gwcs, and whatever else is
    installed, such as stdatamodels: 0.3 s and more); documents that need only asdf's core
    or calwebb's own plugins are read and written without it (``asdf_config``)."""
    with _libyaml_manifests():
        asdf.get_config().extensions  # noqa: B018 - the property loads them


@dataclass(frozen=True)
class AsdfPlugins:
    """A set of asdf resource mappings and extensions (the proxies asdf makes of them), the
    tags their converters handle and the extension URIs/classes a document may name."""

    mappings: tuple
    extensions: tuple
    tags: frozenset[str]
    extension_items: frozenset[bytes]


#: the distributions whose asdf plugins calwebb's own documents use (gwcs WCSs, astropy
#: models, units, frames, times and tables); documents needing no others are read and written
#: without importing every other installed plugin package
OWN_PLUGIN_PACKAGES = frozenset({"asdf", "asdf-standard", "asdf-astropy", "asdf-transform-schemas",
                                 "asdf-coordinates-schemas", "asdf-wcs-schemas", "gwcs"})


def _plugins_made(mappings: list, make_extensions: Callable[[], list]) -> AsdfPlugins | None:
    """The plugins of ``mappings`` and of the extensions ``make_extensions`` gives when
    asdf's resources are those mappings alone (so that making them discovers nothing else);
    None when this asdf keeps its configuration otherwise."""
    with asdf.config_context() as config:
        if not all(hasattr(config, name) for name in
                   ("_resource_mappings", "_resource_manager", "_extensions")):
            return None
        config._resource_mappings, config._resource_manager = list(mappings), None
        with _libyaml_manifests():
            extensions = make_extensions()
    tags = frozenset(tag for extension in extensions for converter in extension.converters
                     for tag in converter.tags)
    items = {name.encode() for extension in extensions
             for name in (extension.extension_uri, extension.class_name,
                          *extension.legacy_class_names) if name}
    return AsdfPlugins(tuple(mappings), tuple(extensions), tags, frozenset(items))


@cache
def core_plugins() -> AsdfPlugins | None:
    """asdf's own resource mappings and core extensions, built without discovering other
    packages' plugins; None when this asdf is laid out otherwise."""
    try:
        from asdf._core import _integration
        from asdf.extension import ExtensionProxy
        from asdf.resource import ResourceMappingProxy
        from asdf_standard import __version__ as standard_version
        from asdf_standard import integration as standard
    except ImportError:
        return None
    mappings = [ResourceMappingProxy(mapping, package_name=name, package_version=version)
                for name, version, found in (
                    ("asdf_standard", standard_version, standard.get_resource_mappings()),
                    ("asdf", asdf.__version__, _integration.get_json_schema_resource_mappings()))
                for mapping in found]
    return _plugins_made(mappings, lambda: [
        ExtensionProxy(extension, package_name="asdf", package_version=asdf.__version__)
        for extension in _integration.get_extensions()])


@cache
def _own_plugins() -> AsdfPlugins | None:
    """The plugins of OWN_PLUGIN_PACKAGES, loaded from their entry points as asdf loads
    every package's (the same order: asdf's own last); None if one fails to load (asdf's
    own discovery then reports it)."""
    from importlib.metadata import entry_points

    from asdf.extension import ExtensionProxy
    from asdf.resource import ResourceMappingProxy

    def listed(group: str, proxy: type) -> list:
        points = []
        for point in entry_points(group=group):
            name = point.dist.name  # parsed from the distribution's metadata at each access
            if re.sub(r"[-_.]+", "-", name).lower() in OWN_PLUGIN_PACKAGES:
                points.append((name == "asdf", name, point.dist.version, point))
        found = []
        for _, name, version, point in sorted(points, key=lambda listing: listing[:2]):
            elements = point.load()()
            for element in elements if isinstance(elements, list) else [elements]:
                found.append(proxy(element, package_name=name, package_version=version))
        return found

    try:
        return _plugins_made(listed("asdf.resource_mappings", ResourceMappingProxy),
                             lambda: listed("asdf.extensions", ExtensionProxy))
    except Exception:  # noqa: BLE001 - asdf's own discovery warns about a broken plugin
        return None


_HEAD_BYTES = 1 << 18
_CORE_PREFIX = "tag:stsci.edu:asdf/"
_TAG_DIRECTIVE = b"%TAG ! " + _CORE_PREFIX.encode() + b"\n"
_TAG = re.compile(rb"!(?:<([^>\s]+)>|([\w/.-]+))?")
_EXTENSION_ITEM = re.compile(rb"^\s*-?\s*extension_(?:uri|class):\s*(\S+)", re.MULTILINE)
_CORE_EXTENSIONS = b"asdf://asdf-format.org/core/extensions/"


def _known_to(document: bytes | memoryview, plugins: AsdfPlugins | None) -> bool:
    """Whether an ASDF document's YAML uses only tags that ``plugins`` convert and names only
    their extensions (or asdf's core ones) in its history.

    Conservative: another tag handle, a ``!`` inside a string, or an unknown tag or
    extension answer False.
    """
    document = bytes(document[:_HEAD_BYTES])
    start, end = document.find(b"\n--- "), document.find(b"\n...")
    if plugins is None or start < 0 or end < start:
        return False
    head, body = document[:start + 1], document[start + 4:end]
    if head.count(b"%TAG") != 1 or _TAG_DIRECTIVE not in head:
        return False
    for match in _TAG.finditer(body):
        verbatim, short = match.groups()
        if verbatim is None and short is None:
            return False
        tag = verbatim.decode() if verbatim is not None else _CORE_PREFIX + short.decode()
        if tag not in plugins.tags:
            return False
    return all(item in plugins.extension_items or item.startswith(_CORE_EXTENSIONS)
               for item in _EXTENSION_ITEM.findall(body))


def _is_core_tree(node: Any) -> bool:
    """Whether a tree holds only what asdf's core writes (plain containers, scalars, arrays)."""
    if isinstance(node, TaggedDict):
        plugins = core_plugins()
        return plugins is not None and get_tag(node) in plugins.tags and \
            _is_core_tree(dict(node))
    if type(node) is dict:
        return all(isinstance(key, str) and _is_core_tree(value) for key, value in node.items())
    if type(node) in (list, tuple):
        return all(_is_core_tree(value) for value in node)
    return node is None or type(node) in (str, int, float, bool, np.ndarray) or \
        isinstance(node, np.generic)


@contextmanager
def asdf_config(plugins: AsdfPlugins | None = None) -> Iterator[asdf.config.AsdfConfig]:
    """An ``asdf.config_context`` without read validation (each reader checks the parts it
    uses), holding only ``plugins`` (see ``core_plugins``, ``_own_plugins``), or every
    installed plugin when None."""
    if plugins is None:
        load_asdf_extensions()
    with asdf.config_context() as config:
        config.validate_on_read = False
        if plugins is not None:
            config._resource_mappings = list(plugins.mappings)
            config._extensions = list(plugins.extensions)
            config._resource_manager = None
        yield config


def _document_plugins(source: Any) -> AsdfPlugins | None:
    """The smallest plugin set an ASDF source (bytes, BytesIO or a path; its first
    ``_HEAD_BYTES`` must hold the whole YAML) needs: asdf's core, calwebb's own, or None
    (every installed plugin)."""
    if isinstance(source, io.BytesIO):
        with source.getbuffer() as buffer:
            document = bytes(buffer[:_HEAD_BYTES])
    elif isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as stream:
                document = stream.read(_HEAD_BYTES)
        except OSError:
            return None
    elif isinstance(source, bytes | bytearray):
        document = bytes(source)
    else:
        return None
    for plugins_of in (core_plugins, _own_plugins):  # (calwebb's own loaded only if needed)
        plugins = plugins_of()
        if _known_to(document, plugins):
            return plugins
    return None


@contextmanager
def open_asdf(source: Any, **options: Any) -> Iterator[asdf.AsdfFile]:
    """``asdf.open(source, **options)`` without schema validation, with only the core
    extensions when the document needs no others."""
    with asdf_config(_document_plugins(source)):
        with asdf.open(source, **options) as af:
            yield af



def write_asdf(tree: dict, target) -> None:
    """Write ``tree`` as ASDF to ``target`` (a path or a BytesIO): with asdf's core
    extensions when it needs no others, else with calwebb's own plugins, and with every
    installed plugin only when those cannot write it."""
    first = core_plugins() if _is_core_tree(tree) else _own_plugins()
    if first is not None:
        try:
            with asdf_config(first):
                asdf.AsdfFile(tree).write_to(target)
            return
        except Exception:  # noqa: BLE001 - a type only another plugin converts: written again
            if isinstance(target, io.BytesIO):
                target.seek(0)
                target.truncate()
    with asdf_config(None):
        asdf.AsdfFile(tree).write_to(target)
