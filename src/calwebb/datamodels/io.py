"""Reading and writing models: JWST FITS (header keywords + named HDUs + ASDF extension) and ASDF.

Files calwebb writes follow the official layout (dataformats.md §2): an empty primary HDU
with the primary keywords, one HDU per array named by EXTNAME, and a last ``ASDF`` BINTABLE
holding the whole tree, whose arrays point at their HDUs (``source: fits:SCI,1``) instead of
repeating their bytes. Writing is atomic: a temporary file in the target directory is
renamed over the destination only when complete.

Arrays are read when first used (``fits_arrays``); ASDF documents go through
``asdf_library``, which loads only the asdf plugins a document needs.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asdf
import numpy as np
from asdf.tagged import TaggedDict
from asdf.tags.core import NDArrayType
from asdf.tags.core.ndarray import numpy_dtype_to_asdf_datatype
from astropy.io import fits

from calwebb.datamodels import keywords
from calwebb.datamodels.asdf_library import asdf_config, core_plugins, open_asdf, write_asdf
from calwebb.datamodels.fits_arrays import ImageLoader, TableLoader
from calwebb.datamodels.remembered import remembered
from calwebb.datamodels.tree import copy_containers, get_path, set_path
from calwebb.errors import DataModelError

if TYPE_CHECKING:
    from calwebb.datamodels.base import ArraySpec, DataModel

log = logging.getLogger(__name__)

ASDF_EXTNAME = "ASDF"
ASDF_COLUMN = "ASDF_METADATA"
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|EXTNAME|EXTVER|BZERO|BSCALE|"
    r"TFIELDS|T(TYPE|FORM|UNIT|DIM|NULL|SCAL|ZERO|DISP)\d+|CHECKSUM|DATASUM|HISTORY|COMMENT|)$"
)
_TREE_ONLY_TOP_KEYS = ("asdf_library", "_fits_hash")


# -- reading ------------------------------------------------------------------------------
def read_into(model: DataModel, path: Path) -> None:
    """Fill ``model`` from ``path`` (FITS or ASDF); arrays load lazily on first access."""
    if not path.exists():
        raise DataModelError(f"{path}: no such file")
    if path.suffix.lower() == ".asdf":
        _read_asdf(model, path)
    else:
        _read_fits(model, path)
    model.meta.filename = path.name


def open_fits(path: Path) -> fits.HDUList:
    """Open a FITS file memory-mapped and unscaled; DataModelError if unreadable or truncated."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=fits.verify.VerifyWarning)
            # truncation is checked below and reported as a DataModelError
            warnings.filterwarnings("ignore", message="File may have been truncated")
            hdul = fits.open(path, memmap=True, do_not_scale_image_data=True, lazy_load_hdus=False)
    except (OSError, ValueError, TypeError, fits.verify.VerifyWarning) as exc:
        raise DataModelError(f"{path}: not a readable FITS file ({exc})") from exc
    size = path.stat().st_size
    for index in range(len(hdul)):
        info = hdul.fileinfo(index)
        if info["datLoc"] + info["datSpan"] > size:
            hdul.close()
            raise DataModelError(
                f"{path}: truncated: HDU {index} ({hdul[index].name}) needs "
                f"{info['datLoc'] + info['datSpan']} bytes, the file has {size}"
            )
    return hdul


def _read_fits(model: DataModel, path: Path) -> None:
    cls = type(model)
    if cls.remember_headers:  # files read again and again, unchanged (references)
        path = path.absolute()  # as the remembered loaders hold it, whatever the directory
        tree, arrays = remembered(path, f"{cls.__module__}.{cls.__qualname__}",
                                  lambda: _parse_fits(cls, path))
    else:
        tree, arrays = _parse_fits(cls, path)
    model.tree.clear()
    model.tree.update(tree)
    model.tree.setdefault("meta", {})
    for name, value in arrays.items():
        if isinstance(value, np.ndarray):
            setattr(model, name, value)
        else:
            model.set_loader(name, value)
    _require_primary(model, path)


def _parse_fits(cls: type[DataModel], path: Path) -> tuple[dict, dict[str, Any]]:
    """(metadata tree, {array name: loader, or the table itself}) of a FITS file read as a
    ``cls``: headers and embedded tree parsed, no image read."""
    arrays: dict[str, Any] = {}
    with open_fits(path) as hdul:
        tree = _embedded_tree(hdul, path)
        for name in cls.arrays:
            tree.pop(name, None)
        _headers_to_tree(hdul, tree, cls.keyword_hdus, path)
        _history_from_header(hdul, tree)
        present = {(hdu.name, hdu.ver) for hdu in hdul[1:]}
        for name, spec in cls.arrays.items():
            if (spec.extname, 1) not in present:
                continue
            hdu = hdul[(spec.extname, 1)]
            _check_hdu(path, hdu, spec, cls.__name__)
            index = hdul.index_of((spec.extname, 1))
            if spec.is_table:
                arrays[name] = _table_array(hdu, path, hdul.fileinfo(index)["datLoc"])
            else:
                arrays[name] = ImageLoader(path, hdul, index, spec.dtype)
    return tree, arrays


def _require_primary(model: DataModel, path: Path) -> None:
    primary = getattr(type(model), "primary_array", "data")
    if primary and not model.has_array(primary):
        extname = type(model).arrays[primary].extname
        raise DataModelError(
            f"{path}: no {extname} extension; a {type(model).__name__} needs its {extname} array"
        )


def _check_hdu(path: Path, hdu: Any, spec: ArraySpec, model_name: str) -> None:
    if spec.is_table:
        if not isinstance(hdu, fits.BinTableHDU):
            raise DataModelError(f"{path}: {spec.extname} must be a table for {model_name}")
        return
    if not isinstance(hdu, fits.ImageHDU | fits.CompImageHDU):
        raise DataModelError(f"{path}: {spec.extname} must be an image HDU for {model_name}")
    ndim = hdu.header.get("NAXIS", 0)
    if spec.ndim and ndim not in spec.ndim:
        raise DataModelError(
            f"{path}: {spec.extname} has {ndim} dimensions; {model_name} expects "
            f"{' or '.join(map(str, spec.ndim))}"
        )
    is_float_on_disk = hdu.header.get("BITPIX", 8) < 0
    if is_float_on_disk and np.dtype(spec.dtype).kind in "ui":
        raise DataModelError(
            f"{path}: {spec.extname} holds floating-point values; {model_name} expects "
            f"{np.dtype(spec.dtype).name}"
        )


def _table_array(hdu: fits.BinTableHDU, path: Path,
                 offset: int) -> np.ndarray | TableLoader:
    """A table HDU (its data at byte ``offset`` of ``path``) as a plain structured array with
    TZERO/TSCAL applied (unsigned columns). A table of stored values alone (nothing to
    convert, no heap) stays in the file: a ``TableLoader`` reads it as it is, whole or in
    bands of rows (not through the memory map, whose pages would count twice while copied;
    the 93 MB IRS2 table is read a band at a time)."""
    data = hdu.data
    if data is None or not data.names:
        return np.zeros(0, dtype=[("empty", "u1")]) if data is None else np.array(data)
    storage = np.asarray(data).view(np.ndarray)  # raw bytes: strings stay bytes
    columns = [
        storage[name] if storage.dtype[name].kind == "S" else np.asarray(data.field(name))
        for name in data.names
    ]
    if not hdu.header.get("PCOUNT") and all(
            column.dtype == storage.dtype[name] and column.shape == storage[name].shape
            and np.may_share_memory(column, storage)
            for name, column in zip(data.names, columns, strict=True)):
        return TableLoader(path, offset, storage.dtype, len(storage))
    dtype = np.dtype([(name, column.dtype, column.shape[1:])
                      for name, column in zip(data.names, columns, strict=True)])
    table = np.empty(len(data), dtype=dtype)
    for name, column in zip(data.names, columns, strict=True):
        table[name] = column
    return table



def _embedded_tree(hdul: fits.HDUList, path: Path) -> dict:
    if ASDF_EXTNAME not in hdul:
        return {"meta": {}}
    try:
        payload = hdul[ASDF_EXTNAME].data[ASDF_COLUMN][0].tobytes()
        return _load_asdf_tree(io.BytesIO(payload))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad file
        raise DataModelError(f"{path}: the ASDF extension cannot be read ({exc})") from exc


def _load_asdf_tree(source: Any) -> dict:
    """The tree of an ASDF document with internal arrays loaded and FITS-linked arrays dropped."""
    with open_asdf(source, lazy_load=True, memmap=False) as af:
        tree = _materialise(af.tree)
    _drop_library_items(tree)
    return tree


def _drop_library_items(tree: dict) -> None:
    """Remove what the asdf library adds by itself (its name, the extensions it used)."""
    for key in _TREE_ONLY_TOP_KEYS:
        tree.pop(key, None)
    history = tree.get("history")
    if isinstance(history, dict):
        history.pop("extensions", None)
        if not history.get("entries"):
            tree.pop("history")
    elif not history:
        tree.pop("history", None)


def history_entries(tree: dict) -> list:
    """The history entries of a tree (``{"entries": [...]}`` or the older plain list)."""
    history = tree.get("history")
    if isinstance(history, dict):
        return list(history.get("entries") or [])
    return list(history) if isinstance(history, list) else []


def _history_text(entry: Any) -> str:
    return str(entry.get("description", "")) if isinstance(entry, dict) else str(entry)


def _history_from_header(hdul: fits.HDUList, tree: dict) -> None:
    """Primary HISTORY cards are the history; tree entries are kept when they agree."""
    cards = [str(text) for text in hdul[0].header.get("HISTORY", [])]
    if not cards:
        return
    entries = history_entries(tree)
    if [_history_text(entry) for entry in entries] != cards:
        tree["history"] = {"entries": [{"description": text} for text in cards]}


def _materialise(node: Any) -> Any:
    if isinstance(node, NDArrayType):
        if isinstance(node._source, str) and node._source.startswith("fits:"):
            return None
        return np.array(node)
    if isinstance(node, dict):
        items = ((key, _materialise(value)) for key, value in node.items())
        return {key: value for key, value in items if value is not None}
    if isinstance(node, list):
        return [_materialise(value) for value in node]
    return node


def _headers_to_tree(hdul: fits.HDUList, tree: dict, moved: dict[str, str], path: Path) -> None:
    """Header cards overwrite tree values (the header is authoritative); the rest is kept."""
    known: dict[str, set[str]] = {}
    for hdu_name in _hdus_with_keywords():
        if hdu_name != "PRIMARY" and hdu_name not in hdul:
            continue
        header = hdul[0 if hdu_name == "PRIMARY" else hdu_name].header
        present = {keyword.upper() for keyword in header.keys()}  # one pass over the cards
        for entry in keywords.in_hdu(hdu_name, moved):
            if entry.keyword.upper() not in present:
                continue
            known.setdefault(hdu_name, set()).add(entry.keyword)
            value = header[entry.keyword]
            if isinstance(value, fits.card.Undefined) or value == "":
                continue
            try:
                set_path(tree, entry.path, value)
            except DataModelError as exc:
                log.warning("%s: %s; keyword ignored", path, exc)
    extra = {}
    for index, hdu in enumerate(hdul):
        name = "PRIMARY" if index == 0 else hdu.name
        if name == ASDF_EXTNAME:
            continue
        cards = [
            [card.keyword, card.value, card.comment]
            for card in hdu.header.cards
            if not _STRUCTURAL.match(card.keyword) and card.keyword not in known.get(name, ())
            and not isinstance(card.value, fits.card.Undefined)
        ]
        if cards:
            extra[name] = {"header": cards}
    if extra:
        tree["extra_fits"] = extra
    else:
        tree.pop("extra_fits", None)


@cache
def _hdus_with_keywords() -> tuple[str, ...]:
    return tuple(sorted({entry.hdu for entry in keywords.table().values() if entry.hdu}))


def _read_asdf(model: DataModel, path: Path) -> None:
    with ExitStack() as stack:
        try:
            af = stack.enter_context(open_asdf(path, lazy_load=True, memmap=True))
        except Exception as exc:  # noqa: BLE001
            raise DataModelError(f"{path}: not a readable ASDF file ({exc})") from exc
        tree = dict(af.tree)
        for name, spec in type(model).arrays.items():
            value = tree.pop(name, None)
            if value is not None:
                setattr(model, name, np.array(value, dtype=spec.dtype))
        rest = _materialise(tree)
    _drop_library_items(rest)
    model.tree.clear()
    model.tree.update(rest)
    model.tree.setdefault("meta", {})
    _require_primary(model, path)


# -- writing ------------------------------------------------------------------------------
class _BackgroundWrites:
    """File writes left to the pool's threads, at most ``queued`` not finished (a caller
    saving faster than the disk takes waits, so memory does not fill up with files to
    write)."""

    def __init__(self, pool: ThreadPoolExecutor, queued: int = 2):
        self._pool = pool
        self._queued = queued
        self._pending: deque[Future] = deque()

    def submit(self, function: Callable, *arguments) -> None:
        while len(self._pending) >= self._queued:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(function, *arguments))

    def wait(self) -> None:
        """Until every file is written; raises the first failure."""
        while self._pending:
            self._pending.popleft().result()


#: the background writes of the enclosing ``writes_in_background`` block
_BACKGROUND: ContextVar[_BackgroundWrites | None] = ContextVar("calwebb_background_writes",
                                                              default=None)


#: files written at once inside ``writes_in_background`` (Image2: an i2d need not wait for
#: the end of its cal file; alternating runs 1.36 -> 1.29 s median)
WRITER_THREADS = 2


@contextmanager
def writes_in_background() -> Iterator[None]:
    """Inside the block, ``write(..., background=True)`` lays out a FITS file at once and
    leaves the writing itself (ASDF extension, byte order, disk) to one of WRITER_THREADS
    background threads, so the caller goes on meanwhile (and a file need not wait for the
    one before it); the block ends when every file is written, raising the first failure (a
    block inside another leaves its files to the outer one). The arrays of a model saved so
    must not change before the block ends (the file reads them; it never changes them)."""
    if _BACKGROUND.get() is not None:
        yield
        return
    with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="calwebb-write") \
            as pool:
        writes = _BackgroundWrites(pool)
        token = _BACKGROUND.set(writes)
        try:
            yield
            writes.wait()
        finally:
            _BACKGROUND.reset(token)


def write(model: DataModel, path: Path, overwrite: bool = True,
          background: bool = False) -> Path:
    """Write ``model`` to ``path`` (FITS, or ASDF for ``.asdf``) atomically; ``background``:
    a FITS file inside ``writes_in_background`` is finished by its thread."""
    if path.exists() and not overwrite:
        raise DataModelError(f"{path}: exists and overwrite is False")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.meta.filename = path.name
    model.meta.date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    model.meta.model_type = type(model).__name__
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    writes = None
    try:
        if path.suffix.lower() == ".asdf":
            finish = partial(_write_asdf, model, Path(temporary))
        else:
            finish = partial(_write_fits, *_fits_layout(model), temporary)
            writes = _BACKGROUND.get() if background else None
    except BaseException:
        os.unlink(temporary)
        raise
    if writes is None:
        _replace(finish, temporary, path)
    else:
        writes.submit(_replace, finish, temporary, path)
    return path


def _replace(finish: Callable[[], None], temporary: str, path: Path) -> None:
    """``finish()`` (which completes the file ``temporary``), then move it to ``path``; the
    temporary file is removed if that fails."""
    try:
        finish()
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _write_fits(hdul: fits.HDUList, tree: dict, path: str) -> None:
    """Write ``hdul`` to ``path`` with ``tree`` as its ASDF extension."""
    hdul.append(_asdf_hdu(tree))
    hdul.writeto(path, overwrite=True)


def _fits_layout(model: DataModel) -> tuple[fits.HDUList, dict]:
    """The model's headers and arrays as an HDUList in the JWST layout, and the tree of its
    ASDF extension (its dicts and lists copied, so later changes to the model's metadata do
    not reach it); nothing is written yet."""
    tree = {key: copy_containers(value) for key, value in model.tree.items()
            if key != "extra_fits"}
    extra = model.tree.get("extra_fits", {})
    primary = fits.PrimaryHDU()
    _tree_to_header(primary.header, model, "PRIMARY", extra)
    for entry in history_entries(model.tree):
        try:
            primary.header.add_history(_history_text(entry))
        except ValueError as exc:
            raise DataModelError(f"history entry {entry!r} cannot be a FITS HISTORY card "
                                 f"({exc})") from exc
    hdul = fits.HDUList([primary])
    for name, spec in type(model).arrays.items():
        if not model.has_array(name):
            continue
        array = getattr(model, name)
        # EXTVER 1 on every array's HDU, as the official files have
        if spec.is_table:  # a copy: astropy swaps a table's bytes in place while writing it
            hdu = fits.BinTableHDU(data=np.array(array, copy=True), name=spec.extname, ver=1)
        else:  # read-only: astropy writes a byte-swapped copy, never the model's array
            hdu = fits.ImageHDU(data=_read_only(np.ascontiguousarray(array)),
                                name=spec.extname, ver=1)
        _tree_to_header(hdu.header, model, spec.extname, extra)
        hdul.append(hdu)
        tree[name] = _fits_reference(hdu)
    return hdul, tree


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _tree_to_header(header: fits.Header, model: DataModel, hdu_name: str, extra: dict) -> None:
    written = set()
    for entry in keywords.in_hdu(hdu_name, model.keyword_hdus):
        value = get_path(model.tree, entry.path)
        if value is None or isinstance(value, dict | list) or _not_finite(value):
            continue  # the tree keeps what a header card cannot hold
        try:
            header[entry.keyword] = value
        except ValueError as exc:
            raise DataModelError(
                f"{entry.path} = {value!r} cannot be written as FITS keyword "
                f"{entry.keyword} in {hdu_name} ({exc})"
            ) from exc
        written.add(entry.keyword)
    for keyword, value, comment in extra.get(hdu_name, {}).get("header", []):
        if keyword not in written and not _STRUCTURAL.match(keyword):
            header.append((keyword, value, comment), end=True)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not np.isfinite(value)


def _fits_reference(hdu: Any) -> TaggedDict:
    if hdu.data is None:
        return None
    datatype, byteorder = numpy_dtype_to_asdf_datatype(
        hdu.data.dtype, include_byteorder=True, override_byteorder="big"
    )
    return TaggedDict(
        {
            "source": f"fits:{hdu.name},{hdu.ver}",
            "shape": list(hdu.data.shape),
            "datatype": datatype,
            "byteorder": byteorder,
        },
        _ndarray_tag(),
    )


@cache
def _ndarray_tag() -> str:
    """The ndarray tag of the ASDF standard this asdf library writes by default."""
    with asdf_config(core_plugins()):
        converter = asdf.AsdfFile().extension_manager.get_converter_for_type(NDArrayType)
    return converter.tags[-1]


def _asdf_hdu(tree: dict) -> fits.BinTableHDU:
    buffer = io.BytesIO()
    write_asdf(tree, buffer)
    payload = np.frombuffer(buffer.getbuffer(), dtype=np.uint8)[None, :]
    column = fits.Column(name=ASDF_COLUMN, format=f"{payload.shape[1]}B", array=payload)
    return fits.BinTableHDU.from_columns([column], name=ASDF_EXTNAME)


def _write_asdf(model: DataModel, path: Path) -> None:
    tree = dict(model.tree)
    for name in type(model).arrays:
        if model.has_array(name):
            tree[name] = getattr(model, name)
    write_asdf(tree, path)


def describe_arrays(path: str | os.PathLike) -> list[tuple[str, tuple, str]]:
    """(EXTNAME, shape, dtype) of every array/table HDU in a file, without reading the data."""
    path = Path(path)
    if path.suffix.lower() == ".asdf":
        with open_asdf(path, lazy_load=True) as af:
            return [(key, tuple(value.shape), str(value.dtype)) for key, value in af.tree.items()
                    if hasattr(value, "shape") and hasattr(value, "dtype")]
    rows = []
    with open_fits(path) as hdul:
        for hdu in hdul[1:]:
            if hdu.name == ASDF_EXTNAME:
                continue
            if isinstance(hdu, fits.BinTableHDU):
                rows.append((hdu.name, (hdu.header.get("NAXIS2", 0),), "table"))
            else:
                axes = [hdu.header[f"NAXIS{n}"] for n in range(1, hdu.header.get("NAXIS", 0) + 1)]
                shape = tuple(reversed(axes))
                unsigned = hdu.header.get("BZERO") in (32768, 2147483648)
                dtype = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32",
                         -64: "float64"}[hdu.header["BITPIX"]]
                rows.append((hdu.name, shape, f"u{dtype}" if unsigned else dtype))
    return rows
