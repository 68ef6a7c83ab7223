"""Tiled Stage 1 (``max_memory``): the whole-frame products, bit for bit, in bounded memory."""

import copy
import fcntl
import logging
import re
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from calwebb import datamodels, dqflags, references
from calwebb.errors import ParameterError
from calwebb.parallel import bands, tiles
from calwebb.pipeline.detector1 import Detector1Pipeline
from calwebb.refpix.reference_pixels import correctable_ramps
from calwebb.refpix.step import RefPixStep

PRODUCTS = ("rate", "rateints", "ramp")
#: NIRCam SUB320, RAPID, 2 x 6 groups: cosmic rays, saturated stars crossing tile edges
NIRCAM = dict(subarray="SUB320", readpatt="RAPID", ngroups=6, nints=2, n_dithers=1,
              n_stars=60, n_galaxies=5, cosmic_ray_rate=1e-3, seed=5)
#: MIRI SUB256, FASTR1, 2 x 10 groups, with three faint showers added (find_showers needs
#: ten usable differences)
MIRI = dict(instrument="MIRI", detectors=("MIRIMAGE",), filter="F770W", readpatt="FASTR1",
            subarray="SUB256", ngroups=10, nints=2, n_dithers=1, n_stars=40, n_galaxies=5,
            cosmic_ray_rate=4e-3, seed=7)


def simulated(directory: Path, config: dict) -> tuple[Path, Path]:
    """(uncal file, CRDS cache) of a simulated one-exposure observation."""
    from calwebb.simulate import ObservationConfig, simulate_observation

    observation = simulate_observation(ObservationConfig(**config), directory)
    return observation.uncal_files[0], observation.crds_path


def use_crds(patch: pytest.MonkeyPatch, cache: Path) -> None:
    """Reference selection from a simulated observation's CRDS cache."""
    patch.setenv("CRDS_PATH", str(cache))
    patch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT"):
        patch.delenv(variable, raising=False)
    references.forget_crds_state()


def nircam_steps():
    """Every local effect a tile edge can cut: saturation growth, a 5x5 IPC kernel, charge
    migration, jump neighbours and after-jump flags, snowballs; and a group range."""
    kernel = np.full((5, 5), -0.002, np.float32)
    kernel[1:4, 1:4] = -0.01
    kernel[2, 2] = 0.0
    kernel[2, 2] = 1.0 - kernel.sum()
    return {
        "saturation": {"n_pix_grow_sat": 2},
        "ipc": {"override_ipc": datamodels.IPCModel(data=kernel)},
        "charge_migration": {"skip": False, "signal_threshold": 20000.0},
        "jump": {"expand_large_events": True, "after_jump_flag_dn1": 20.0,
                 "after_jump_flag_time1": 2.5},
        "persistence": {"skip": False, "persistence_time": 5, "persistence_dnu": True},
        "ramp_fit": {"lastgroup": 4},
    }


def run_detector1(uncal, directory: Path, caplog=None, **parameters) -> dict:
    """Run Detector1 saving rate, rateints and ramp; returns the products (and tile count)."""
    with caplog.at_level(logging.INFO, "calwebb.parallel.tiles") if caplog else nullcontext():
        Detector1Pipeline.call(uncal, output_dir=str(directory), save_results=True,
                               save_calibrated_ramp=True, **parameters)
    found = products(uncal if isinstance(uncal, str | Path) else uncal.meta.filename,
                     directory)
    if caplog:
        counts = re.findall(r"(\d+) tiles of", caplog.text)
        found["tiles"] = int(counts[-1]) if counts else 1
    return found


def products(uncal, directory: Path) -> dict:
    stem = Path(uncal).name.replace("_uncal.fits", "")
    return {suffix: datamodels.open(directory / f"{stem}_{suffix}.fits") for suffix in PRODUCTS}


def assert_identical(whole: dict, tiled: dict) -> None:
    """Every array bit for bit; every metadata item but the file name and date the same."""
    for suffix in PRODUCTS:
        one, other = whole[suffix], tiled[suffix]
        for name, spec in type(one).arrays.items():
            if spec.is_table or not one.has_array(name):
                continue
            first, second = getattr(one, name), getattr(other, name)
            assert first.dtype == second.dtype, (suffix, name)
            assert first.tobytes() == second.tobytes(), (suffix, name)
        ignored = ("meta.date", "meta.filename")
        items = {key: value for key, value in one.to_flat_dict().items() if key not in ignored}
        others = {key: value for key, value in other.to_flat_dict().items()
                  if key not in ignored}
        assert items == others, suffix


@pytest.fixture(scope="module")
def nircam(tmp_path_factory, worker_id):
    """The NIRCam exposure and its whole-frame products, made once for all xdist workers."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # xdist: the workers' temporary directories share a parent
        root = root.parent
    directory = root / "tiles_nircam"
    with pytest.MonkeyPatch.context() as patch:
        with open(root / "tiles_nircam.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (directory / "complete").exists():
                uncal, cache = simulated(directory, NIRCAM)
                use_crds(patch, cache)
                run_detector1(str(uncal), directory / "whole", steps=nircam_steps())
                (directory / "complete").touch()
        uncal = next(directory.glob("*_uncal.fits"))
        use_crds(patch, directory / "crds")
        yield uncal, products(uncal, directory / "whole")
    references.forget_crds_state()


def test_nircam_tiles_give_the_whole_frame_products(nircam, tmp_path, caplog):
    uncal, whole = nircam
    tiled = run_detector1(str(uncal), tmp_path, caplog, steps=nircam_steps(),
                          max_memory="12MB")
    assert tiled["tiles"] >= 4
    assert_identical(whole, tiled)
    rate = whole["rate"]
    status = rate.meta.cal_step
    assert (status.ipc, status.charge_migration, status.refpix, status.jump) == (
        "COMPLETE",) * 4
    assert rate.meta.exposure.extended_emission_events > 0  # snowballs were flagged
    flags = rate.dq
    assert ((flags & dqflags.JUMP_DET) != 0).sum() > 100
    assert ((flags & dqflags.SATURATED) != 0).sum() > 50


def test_automatic_max_memory_tiles_only_large_ramps(nircam, tmp_path, caplog, monkeypatch):
    """The default max_memory='auto': small ramps run whole; above the threshold the ramp is
    tiled (here the threshold and smallest budget are lowered to fit the test exposure), with
    the same products; an option that needs the whole ramp makes it run whole, no error."""
    assert bands.automatic_budget((1, 10, 2048, 2048)) == 100 * 2**20  # 160 MiB ramp
    assert bands.automatic_budget((2, 20, 2048, 2048)) == 320 * 2**20  # half of the ramp
    assert bands.automatic_budget((1, 10, 256, 256)) is None
    assert bands.automatic_budget((1, 2, 2048, 2048)) is None
    uncal, whole = nircam
    untiled = run_detector1(str(uncal), tmp_path / "default", caplog, steps=nircam_steps())
    assert untiled["tiles"] == 1
    monkeypatch.setattr(bands, "AUTO_TILE_ABOVE", 0)
    monkeypatch.setattr(bands, "AUTO_SMALLEST_BUDGET", 12_000_000)
    caplog.clear()
    tiled = run_detector1(str(uncal), tmp_path / "auto", caplog, steps=nircam_steps())
    assert tiled["tiles"] >= 4
    assert_identical(whole, tiled)
    caplog.clear()
    steps = nircam_steps()
    steps["ramp_fit"]["save_opt"] = True
    assert run_detector1(str(uncal), tmp_path / "opt", caplog, steps=steps)["tiles"] == 1


def test_nircam_tiles_of_a_model_in_memory_with_zeroframe(nircam, tmp_path, caplog):
    """A model already in memory is corrected in place, tile by tile; ZEROFRAME goes along
    (and is used by ramp fitting where no group is good)."""
    uncal, _ = nircam

    def model_with_zeroframe():
        model = datamodels.RampModel(str(uncal))
        model.zeroframe = model.data[:, 0] - 30.0
        return model

    steps = nircam_steps()
    steps["ramp_fit"]["suppress_one_group"] = False
    whole = run_detector1(model_with_zeroframe(), tmp_path / "whole", steps=steps)
    tiled = run_detector1(model_with_zeroframe(), tmp_path / "tiled", caplog, steps=steps,
                          max_memory="10MB")
    assert tiled["tiles"] >= 4
    assert whole["ramp"].has_array("zeroframe")
    assert_identical(whole, tiled)


def add_showers(uncal: Path) -> None:
    """Three discs of 30 pixels that brighten by 15 DN from group 4 on."""
    with fits.open(uncal, mode="update") as hdul:
        data = hdul["SCI"].data
        rows, columns = np.mgrid[: data.shape[-2], : data.shape[-1]]
        for row, column in ((60, 70), (128, 180), (200, 100)):
            disc = (rows - row) ** 2 + (columns - column) ** 2 <= 15**2
            data[:, 4:][:, :, disc] += np.uint16(15)


def test_miri_tiles_give_the_whole_frame_products(tmp_path_factory, monkeypatch, caplog):
    uncal, cache = simulated(tmp_path_factory.mktemp("miri"), MIRI)
    add_showers(uncal)
    use_crds(monkeypatch, cache)
    steps = {"jump": {"find_showers": True, "after_jump_flag_dn1": 10.0,
                      "after_jump_flag_time1": 5.0}}
    whole = run_detector1(str(uncal), tmp_path_factory.mktemp("whole"), steps=steps)
    tiled = run_detector1(str(uncal), tmp_path_factory.mktemp("tiled"), caplog, steps=steps,
                          max_memory="10MB")
    assert tiled["tiles"] >= 4
    assert_identical(whole, tiled)
    rate = whole["rate"]
    assert rate.meta.cal_step.lastframe == "COMPLETE"
    assert rate.meta.exposure.extended_emission_events > 0  # showers were flagged


#: full frames, whose reference pixels are the border strips: for NIRCam the first stage runs
#: on those strips alone (MIRI with two integrations, so that RSCD counts pixels in both)
FULL_FRAMES = {
    "nircam": dict(subarray="FULL", readpatt="RAPID", ngroups=4, nints=1, n_dithers=1,
                   n_stars=60, n_galaxies=5, cosmic_ray_rate=1e-4, seed=5),
    "miri": dict(instrument="MIRI", detectors=("MIRIMAGE",), filter="F770W", readpatt="FASTR1",
                 subarray="FULL", ngroups=6, nints=2, n_dithers=1, n_stars=40, n_galaxies=5,
                 cosmic_ray_rate=1e-3, seed=7),
}
FULL_FRAMES["miri_without_rscd"] = {**FULL_FRAMES["miri"], "nints": 1}


def mark(uncal: Path, flag_strips: bool) -> None:
    """Three columns of science pixels saturate from the third group on (across every tile;
    for MIRI within the groups RSCD skips); with ``flag_strips``, the input GROUPDQ marks the
    third group DO_NOT_USE on every reference pixel of the border strips, and on no other."""
    with fits.open(uncal, mode="update") as hdul:
        data = hdul["SCI"].data
        data[:, 2:, :, 500:503] = np.uint16(65535)
        if not flag_strips:
            return
        groupdq = np.zeros(data.shape, np.uint8)
        is_miri = hdul[0].header["INSTRUME"] == "MIRI"
        for strip in ((np.s_[:, :4], np.s_[:, -4:]) if is_miri else
                      (np.s_[:4, :], np.s_[-4:, :], np.s_[:, :4], np.s_[:, -4:])):
            groupdq[(slice(None), 2, *strip)] = dqflags.DO_NOT_USE
        hdul.append(fits.ImageHDU(groupdq, name="GROUPDQ"))


@pytest.mark.slow
@pytest.mark.parametrize("flag_strips", [False, True])
@pytest.mark.parametrize("case", ["nircam", "miri", "miri_without_rscd"])
def test_full_frame_tiles_measure_refpix_on_the_reference_strips(
        case, flag_strips, tmp_path, monkeypatch, caplog):
    """The first stage (before refpix) is not stored but run again on each tile of the second;
    on a full frame it first runs on the reference strips only. The whole-frame products,
    bit for bit (RSCD counts over the replayed tiles included). Groups DO_NOT_USE on every
    pixel of the strips (here from the input's GROUPDQ, or RSCD's leading groups) are checked
    on the frame's tiles with the steps that set DO_NOT_USE, except MIRI's last group, which
    lastframe sets on every pixel."""
    uncal, cache = simulated(tmp_path / "exposure", FULL_FRAMES[case])
    mark(uncal, flag_strips)
    use_crds(monkeypatch, cache)
    steps = {"rscd": {"skip": True}} if case == "miri_without_rscd" else {}
    whole = run_detector1(str(uncal), tmp_path / "whole", steps=steps)
    tiled = run_detector1(str(uncal), tmp_path / "tiled", caplog, steps=steps,
                          max_memory="60MB" if case == "nircam" else "30MB")
    assert tiled["tiles"] >= 3
    assert "on the reference-pixel strips" in caplog.text
    census = re.search(r"Groups DO_NOT_USE on every pixel: steps (.*), tile by tile",
                       caplog.text)
    assert (census is not None) == (flag_strips or case == "miri")
    if census:  # only the steps that set DO_NOT_USE and those whose values they read
        assert census[1] == {"nircam": "group_scale, dq_init, saturation",
                             "miri": "group_scale, dq_init, saturation, lastframe, rscd",
                             "miri_without_rscd": "group_scale, dq_init, saturation, lastframe"
                             }[case]
    assert_identical(whole, tiled)
    rate = whole["rate"]
    assert rate.meta.cal_step.refpix == "COMPLETE"
    if case == "miri":
        assert rate.meta.cal_step.rscd == "COMPLETE"
        assert rate.meta.rscd.keep_groups_saturation_int2p > 0


def test_bad_or_too_small_max_memory_is_a_parameter_error(nircam, tmp_path):
    with pytest.raises(ParameterError, match=r"max_memory: '4 parsecs' is not a memory size"):
        Detector1Pipeline(max_memory="4 parsecs")
    with pytest.raises(ParameterError, match="max_memory"):
        Detector1Pipeline.call(str(nircam[0]), max_memory="-1GB")
    with pytest.raises(ParameterError, match="too small for this exposure"):
        Detector1Pipeline.call(str(nircam[0]), max_memory="200KB")
    with pytest.raises(ParameterError, match="steps.jump.save_results"):
        Detector1Pipeline.call(str(nircam[0]), max_memory="12MB",
                               steps={"jump": {"save_results": True}})





def test_barriers_on_do_not_use_join_stages_that_keep_it(nircam):
    uncal, _ = nircam
    pipeline = Detector1Pipeline()
    with datamodels.open(str(uncal)) as model:
        names = ("group_scale", "dq_init", "saturation", "superbias", "refpix", "linearity",
                 "dark_current", "jump", "ramp_fit")
        run = tiles.TiledRun(pipeline, model, [getattr(pipeline, name) for name in names],
                             10**9, uncal)
        assert [[step.name for step in stage.steps] for stage in run.stages] == [
            list(names[:4]), list(names[4:])]
        assert run.stages[1].measures_refpix and run.stages[1].halo == 1
        # the first stage is replayed on each tile of the second instead of stored
        assert not run.stages[0].stored and run.stages[1].replays is run.stages[0]
        assert run.stages[1].total_halo == run.stages[0].halo + 1 == run.halo
        model.data  # noqa: B018 - loaded: a ramp in memory is corrected in place instead
        in_memory = tiles.TiledRun(pipeline, model, [getattr(pipeline, name)
                                                     for name in names], 10**9, uncal)
        assert in_memory.stages[0].stored and in_memory.stages[1].replays is None





def refpix_case(name: str) -> datamodels.RampModel:
    """NIR full frame (read along rows or, transposed, along columns), a NIR subarray with
    flagged reference pixels, MIRI full frame."""
    rng = np.random.default_rng(3)
    if name == "miri":
        model = datamodels.RampModel((1, 3, 1024, 1032))
        model.meta.instrument.name = "MIRI"
        model.data[...] = rng.normal(1000, 4, model.data.shape).astype(np.float32)
        return model
    if name == "sub":
        model = datamodels.RampModel((2, 3, 64, 72))
        model.meta.instrument.name = "NIRCAM"
        model.data[...] = rng.normal(50, 3, model.data.shape).astype(np.float32)
        model.pixeldq[:4] = model.pixeldq[:, :4] = dqflags.REFERENCE_PIXEL
        return model
    model = datamodels.RampModel((1, 2, 2048, 2048))
    model.meta.instrument.name = "NIRCAM"
    fast, slow = (2, -1) if name == "nir_transposed" else (-1, 2)
    model.meta.subarray.fastaxis, model.meta.subarray.slowaxis = fast, slow
    model.data[...] = rng.normal(0, 5, model.data.shape).astype(np.float32)
    model.data += rng.normal(0, 3, (1, 2, 2048, 1)).astype(np.float32)
    model.pixeldq[2046, 100:130] = dqflags.DO_NOT_USE
    model.zeroframe = rng.normal(0, 5, (1, 2048, 2048)).astype(np.float32)
    return model


@pytest.mark.parametrize("case", ["nir", "nir_transposed", "sub", "miri"])
def test_refpix_measured_over_bands_of_rows_is_the_whole_frame_correction(case):
    """The reference pixels gathered band by band give the whole-frame correction, and
    applying it band by band gives the whole-frame result."""
    model = refpix_case(case)
    whole = RefPixStep.call(model)
    step = RefPixStep()
    shape = model.data.shape[-2:]
    bands = [(0, 3), (3, shape[0] // 3), (shape[0] // 3, shape[0] - 2), (shape[0] - 2, shape[0])]

    def band_of(r0, r1):
        band = datamodels.RampModel(data=model.data[..., r0:r1, :].copy(),
                                    pixeldq=model.pixeldq[r0:r1].copy())
        band.tree["meta"] = copy.deepcopy(model.tree["meta"])
        if model.has_array("zeroframe"):
            band.zeroframe = model.zeroframe[:, r0:r1].copy()
        return band

    pixels = step.reference_pixels(model, shape)
    for r0, r1 in bands:
        band = band_of(r0, r1)
        pixels.add(correctable_ramps(band), band.pixeldq, r0)
    corrections = step.measure(pixels)
    for r0, r1 in bands:
        step.tile = tiles.TileContext(shape, r0, slice(None), None, corrections, None, None,
                                      None)
        band = step.run(band_of(r0, r1))
        assert band.meta.cal_step.refpix == whole.meta.cal_step.refpix == "COMPLETE"
        assert band.data.tobytes() == whole.data[..., r0:r1, :].tobytes()
        if model.has_array("zeroframe"):
            assert band.zeroframe.tobytes() == whole.zeroframe[:, r0:r1].tobytes()
