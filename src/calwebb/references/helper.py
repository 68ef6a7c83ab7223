"""The crds client in a forked helper process, so that this one does not wait for it.

Importing the crds client and reading the rules take ~0.2 s, about as long as numba takes
to load its first compiled function, and a pipeline needs both before it can start. When
this process has not imported crds yet and can fork safely (Linux, no other Python thread),
``start`` forks a helper that imports crds and answers this process's CRDS questions
(``call``) for as long as it lives, and meanwhile loads numba here: on two cores the two
overlap. Otherwise (or if the helper fails) every question is answered here.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import warnings

from calwebb.errors import ReferenceFileError

log = logging.getLogger(__name__)


class HelperFailed(Exception):
    """The helper process could not answer (it is then stopped)."""


class Helper:
    """A forked process running functions of ``calwebb.references`` on request."""

    def __init__(self):
        context = multiprocessing.get_context("fork")
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end,), daemon=True)
        with warnings.catch_warnings():  # Python 3.12+ warns of native threads (``_may_fork``)
            warnings.simplefilter("ignore", DeprecationWarning)
            self.process.start()
        child_end.close()
        self.lock = threading.Lock()  # one question at a time on the connection

    def ask(self, name: str, *args):
        """``calwebb.references.<name>(*args)`` run in the helper."""
        try:
            with self.lock:
                self.connection.send((name, args))
                kind, value = self.connection.recv()
        except (EOFError, OSError) as exc:
            raise HelperFailed(f"the helper process ended ({exc})") from exc
        if kind == "error":
            raise ReferenceFileError(value)
        if kind == "failed":
            raise HelperFailed(value)
        return value

    def close(self) -> None:
        self.connection.close()  # the helper sees the end of its questions and exits
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()


def _serve(connection) -> None:
    from calwebb import references

    references.context_name()  # crds imported and its rules read before the first question
    while True:
        try:
            name, args = connection.recv()
        except EOFError:
            return
        try:
            answer = ("value", getattr(references, name)(*args))
        except ReferenceFileError as exc:
            answer = ("error", str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported; this process asks again
            answer = ("failed", f"{type(exc).__name__}: {exc}")
        connection.send(answer)


_helper: Helper | None = None


def _forget_in_child() -> None:
    """A process forked from this one (a worker, the helper itself) shares the helper's
    connection: it must not ask over it."""
    global _helper
    _helper = None


os.register_at_fork(after_in_child=_forget_in_child)


def start() -> None:
    """Fork the helper if this process may and has none, then load numba here meanwhile."""
    global _helper
    if _helper is not None or not _may_fork():
        return
    _helper = Helper()
    from calwebb.kernels import warm_up

    warm_up()


def call(name: str, *args):
    """``calwebb.references.<name>(*args)``: in the helper while one runs (ReferenceFileError
    as raised there), else here."""
    if _helper is not None:
        try:
            return _helper.ask(name, *args)
        except HelperFailed as exc:
            log.debug("CRDS helper process failed (%s); CRDS is asked here", exc)
            stop()
    from calwebb import references

    return getattr(references, name)(*args)


def stop() -> None:
    """End the helper (its CRDS state is stale, or it failed)."""
    global _helper
    if _helper is not None:
        _helper.close()
        _helper = None


def _may_fork() -> bool:
    """Linux, the crds client not imported here yet, and no other Python thread (one could
    hold a lock the helper needs). Native worker pools (OpenBLAS, numba's) are not copied
    into the helper, which uses neither."""
    return sys.platform.startswith("linux") and "crds" not in sys.modules and \
        threading.active_count() == 1
