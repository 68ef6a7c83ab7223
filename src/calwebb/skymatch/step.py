"""SkyMatchStep: measure the sky of Stage-3 images, equalise it between overlapping images and
record (default) or subtract it (stage3.md §2.4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from itertools import repeat
from pathlib import Path

import numpy as np

from calwebb import datamodels
from calwebb.associations.library import ModelLibrary
from calwebb.errors import DataModelError, ParameterError
from calwebb.parallel.executor import as_files, current
from calwebb.skymatch import matching
from calwebb.skymatch.statistics import SkyStatistic, good_bits, good_pixel_mask
from calwebb.stpipe import Step
from calwebb.suffixes import split_suffix

METHODS = (*matching.COMPUTED_METHODS, "user")
log = logging.getLogger(__name__)


@dataclass
class _Member:
    """What the sky computation keeps of one image between passes (no pixel arrays)."""

    index: int
    name: str
    shape: tuple[int, int]
    inverse: object  # (ra, dec) -> (x, y)
    polygon: object  # spherical footprint
    base_level: float  # sky already subtracted from SCI (counts toward the recorded level)
    local: float | None = None
    intersections: dict = field(default_factory=dict)  # group position -> [(polygon, area)]
    overlaps: dict = field(default_factory=dict)  # group position -> (sky, npix, area)


class SkyMatchStep(Step):
    """Sky per image or exposure group (``local``/``global``), matched between overlapping
    images (``match``/``global+match``) or read from a file (``user``); recorded in
    BKGLEVEL/BKGSUB/BKGMETH and subtracted from SCI when ``subtract`` is set."""

    class_alias = "skymatch"
    #: inside ``calwebb.parallel.using(...)`` its per-exposure work runs as tasks
    exposure_tasks = True
    spec = """
        skymethod = option('local', 'global', 'match', 'global+match', 'user', default='match')  # sky computation method
        match_down = boolean(default=True)  # match toward the lowest sky (False: the highest)
        subtract = boolean(default=False)  # subtract the sky from SCI
        skylist = string(default=None)  # for 'user': text file of image name and sky value
        stepsize = integer(default=None)  # max vertex spacing (pixels) of footprint polygons
        skystat = option('median', 'midpt', 'mean', 'mode', default='mode')  # sky statistic
        dqbits = string(default='~DO_NOT_USE+NON_SCIENCE')  # DQ bits of usable pixels
        lower = float(default=None)  # lowest pixel value used for the sky
        upper = float(default=None)  # highest pixel value used for the sky
        nclip = integer(min=0, default=5)  # number of clipping iterations
        lsigma = float(min=0.0, default=4.0)  # lower clipping limit (standard deviations)
        usigma = float(min=0.0, default=4.0)  # upper clipping limit (standard deviations)
        binwidth = float(min=0.0, default=0.1)  # histogram bin (standard deviations) for mode/midpt
        in_memory = boolean(default=True)  # False: keep the images in temporary files
    """  # noqa: E501 - option lists

    # -- inputs --------------------------------------------------------------------------------
    def prepare_input(self, value):
        """A library is used as is; files stay paths (the library opens them); models are not
        copied here (the library copies a caller's model before changing it)."""
        return self.members_as_given(
            value, (ModelLibrary, datamodels.DataModel),
            "image models, files, a list of them, an association or a ModelLibrary")

    # -- processing ----------------------------------------------------------------------------
    def process(self, value):
        statistic = self._check_parameters()
        library = value if isinstance(value, ModelLibrary) else ModelLibrary(
            value, on_disk=not self.in_memory)
        if self.skymethod == "user":
            levels = self._user_levels(library)
            computed = {index: (level, True) for index, level in levels.items()}
        else:
            computed = self._computed_levels(library, statistic)
        self._record(library, computed)
        return library

    def _check_parameters(self) -> SkyStatistic | None:
        if self.skymethod not in METHODS:
            raise ParameterError(f"skymethod must be one of {', '.join(METHODS)}; got "
                                 f"{self.skymethod!r}")
        if self.stepsize is not None and self.stepsize < 1:
            raise ParameterError(f"stepsize must be a positive number of pixels or None; got "
                                 f"{self.stepsize!r}")
        if self.skymethod == "user":
            if not self.skylist:
                raise ParameterError("skymethod 'user' needs skylist, a file of image names "
                                     "and sky values")
            return None
        self._good_bits = good_bits(self.dqbits)
        return SkyStatistic(skystat=self.skystat, lower=self.lower, upper=self.upper,
                            nclip=self.nclip, lsigma=self.lsigma, usigma=self.usigma,
                            binwidth=self.binwidth)

    # -- computed skies --------------------------------------------------------------------------
    def _computed_levels(self, library: ModelLibrary,
                         statistic: SkyStatistic) -> dict[int, tuple[float, bool]]:
        """{member index: (sky level, valid)}, measured in two passes over the members:
        footprints first, then each image's own and overlap skies (one image in memory at a
        time when the library is on disk)."""
        groups = list(library.group_indices.values())
        members: dict[int, _Member] = {}
        with library:
            for indices in groups:
                for index in indices:
                    model = library.borrow(index)
                    try:
                        members[index] = self._describe(model, index)
                    finally:
                        library.shelve(model, index, modify=False)
        do_match = "match" in self.skymethod
        order = [index for indices in groups for index in indices]
        if do_match:
            positions = [position for position, indices in enumerate(groups) for _ in indices]
            overlaps = matching.overlaps_by_group([members[index].polygon for index in order],
                                                  positions)
            for index, intersections in zip(order, overlaps, strict=True):
                members[index].intersections = intersections
        settings = dict(good_bits=self._good_bits, do_local=self.skymethod != "match",
                        do_match=do_match)
        executor = current()
        if executor is not None:
            self._measure_by_tasks(executor, library, order, members, statistic, settings)
        else:
            with library:
                for index in order:
                    model = library.borrow(index)
                    try:
                        measure_sky(model, members[index], statistic, **settings)
                    finally:
                        library.shelve(model, index, modify=False)

        local = [matching.group_local_sky([members[i].local for i in indices])
                 for indices in groups]
        n = len(groups)
        overlap_sky = np.full((n, n), np.nan)
        overlap_counts = np.zeros((n, n))
        if do_match:
            for g, indices in enumerate(groups):
                for h in range(n):
                    if h == g:
                        continue
                    values, counts, areas = zip(*(members[i].overlaps[h] for i in indices),
                                                strict=True)
                    sky, count = matching.group_overlap_sky(values, counts, areas)
                    overlap_counts[g, h] = count if sky is not None else 0
                    if sky is not None:
                        overlap_sky[g, h] = sky
        levels, valid = matching.sky_levels(self.skymethod, local, overlap_sky, overlap_counts,
                                            self.match_down)
        result = {}
        for g, indices in enumerate(groups):
            for index in indices:
                result[index] = (float(levels[g]), bool(valid[g]))
        return result

    def _describe(self, model, index: int) -> _Member:
        name = model.meta.filename or f"input {index}"
        if model.data.ndim != 2:
            raise DataModelError(f"{name}: skymatch needs 2-D images; SCI has shape "
                                 f"{model.data.shape}")
        wcs = model.meta.wcs
        if wcs is None or not hasattr(wcs, "invert"):
            raise DataModelError(f"{name}: no WCS in meta.wcs (run assign_wcs first)")
        base = self._previous_level(model, name)
        shape = tuple(int(n) for n in model.data.shape)
        try:
            polygon = matching.footprint(
                lambda x, y: wcs(x, y, with_bounding_box=False), shape, self.stepsize)
        except ValueError as exc:
            raise DataModelError(f"{name}: cannot compute the footprint: {exc}") from None
        return _Member(index=index, name=name, shape=shape, polygon=polygon, base_level=base,
                       inverse=_inverse(wcs))

    def _previous_level(self, model, name: str) -> float:
        """The sky level already subtracted from SCI (0 when none or when not subtracting);
        an error when an earlier run's BKGSUB disagrees with ``subtract``."""
        background = model.meta.background
        if background.subtracted is None:
            if background.level is not None:
                raise DataModelError(
                    f"{name}: BKGLEVEL is {background.level} but BKGSUB is not set, so it is "
                    "unknown whether that sky was subtracted")
            return 0.0
        if background.level is None:
            raise DataModelError(f"{name}: BKGSUB is {background.subtracted} but BKGLEVEL "
                                 "(meta.background.level) is not set")
        if bool(background.subtracted) != bool(self.subtract):
            raise DataModelError(
                f"{name}: an earlier skymatch run recorded BKGSUB={bool(background.subtracted)}"
                f" (BKGLEVEL={background.level}); it cannot be re-run with subtract="
                f"{bool(self.subtract)}")
        return float(background.level) if self.subtract else 0.0

    def _measure_by_tasks(self, executor, library, order, members, statistic,
                          settings) -> None:
        """``measure_sky`` of every member (indices in ``order``), one task each."""
        self.log.info("Sky measuring tasks on %s", executor.description)
        with executor.scratch("calwebb_skymatch_") as directory:
            paths = as_files((library.source(index) for index in order), directory)
            done = executor.map(
                measure_sky_file, paths, [replace(members[index], inverse=None)
                                          for index in order],
                repeat(statistic), repeat(settings))
            for index, (local, overlaps) in zip(order, done, strict=True):
                members[index].local, members[index].overlaps = local, overlaps

    # -- user skies -------------------------------------------------------------------------------
    def _user_levels(self, library: ModelLibrary) -> dict[int, float]:
        """{member index: sky} from ``skylist``, matching names by their stem without a known
        suffix; every image must appear exactly once."""
        path = Path(self.skylist).expanduser()
        entries = read_skylist(path)
        if len(entries) != len(library):
            raise ParameterError(f"skylist {path} has {len(entries)} entries but there are "
                                 f"{len(library)} images")
        by_stem: dict[str, list[float]] = {}
        for name, sky in entries:
            by_stem.setdefault(_stem(name), []).append(sky)
        levels = {}
        with library:
            for index in range(len(library)):
                model = library.borrow(index)
                try:
                    name = model.meta.filename or f"input {index}"
                    self._previous_level(model, name)
                finally:
                    library.shelve(model, index, modify=False)
                skies = by_stem.get(_stem(name), [])
                if not skies:
                    raise ParameterError(f"skylist {path} has no entry for {name} "
                                         f"(stem {_stem(name)!r})")
                if len(skies) > 1:
                    raise ParameterError(f"skylist {path} lists {name} (stem "
                                         f"{_stem(name)!r}) {len(skies)} times")
                levels[index] = skies[0]
        return levels

    # -- results ---------------------------------------------------------------------------------
    def _record(self, library: ModelLibrary, computed: dict[int, tuple[float, bool]]) -> None:
        """Write level/subtracted/method and S_SKYMAT to every member; subtract when asked.
        User levels replace any earlier one; computed levels add to the sky already
        subtracted by an earlier run with ``subtract=True``."""
        with library:
            for index in range(len(library)):
                model = library.writable(index)
                level, valid = computed[index]
                name = model.meta.filename or f"input {index}"
                if valid:
                    base = 0.0 if self.skymethod == "user" else \
                        self._previous_level(model, name)
                    background = model.meta.background
                    background.level = base + level
                    background.subtracted = bool(self.subtract)
                    background.method = self.skymethod
                    if self.subtract:
                        model.data = model.data - np.float32(level)
                    self.set_status(model, "COMPLETE")
                    self.log.info("%s: sky %.6g%s", name, base + level,
                                  " (subtracted)" if self.subtract else "")
                else:
                    self.log.warning("%s: the sky could not be computed", name)
                    self.set_status(model, "SKIPPED")
                self.finalize_result(model)
                if self.save_results:
                    self.save_model(model, output_file=name)
                library.shelve(model, index, modify=True)


def measure_sky(model, member: _Member, statistic: SkyStatistic, good_bits, do_local: bool,
                do_match: bool) -> None:
    """The image's sky over all its good pixels (``member.local``) and inside its overlap
    with every other group (``member.overlaps``: statistic, pixels, solid angle), the overlap
    given by ``member.intersections``."""
    data = model.data
    good = good_pixel_mask(data, model.dq if model.has_array("dq") else None, good_bits)
    if do_local:
        member.local, _ = statistic(data, good)
        log.debug("%s: sky %s", member.name, member.local)
    if not do_match:
        return
    polygons = {}
    for other, found in member.intersections.items():
        member.overlaps[other] = (None, 0, 0.0)  # no overlap, unless measured below
        if found:
            polygons[other] = [polygon for polygon, _ in found]
    for other, mask in matching.overlap_masks(polygons, member.inverse, member.shape):
        mask &= good
        area = sum(area for _, area in member.intersections[other])
        member.overlaps[other] = (*statistic(data, mask), area)


def _inverse(wcs):
    """(ra, dec) → (x, y) of ``wcs``, outside its bounding box too."""
    return lambda ra, dec: wcs.invert(ra, dec, with_bounding_box=False)


def measure_sky_file(path: str, member: _Member, statistic: SkyStatistic,
                     settings: dict) -> tuple[float | None, dict]:
    """Task: ``measure_sky`` of the image in ``path``; returns (local sky, overlaps)."""
    model = datamodels.open(path)
    member.inverse = _inverse(model.meta.wcs)
    measure_sky(model, member, statistic, **settings)
    return member.local, member.overlaps


def read_skylist(path: Path) -> list[tuple[str, float]]:
    """(image name, sky) per line of a whitespace-separated text file; blank lines and lines
    starting with ``#`` are ignored."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ParameterError(f"skylist {path} cannot be read: {exc.strerror or exc}") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        columns = text.split()
        try:
            if len(columns) < 2:
                raise ValueError
            entries.append((columns[0], float(columns[1])))
        except ValueError:
            raise ParameterError(f"skylist {path} line {number}: expected an image name and a "
                                 f"sky value, got {text!r}") from None
    return entries


def _stem(name: str) -> str:
    """A file name without directory, extension and one known suffix (``_cal``, ...)."""
    return split_suffix(Path(str(name)).stem)[0]
