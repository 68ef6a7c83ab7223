"""Which reference file a step gets: the real ``crds`` client over a cache or a server.

Order (framework.md §7.1): a step's ``override_<reftype>`` (handled by the step), then
CRDS. CRDS honours CRDS_PATH, CRDS_SERVER_URL, CRDS_CONTEXT and CRDS_MODE as the official
client does; with a cache and no server it runs fully offline. With no CRDS configuration
at all, calwebb uses its embedded local reference set: the CRDS-style cache in
``$CALWEBB_REFS`` or, by default, the one ``calwebb demo`` writes under the user cache dir.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

from calwebb.cache_dir import cache_root
from calwebb.errors import ReferenceFileError
from calwebb.references import helper, prefetch

log = logging.getLogger(__name__)

SERVERLESS_URL = "https://crds-serverless-mode.stsci.edu"
_configured: tuple | None = None
_injected: dict[str, str] = {}


def default_cache_dir() -> Path:
    """Where the embedded local reference set lives when CALWEBB_REFS is not set."""
    return cache_root() / "crds"


def configure() -> Path:
    """Point the crds client at a cache (and say so once); returns the cache root.

    Variables calwebb set itself on an earlier call are not mistaken for the user's own
    CRDS configuration.
    """
    global _configured
    for name, value in list(_injected.items()):
        if os.environ.get(name) == value:
            del os.environ[name]
        del _injected[name]
    if "CRDS_PATH" not in os.environ and "CRDS_SERVER_URL" not in os.environ:
        root = Path(os.environ.get("CALWEBB_REFS") or default_cache_dir())
        if not (root / "mappings" / "jwst").is_dir():
            raise ReferenceFileError(
                f"no reference files: no CRDS_PATH/CRDS_SERVER_URL is set and the local "
                f"reference set {root} does not exist (run `calwebb demo` to create it, set "
                "CALWEBB_REFS to a CRDS-style cache, or give override_<reftype> files)"
            )
        _inject("CRDS_PATH", str(root))
        if _configured is None or _configured[0] != root:
            log.info("No CRDS configuration: using the local reference set %s", root)
    if "CRDS_SERVER_URL" not in os.environ:
        _inject("CRDS_SERVER_URL", SERVERLESS_URL)  # a cache and no server: offline
    if "CRDS_PATH" not in os.environ:
        raise ReferenceFileError("CRDS_SERVER_URL is set but CRDS_PATH is not: set CRDS_PATH "
                                 "to the cache directory CRDS should use")
    root = Path(os.environ["CRDS_PATH"])
    state = (root, os.environ.get("CRDS_CONTEXT"), os.environ["CRDS_SERVER_URL"],
             os.environ.get("CRDS_MODE") or "auto")  # (the client sets its default)
    if state != _configured:
        _reset_crds_state()
    _configured = state
    return root


def _inject(name: str, value: str) -> None:
    os.environ[name] = value
    _injected[name] = value


def forget_crds_state() -> None:
    """Make the next lookup re-read the cache (after mappings were rewritten)."""
    global _configured
    _configured = None
    prefetch.forget()
    _reset_crds_state()


def _reset_crds_state() -> None:
    """Forget what the crds client cached about a previous cache or context: end the helper
    process (``helper``), clear the client's caches here (nothing to clear before it is
    imported)."""
    helper.stop()
    if "crds" not in sys.modules:
        return
    from crds.core import utils

    _adopt_crds_log()
    utils.clear_function_caches()


def _client():
    """The crds client, imported on first use."""
    imported = "crds" in sys.modules
    import crds

    if not imported:
        _adopt_crds_log()
    return crds


def _adopt_crds_log() -> None:
    from calwebb.stpipe import log as logs

    logs.adopt("CRDS")  # the client's own console handler would print every message twice


@functools.cache
def crds_version() -> str:
    """The crds client's version (without importing it)."""
    return importlib.metadata.version("crds")


def start_helper() -> bool:
    """Let a helper process import crds while numba starts here (``helper.start``), before
    the first CRDS question of a run; False when there is no reference source at all (no
    CRDS configuration, no local reference set: nothing to ask)."""
    try:
        configure()  # the helper inherits the environment it sets
    except ReferenceFileError:
        return False
    helper.start()
    return True


def dataset_parameters(model) -> dict[str, object]:
    """The model's scalar metadata with CRDS-style keys (``META.INSTRUMENT.NAME``)."""
    return {key.upper(): value for key, value in model.to_flat_dict().items()
            if isinstance(value, str | int | float | bool) and key.startswith("meta.")}


def best_references(model, reftypes: list[str]) -> dict[str, str]:
    """{reftype: absolute path or "N/A"} for several types, from one CRDS question (or from
    the answers a pipeline asked for up front, while they hold)."""
    configure()
    parameters = dataset_parameters(model)
    kept = prefetch.answered(parameters, _configured, reftypes)
    if kept is not None:
        return {reftype: kept.paths[reftype] for reftype in reftypes}
    return helper.call("ask_crds", model.meta.filename, parameters, reftypes)


def ask_crds(filename: str | None, parameters: dict, reftypes: list[str]) -> dict[str, str]:
    """The crds client's answer (run in the helper process while there is one)."""
    crds = _client()
    from crds.core.exceptions import CrdsError

    try:
        found = crds.getreferences(parameters, reftypes=reftypes, observatory="jwst")
    except (CrdsError, SystemExit) as exc:  # the client exits on fatal configuration errors
        raise ReferenceFileError(
            f"{filename or 'dataset'}: CRDS could not choose "
            f"{', '.join(t.upper() for t in reftypes)}: {exc}"
        ) from exc
    # the client answers "NOT FOUND n/a" for N/A (a substring test would also catch
    # paths such as /home/dan/a/...)
    return {reftype: ("N/A" if _means_not_applicable(str(path)) else str(path))
            for reftype, path in found.items()}


def _means_not_applicable(answer: str) -> bool:
    text = answer.upper()
    return text == "N/A" or (text.startswith("NOT FOUND") and "N/A" in text)


def get_reference_file(model, reftype: str) -> str:
    """Absolute path of the best ``reftype`` reference for ``model``, or ``"N/A"``."""
    path = best_references(model, [reftype]).get(reftype, "N/A")
    if path != "N/A":
        _check_readable(path, reftype)
        check_reference_matches(path, model, reftype)
    return path


def _check_readable(path: str, reftype: str) -> None:
    if not os.access(path, os.R_OK):
        raise ReferenceFileError(f"{path}: the {reftype.upper()} reference is not readable")


def get_parameter_reference(model, step_class_name: str) -> str | None:
    """Path of the ``pars-<class>`` reference for ``model``, or None (N/A or any failure)."""
    reftype = f"pars-{step_class_name.lower()}"
    try:
        path = best_references(model, [reftype]).get(reftype, "N/A")
    except ReferenceFileError as exc:
        log.debug("no parameter reference %s: %s", reftype, exc)
        return None
    return None if path == "N/A" else path


def prefetch_references(model, reftypes: list[str]) -> dict[str, str] | None:
    """Ask CRDS up front for every type in ``reftypes`` and keep the answers for the steps'
    own questions (``prefetch``): {reftype: path or "N/A"}, None when there is no reference
    source. ReferenceFileError when CRDS cannot choose one or a chosen file cannot be read."""
    if not start_helper():
        return None
    parameters = dataset_parameters(model)
    paths = helper.call("ask_crds", model.meta.filename, parameters, reftypes)
    context = crds_context()
    instrument = str(parameters.get("META.INSTRUMENT.NAME") or "").lower()
    keys = helper.call("matching_parameters", context, instrument) or list(parameters)
    prefetch.keep(prefetch.Answers(_configured, {key: parameters.get(key) for key in keys},
                                   paths, context))
    for reftype, path in paths.items():
        if path != "N/A":
            _check_readable(path, reftype)
    return paths


def matching_parameters(context: str | None, instrument: str) -> list[str] | None:
    """The parameters CRDS matches on for ``instrument`` under ``context`` (None: unknown)."""
    try:
        return list(_client().get_cached_mapping(context).get_required_parkeys()[instrument])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - then every parameter is compared
        log.debug("parameters CRDS matches on unknown (%s)", exc)
        return None


def crds_context(model=None) -> str | None:
    """The context (``jwst_NNNN.pmap``) the crds client uses (for ``model``: the one its
    references were asked for up front, if they were)."""
    configure()
    if model is not None:
        kept = prefetch.answered(dataset_parameters(model), _configured, [])
        if kept is not None:
            return kept.context
    return helper.call("context_name")


def context_name() -> str | None:
    """The crds client's context (run in the helper process while there is one)."""
    try:
        return _client().get_context_name("jwst")
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported, not fatal
        log.debug("no CRDS context: %s", exc)
        return None


def check_reference_matches(path: str | os.PathLike, model, reftype: str | None = None) -> None:
    """ReferenceFileError when a reference's INSTRUME or DETECTOR (and, for types selected by
    them, FILTER, PUPIL, CHANNEL, BAND) contradicts the data."""
    from calwebb.references.cache import MATCH_KEYS, PATTERN_KEYS, reference_metadata

    meta = reference_metadata(path)
    ours_by_key = dataset_parameters(model)
    keys = {"META.INSTRUMENT.NAME": "INSTRUME", "META.INSTRUMENT.DETECTOR": "DETECTOR"}
    selected_by = set(MATCH_KEYS.get((reftype or "").lower(), ()))
    keys.update({key: label for key, label in (
        ("META.INSTRUMENT.FILTER", "FILTER"), ("META.INSTRUMENT.PUPIL", "PUPIL"),
        ("META.INSTRUMENT.CHANNEL", "CHANNEL"), ("META.INSTRUMENT.BAND", "BAND"))
        if key in selected_by})
    for key, label in keys.items():
        theirs = str(meta.get(PATTERN_KEYS.get(key, "")) or meta.get(key) or "").upper()
        ours = str(ours_by_key.get(key) or "").upper()
        if theirs in ("", "ANY", "N/A", "GENERIC", "MULTIPLE") or not ours:
            continue
        allowed = {part.strip() for part in theirs.split("|")}
        if ours not in allowed:
            raise ReferenceFileError(
                f"{Path(path).name}: reference {label} is {theirs.rstrip('|')} but the data "
                f"are {ours}")


def explain(model, reftypes: list[str]) -> list[dict]:
    """Why CRDS chooses each reference: rows of reftype, file, matched keywords, USEAFTER."""
    crds = _client()

    from calwebb.references.cache import reference_metadata

    configure()
    parameters = dataset_parameters(model)
    context = crds_context(model)
    try:
        instrument_map = crds.get_cached_mapping(context).get_imap(
            str(parameters.get("META.INSTRUMENT.NAME", "")).lower())
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - reported as a clear error
        raise ReferenceFileError(f"CRDS context {context} cannot be read: {exc}") from exc
    rows = []
    for reftype in reftypes:
        row = {"reftype": reftype, "file": "N/A", "matched": {}, "useafter": ""}
        try:
            row["file"] = get_reference_file(model, reftype)
        except ReferenceFileError as exc:
            row["file"] = f"error: {exc}"
        if row["file"] not in ("N/A",) and not row["file"].startswith("error"):
            rmap = instrument_map.get_rmap(reftype)
            for key in rmap.parkey[0]:  # the Match level; the next level is the date
                value = parameters.get(key, "")
                row["matched"][key.lower().removeprefix("meta.")] = value if value != "" else "—"
            row["useafter"] = str(reference_metadata(row["file"]).get("META.USEAFTER", ""))
            row["file"] = Path(row["file"]).name
        rows.append(row)
    return rows
