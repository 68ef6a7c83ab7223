"""Stage 1 in bounded memory: the ramp processed in tiles (bands of rows).

``Detector1Pipeline(max_memory="4GB")`` plans its exposure with ``plan_run`` and runs the
``TiledRun``, which streams the ramp through the Stage 1 steps one band of rows at a time and
writes every result into full-size products, so that the working set follows ``max_memory``
instead of the size of the float32 ramp. The results are the same, bit for bit, as the
whole-frame run:

* Steps whose result at a pixel depends only on nearby pixels (saturation growth, IPC,
  charge migration, jump neighbours) read extra rows around the tile (a halo) and keep only
  the tile's own rows.
* Decisions taken over the whole frame split the run into *stages* at the step that needs
  them: the reference-pixel correction is measured from the complete frame's reference
  pixels before refpix runs on any tile; jump and (MIRI) ramp fitting get the groups that
  are DO_NOT_USE on every pixel of the frame; snowballs are flagged on the whole frame's
  group DQ (one byte per sample) after the per-pixel jump detection; counts (cosmic-ray
  rates, RSCD statistics) are summed over the tiles' own rows. Steps that cannot be tiled
  run on the whole frame (with a warning) between stages. A barrier that only needs the
  frame's DO_NOT_USE groups (jump, MIRI ramp fitting) joins the stage before it when that
  stage's steps never change DO_NOT_USE; the refpix measurement is gathered from the tiles of
  the stage before it (from a full frame's reference strips alone, NIR's four or MIRI's two
  side columns, when the next stage replays that one anyway); the last stage stores no rows
  once rate products are certain.
* Between stages the partly corrected ramp lives in files in a temporary directory
  (``TMPDIR``); when the input was already in memory it stays there, corrected in place.

Per tile, a step sees a ``RampModel`` of the tile's rows whose ``meta.subarray`` window is
the tile's, and references cut to the same rows (read from the files row by row, never
whole); tile-aware steps get the tile's context in their ``tile`` attribute.

Around this module: ``bands`` (memory sizes, the bands of rows), ``frame_store`` (the ramp
between stages, the input read band by band), ``tile_references`` (references cut to tiles).

What ``max_memory`` bounds: a tile's arrays and temporaries (estimated per sample, pixel and
integration, plus the references' planes), the frame-sized PIXELDQ/ZEROFRAME/AVDRKCUR kept
whole, and for snowballs and showers the frame's group DQ. Not included: the rate and
rateints products themselves, the interpreter and its libraries.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from calwebb import datamodels, dqflags, memory
from calwebb.datamodels import DataModel
from calwebb.errors import ParameterError, ReferenceFileError
from calwebb.parallel.bands import Tile, format_size, parse_memory, plan_tiles, tile_height
from calwebb.parallel.frame_store import TILE_ARRAYS, FrameStore, InputRows, is_fits, lazy_file
from calwebb.parallel.tile_references import TILE_REFERENCES, TileReferences, shared_reference_types
from calwebb.stpipe.progress import progress_bar

log = logging.getLogger(__name__)


#: bytes per ramp sample while a tile is worked on: data and group DQ, plus the boolean and
#: byte temporaries of saturation, charge migration, jump and ramp fitting
SAMPLE_BYTES = 12
#: bytes per pixel and integration: ZEROFRAME and the tile's slope products
INTEGRATION_BYTES = 48
#: bytes per pixel: PIXELDQ, the small references (mask, saturation, gain, read noise...)
PIXEL_BYTES = 64


@dataclass
class TileContext:
    """What a step running on one tile is told (its ``tile`` attribute)."""

    frame_shape: tuple[int, int]
    row_offset: int  # frame row of the tile model's first row
    rows: slice  # the tile model's own rows (the others are halo)
    all_do_not_use: np.ndarray  # [nints, ngroups]: DO_NOT_USE on every pixel of the frame
    refpix: list | None  # corrections measured on the frame's reference pixels
    counts: Counter  # additive counts over own rows, shared by the stage's tiles
    flags: dict  # frame-wide AND of facts the steps report, shared by the stage's tiles
    run: TiledRun
    column_offset: int = 0  # frame column of the tile model's first column

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """A value computed once per run (a frame-wide statistic of a reference...)."""
        return self.run.memo(key, compute)

    def frame_reference(self, step, reftype: str):
        """``step``'s ``reftype`` reference for the whole frame (arrays read on access)."""
        return self.run.references.open(step, self.run.frame_stub(), reftype)


# -- the run -------------------------------------------------------------------------------
#: steps whose result at a pixel depends on that pixel only
PER_PIXEL_STEPS = ("group_scale", "dq_init", "superbias", "linearity", "dark_current",
                   "firstframe", "lastframe", "reset", "rscd", "persistence")
#: barriers that only need the groups DO_NOT_USE on every pixel of the frame before them
NEEDS_ONLY_DO_NOT_USE = ("jump", "ramp_fit")
#: steps cheap enough (one pass over the samples, no frame-wide decision) that running them
#: again on each tile costs less than storing their result and reading it back: a first
#: stage of only these, reading the input file, is replayed by the next stage
REPLAYABLE_STEPS = (*PER_PIXEL_STEPS, "saturation", "ipc", "charge_migration")
#: steps that never change the DO_NOT_USE flag of the group DQ: the groups DO_NOT_USE over
#: the whole frame when a stage of these starts still hold after them, so a barrier of
#: NEEDS_ONLY_DO_NOT_USE joins their stage instead of starting one (a round trip of the ramp
#: through the store less)
KEEP_DO_NOT_USE = ("group_scale", "ipc", "superbias", "refpix", "linearity", "dark_current",
                   "reset", "jump")
#: steps that set DO_NOT_USE from the flags alone, never from the data values
DO_NOT_USE_FROM_FLAGS = ("dq_init", "firstframe", "lastframe", "rscd")
#: steps that, when they run, set DO_NOT_USE on one group of every pixel alike (its index)
WHOLE_GROUP_DO_NOT_USE = {"lastframe": -1}


@dataclass
class Stage:
    """Consecutive steps run tile by tile ('tiles'), one step run on the whole frame
    ('frame'), or the whole-frame end of the jump step ('jump_events')."""

    kind: str
    steps: list = field(default_factory=list)
    halo: int = 0
    measures_refpix: bool = False  # the first step is refpix: measure it on the whole frame
    #: the first stage, whose steps this stage runs again on each tile (read afresh from the
    #: input file) instead of reading their stored result
    replays: Stage | None = None
    stored: bool = True  # False: its result is not stored (the next stage replays it)
    #: what the stage's steps were told when it first ran (kept for its replay)
    facts: np.ndarray | None = None
    refpix: list | None = None
    tree: dict | None = None

    @property
    def total_halo(self) -> int:
        """Rows read around a tile's own: the replayed stage's halo adds to this one's."""
        return self.halo + (self.replays.halo if self.replays else 0)


@dataclass
class TiledResult:
    rate: DataModel | None
    rateints: DataModel | None
    ramp: DataModel | None  # the corrected ramp (in memory), only when there are no rates


class _DuplicateFilter(logging.Filter):
    """Lets each distinct message through once per run (not once per tile)."""

    def __init__(self):
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class TiledRun:
    """One exposure through the ramp steps of a Stage 1 pipeline, tile by tile.

    ``steps`` are the pipeline's children that will run, in order, ramp_fit (if any) last;
    ``input_path`` is the file the model was opened from (its arrays are then read from the
    file band by band, never whole).
    """

    def __init__(self, pipeline, model: DataModel, steps: list, budget: int,
                 input_path: str | os.PathLike | None = None):
        self.pipeline, self.model, self.steps, self.budget = pipeline, model, steps, budget
        self.path = lazy_file(model, input_path)
        self.input = InputRows(model)
        self.shape = tuple(self.input.shape)
        self.frame_shape = tuple(self.shape[-2:])
        self.frame_tree = copy.deepcopy(model.tree)
        self.window = _subarray_window(self.frame_tree)
        self.references = TileReferences(model, self.frame_shape,
                                         shared=shared_reference_types(steps))
        self._memo: dict[str, Any] = {}
        self.stages = self._stages()
        self.halo = max((stage.total_halo for stage in self.stages), default=0)
        self.height = self._height()
        self.tiles = plan_tiles(self.frame_shape[0], self.height, self.halo)

    # -- planning -----------------------------------------------------------------------
    def _stages(self) -> list[Stage]:
        """Split the steps where one needs the whole frame as it stands before it."""
        stages: list[Stage] = []
        current = Stage("tiles")
        for step in self.steps:
            kind, radius = self._classify(step)
            if kind != "local" and current.steps and not (
                    kind == "barrier" and step.name in NEEDS_ONLY_DO_NOT_USE
                    and all(earlier.name in KEEP_DO_NOT_USE for earlier in current.steps)):
                stages.append(current)
                current = Stage("tiles")
            if kind == "frame":
                stages.append(Stage("frame", [step]))
                continue
            current.steps.append(step)
            current.halo += radius
            current.measures_refpix |= step.name == "refpix" and kind == "barrier"
            if step.name == "jump" and kind == "barrier" and (step.expand_large_events
                                                              or step.find_showers):
                stages += [current, Stage("jump_events", [step])]
                current = Stage("tiles")
        if current.steps:
            stages.append(current)
        if self.path is not None and len(stages) > 1 and all(
                stage.kind == "tiles" for stage in stages[:2]) and all(
                step.name in REPLAYABLE_STEPS for step in stages[0].steps):
            stages[0].stored, stages[1].replays = False, stages[0]
        return stages

    def _classify(self, step) -> tuple[str, int]:
        """('local' | 'barrier' | 'frame', rows of halo the step needs).

        'barrier': the step starts a new stage, as it needs facts about the whole frame as it
        stands before it; 'frame': the step cannot be tiled at all.
        """
        name = step.name
        if name in PER_PIXEL_STEPS:
            return "local", 0
        if name == "saturation":  # growth of saturation, then of partly saturated groups
            return "local", 2 * max(step.n_pix_grow_sat, 0)
        if name == "ipc":
            return "local", self._ipc_radius(step)
        if name == "charge_migration":  # the 4 neighbours
            return "local", 1
        if name == "refpix":
            reason = step.not_applicable(self.model, self.frame_shape)
            return ("local" if reason else "barrier"), 0
        if name == "jump":
            if self.shape[1] <= 2:
                return "local", 0  # skips
            return "barrier", 1 if step.flag_4_neighbors else 0
        if name == "ramp_fit":
            is_miri = (self.model.meta.instrument.name or "").upper() == "MIRI"
            return ("barrier" if is_miri else "local"), 0
        return "frame", 0

    def _planning_path(self, step, reftype: str) -> str | None:
        """The reference file a step will get, without recording it (None: not a file)."""
        from calwebb import references

        override = getattr(step, f"override_{reftype}", None)
        if isinstance(override, DataModel) or override in ("", "N/A", "n/a"):
            return None
        if override is not None:
            return str(override)
        try:
            path = references.get_reference_file(self.model, reftype)
        except ReferenceFileError:
            return None
        return None if path in ("", "N/A") else path

    def _ipc_radius(self, step) -> int:
        override = getattr(step, "override_ipc", None)
        if isinstance(override, DataModel):
            return max(override.data.shape[:2]) // 2
        path = self._planning_path(step, "ipc")
        if path is None:
            return 0
        return max(self.references.reference(path, "ipc").array_shape("data")[:2]) // 2

    def _reference_bytes(self, step) -> int:
        """Bytes per pixel of the detector-image references the step reads for a tile."""
        total = 0
        for reftype in TILE_REFERENCES.get(step.name, ()):
            path = self._planning_path(step, reftype)
            if path is None or not is_fits(path):
                continue
            for extname, image in self.references.stored_images(path, reftype).items():
                if extname != "ERR" and len(image.shape) >= 2:
                    total += image.disk_itemsize * int(np.prod(image.shape[:-2]))
        return total

    def _height(self) -> int:
        nints, ngroups, ny, nx = self.shape
        reference_bytes = max((self._reference_bytes(step) for step in self.steps), default=0)
        row_bytes = nx * (nints * ngroups * SAMPLE_BYTES + nints * INTEGRATION_BYTES
                          + PIXEL_BYTES + reference_bytes)
        # PIXELDQ and AVDRKCUR (made by dq_init and dark_current), and ZEROFRAME when the
        # input has one, kept whole
        fixed = ny * nx * (4 + 4 + (4 * nints if self.model.has_array("zeroframe") else 0))
        events = next((stage.steps[0] for stage in self.stages
                       if stage.kind == "jump_events"), None)
        if events is not None:
            # the group DQ of the frame (twice for showers) and a few image planes
            showers = events.find_showers
            events = ny * nx * (nints * ((2 if showers else 1) * ngroups + 1)
                                + (96 if showers else 48))
            if fixed + events > self.budget:
                raise ParameterError(
                    f"max_memory: {format_size(self.budget)} is too small for snowball and "
                    "shower flagging, which need the whole frame's group DQ "
                    f"({format_size(fixed + events)})")
        return tile_height(self.budget, row_bytes, fixed, self.halo, ny)

    # -- models and metadata ------------------------------------------------------------
    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def frame_stub(self) -> DataModel:
        """A model with the frame's metadata and the shape (not the memory) of its data."""
        stub = datamodels.RampModel()
        stub.tree.clear()
        stub.tree.update(copy.deepcopy(self.frame_tree))
        stub.data = np.broadcast_to(np.float32(0), self.shape)
        return stub

    def _tile_model(self, arrays: dict[str, np.ndarray], tile: Tile,
                    tree: dict | None = None, columns: tuple[int, int] | None = None
                    ) -> DataModel:
        """A ramp model of the tile's rows (and ``columns``; None: all) with the frame's
        metadata (or ``tree``)."""
        model = datamodels.RampModel()
        model.tree.clear()
        model.tree.update(copy.deepcopy(self.frame_tree if tree is None else tree))
        _set_window(model.tree, self.window, (tile.start, tile.stop),
                    columns or (0, self.frame_shape[1]))
        for name, values in arrays.items():
            setattr(model, name, values)
        for name in ("int_times", "group"):
            if self.model.has_array(name):
                setattr(model, name, getattr(self.model, name))
        return model

    def _keep_meta(self, model: DataModel) -> None:
        """The frame's metadata becomes the (last) tile's, with the frame's window."""
        self.frame_tree = copy.deepcopy(model.tree)
        _restore_window(self.frame_tree, self.window)

    # -- running ---------------------------------------------------------------------------
    def run(self, on_ramp: Callable[[DataModel], Any] | None = None) -> TiledResult:
        """Every stage in turn; ``on_ramp`` is given the corrected ramp before it is fitted."""
        log.info("max_memory %s: %d tiles of up to %d rows; stages: %s", format_size(self.budget),
                 len(self.tiles), self.height, " | ".join(
                     ", ".join(step.name for step in stage.steps) for stage in self.stages))
        self.frame_tree = copy.deepcopy(self.model.tree)  # as the pipeline left it
        self.all_do_not_use: np.ndarray | None = None
        self.products: tuple | None = None
        self.flags: dict = {}
        self.primary, self.jump_facts = 0, None
        self.refpix: list | None = None  # measured by the stage before refpix's
        with ExitStack() as stack:
            stack.enter_context(memory.reused_memory())  # every tile reuses the last's memory
            if self.path is not None:  # the ramp stays on disk between stages
                directory = stack.enter_context(tempfile.TemporaryDirectory(
                    prefix="calwebb-tiles-"))
                self.store = FrameStore(self.frame_shape[0], Path(directory))
                self.source = self.input
            else:  # already in memory: corrected in place
                self.store = FrameStore.of_model(self.model)
                self.source = self.store
            stack.callback(self.store.close)
            stack.enter_context(self.references.installed(self.steps))
            duplicates = _DuplicateFilter()
            for logger in {step.log for step in self.steps}:
                logger.addFilter(duplicates)
                stack.callback(logger.removeFilter, duplicates)
            for index, stage in enumerate(self.stages):
                if stage.kind == "tiles":
                    following = self.stages[index + 1:index + 2]
                    self._run_tiles(stage, following[0] if following else None,
                                    final=index == len(self.stages) - 1 and on_ramp is None)
                elif stage.kind == "jump_events":
                    self._run_jump_events(stage.steps[0])
                else:
                    self._run_frame(stage.steps[0])
                if stage.kind == "tiles":  # Step.run tells the pipeline for the others
                    for step in stage.steps:
                        self.pipeline.step_finished(step)
            return self._result(on_ramp)

    def _facts(self) -> np.ndarray:
        """[nints, ngroups]: groups DO_NOT_USE on every pixel of the frame as it stands."""
        if self.all_do_not_use is None:
            facts = np.ones(self.shape[:2], bool)
            for tile in self.tiles:
                groupdq = self.source.read((tile.core_start, tile.core_stop))["groupdq"]
                facts &= dqflags.unusable_groups(groupdq)
            self.all_do_not_use = facts
        return self.all_do_not_use

    def _run_tiles(self, stage: Stage, following: Stage | None = None,
                   final: bool = False) -> None:
        """The stage's steps on every tile; each tile's own rows go back to the store.

        When the ``following`` stage starts with the refpix measurement, the reference pixels
        are gathered from the tiles' own rows here (no pass over the stored frame for it).
        In the ``final`` stage, a tile's rows are not stored once the run is sure to have
        rate products (the corrected ramp is then not returned). A stage that is not
        ``stored`` only gathers what the next one needs; that one ``replays`` its steps on
        each tile first, as told the first time (counts and flags of the replay kept apart).
        When what it gathers are the border strips of reference pixels, it runs on those
        strips alone (``_run_on_strips``).
        """
        from calwebb.refpix.reference_pixels import correctable_ramps

        parts = [part for part in (stage.replays, stage) if part is not None]
        names = ", ".join(step.name for part in parts for step in part.steps)
        pixels = None
        if following is not None and following.kind == "tiles" and following.measures_refpix:
            pixels = following.steps[0].reference_pixels(self.frame_stub(), self.frame_shape)
        strips = not stage.stored and pixels is not None and pixels.regions() is not None
        log.info("Steps %s, %s (halo of %d rows)%s", names,
                 "on the reference-pixel strips" if strips else "tile by tile",
                 stage.total_halo, "; the first stage's steps again instead of its stored "
                 "result" if stage.replays else "")
        stage.tree = copy.deepcopy(self.frame_tree)
        stage.facts = self._facts() if any(step.name in ("jump", "ramp_fit")
                                           for step in stage.steps) \
            else np.zeros(self.shape[:2], bool)
        if any(step.name == "jump" for step in stage.steps):
            self.jump_facts = stage.facts
        if stage.measures_refpix:
            stage.refpix = self.refpix if self.refpix is not None \
                else self._measure_refpix(stage.steps[0])
        self.refpix = None
        counts, flags, replay_counts = Counter(), {}, Counter()
        if strips:
            after, tiles = self._run_on_strips(stage, pixels), []
            undecided = after & ~self._whole_groups_flagged(stage)
            if undecided.any():  # maybe not so on every pixel of the frame
                after = (after & ~undecided) | self._census(stage, undecided)
        else:
            after, tiles = np.ones(self.shape[:2], bool), self.tiles
        skipped = False
        pending = None
        with progress_bar(len(tiles), f"{self.pipeline.name} [{names}]", "tile") as bar:
            for core in tiles:
                tile = core.with_halo(stage.total_halo, self.frame_shape[0])
                self.references.forget_cuts()
                arrays = self.source.read((tile.start, tile.stop))
                if pending is not None:  # the previous tile's last rows were in this halo
                    self.store.write(*pending)
                model = self._tile_model(arrays, tile, parts[0].tree)
                del arrays
                for part in parts:
                    replay = part is not stage
                    context = TileContext(self.frame_shape, tile.start, tile.rows, part.facts,
                                          part.refpix, replay_counts if replay else counts,
                                          {} if replay else flags, self)
                    for step in part.steps:
                        result = self._process(step, model, context)
                if isinstance(result, tuple):
                    self._keep_products(result, tile)
                result = None
                own = {name: getattr(model, name)[..., tile.rows, :]
                       for name in TILE_ARRAYS if model.has_array(name)}
                after &= dqflags.unusable_groups(own["groupdq"])
                if pixels is not None:
                    pixels.add([ramp[:, tile.rows] for ramp in correctable_ramps(model)],
                               own["pixeldq"], tile.core_start)
                if final and self.products and not flags.get(
                        "ramp_fit.first_group_saturated", False):
                    skipped = True
                elif stage.stored:
                    pending = self._write_own_rows(tile, own, stage.total_halo)
                self._keep_meta(model)
                del model, own
                if bar is not None:
                    bar.update(1)
        if pending is not None:
            self.store.write(*pending)
        if skipped and (not self.products or flags.get("ramp_fit.first_group_saturated")):
            raise RuntimeError("tiled run: the corrected ramp was not kept but there are no "
                               "rate products")
        if pixels is not None:
            self.refpix = following.steps[0].measure(pixels)
        if stage.stored:
            self.source = self.store
        self.all_do_not_use = after
        self.primary += counts["jump.primary"]
        self.flags.update(flags)
        dark = next((step for step in stage.steps if step.name == "dark_current"), None)
        if dark is not None and dark.dark_output and self._status("dark_sub") == "COMPLETE":
            dark.save_dark_output(self.frame_stub(), self.shape[1])

    def _run_on_strips(self, stage: Stage, pixels) -> np.ndarray:
        """The stage's steps on each border strip of reference pixels (with the stage's halo
        around it, within the frame), whose pixels go to ``pixels``; returns the groups
        DO_NOT_USE on every pixel of the strips, which include the frame's (none there: none
        in the frame)."""
        from calwebb.refpix.reference_pixels import correctable_ramps

        halo, (ny, nx) = stage.total_halo, self.frame_shape
        after = np.ones(self.shape[:2], bool)
        for (r0, r1), (c0, c1) in pixels.regions().values():
            tile = Tile(max(r0 - halo, 0), min(r1 + halo, ny), r0, r1)
            columns = (max(c0 - halo, 0), min(c1 + halo, nx))
            model = self._run_block(stage, stage.steps, tile, columns)
            own = (tile.rows, slice(c0 - columns[0], c1 - columns[0]))
            pixels.add([ramp[(slice(None), *own)] for ramp in correctable_ramps(model)],
                       model.pixeldq[own], r0, c0)
            after &= dqflags.unusable_groups(model.groupdq[(Ellipsis, *own)])
            self._keep_meta(model)
        return after

    def _whole_groups_flagged(self, stage: Stage) -> np.ndarray:
        """[nints, ngroups] booleans: the groups a step of the stage that ran has set
        DO_NOT_USE on every pixel alike (``WHOLE_GROUP_DO_NOT_USE``), so on the frame's."""
        flagged = np.zeros(self.shape[:2], bool)
        for step in stage.steps:
            group = WHOLE_GROUP_DO_NOT_USE.get(step.name)
            if group is not None and self._status(step.status_name) == "COMPLETE":
                flagged[:, group] = True
        return flagged

    def _census(self, stage: Stage, candidates: np.ndarray) -> np.ndarray:
        """The groups DO_NOT_USE on every pixel of the frame after the stage's steps, among
        the ``candidates`` (those of the reference strips), tile by tile: only the steps
        that set DO_NOT_USE run, and those before them whose values they read."""
        steps, reads_values = [], False
        for step in reversed(stage.steps):
            sets_do_not_use = step.name not in KEEP_DO_NOT_USE
            if sets_do_not_use or reads_values:
                steps.insert(0, step)
            reads_values |= sets_do_not_use and step.name not in DO_NOT_USE_FROM_FLAGS
        log.info("Groups DO_NOT_USE on every pixel: steps %s, tile by tile",
                 ", ".join(step.name for step in steps))
        facts = candidates.copy()
        for core in self.tiles:
            if not facts.any():
                break
            tile = core.with_halo(stage.total_halo, self.frame_shape[0])
            model = self._run_block(stage, steps, tile)
            facts &= dqflags.unusable_groups(model.groupdq[..., tile.rows, :])
        return facts

    def _run_block(self, stage: Stage, steps: list, tile: Tile,
                   columns: tuple[int, int] | None = None) -> DataModel:
        """``steps`` of ``stage`` on the source's rows of ``tile`` (and ``columns``; None:
        all), as the stage runs them but with counts of their own; returns the block's model."""
        self.references.forget_cuts()
        model = self._tile_model(self.source.read((tile.start, tile.stop), columns), tile,
                                 stage.tree, columns)
        context = TileContext(self.frame_shape, tile.start, tile.rows, stage.facts, None,
                              Counter(), {}, self, columns[0] if columns else 0)
        for step in steps:
            self._process(step, model, context)
        return model

    def _write_own_rows(self, tile: Tile, own: dict[str, np.ndarray], halo: int):
        """Store the tile's own rows, except the last ``halo`` ones, which the next tile
        still reads as they were: those are returned (copied) to be stored after that."""
        keep = min(halo, tile.core_stop - tile.core_start) if tile.core_stop < \
            self.frame_shape[0] else 0
        split = tile.core_stop - keep
        self.store.write((tile.core_start, split), {
            name: values[..., :split - tile.core_start, :] for name, values in own.items()})
        if not keep:
            return None
        return (split, tile.core_stop), {
            name: np.array(values[..., split - tile.core_start:, :])
            for name, values in own.items()}

    @staticmethod
    def _process(step, model: DataModel, context: TileContext):
        """``step.process`` on one tile, with the bookkeeping ``Step.run`` does around it."""
        tile_aware = hasattr(type(step), "tile")
        if tile_aware:
            step.tile = context
        try:
            result = step.process(model)
        finally:
            if tile_aware:
                step.tile = None
        for product in _models_in(result):
            step.finalize_result(product)
        return result

    def _status(self, name: str):
        return ((self.frame_tree.get("meta") or {}).get("cal_step") or {}).get(name)

    def _measure_refpix(self, step) -> list:
        """The refpix corrections, from the reference pixels of the frame as it stands."""
        from calwebb.refpix.reference_pixels import correctable_ramps

        pixels = step.reference_pixels(self.frame_stub(), self.frame_shape)
        for tile in self.tiles:
            model = self._tile_model(self.source.read((tile.core_start, tile.core_stop)), tile)
            pixels.add(correctable_ramps(model), model.pixeldq, tile.core_start)
        return step.measure(pixels)

    def _run_jump_events(self, jump) -> None:
        """Snowballs and showers over the whole frame's group DQ (showers read the data band
        by band and plane by plane), then the jump statistics."""
        log.info("Jump: large events over the whole frame's group DQ")
        frame = self.frame_stub()
        frame.groupdq = self.store.load("groupdq")
        frame.pixeldq = self.store.load("pixeldq")
        jump.finish_tiles(frame, self.primary, self.jump_facts, _FrameData(self))
        self.store.write((0, self.frame_shape[0]), {"groupdq": frame.groupdq})
        self.all_do_not_use = dqflags.unusable_groups(frame.groupdq)
        self._keep_meta(frame)

    def _run_frame(self, step) -> None:
        """A step that cannot be tiled, run on the whole frame (held in memory)."""
        log.warning("%s cannot run tile by tile: it runs on the whole frame, whose ramp is "
                    "held in memory meanwhile", step.qualified_name)
        nrows = self.frame_shape[0]
        frame = self._tile_model(self.source.read((0, nrows)), Tile(0, nrows, 0, nrows))
        _restore_window(frame.tree, self.window)
        with self.references.uninstalled(step):
            result = step.run(frame)
        self.store.write((0, nrows), {name: getattr(result, name) for name in TILE_ARRAYS
                                      if result.has_array(name)})
        self.source = self.store
        self.all_do_not_use = dqflags.unusable_groups(result.groupdq)
        self._keep_meta(result)

    def _keep_products(self, products: tuple, tile: Tile) -> None:
        """Copy a tile's own rows of the slope products into the frame's."""
        if products[0] is None:
            self.products = ()
            return
        if self.products is None:
            self.products = self._frame_products(products)
        for name in PRODUCT_ARRAYS:
            (rate, rateints), own = (getattr(product, name) for product in products), tile.rows
            full_rate, full_rateints = (arrays[name] for arrays in self.products)
            band = slice(tile.core_start, tile.core_stop)
            if np.shares_memory(full_rate, full_rateints):
                if np.shares_memory(rate, rateints):  # ramp_fit found them equal
                    full_rate[band] = rate[own]
                    continue
                # from here on they differ: the rateints plane gets memory of its own
                self.products[1][name] = full_rateints = full_rateints.copy()
            full_rate[band] = rate[own]
            full_rateints[..., band, :] = rateints[..., own, :]
        self.product_trees = [copy.deepcopy(product.tree) for product in products]
        rateints = products[1]
        self.int_times = rateints.int_times if rateints.has_array("int_times") else None

    def _frame_products(self, products: tuple) -> tuple[dict, dict]:
        """Frame-sized (rate, rateints) arrays for the tiles' products; for one integration,
        the planes the first tile's products share (see ``RampFitStep``) are shared too, as
        views of one buffer."""
        ny, nx = self.frame_shape
        frame = ({}, {})
        rate, rateints = products
        for name in PRODUCT_ARRAYS:
            plane, planes = getattr(rate, name), getattr(rateints, name)
            if planes.shape[0] == 1 and np.shares_memory(plane, planes):
                buffer = np.empty((1, ny, nx), planes.dtype)
                frame[0][name], frame[1][name] = buffer[0], buffer[:]
            else:
                frame[0][name] = np.empty((ny, nx), plane.dtype)
                frame[1][name] = np.empty((*planes.shape[:-2], ny, nx), planes.dtype)
        return frame

    def _result(self, on_ramp) -> TiledResult:
        ramp = self._final_ramp()
        if on_ramp is not None:
            on_ramp(ramp)
        if self.products and self.flags.get("ramp_fit.first_group_saturated", False):
            self.pipeline.ramp_fit.log.warning(
                "Every pixel saturated in the first group: no rate products")
            self.products = ()
        if not self.products:
            for name in TILE_ARRAYS:
                if ramp.has_array(name):
                    setattr(ramp, name, np.array(getattr(ramp, name)))
            return TiledResult(None, None, ramp)
        for name in TILE_ARRAYS:  # the store's files go away with the run
            setattr(ramp, name, None)
        rate = datamodels.ImageModel(**self.products[0])
        rateints = datamodels.CubeModel(**self.products[1])
        for product, tree in zip((rate, rateints), self.product_trees, strict=True):
            product.tree.clear()
            product.tree.update(tree)
            _restore_window(product.tree, self.window)
        if self.int_times is not None:
            rateints.int_times = self.int_times
        return TiledResult(rate, rateints, None)

    def _final_ramp(self) -> DataModel:
        """The corrected ramp: the input model with the frame's metadata and the store's
        arrays (those kept in files are mapped, not loaded)."""
        ramp = self.model
        ramp.tree.clear()
        ramp.tree.update(copy.deepcopy(self.frame_tree))
        for name in TILE_ARRAYS:
            if name in self.store.names:
                setattr(ramp, name, self.store.whole(name))
        return ramp


PRODUCT_ARRAYS = ("data", "err", "dq", "var_poisson", "var_rnoise")


class _FrameData:
    """The frame's data as it stands, band by band or one group plane at a time."""

    def __init__(self, run: TiledRun):
        self.run = run

    def bands(self) -> Iterator[tuple[int, np.ndarray]]:
        for tile in self.run.tiles:
            yield tile.core_start, self.run.store.read((tile.core_start, tile.core_stop),
                                                       ["data"])["data"]

    def plane(self, integration: int, group: int) -> np.ndarray:
        return self.run.store.plane("data", (integration, group))



def _models_in(value) -> list[DataModel]:
    if isinstance(value, DataModel):
        return [value]
    if isinstance(value, tuple):
        return [item for item in value if isinstance(item, DataModel)]
    return []


def _subarray_window(tree: dict) -> dict[str, Any]:
    """The frame's own ``meta.subarray`` window values (None where absent)."""
    sub = (tree.get("meta") or {}).get("subarray") or {}
    return {key: sub.get(key) for key in ("xstart", "ystart", "xsize", "ysize")}


def _set_window(tree: dict, window: dict, rows: tuple[int, int],
                columns: tuple[int, int]) -> None:
    """Make ``meta.subarray`` describe frame ``rows`` and ``columns`` ([start, stop) each)."""
    sub = tree.setdefault("meta", {}).setdefault("subarray", {})
    sub["xstart"] = (window["xstart"] or 1) + columns[0]
    sub["xsize"] = columns[1] - columns[0]
    sub["ystart"] = (window["ystart"] or 1) + rows[0]
    sub["ysize"] = rows[1] - rows[0]


def _restore_window(tree: dict, window: dict) -> None:
    sub = tree.setdefault("meta", {}).setdefault("subarray", {})
    for key, value in window.items():
        if value is None:
            sub.pop(key, None)
        else:
            sub[key] = value
    if not sub:
        tree["meta"].pop("subarray")



def plan_run(pipeline, model: DataModel, steps: list, max_memory: str | int,
             input_path: str | os.PathLike | None = None,
             automatic: bool = False) -> TiledRun | None:
    """A tiled run of ``steps`` (children of ``pipeline`` in order, ramp_fit last) on
    ``model`` within ``max_memory``, or None when the whole frame fits in one tile.

    ``automatic`` (``max_memory='auto'``): also None, without an error or warning, when
    tiling cannot help or is not possible (a step that runs only on the whole frame, a
    feature that needs the whole ramp, a budget too small for snowball flagging)."""
    budget = parse_memory(max_memory, f"{pipeline.qualified_name}.max_memory")
    if automatic and _unsupported(steps):
        log.info("max_memory auto: processed without tiles (an option needs the whole ramp)")
        return None
    try:
        run = TiledRun(pipeline, model, steps, budget, input_path)
    except ParameterError:
        if automatic:
            return None
        raise
    if len(run.tiles) == 1:
        log.info("max_memory %s: the whole frame fits; processed without tiles",
                 format_size(budget))
        return None
    if automatic and any(stage.kind == "frame" for stage in run.stages):
        log.info("max_memory auto: processed without tiles (a step needs the whole frame)")
        return None
    _check_supported(pipeline, steps)
    if automatic:
        log.info("max_memory auto: the %s ramp is processed in bands of rows",
                 format_size(4 * math.prod(run.shape)))
    return run


def _unsupported(steps) -> list[str]:
    """The options of ``steps`` that need a whole step result at once."""
    problems = []
    for step in steps:
        if step.save_results or step.output_file:
            problems.append(f"steps.{step.name}.save_results")
        if step.pre_hooks or step.post_hooks:
            problems.append(f"steps.{step.name} hooks")
        if step.name == "persistence" and (step.persistence_array_file
                                           or step.save_persistence):
            problems.append("steps.persistence persistence files")
        if step.name == "ramp_fit" and step.save_opt:
            problems.append("steps.ramp_fit.save_opt")
    return problems


def _check_supported(pipeline, steps) -> None:
    """Features that need a whole step result at once cannot be combined with max_memory."""
    problems = _unsupported(steps)
    if problems:
        raise ParameterError(
            f"{pipeline.qualified_name}.max_memory cannot be combined with "
            f"{', '.join(problems)}: they need the whole ramp at once")
