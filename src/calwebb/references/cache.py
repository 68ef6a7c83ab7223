"""Writing a CRDS cache that the real ``crds`` client reads offline (crds.md §4, §8).

The rules are derived from the reference files themselves: each file's header says its
type, instrument, the values it applies to (DETECTOR, READPATT, SUBARRAY, FILTER, ...,
or their ``P_`` pattern keywords) and its USEAFTER date. One rmap per instrument and
type selects among them with ``Match`` then ``UseAfter``, as the real rmaps do.
"""

from __future__ import annotations

import hashlib
import os
import pprint
import shutil
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from astropy.io import fits

from calwebb.datamodels import keywords
from calwebb.datamodels.asdf_library import open_asdf
from calwebb.datamodels.remembered import remembered
from calwebb.datamodels.tree import flatten, set_path
from calwebb.errors import ReferenceFileError

OBSERVATORY = "jwst"
DATE_KEYS = ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME")

#: Match keywords per reference type (data-model paths, as the real rmaps use)
DETECTOR = "META.INSTRUMENT.DETECTOR"
SUBARRAY = "META.SUBARRAY.NAME"
READPATT = "META.EXPOSURE.READPATT"
EXP_TYPE = "META.EXPOSURE.TYPE"
FILTER = "META.INSTRUMENT.FILTER"
PUPIL = "META.INSTRUMENT.PUPIL"
CHANNEL = "META.INSTRUMENT.CHANNEL"
BAND = "META.INSTRUMENT.BAND"
MATCH_KEYS: dict[str, tuple[str, ...]] = {
    "mask": (DETECTOR, SUBARRAY),
    "saturation": (DETECTOR, SUBARRAY),
    "superbias": (DETECTOR, READPATT, SUBARRAY),
    "linearity": (DETECTOR, SUBARRAY, FILTER, BAND),
    "dark": (DETECTOR, EXP_TYPE, READPATT, SUBARRAY),
    "gain": (DETECTOR, SUBARRAY, FILTER, BAND),
    "readnoise": (DETECTOR, READPATT, SUBARRAY),
    "ipc": (DETECTOR, SUBARRAY),
    "refpix": (DETECTOR, READPATT),  # NIRSpec IRS2 coefficients
    "reset": (DETECTOR, READPATT, SUBARRAY),
    "rscd": (DETECTOR,),
    "distortion": (DETECTOR, EXP_TYPE, CHANNEL, FILTER, PUPIL, BAND),
    "filteroffset": (DETECTOR, EXP_TYPE),
    "flat": (DETECTOR, EXP_TYPE, FILTER, PUPIL, BAND, READPATT, SUBARRAY),
    "photom": (DETECTOR, EXP_TYPE, BAND),
    "area": (DETECTOR, EXP_TYPE, FILTER, PUPIL),
    "apcorr": (EXP_TYPE, DETECTOR),
    "abvegaoffset": (DETECTOR,),
    "emicorr": (DETECTOR,),  # the official rmap selects by date only; files say no DETECTOR
    "pictureframe": (DETECTOR,),
}
DEFAULT_MATCH_KEYS = (DETECTOR, EXP_TYPE)
#: types whose full-frame files also serve subarrays (they are cut out); darks are not
CUT_OUT_TYPES = set(MATCH_KEYS) - {"dark", "reset", "distortion", "filteroffset", "rscd"}
#: where a key's allowed values may be listed in a ``P_`` pattern keyword
PATTERN_KEYS = {
    READPATT: "META.EXPOSURE.P_READPATT", SUBARRAY: "META.SUBARRAY.P_SUBARRAY",
    EXP_TYPE: "META.EXPOSURE.P_EXPTYPE", FILTER: "META.INSTRUMENT.P_FILTER",
    PUPIL: "META.INSTRUMENT.P_PUPIL", BAND: "META.INSTRUMENT.P_BAND",
    CHANNEL: "META.INSTRUMENT.P_CHANNEL", DETECTOR: "META.INSTRUMENT.P_DETECTOR",
}

#: every reference type the official Stage 1-3 imaging and spectroscopic steps request
#: (crds.md §10); an imap must list each of them, N/A where no file applies
ALL_REFTYPES = (
    "mask", "emicorr", "saturation", "superbias", "ipc", "refpix", "sirskernel", "rscd",
    "linearity", "dark", "reset", "gain", "readnoise", "pictureframe", "persat", "trapdensity",
    "trappars", "flat", "fflat", "sflat", "dflat", "pastasoss", "bkg", "wavelengthrange",
    "distortion", "filteroffset", "specwcs", "regions", "camera", "chromcorr", "collimator",
    "disperser", "fore", "fpa", "msa", "ote", "ifupost", "ifufore", "ifuslicer", "msaoper",
    "wavecorr", "mrsxartcorr", "fringe", "fringefreq", "pathloss", "barshadow", "photom", "area",
    "apcorr", "abvegaoffset", "psfmask", "throughput", "nrm", "mrsptcorr", "cubepar", "extract1d",
    "specprofile", "speckernel", "psf",
)
#: official pipeline and step classes that have ``pars-*`` types
PARS_CLASSES = (
    "Detector1Pipeline", "Image2Pipeline", "Image3Pipeline", "Spec2Pipeline", "Spec3Pipeline",
    "Tso3Pipeline", "Coron3Pipeline", "Ami3Pipeline", "JumpStep", "RampFitStep", "TweakRegStep",
    "SkyMatchStep", "OutlierDetectionStep", "ResampleStep", "SourceCatalogStep",
    "CleanFlickerNoiseStep", "EmiCorrStep", "SaturationStep", "RefPixStep", "DarkCurrentStep",
    "PersistenceStep", "ChargeMigrationStep", "LinearityStep", "AssignWcsStep",
    "FlatFieldStep", "PhotomStep", "BackgroundStep",
)


def reference_metadata(path: str | os.PathLike) -> dict[str, object]:
    """The upper-cased flat metadata of a reference file (``{"META.INSTRUMENT.NAME": ...}``),
    read once per version of the file (a pipeline checks each reference for every step and
    tile plan that asks for it)."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise ReferenceFileError(f"{path}: cannot read the reference header ({exc})") from exc
    return dict(_metadata_of(str(path), status.st_mtime_ns, status.st_size))


@lru_cache(maxsize=256)
def _metadata_of(path: str, mtime_ns: int, size: int) -> dict[str, object]:
    """``reference_metadata`` of one version (modification time and size) of a file."""
    return remembered(path, "reference metadata", lambda: _parse_metadata(Path(path)))


def _parse_metadata(path: Path) -> dict[str, object]:
    tree: dict = {"meta": {}}
    try:
        if path.suffix.lower() == ".asdf":
            with open_asdf(path, lazy_load=True, lazy_tree=True) as af:
                tree["meta"] = _scalars(af.tree.get("meta") or {})
        else:
            header = fits.getheader(path)
            for entry in keywords.in_hdu("PRIMARY"):
                if entry.keyword in header and header[entry.keyword] not in ("", None):
                    set_path(tree, entry.path, header[entry.keyword])
    except (OSError, ValueError) as exc:
        raise ReferenceFileError(f"{path}: cannot read the reference header ({exc})") from exc
    return {key.upper(): value for key, value in flatten(tree).items()
            if isinstance(value, str | int | float | bool)}


def _scalars(node):
    if isinstance(node, Mapping):
        return {key: _scalars(value) for key, value in node.items()}
    return node if isinstance(node, str | int | float | bool) else None


def write_local_cache(reference_files, crds_path, context_name: str = "jwst_9000.pmap") -> Path:
    """Put ``reference_files`` into a CRDS cache at ``crds_path`` (hard links where the file
    system allows, so that a simulated full-frame reference set is not stored twice; copies
    otherwise) with mappings selecting them.

    Returns the cache root. The context name's serial (``jwst_NNNN.pmap``) is reused for the
    imaps and rmaps it writes.
    """
    root = Path(crds_path)
    serial = context_name.removeprefix(f"{OBSERVATORY}_").removesuffix(".pmap")
    by_instrument: dict[str, dict[str, list[tuple[dict, Path]]]] = defaultdict(
        lambda: defaultdict(list))
    for path in map(Path, reference_files):
        meta = reference_metadata(path)
        instrument = str(meta.get("META.INSTRUMENT.NAME") or "").upper()
        reftype = str(meta.get("META.REFTYPE") or "").lower()
        if not instrument or not reftype:
            raise ReferenceFileError(f"{path}: a reference file needs INSTRUME and REFTYPE")
        if not meta.get("META.USEAFTER"):
            raise ReferenceFileError(f"{path}: a reference file needs USEAFTER")
        by_instrument[instrument][reftype].append((meta, path))
        target = root / "references" / OBSERVATORY / instrument.lower() / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.resolve() != target.resolve():
            _place(path, target)
    mappings = root / "mappings" / OBSERVATORY
    mappings.mkdir(parents=True, exist_ok=True)
    imaps = {}
    for instrument, types in sorted(by_instrument.items()):
        rmaps = {}
        for reftype, entries in sorted(types.items()):
            name = f"{OBSERVATORY}_{instrument.lower()}_{reftype}_{serial}.rmap"
            _write_mapping(mappings / name, _rmap_text(name, instrument, reftype, entries))
            rmaps[reftype] = name
        imap_name = f"{OBSERVATORY}_{instrument.lower()}_{serial}.imap"
        pars_types = [f"pars-{cls.lower()}" for cls in _pars_classes()]
        selector = {reftype: rmaps.get(reftype, "N/A")
                    for reftype in sorted(set(ALL_REFTYPES) | set(pars_types) | set(rmaps))}
        header = {"instrument": instrument, "mapping": "INSTRUMENT", "name": imap_name,
                  "observatory": "JWST", "parkey": ("REFTYPE",)}
        _write_mapping(mappings / imap_name, _mapping_text(header, pprint.pformat(selector)))
        imaps[instrument] = imap_name
    header = {"mapping": "PIPELINE", "name": context_name, "observatory": "JWST",
              "parkey": ("META.INSTRUMENT.NAME",)}
    _write_mapping(mappings / context_name, _mapping_text(header, pprint.pformat(imaps)))
    _write_config(root, context_name)
    from calwebb.references import forget_crds_state

    forget_crds_state()  # mappings of this name may have been read before in this process
    return root


def _pars_classes() -> list[str]:
    from calwebb.stpipe.registry import classes

    return sorted(set(PARS_CLASSES) | set(classes()))


def _place(source: Path, target: Path) -> None:
    """``source`` as ``target``: a hard link to the same bytes, or a copy across devices."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _rmap_text(name: str, instrument: str, reftype: str, entries: list) -> str:
    keys = MATCH_KEYS.get(reftype, DEFAULT_MATCH_KEYS)
    if reftype.startswith("pars-"):
        keys = (EXP_TYPE,)
    matches: dict[tuple, dict[str, str]] = defaultdict(dict)
    for meta, path in entries:
        match = tuple(_match_value(meta, key, reftype) for key in keys)
        useafter = str(meta["META.USEAFTER"]).replace("T", " ")[:19]
        matches[match][useafter] = path.name
    lines = ["Match({"]
    for match, dates in sorted(matches.items()):
        lines.append(f"    {match!r} : UseAfter({{")
        lines += [f"        {date!r} : {file!r}," for date, file in sorted(dates.items())]
        lines.append("    }),")
    lines.append("})")
    header = {
        "classes": ("Match", "UseAfter"), "filekind": reftype.upper(), "instrument": instrument,
        "mapping": "REFERENCE", "name": name, "observatory": "JWST",
        "parkey": (keys, DATE_KEYS), "reffile_required": "NONE",
    }
    return _mapping_text(header, "\n".join(lines))


def _match_value(meta: dict, key: str, reftype: str) -> str:
    """The rmap value for one key: the file's value, its P_ pattern, or N/A (don't care)."""
    pattern = meta.get(PATTERN_KEYS.get(key, ""), "")
    if pattern:
        values = [part.strip() for part in str(pattern).split("|") if part.strip()]
        return "|".join(values) if values else "N/A"
    value = meta.get(key)
    if value in (None, "", "ANY", "GENERIC", "N/A"):
        return "N/A"
    if key == SUBARRAY and value == "FULL" and reftype in CUT_OUT_TYPES:
        return "N/A"  # a full-frame file is cut out for any subarray
    return str(value)


def _mapping_text(header: dict, selector: str) -> str:
    header = {"derived_from": "written by calwebb.references.cache", **header,
              "sha1sum": "@SHA1@"}
    lines = ["header = {"]
    lines += [f"    {key!r} : {value!r}," for key, value in sorted(header.items())]
    lines += ["}", "", f"selector = {selector}", ""]
    text = "\n".join(lines)
    body = "".join(line + "\n" for line in text.splitlines() if "sha1sum" not in line)
    return text.replace("@SHA1@", hashlib.sha1(body.encode("utf-8")).hexdigest())


def _write_mapping(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.part")
    temporary.write_text(text)
    os.replace(temporary, path)


def _write_config(root: Path, context_name: str) -> None:
    config = root / "config" / OBSERVATORY
    config.mkdir(parents=True, exist_ok=True)
    info = {
        "observatory": OBSERVATORY, "latest_context": context_name,
        "operational_context": context_name, "edit_context": context_name,
        "build_context": context_name, "bad_files_list": [], "bad_files": "",
        "force_remote_mode": 0, "last_synced": datetime.now(UTC).isoformat(timespec="seconds"),
        "mappings": [], "reference_url": {}, "crds_version": {},
    }
    (config / "server_config").write_text(pprint.pformat(info) + "\n")
    (config / "bad_files.txt").write_text("")
    (config / "ref_cache_subdir_mode").write_text("instrument")
