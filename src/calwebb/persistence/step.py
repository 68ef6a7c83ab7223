"""PersistenceStep: flag groups taken soon after a pixel saturated (off by default)."""

from __future__ import annotations

from pathlib import Path

import asdf
import numpy as np

from calwebb import datamodels
from calwebb.persistence.windows import flag_persistence, mjd_to_unix
from calwebb.stpipe import Step


class PersistenceStep(Step):
    """Flag PERSISTENCE within persistence_time seconds of each pixel's first saturation."""

    class_alias = "persistence"
    spec = """
        save_persistence = string(default=None)  # ASDF file to save the window array in
        persistence_time = integer(default=None)  # seconds a persistence window lasts
        dn_threshold = float(default=None)  # also open windows where the signal exceeds this
        persistence_array_file = string(default=None)  # ASDF windows from earlier exposures
        persistence_dnu = boolean(default=False)  # set DO_NOT_USE together with PERSISTENCE
        skip = boolean(default=True)
    """
    input_model_class = datamodels.RampModel

    def process(self, model):
        ny, nx = model.data.shape[-2:]
        windows = np.zeros((ny, nx))
        if self.persistence_time is None or self.persistence_time <= 0:
            self.log.info("No persistence_time: nothing to flag")
            self.set_status(model, "COMPLETE")
            return model
        if self.persistence_array_file:
            self._load_windows(model, windows)
        exposure = model.meta.exposure
        if model.has_array("int_times") and len(model.int_times) >= model.data.shape[0]:
            starts = [mjd_to_unix(value) for value in
                      model.int_times["int_start_MJD_UTC"][:model.data.shape[0]]]
        else:
            first = mjd_to_unix(exposure.start_time or 0.0)
            starts = [first + index * (exposure.integration_time or 0.0)
                      for index in range(model.data.shape[0])]
        flag_persistence(model.data, model.groupdq, windows, starts, exposure.group_time,
                         self.persistence_time, self.dn_threshold, self.persistence_dnu)
        if self.save_persistence:
            self._save_windows(model, windows)
        self.set_status(model, "COMPLETE")
        return model

    def _load_windows(self, model, windows) -> None:
        path = Path(self.persistence_array_file)
        if not path.exists():
            self.log.info("Persistence array file %s does not exist; starting afresh", path)
            return
        with asdf.open(path) as stored:
            entry = stored.tree.get(model.meta.instrument.detector)
            if entry is None or entry["pers_time"] != self.persistence_time:
                self.log.info("%s has no windows for this detector and persistence_time", path)
                return
            windows[np.asarray(entry["rows"]), np.asarray(entry["cols"])] = np.asarray(
                entry["vals"])

    def _save_windows(self, model, windows) -> None:
        path = Path(self.save_persistence).with_suffix(".asdf")
        tree = {}
        if path.exists():
            with asdf.open(path) as stored:
                tree = {key: value for key, value in stored.tree.items()
                        if key not in ("asdf_library", "history")}
                tree = asdf.treeutil.walk_and_modify(tree, lambda node: np.array(node)
                                                     if hasattr(node, "dtype") else node)
        rows, cols = np.nonzero(windows)
        tree[model.meta.instrument.detector] = {
            "filename": model.meta.filename, "rows": rows, "cols": cols,
            "vals": windows[rows, cols], "pers_time": self.persistence_time,
        }
        asdf.AsdfFile(tree).write_to(path)
        self.log.info("Saved persistence windows in %s", path)
