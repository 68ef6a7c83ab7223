"""calwebb.stpipe.progress: a tqdm bar on a terminal, nothing (and no tqdm import) otherwise."""

import io
import subprocess
import sys

from calwebb.stpipe import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _on_a_terminal(monkeypatch) -> _Terminal:
    # in the test itself: pytest sets its own sys.stderr again after fixtures
    stream = _Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "_enabled", True)  # a --quiet command run before turns it off
    return stream


def test_a_terminal_gets_a_bar_that_counts(monkeypatch):
    terminal = _on_a_terminal(monkeypatch)
    with progress.progress_bar(3, "Detector1Pipeline", "tile") as bar:
        bar.update(2)
        assert bar.n == 2
        assert bar.total == 3
    assert "Detector1Pipeline" in terminal.getvalue()


def test_no_bar_when_turned_off_suppressed_or_not_on_a_terminal(monkeypatch):
    _on_a_terminal(monkeypatch)
    monkeypatch.setattr(progress, "_enabled", False)
    with progress.progress_bar(3, "off") as bar:
        assert bar is None
    progress.set_enabled(True)
    with progress.suppressed(), progress.progress_bar(3, "inside a task") as bar:
        assert bar is None
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress.progress_bar(3, "a file") as bar:
        assert bar is None


def test_a_batch_run_does_not_import_tqdm():
    code = ("import sys; from calwebb.pipeline.detector1 import Detector1Pipeline; "
            "from calwebb.stpipe import progress\n"
            "with progress.progress_bar(2, 'x') as bar: assert bar is None\n"
            "print('tqdm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
