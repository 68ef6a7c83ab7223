"""Stage 3 on Dask: calwebb_image3 with its per-exposure work (source finding, sky
statistics, drizzling, median bands, blot and flag) as tasks on a LocalCluster of 2 worker
processes (inputs and results pickled, as on a real cluster) gives the products of the
serial run; drizzle sums of separate images merge into the drizzle of all of them."""

import numpy as np
import pytest
from astropy.table import Table

from calwebb import datamodels
from calwebb.associations import load_association
from calwebb.outlier_detection.median import row_bands
from calwebb.parallel import run_many
from calwebb.parallel.executor import current, using
from calwebb.pipeline.image3 import Image3Pipeline
from calwebb.resample import grid
from calwebb.resample.drizzle_images import DrizzleInput, DrizzleSums, drizzle_images
from offline_crds import offline_crds

distributed = pytest.importorskip("distributed")

#: the functions that run as tasks, one or more each
TASKS = {"find_sources_in_file", "measure_sky_file", "drizzle_group_files", "median_of_files",
         "flag_file", "drizzle_file"}


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def observation_env(stage3_observation):
    observation = stage3_observation.observation
    with offline_crds(observation.crds_path):
        yield observation


@pytest.fixture(scope="module")
def runs(observation_env, client, tmp_path_factory):
    """(serial output dir, Dask output dir, Dask scratch dir, product name, task names)."""
    asn = str(observation_env.level3_asn)
    serial, dask, scratch = (tmp_path_factory.mktemp(name) for name in
                             ("serial", "dask", "scratch"))
    Image3Pipeline.call(asn, save_results=True, output_dir=str(serial))
    with using(client, directory=scratch) as executor, \
            distributed.get_task_stream(client) as stream:
        assert current() is executor
        Image3Pipeline.call(asn, save_results=True, output_dir=str(dask))
    assert current() is None
    names = {task["key"].split("-", 1)[0] for task in stream.data}
    product = load_association(asn).products[0].name
    return serial, dask, scratch, product, names


def test_every_kind_of_per_exposure_work_ran_as_tasks_and_left_no_files(runs):
    _, _, scratch, _, names = runs
    assert TASKS <= names
    assert list(scratch.iterdir()) == []


def test_outlier_flags_and_crf_products_are_identical(runs, stage3_observation):
    serial, dask, *_ = runs
    for cal in stage3_observation.cals:
        name = cal.meta.filename.replace("_cal", "_a3001_crf")
        one, other = datamodels.open(serial / name), datamodels.open(dask / name)
        np.testing.assert_array_equal(one.dq, other.dq)
        for array in ("data", "err", "var_rnoise", "var_poisson"):
            np.testing.assert_array_equal(getattr(one, array), getattr(other, array))


def test_mosaics_agree_to_float_rounding(runs):
    serial, dask, _, product, _ = runs
    one = datamodels.open(serial / f"{product}_i2d.fits")
    other = datamodels.open(dask / f"{product}_i2d.fits")
    np.testing.assert_array_equal(one.con, other.con)
    for array in ("data", "wht", "err", "var_rnoise", "var_poisson", "var_flat"):
        mine, theirs = getattr(one, array), getattr(other, array)
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        scale = np.nanmax(np.abs(mine))
        np.testing.assert_allclose(theirs, mine, rtol=1e-6, atol=1e-6 * scale, err_msg=array)


def test_catalogs_have_the_same_sources(runs):
    serial, dask, _, product, _ = runs
    one = Table.read(serial / f"{product}_cat.ecsv")
    other = Table.read(dask / f"{product}_cat.ecsv")
    assert len(one) == len(other) > 10
    np.testing.assert_array_equal(one["label"], other["label"])
    for column in ("xcentroid", "ycentroid", "aper_total_flux"):
        np.testing.assert_allclose(other[column], one[column], rtol=1e-5, equal_nan=True)


def test_run_many_runs_a_level3_association_here_and_its_exposures_on_the_cluster(
        observation_env, client, runs, tmp_path):
    _, dask, _, product, _ = runs
    with distributed.get_task_stream(client) as stream:
        [result] = run_many("calwebb_image3", [str(observation_env.level3_asn)],
                            scheduler=client, output_dir=str(tmp_path))
    assert result.status == "done", result.error
    names = {task["key"].split("-", 1)[0] for task in stream.data}
    assert "run_task" not in names and "drizzle_file" in names
    np.testing.assert_array_equal(datamodels.open(tmp_path / f"{product}_i2d.fits").con,
                                  datamodels.open(dask / f"{product}_i2d.fits").con)
    assert [path.name for path in tmp_path.iterdir() if path.is_dir()] == []


def test_without_a_scheduler_or_jobs_the_work_stays_in_this_process():
    with using() as executor:
        assert executor is None and current() is None


def _images(count, shape=(40, 48)):
    rng = np.random.default_rng(3)
    items = []
    for index in range(count):
        crval = (53.16 + index * 0.4 / 3600, -27.78 + index * 0.3 / 3600)
        wcs = grid.tangent_plane_wcs(crval, (23.5, 19.5), grid.cd_matrix(0.1 / 3600, 10.0 * index,
                                                                         -1), shape)
        dq = np.zeros(shape, np.uint32)
        dq[5, 7 + index] = 1  # DO_NOT_USE
        items.append(DrizzleInput(
            data=rng.normal(5.0, 1.0, shape).astype(np.float32), wcs=wcs, dq=dq,
            err=np.full(shape, 0.2, np.float32),
            variances={"var_rnoise": np.full(shape, 0.01 + 0.01 * index, np.float32),
                       "var_poisson": np.full(shape, 0.03, np.float32)}))
    output = grid.tangent_plane_wcs((53.16, -27.78), (30.0, 25.0), grid.cd_matrix(
        0.1 / 3600, 0.0, -1), (52, 62))
    return items, output


@pytest.mark.parametrize("options", [dict(), dict(error="err", variance_names=(),
                                                  propagate_dq=True, fillval="0")])
def test_merged_sums_of_single_images_equal_one_drizzle_of_all(options):
    items, output = _images(3)
    whole = drizzle_images(items, output, n_inputs=3, **options)
    total = DrizzleSums(output, n_inputs=3, **options)
    for index, item in enumerate(items):
        single = DrizzleSums(output, n_inputs=3, first_index=index, **options)
        single.add(item)
        state = single.state()
        y0, y1, x0, x1 = state["box"]
        assert state["data"].shape == state["weight"].shape == (y1 - y0, x1 - x0)
        total.merge(state)
    merged = total.result()
    assert merged.n_inputs == 3
    np.testing.assert_array_equal(merged.context, whole.context)
    np.testing.assert_allclose(merged.data, whole.data, rtol=1e-6)
    np.testing.assert_allclose(merged.weight, whole.weight, rtol=1e-6)
    np.testing.assert_allclose(merged.error, whole.error, rtol=1e-6)
    for name, variance in whole.variances.items():
        np.testing.assert_array_equal(merged.variances[name], variance)
    if whole.dq is not None:
        np.testing.assert_array_equal(merged.dq, whole.dq)


def test_median_bands_cover_the_rows_within_the_byte_budget():
    assert row_bands(4, (10, 8), band_bytes=4 * 8 * 4 * 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert row_bands(4, (10, 8), band_bytes=1) == [(row, row + 1) for row in range(10)]
    assert row_bands(1, (10, 8)) == [(0, 10)]


def test_members_kept_on_disk_give_the_same_products_as_tasks(runs, observation_env, client,
                                                               stage3_observation, tmp_path):
    """in_memory=False: changed members wait as raw arrays and reach the tasks as files."""
    serial, _, _, product, _ = runs
    (tmp_path / "scratch").mkdir()
    with using(client, directory=tmp_path / "scratch"):
        Image3Pipeline.call(str(observation_env.level3_asn), save_results=True,
                            output_dir=str(tmp_path), in_memory=False)
    for cal in stage3_observation.cals:
        name = cal.meta.filename.replace("_cal", "_a3001_crf")
        one, other = datamodels.open(serial / name), datamodels.open(tmp_path / name)
        for array in ("dq", "data", "err"):
            np.testing.assert_array_equal(getattr(one, array), getattr(other, array))
    one = datamodels.open(serial / f"{product}_i2d.fits")
    other = datamodels.open(tmp_path / f"{product}_i2d.fits")
    np.testing.assert_array_equal(one.con, other.con)
    for array in ("data", "wht"):  # merged task sums: equal to float rounding
        mine, theirs = getattr(one, array), getattr(other, array)
        np.testing.assert_allclose(theirs, mine, rtol=1e-6, atol=1e-6 * np.nanmax(np.abs(mine)),
                                   equal_nan=True, err_msg=array)
