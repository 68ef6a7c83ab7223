"""Reference selection from a simulated CRDS cache, offline, for a block of test code."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from calwebb import references


@contextmanager
def offline_crds(crds_path):
    """CRDS_PATH = ``crds_path``, no CRDS server or context (nor CALWEBB_REFS), no CRDS step
    parameters; the environment and calwebb's CRDS state are restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRDS_PATH", str(crds_path))
        patch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
        for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT", "CALWEBB_REFS"):
            patch.delenv(variable, raising=False)
        references.forget_crds_state()
        try:
            yield
        finally:
            references.forget_crds_state()
