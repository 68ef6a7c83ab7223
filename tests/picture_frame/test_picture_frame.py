"""Picture-frame removal (stage1.md §2.16): an injected, scaled pattern is removed from a
NIRSpec full-frame ramp and rate; skips; and the official step on the same ramp."""

import logging
import warnings

import numpy as np
import pytest

from calwebb import datamodels
from calwebb.picture_frame import correct
from calwebb.picture_frame.step import PictureFrameStep
from calwebb.references.cache import write_local_cache

N = 2048
TGROUP = 10.737
#: read noise (DN): small, because the algorithm is exact only without noise: the centre
#: and edge medians of pattern + noise equal those of the pattern alone only when the noise
#: is small against the pattern's (skewed) spread within each region
NOISE = 0.05
#: picture-frame amplitude (× the reference) in each group. A pattern this far above the
#: noise brightens the draft rate's border beyond the 2σ signal clip, which would leave no
#: edge background: the analytic cases turn clipping off (n_sigma=0); clipping is checked
#: against the official step on a faint pattern
SCALES = (0.0, 30.0, 60.0)
BACKGROUND = 0.5  # DN/s
SOURCE = 50.0  # DN/s added on 5×5 boxes


def frame_pattern():
    """The reference shape: bright at the border, falling off over ~60 pixels."""
    y, x = np.mgrid[:N, :N]
    distance = np.minimum(np.minimum(y, N - 1 - y), np.minimum(x, N - 1 - x))
    return (np.exp(-distance / 60.0) + 0.02).astype(np.float32)


def _as_reference(model, reftype):
    meta = model.meta
    meta.reftype, meta.telescope = reftype.upper(), "JWST"
    meta.instrument.name, meta.instrument.detector = "NIRSPEC", "NRS1"
    meta.useafter, meta.pedigree = "2000-01-01T00:00:00", "DUMMY"
    meta.author, meta.description = "calwebb tests", f"test {reftype}"
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "FULL", 1, 1
    meta.subarray.xsize = meta.subarray.ysize = N
    return model


def nirspec_ramp(seed=0):
    """(ramp, true rate): a background, 40 sources, and SCALES[k] × pattern in group k."""
    rng = np.random.default_rng(seed)
    ngroups = len(SCALES)
    rate = np.full((N, N), BACKGROUND, np.float32)
    for y, x in rng.integers(100, 1900, (40, 2)):
        rate[y - 2:y + 3, x - 2:x + 3] += SOURCE
    pattern = frame_pattern()
    data = np.empty((1, ngroups, N, N), np.float32)
    for group in range(ngroups):
        data[0, group] = (1000.0 + rate * (group * TGROUP) + SCALES[group] * pattern
                          + NOISE * rng.standard_normal((N, N), dtype=np.float32))
    model = datamodels.RampModel(data=data)
    meta = model.meta
    meta.telescope = "JWST"
    meta.instrument.name, meta.instrument.detector = "NIRSPEC", "NRS1"
    meta.exposure.type, meta.exposure.readpatt = "NRS_FIXEDSLIT", "NRSRAPID"
    meta.exposure.nints, meta.exposure.ngroups = 1, ngroups
    meta.exposure.nframes, meta.exposure.groupgap = 1, 0
    meta.exposure.group_time = meta.exposure.frame_time = TGROUP
    meta.subarray.name, meta.subarray.xstart, meta.subarray.ystart = "FULL", 1, 1
    meta.subarray.xsize = meta.subarray.ysize = N
    meta.observation.date, meta.observation.time = "2024-01-01", "00:00:00"
    meta.filename = "jw01_nrs1_ramp.fits"
    return model, rate


@pytest.fixture(scope="module")
def nirspec(tmp_path_factory):
    """References (GAIN, READNOISE for the draft rate; PICTUREFRAME) in a CRDS cache, a ramp,
    and our corrected ramp."""
    directory = tmp_path_factory.mktemp("picture_frame")
    paths = {}
    for serial, (reftype, model) in enumerate([
            ("gain", datamodels.GainModel(data=np.full((N, N), 1.0, np.float32))),
            ("readnoise", datamodels.ReadnoiseModel(data=np.full((N, N), 7.0, np.float32))),
            ("pictureframe", datamodels.PictureFrameModel(data=frame_pattern()))], start=1):
        paths[reftype] = directory / f"jwst_nirspec_{reftype}_{9200 + serial}.fits"
        _as_reference(model, reftype).save(paths[reftype])
    cache = write_local_cache(list(paths.values()), directory / "crds", "jwst_9200.pmap")
    ramp, rate = nirspec_ramp()
    with pytest.MonkeyPatch.context() as patch:
        _use_cache(patch, cache)
        corrected = PictureFrameStep.call(ramp, override_pictureframe=str(paths["pictureframe"]),
                                          mask_science_regions=False, n_sigma=0.0)
    return {"ramp": ramp, "rate": rate, "corrected": corrected, "cache": cache,
            "reference": str(paths["pictureframe"]), "directory": directory}


def _use_cache(patch, cache):
    from calwebb import references

    for variable in ("CRDS_SERVER_URL", "CRDS_CONTEXT", "CALWEBB_REFS"):
        patch.delenv(variable, raising=False)
    patch.setenv("CRDS_PATH", str(cache))
    patch.setenv("STPIPE_DISABLE_CRDS_STEPPARS", "true")
    references.forget_crds_state()


def test_region_geometry():
    center, edge = correct.region_masks(np.ones((N, N), bool))
    assert center.sum() == (1984 - 76) ** 2
    assert edge.sum() == (2043 - 4) ** 2 - (1985 - 75) ** 2
    assert not edge[:4].any() and not edge[:, 2043:].any() and not edge[1000, 75:1985].any()


def test_scale_and_offset_by_hand():
    """Reference 1 on the edge, 0 in the centre: scale = centre − edge contrast of the image
    over the reference's (−1), offset = the edge median."""
    reference = np.zeros((6, 6), np.float32)
    reference[0], reference[-1] = 1.0, 1.0
    edge = np.zeros((6, 6), bool)
    edge[0] = edge[-1] = True
    center = np.zeros((6, 6), bool)
    center[2:4, 2:4] = True
    # group 0 = 100, group k adds 10k everywhere plus 4k on the edge rows
    ramp = np.full((2, 3, 6, 6), 100.0, np.float32)
    for group in (1, 2):
        ramp[:, group] += 10.0 * group + 4.0 * group * reference
    ramp[1, 2, 3, 3] = 1000.0  # one outlier does not move the medians
    scales, offsets = correct.subtract_picture_frame(ramp, reference, center, edge, True)
    # c − e = −4k; reference centre − edge = −1: scale 4k; offset = edge median 14k
    np.testing.assert_allclose(scales, [[4, 8], [4, 8]])
    np.testing.assert_allclose(offsets, [[14, 28], [14, 28]])
    expected = np.full((2, 3, 6, 6), 100.0)
    expected[1, 2, 3, 3] = 1000.0 - 20.0
    np.testing.assert_allclose(ramp, expected)
    cube = np.stack([3.0 + 2.0 * reference, 1.0 + 0.5 * reference]).astype(np.float32)
    scales, offsets = correct.subtract_picture_frame(cube, reference, center, edge, False)
    np.testing.assert_allclose(scales, [2.0, 0.5])
    np.testing.assert_allclose(offsets, [5.0, 1.5])
    np.testing.assert_allclose(cube, 0.0, atol=1e-6)


def test_injected_picture_frame_is_removed_from_a_ramp(nirspec):
    ramp, rate, corrected = nirspec["ramp"], nirspec["rate"], nirspec["corrected"]
    assert corrected.meta.cal_step.picture_frame == "COMPLETE"
    np.testing.assert_array_equal(corrected.data[:, 0], ramp.data[:, 0])  # group 0 as it was
    background = rate == BACKGROUND
    border = background.copy()
    border[100:-100, 100:-100] = False  # where the pattern is strong
    sources = rate > BACKGROUND
    for group in range(1, len(SCALES)):
        signal = corrected.data[0, group] - corrected.data[0, 0]
        before = ramp.data[0, group] - ramp.data[0, 0]
        # the pattern (and the background level) is gone: border and centre agree with 0
        # to a small fraction of the read noise; before, the border was SCALES[k] brighter
        assert abs(np.median(signal[border])) < 0.003 * SCALES[group]
        assert abs(np.median(signal[background])) < 0.003 * SCALES[group]
        assert np.median(before[border]) > BACKGROUND * group * TGROUP + 0.1 * SCALES[group]
        # sources keep their flux above the background
        expected = (SOURCE * group * TGROUP)
        assert np.median(signal[sources]) == pytest.approx(expected, rel=0.01)


@pytest.mark.compare
def test_matches_the_official_step(nirspec, monkeypatch):
    official = pytest.importorskip("jwst.picture_frame").PictureFrameStep
    _use_cache(monkeypatch, nirspec["cache"])
    path = nirspec["ramp"].save(nirspec["directory"] / "jw01_nrs1_ramp.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = official.call(str(path), skip=False, mask_science_regions=False, n_sigma=0.0,
                               override_pictureframe=nirspec["reference"])
    ours = nirspec["corrected"]
    assert theirs.meta.cal_step.picture_frame == "COMPLETE"
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-6)
    our_correction = ours.data - nirspec["ramp"].data
    their_correction = theirs.data - nirspec["ramp"].data
    np.testing.assert_allclose(our_correction, their_correction, rtol=1e-4, atol=1e-3)


def nirspec_rate(amplitude, noise, seed=4):
    """A rate image: 0.2 DN/s background + amplitude × pattern + noise, and a 5 DN/s source."""
    rng = np.random.default_rng(seed)
    data = (0.2 + amplitude * frame_pattern() + rng.normal(0, noise, (N, N))).astype(np.float32)
    data[500:510, 700:710] = 5.0
    rate = datamodels.ImageModel(data=data, dq=np.zeros((N, N), np.uint32))
    rate.meta.instrument.name, rate.meta.subarray.name = "NIRSPEC", "FULL"
    rate.meta.instrument.detector, rate.meta.exposure.type = "NRS1", "NRS_FIXEDSLIT"
    rate.meta.filename = "jw01_nrs1_rate.fits"
    return rate


@pytest.fixture(scope="module")
def rate_reference(tmp_path_factory):
    reference = _as_reference(datamodels.PictureFrameModel(data=frame_pattern()), "pictureframe")
    return str(reference.save(tmp_path_factory.mktemp("pictureframe") / "jwst_pf_9300.fits"))


def test_injected_picture_frame_is_removed_from_a_rate(tmp_path, rate_reference):
    rate = nirspec_rate(0.3, 0.001)
    result = PictureFrameStep.call(rate, override_pictureframe=rate_reference, n_sigma=0.0,
                                   save_mask=True, save_correction=True,
                                   output_dir=str(tmp_path))
    assert result.meta.cal_step.picture_frame == "COMPLETE"
    # the pattern (0.3 × reference, ≈ 0.3 at the border) is removed to 1% of its amplitude,
    # and with it the background level; the source keeps its flux above the background
    assert np.abs(np.median(result.data[:100, :100])) < 0.003
    assert np.abs(np.median(result.data[1000:1100, 1000:1100])) < 0.003
    assert np.median(result.data[500:510, 700:710]) == pytest.approx(5.0 - 0.2, abs=0.01)
    mask = datamodels.open(tmp_path / "jw01_nrs1_pctfrm_mask.fits")
    assert mask.data[1000, 1000] == 1 and mask.data.min() == 1  # no clipping: all background
    saved = datamodels.open(tmp_path / "jw01_nrs1_pctfrm_correction.fits")
    np.testing.assert_allclose(saved.data, result.data - rate.data, atol=1e-6)


def test_clipping_masks_sources(rate_reference):
    rate = nirspec_rate(0.03, 0.01)
    background = correct.background_mask(rate.data, np.zeros((N, N), np.uint32),
                                         "NRS_FIXEDSLIT", False, 2.0)
    assert not background[500:510, 700:710].any()
    assert 0.95 < background[100:-100, 100:-100].mean() < 0.999


@pytest.mark.parametrize("instrument,subarray", [("MIRI", "FULL"), ("NIRSPEC", "SUB2048")])
def test_other_instruments_and_subarrays_are_skipped(caplog, instrument, subarray):
    model = datamodels.RampModel(data=np.zeros((1, 3, 8, 8), np.float32))
    model.meta.instrument.name, model.meta.subarray.name = instrument, subarray
    with caplog.at_level(logging.WARNING):
        result = PictureFrameStep.call(model)
    assert result.meta.cal_step.picture_frame == "SKIPPED"
    assert any("only applicable to NIRSpec full frame" in record.getMessage()
               for record in caplog.records)


def test_single_group_ramp_is_skipped():
    model = datamodels.RampModel(data=np.zeros((1, 1, N, N), np.float32))
    model.meta.instrument.name, model.meta.subarray.name = "NIRSPEC", "FULL"
    assert PictureFrameStep.call(model).meta.cal_step.picture_frame == "SKIPPED"


def test_default_is_skipped_in_a_pipeline():
    parameters = PictureFrameStep.parameters()
    assert parameters["skip"].default is True
    assert parameters["mask_science_regions"].default is True
    assert parameters["n_sigma"].default == 2.0


@pytest.mark.compare
def test_rate_with_clipping_matches_the_official_step(tmp_path, rate_reference, nirspec,
                                                      monkeypatch):
    official = pytest.importorskip("jwst.picture_frame").PictureFrameStep
    _use_cache(monkeypatch, nirspec["cache"])  # the official step asks CRDS for its context
    rate = nirspec_rate(0.03, 0.01)
    path = rate.save(tmp_path / "jw01_nrs1_rate.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = official.call(str(path), skip=False, mask_science_regions=False,
                               override_pictureframe=rate_reference)
    ours = PictureFrameStep.call(rate, override_pictureframe=rate_reference,
                                 mask_science_regions=False)
    assert ours.meta.cal_step.picture_frame == theirs.meta.cal_step.picture_frame == "COMPLETE"
    np.testing.assert_allclose(ours.data - rate.data, theirs.data - rate.data, rtol=1e-4,
                               atol=1e-6)
