"""calwebb_image3: the cal images of a Level 3 association → an aligned, sky-matched,
outlier-cleaned mosaic (i2d) and its source catalog (stage3.md §2)."""

from __future__ import annotations

from pathlib import Path

from calwebb import datamodels
from calwebb.assign_mtwcs.step import AssignMTWcsStep
from calwebb.associations.library import ModelLibrary
from calwebb.datamodels.io import writes_in_background
from calwebb.errors import DataModelError
from calwebb.outlier_detection.step import OutlierDetectionStep
from calwebb.parallel.executor import current
from calwebb.resample.step import ResampleStep
from calwebb.skymatch.step import SkyMatchStep
from calwebb.source_catalog.step import SourceCatalogStep
from calwebb.stpipe import Pipeline
from calwebb.tweakreg.step import TweakRegStep


class Image3Pipeline(Pipeline):
    """Align, sky-match, reject outliers, drizzle the mosaic and catalog its sources."""

    class_alias = "calwebb_image3"
    spec = """
        in_memory = boolean(default=True)  # False: members wait in temporary files
    """
    #: run inside ``calwebb.parallel.using(...)``, the per-exposure work goes to its workers
    exposure_tasks = True
    step_defs = {"assign_mtwcs": AssignMTWcsStep, "tweakreg": TweakRegStep,
                 "skymatch": SkyMatchStep, "outlier_detection": OutlierDetectionStep,
                 "resample": ResampleStep, "source_catalog": SourceCatalogStep}

    def process(self, value):
        self.outlier_detection.suffix = "crf"
        self.outlier_detection.mode = "imaging"
        self.resample.suffix = "i2d"
        for child in (self.outlier_detection, self.source_catalog):
            child.save_results = child.save_results or self.save_results
        library = self._library(value)
        try:
            return self._run_steps(library)
        finally:
            if library is not value:  # its temporary files go now, not whenever it is freed
                library.close()

    def _run_steps(self, library: ModelLibrary):
        if library.product_name and not self.output_file:
            self.output_file = library.product_name
        with library:  # the first member tells (no need to read the others)
            first = library.borrow(0)
            moving = str(first.meta.target.type or "").lower() == "moving"
            library.shelve(first, 0, modify=False)
        if moving:
            library = self.assign_mtwcs.run(library)
        else:
            library = self.tweakreg.run(library)
        library = self.skymatch.run(library)
        with writes_in_background():  # crf files written while the steps that only read run
            library = self.outlier_detection.run(library)
            mosaic = self.resample.run(library)  # (with the library's pixel maps on its grid)
            if not isinstance(mosaic, datamodels.ImageModel):
                raise DataModelError("calwebb_image3: resample did not produce a 2-D mosaic")
            mosaic.meta.filename = f"{self.output_file or _root(mosaic.meta.filename)}_i2d.fits"
            self.suffix = "i2d"
            self.output_use_model = True
            if mosaic.meta.cal_step.resample == "COMPLETE":
                self.source_catalog.output_use_model = True
                self.source_catalog.run(mosaic)
        return mosaic

    def _library(self, value) -> ModelLibrary:
        if isinstance(value, ModelLibrary):
            return value
        if isinstance(value, str) and Path(value).suffix.lower() not in (".json", ".fits",
                                                                         ".asdf"):
            raise DataModelError(f"{value}: calwebb_image3 takes an association (.json), a "
                                 ".fits/.asdf file or models")
        executor = current()
        if executor is not None:  # tasks read the members from files
            self.log.info("Per-exposure work on %s; members wait in temporary files under %s",
                          executor.description, executor.directory)
            return ModelLibrary(value, on_disk=True, temp_directory=executor.directory)
        return ModelLibrary(value, on_disk=not self.in_memory)

    def prepare_input(self, value):
        """Files stay paths (the library opens members when they are needed)."""
        if isinstance(value, str | Path):
            return str(self._resolve_input_path(value))
        return value


def _root(filename: str | None) -> str:
    """A file name without extension and without its last ``_suffix``."""
    stem = Path(filename or "image3").stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem
