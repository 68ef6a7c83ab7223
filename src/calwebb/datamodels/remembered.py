"""What parsing a file's headers gives, remembered on disk for each version of the file.

Opening a reference file parses every card of every header and its embedded ASDF tree
(5-10 ms each with astropy and asdf); a pipeline opens a dozen, and the same references serve
exposure after exposure. ``remembered`` keeps such a result (metadata trees, where each array
sits in the file) in calwebb's cache directory, keyed by the file's path, size, modification
time and inode and by the code that parsed it, so that later runs load it instead (well
under a millisecond). A cache that cannot be read or written is passed by: the result is
then computed as before.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from calwebb.cache_dir import cache_root

log = logging.getLogger(__name__)

T = TypeVar("T")
#: entries kept; beyond, the oldest half goes when a new one is written
MAX_ENTRIES = 2000


def remembered(path: str | os.PathLike, kind: str, compute: Callable[[], T]) -> T:
    """``compute()``, the result of parsing ``path`` in the way ``kind`` names, from the cache
    when this version of the file was parsed so before (and stored there when not)."""
    try:
        status = os.stat(path)
    except OSError:
        return compute()
    parser = getattr(getattr(compute, "__code__", None), "co_filename", "")
    version = "\0".join(map(str, (os.path.abspath(path), status.st_size, status.st_mtime_ns,
                                  status.st_ino, kind, _code_version(parser))))
    entry = cache_root() / "parsed" / f"{hashlib.sha1(version.encode()).hexdigest()}.pickle"
    try:
        with open(entry, "rb") as stream:
            return pickle.load(stream)
    except FileNotFoundError:
        pass
    except Exception as exc:  # noqa: BLE001 - a damaged entry is parsed again and replaced
        log.debug("%s: cached parse unreadable (%s); parsed again", entry, exc)
    value = compute()
    _store(entry, value)
    return value


@functools.cache
def _code_version(parser: str) -> str:
    """calwebb's version and the state of the code that made a result: the data-model
    package (parsing, the classes a result holds) and the ``parser``'s own source file, so
    that an edited checkout does not load what older code stored."""
    from calwebb import __version__

    package = Path(__file__).parent
    files = sorted(package.glob("*.py")) + sorted(package.glob("*.yaml"))
    if parser and Path(parser).is_file():
        files.append(Path(parser))
    return __version__ + "".join(f"|{file}:{file.stat().st_size}:{file.stat().st_mtime_ns}"
                                 for file in files)


def _store(entry: Path, value: object) -> None:
    """Write ``entry`` atomically (a temporary file renamed), making room when full."""
    temporary = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=entry.parent, suffix=".part")
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(value, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, entry)
        temporary = None
        _prune(entry.parent)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        log.debug("%s: parse not cached (%s)", entry, exc)
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def _prune(directory: Path) -> None:
    entries = list(directory.glob("*.pickle"))
    if len(entries) <= MAX_ENTRIES:
        return
    by_age = sorted(entries, key=lambda entry: entry.stat().st_mtime_ns)
    for entry in by_age[:len(entries) // 2]:
        entry.unlink(missing_ok=True)
